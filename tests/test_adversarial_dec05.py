"""An adversarial pass of 2026-12-05, as a new user meets the tool: hand-written manifests,
unusual but valid datasets through `fix`, notebook-style inputs. Tiny generated datasets and
checks that train no model where the bug allows, so the file takes seconds."""

from __future__ import annotations

from datacheck.errors import ExitStatus

from .conftest import assert_one_line_error, invoke, make_image


def test_a_csv_header_with_blanks_after_the_commas_names_the_columns(tmp_path):
    """`path, label, split` (a blank after each comma, as people type a CSV by hand): the
    separator was chosen by the header's stripped names, but the columns kept their blanks, so
    ' label' and ' split' were extra columns and the audit ran on 4 unlabeled images without
    splits, exit 0 and not a word. The cells were stripped (' cat' is the class 'cat'), the
    header was not; now it is, for the columns datacheck reads."""
    from datacheck import load_manifest

    for i in range(4):
        make_image(tmp_path / "img" / f"{i}.png", i)
    rows = "".join(f"img/{i}.png, {'ab'[i % 2]}, {'train' if i < 3 else 'val'}, note{i}\n" for i in range(4))
    (tmp_path / "m.csv").write_text("path, label , split,\tcomment\n" + rows)
    frame = load_manifest(tmp_path / "m.csv").frame
    assert list(frame.columns) == ["sample_id", "path", "label", "split", "\tcomment"]  # the user's own: as written
    assert frame["label"].tolist() == ["a", "b", "a", "b"]
    assert frame["split"].tolist() == ["train", "train", "train", "val"]

    result = invoke("audit", tmp_path / "m.csv", "--checks", "class_imbalance", "--out", tmp_path / "run",
                    "--workers", 0, "-q", "--json")
    assert result.exit_code == 0, result.output
    import json

    summary = json.loads(result.stdout)
    assert summary["classes"] == 2 and summary["splits"] == {"train": 3, "val": 1}

    # read verbatim as the unpadded column is: a class named NA stays a class
    (tmp_path / "m.csv").write_text("path, label\nimg/0.png, NA\nimg/1.png, b\n")
    assert load_manifest(tmp_path / "m.csv").frame["label"].tolist() == ["NA", "b"]
    # and a padded copy of a column beside the column is one column twice
    (tmp_path / "m.csv").write_text("path,label, label\nimg/0.png,a,b\n")
    result = invoke("audit", tmp_path / "m.csv", "--checks", "class_imbalance", "--out", tmp_path / "run2", "-q")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "has more than one 'label' column; keep one")


def test_fix_of_a_dataset_whose_every_training_image_is_unreadable_says_so(tmp_path):
    """`datacheck fix` of a dataset whose training images are all unreadable: the relabel step
    drops them all (corrupt), then the fix failed on its own folders, naming them: "no images
    found in OUT/steps/2-relabel/dataset" (exit 3) where nothing else was left, and "there is no
    labeled training row to balance" (exit 2, a usage error) where readable val images were.
    Now both are bad data, saying why."""
    data = tmp_path / "data"
    for c in "ab":
        for i in range(3):
            (data / "train" / c).mkdir(parents=True, exist_ok=True)
            (data / "train" / c / f"{i}.png").write_bytes(b"not a png")
    for name, with_val in (("all", False), ("train", True)):
        if with_val:
            for j, c in enumerate("ab"):
                for i in range(2):
                    make_image(data / "val" / c / f"{i}.png", 10 * j + i)
        out = tmp_path / f"fix-{name}"
        result = invoke("fix", data, "--out", out, "--workers", 0, "-q")
        assert_one_line_error(result, ExitStatus.BAD_DATA, f"nothing left to fix in {data}: the relabel step removed "
                              f"every labeled training row (6 flagged: corrupt; see {out}/steps/2-relabel/changes.parquet)")
    # without the relabel step, balancing drops them (drop_flagged): bad data too, not a usage error
    result = invoke("fix", data, "--out", tmp_path / "fix-no-relabel", "--no-relabel", "--workers", 0, "-q")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "every labeled training row is flagged and dropped "
                          "(6 flagged: corrupt): nothing is left to balance")


def test_a_huge_gallery_size_is_the_whole_gallery_not_a_hang(tmp_path):
    """`datacheck report RUN --gallery-size 1000000000` ("show them all") ran for ever: the
    thumbnails were handed out rank by rank up to the gallery size, a billion empty turns,
    however few samples were flagged. Now the ranks stop at the longest gallery."""
    import shutil
    import subprocess
    import sys

    data = tmp_path / "data"
    for c in "ab":
        for i in range(3):
            make_image(data / c / f"{i}.png", 10 * ord(c) + i)
    shutil.copy(data / "a" / "0.png", data / "b" / "copy.png")  # one exact duplicate: a gallery of 1
    run = tmp_path / "run"
    result = invoke("audit", data, "--out", run, "--checks", "exact_duplicates", "--workers", 0, "-q")
    assert result.exit_code == 0, result.output
    done = subprocess.run([sys.executable, "-m", "datacheck", "report", str(run), "--gallery-size", str(10**12)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "report written to" in done.stderr and "2 thumbnails" in done.stderr, done.stderr


def test_a_categorical_of_labels_names_the_columns_in_its_categories_order():
    """A notebook's labels as a pandas Categorical whose categories are not sorted (``c, a,
    b``), with probabilities laid out in its codes' order (as a model trained on ``cat.codes``
    gives them): matched to the columns in sorted order, 55 of 60 samples were flagged. Its
    classes are its categories, in order, as its codes number them; a list of the same names
    is still sorted."""
    import numpy as np
    import pandas as pd

    import datacheck

    rng = np.random.default_rng(0)
    names = np.array(["c", "a", "b"])[np.arange(60) % 3]
    labels = pd.Categorical(names, categories=["c", "a", "b"])
    pred_probs = np.full((60, 3), 0.05)
    pred_probs[np.arange(60), labels.codes] = 0.9
    pred_probs[:3] = np.roll(pred_probs[:3], 1, axis=1)  # three mislabeled samples
    pred_probs += rng.uniform(0, 0.01, pred_probs.shape)
    pred_probs /= pred_probs.sum(axis=1, keepdims=True)

    flagged = datacheck.audit(labels=labels, pred_probs=pred_probs, checks=["label_issues"]).issues("label_issues")
    assert sorted(flagged["sample_id"].astype(int)) == [0, 1, 2]
    assert set(flagged["suggested_label"]) <= {"a", "b", "c"}
    # as a Series of that dtype too, and a plain list of the names is matched in sorted order
    again = datacheck.audit(labels=pd.Series(labels), pred_probs=pred_probs, checks=["label_issues"])
    assert sorted(again.issues("label_issues")["sample_id"].astype(int)) == [0, 1, 2]
    by_list = datacheck.audit(labels=list(names), pred_probs=pred_probs, checks=["label_issues"])
    # matched in sorted order the columns are another class's: no better than chance, so not judged
    threshold = by_list.summary["checks"]["label_issues"]["threshold"]
    assert threshold["out_of_fold_accuracy"] == 0.0 and threshold["rule"].startswith("off: the model is below chance")
    assert "another order would agree with 0.950 of the labels" in threshold["rule"]
    judged = datacheck.audit(labels=list(names), pred_probs=pred_probs, checks=["label_issues"],
                             config={"detectors": {"label_issues": {"judge_at_chance": True}}})
    assert len(judged.issues("label_issues")) > 30

"""`datacheck fix` on inputs the sample data does not cover: a one-class dataset, missing
files, an --out made from another dataset. Small datasets and the checks that need no model,
so each test takes seconds."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

import datacheck
from datacheck.errors import UsageError

from .conftest import assert_one_line_error, invoke, make_image, make_tiny_dataset, tree_digest

QUICK = '[audit]\nchecks = ["image_properties"]\n'


@pytest.fixture
def quick(tmp_path):
    config = tmp_path / "quick.toml"
    config.write_text(QUICK)
    return config


def make_one_class(root):
    seed = 0
    for split, n in (("train", 8), ("val", 2)):
        for i in range(n):
            make_image(root / split / "cat" / f"cat{i}.png", seed)
            seed += 1
    return root


def test_one_class_dataset_is_fixed_without_relabelling(tmp_path, quick):
    """One class: no label suggestions, so relabelling is skipped with a note, and the other
    steps still fill the budget (before: "--auto needs label suggestions", exit 2)."""
    data = make_one_class(tmp_path / "one")
    before = tree_digest(data)
    out = tmp_path / "out"
    result = invoke("fix", data, "--out", out, "--budget", 20, "--config", quick, "--workers", 0, "--json", "-q")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("datacheck: note: ")]
    assert len(notes) == 1 and "1 class has no label suggestions" in notes[0], result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows"] == 20 and summary["choices"]["relabel"]["auto"] is False
    assert summary["steps"]["relabel"]["status"] == "done" and summary["steps"]["augment"]["status"] == "done"
    m = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert len(m) == 20 and set(m["label"]) == {"cat"} and not (m["action"] == "relabel").any()
    assert tree_digest(data) == before


def test_missing_files_are_tolerated_with_max_missing(tmp_path, quick):
    """The missing-files error names --max-missing, and fix accepts it (before: "No such
    option"); in Python the keyword is max_missing."""
    data = make_tiny_dataset(tmp_path / "tiny")
    frame = datacheck.load_manifest(data).frame
    frame.to_csv(data / "manifest.csv", index=False)
    (data / "train" / "cat" / "cat0.png").unlink()
    args = ["fix", data / "manifest.csv", "--config", quick, "--workers", 0, "-q", "--no-relabel", "--no-boost"]
    assert_one_line_error(invoke(*args, "--out", tmp_path / "refused"), 3, "1 of 16 files",
                          "allow some with --max-missing (now 0)")
    assert not (tmp_path / "refused").exists()
    assert_one_line_error(invoke(*args, "--out", tmp_path / "neg", "--max-missing", -1), 2, "--max-missing")
    result = invoke(*args, "--out", tmp_path / "out", "--max-missing", 1, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 15  # the budget defaults to the rows there are
    assert "train/cat/cat0.png" not in set(pd.read_csv(tmp_path / "out" / "manifest.csv")["source_id"])
    with pytest.raises(datacheck.BadDataError, match=r"allow some with max_missing \(now 0\)"):
        datacheck.fix(data / "manifest.csv", tmp_path / "api", config=quick, workers=0)
    with pytest.raises(UsageError, match="^max_missing must be an integer >= 0, got -1$"):
        datacheck.fix(data / "manifest.csv", tmp_path / "api", config=quick, max_missing=-1)
    with pytest.raises(UsageError, match="^budget must be an integer >= 1, got 0$"):
        datacheck.fix(data / "manifest.csv", tmp_path / "api", config=quick, budget=0)
    assert not (tmp_path / "api").exists()


def test_an_out_of_another_dataset_is_refused_as_such(tmp_path, quick):
    """--out holding the fix of dataset A, asked to fix dataset B: exit 2, "another dataset"
    (before: exit 3, "B changed since the fix began"), and the folder is left as it was."""
    first, other = make_one_class(tmp_path / "a"), make_tiny_dataset(tmp_path / "b")
    out = tmp_path / "out"
    args = ["--out", out, "--budget", 20, "--config", quick, "--workers", 0, "-q", "--no-relabel", "--no-boost"]
    assert invoke("fix", first, *args).exit_code == 0
    before = tree_digest(out)
    assert_one_line_error(invoke("fix", other, *args), 2, f"{out} is a fix of another dataset ({first.resolve()})",
                          f"not of {other.resolve()}", "new --out")
    with pytest.raises(UsageError, match="is a fix of another dataset"):
        datacheck.fix(other, out, budget=20, config=quick, workers=0, relabel=False, boost=False)
    assert tree_digest(out) == before


def test_other_settings_name_the_first_that_differs(tmp_path, quick):
    """Before, only budget and seed were named ("other settings (fix)" for the rest)."""
    data = make_one_class(tmp_path / "one")
    out = tmp_path / "out"
    args = ["fix", data, "--out", out, "--budget", 20, "--workers", 0, "-q", "--no-boost"]
    assert invoke(*args, "--config", quick).exit_code == 0
    before = tree_digest(out)
    assert_one_line_error(invoke(*args[:-1], "--config", quick), 2, "other settings ([fix] boost false, now true)")
    other = tmp_path / "other.toml"
    other.write_text(QUICK + "\n[augment]\nmagnitude = 12\n")
    assert_one_line_error(invoke(*args, "--config", other), 2, "other settings ([augment] magnitude 9, now 12)")
    other.write_text('[audit]\nchecks = ["image_properties", "exact_duplicates"]\n')
    assert_one_line_error(invoke(*args, "--config", other), 2,
                          '([audit] checks ["image_properties", "clusters", "label_issues"], now '
                          '["image_properties", "exact_duplicates", "clusters", "label_issues"])')
    other.write_text(QUICK + "\n[detectors.image_properties]\nz_threshold = 5.0\n")
    assert_one_line_error(invoke(*args, "--config", other), 2, "([detectors.image_properties] z_threshold 4.0, now 5.0)")
    with pytest.raises(UsageError, match=r"other settings \(seed 0, now 3\)"):
        datacheck.fix(data, out, budget=20, config=quick, workers=0, boost=False, seed=3)
    assert tree_digest(out) == before


def test_a_budget_that_leaves_classes_without_training_rows(tmp_path, quick):
    """A budget of exactly the val/test rows trimmed every training row away, silently; now it
    is refused (exit 2), and a budget that leaves some class no training row says which."""
    data = make_tiny_dataset(tmp_path / "tiny")  # 12 train, 4 val rows; classes cat and dog
    args = ["fix", data, "--config", quick, "--workers", 0, "-q", "--no-relabel", "--no-boost"]
    assert_one_line_error(invoke(*args, "--out", tmp_path / "a", "--budget", 4), 2,
                          "--budget 4 equals the 4 val/test rows", "no training rows")
    with pytest.raises(UsageError, match="^budget 4 equals the 4 val/test rows"):
        datacheck.fix(data, tmp_path / "a", budget=4, config=quick, relabel=False, boost=False)
    assert not (tmp_path / "a").exists()
    result = invoke(*args, "--out", tmp_path / "b", "--budget", 5, "--json")
    assert result.exit_code == 0, result.output
    m = pd.read_csv(tmp_path / "b" / "manifest.csv", dtype=str, keep_default_na=False)
    empty = sorted({"cat", "dog"} - set(m.loc[m["split"] == "train", "label"]))
    assert len(empty) == 1
    notes = [line for line in result.stderr.splitlines() if line.startswith("datacheck: note: ")]
    assert notes == [f"datacheck: note: the budget leaves 1 training row for 2 classes: class {empty[0]} left "
                     "without training rows; give a larger budget"]
    assert json.loads(result.stdout)["notes"] == [notes[0].removeprefix("datacheck: note: ")]


def test_config_budget_zero_is_the_datasets_row_count(tmp_path):
    """As README says: `[fix] budget = 0` is the default, the source dataset's rows (--budget 0
    on the command line is refused: give a number of rows, or leave it out)."""
    data = make_tiny_dataset(tmp_path / "tiny")
    config = tmp_path / "fix.toml"
    config.write_text(QUICK + "\n[fix]\nbudget = 0\nrelabel = false\nboost = false\n")
    result = invoke("fix", data, "--out", tmp_path / "out", "--config", config, "--workers", 0, "-q", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["budget"] == summary["rows"] == 16
    assert_one_line_error(invoke("fix", data, "--out", tmp_path / "b", "--budget", 0), 2, "--budget must be an integer >= 1")


def test_a_class_that_drop_flagged_empties_is_named_in_a_note(tmp_path):
    """Every training image of dog is an exact copy of a cat image: the audit flags the copies,
    balancing leaves them out ([fix] drop_flagged), and dog has no training row left. Before,
    no note said so (dog dropped out of the budget's class targets); now one does, on stderr
    and in the summary's notes, naming dog and no other class."""
    data = tmp_path / "copies"
    seed = 0
    for i in range(6):
        make_image(data / "train" / "cat" / f"cat{i}.png", seed + i)
    for i in range(3):
        target = data / "train" / "dog" / f"dog{i}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((data / "train" / "cat" / f"cat{i}.png").read_bytes())
    for label in ("cat", "dog"):
        for i in range(2):
            make_image(data / "val" / label / f"{label}{i}.png", 100 + seed)
            seed += 1
    before = tree_digest(data)
    config = tmp_path / "c.toml"
    config.write_text('[audit]\nchecks = ["image_properties", "exact_duplicates"]\n[train]\nepochs = 1\nfolds = 2\n')
    result = invoke("fix", data, "--out", tmp_path / "out", "--config", config, "--workers", 0, "-q", "--json",
                    "--no-relabel", "--no-boost")
    assert result.exit_code == 0, result.output
    notes = [line.removeprefix("datacheck: note: ") for line in result.stderr.splitlines()
             if line.startswith("datacheck: note: ")]
    assert len(notes) == 1 and notes[0].startswith("class dog left without training rows: "), result.stderr
    assert "[fix] drop_flagged left out all its training samples" in notes[0]
    assert json.loads(result.stdout)["notes"] == notes
    m = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype=str, keep_default_na=False)
    assert "dog" not in set(m.loc[m["split"] == "train", "label"])
    assert tree_digest(data) == before


def test_a_fix_json_without_a_settings_section_names_it(tmp_path, quick):
    """A hand-edited fix.json without its whole ``audit_config`` section: exit 2 naming it
    (before: exit 4, IndexError in the message's setting name), and the folder is left as it was."""
    data = make_one_class(tmp_path / "one")
    out = tmp_path / "out"
    args = ["fix", data, "--out", out, "--budget", 12, "--config", quick, "--workers", 0, "-q", "--no-relabel",
            "--no-boost"]
    assert invoke(*args).exit_code == 0
    marker = out / "fix.json"
    recorded = json.loads(marker.read_text())
    del recorded["audit_config"]
    marker.write_text(json.dumps(recorded))
    before = tree_digest(out)
    assert_one_line_error(invoke(*args), 2, "other settings (audit_config (not set), now {")
    assert tree_digest(out) == before


def test_a_steps_file_deleted_by_hand_makes_that_step_again(tmp_path):
    """A file a complete step wrote beside its marker (the plan, augment's own marker), deleted
    from DIR/steps: the rerun makes that step again and gives the same manifest (before: exit
    4, FileNotFoundError, or exit 2 "not an augment output")."""
    data = make_tiny_dataset(tmp_path / "tiny")
    out = tmp_path / "out"
    config = tmp_path / "short.toml"
    config.write_text(QUICK + "[train]\nepochs = 1\nfolds = 2\n")
    args = ["fix", data, "--out", out, "--budget", 20, "--config", config, "--workers", 0, "-q", "--no-boost",
            "--no-relabel"]
    assert invoke(*args).exit_code == 0
    digest = (out / "manifest.csv").read_bytes()
    for name in ("4-balance/plan.parquet", "5-augment/augment.json"):
        (out / "steps" / name).unlink()
        result = invoke(*args)
        assert result.exit_code == 0, (name, result.output)
        assert (out / "steps" / name).is_file() and (out / "manifest.csv").read_bytes() == digest


def test_the_materialized_dataset_folder_has_a_plain_folders_permissions(tmp_path):
    """``DIR/dataset`` (fix's output step, relabel --materialize) is built under a temporary
    name and renamed: it had mkdtemp's mode 0700, so only its owner could read the fixed
    dataset; now a plain mkdir's (0777 less the umask), as its subfolders have."""
    import os

    from datacheck.actions.materialize import materialize

    data = make_tiny_dataset(tmp_path / "tiny")
    frame = datacheck.load_manifest(data).frame
    materialize(frame, data, tmp_path / "out" / "dataset")
    umask = os.umask(0o22)
    os.umask(umask)
    mode = (tmp_path / "out" / "dataset").stat().st_mode & 0o777
    assert mode == 0o777 & ~umask == (tmp_path / "out" / "dataset" / "train").stat().st_mode & 0o777


def test_a_dataset_without_labelled_training_rows_is_refused_before_any_audit(tmp_path, quick):
    """Every train label empty: one line naming the labels, exit 3, before any audit (was the
    relabel step's "no images found in .../steps/2-relabel/dataset"), and no --out is made."""
    data = make_tiny_dataset(tmp_path / "tiny")
    rows = [{"path": p.relative_to(data).as_posix(), "split": p.parts[-3],
             "label": "" if p.parts[-3] == "train" else p.parts[-2]} for p in sorted(data.rglob("*.png"))]
    pd.DataFrame(rows).to_csv(tmp_path / "unlabelled.csv", index=False)
    result = invoke("fix", tmp_path / "unlabelled.csv", "--root", data, "--out", tmp_path / "out", "--budget", 20,
                    "--config", quick, "--workers", 0)
    assert_one_line_error(result, 3, "has no labeled training row")
    assert not (tmp_path / "out").exists()


def test_a_dataset_without_training_rows_is_refused_before_any_audit(tmp_path, quick):
    """Only a val split: refused at once (before: an audit and a re-audit ran, then balance's
    "there is no labeled training row to balance"), and no --out is made. Bad data (exit 3),
    as balance says of the same dataset: no option of the command line changes it."""
    data = make_tiny_dataset(tmp_path / "tiny")
    shutil.rmtree(data / "train")
    result = invoke("fix", data, "--out", tmp_path / "out", "--budget", 20, "--config", quick, "--workers", 0)
    assert_one_line_error(result, 3, "has no training rows", "val/test")
    assert not (tmp_path / "out").exists()

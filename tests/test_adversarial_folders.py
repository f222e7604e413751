"""A messy but valid image folder, as a real team has one: odd class names, mixed formats and
modes, sizes far from the rest. Each test pins a bug found by using datacheck on such data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from PIL import Image

from datacheck.manifest import load_manifest
from datacheck.reporting.summary import format_threshold

from .conftest import JUDGE_AT_CHANCE_TOML, assert_one_line_error, invoke, make_image

QUICK = ("--checks", "image_properties,exact_duplicates,near_duplicates", "--workers", "0", "--cache-dir", "off")


def test_a_class_named_like_a_split_beside_other_classes_is_a_class(tmp_path):
    # Pascal VOC has a class "train": root/train/*.jpg beside root/bus/*.jpg is the
    # root/<class>/* layout (a split folder holds class folders, this one holds images), and so
    # is what relabel --materialize writes for a manifest without splits, which must audit again.
    data = tmp_path / "voc"
    for label, seed in (("train", 0), ("bus", 10), ("Test", 20)):
        for i in range(3):
            make_image(data / label / f"{i}.png", seed + i)
    (data / "sofa").mkdir()  # an empty class folder beside them changes nothing
    manifest = load_manifest(data)
    assert manifest.frame["label"].value_counts().to_dict() == {"Test": 3, "bus": 3, "train": 3}
    assert manifest.frame["split"].isna().all()

    csv = tmp_path / "flat" / "manifest.csv"
    for i, label in enumerate(["train", "train", "car", "car"]):
        make_image(csv.parent / "img" / f"{i}.png", 40 + i)
    pd.DataFrame({"path": [f"img/{i}.png" for i in range(4)],
                  "label": ["train", "train", "car", "car"]}).to_csv(csv, index=False)
    assert invoke("audit", csv, "--out", tmp_path / "run", "-q", *QUICK).exit_code == 0
    done = invoke("relabel", tmp_path / "run", "--drop", "--materialize", tmp_path / "clean", "-q")
    assert done.exit_code == 0, done.output
    again = invoke("audit", tmp_path / "clean", "--out", tmp_path / "again", "-q", "--json", *QUICK)
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert (summary["samples"], summary["classes"], summary["splits"]) == (4, 2, {"(none)": 4})


def test_split_folders_beside_another_folder_are_still_a_mixed_layout(tmp_path):
    # The rule above only reads split-named folders without class folders as classes.
    data = tmp_path / "mixed"
    make_image(data / "train" / "cat" / "0.png", 0)
    make_image(data / "extras" / "1.png", 1)
    result = invoke("audit", data, "--out", tmp_path / "run", *QUICK)
    assert result.exit_code == 3 and "mixed folder layout" in result.stderr
    # Nor is train/*.png beside a folder of annotations a class "train" (a detection dataset).
    flat = tmp_path / "detection"
    make_image(flat / "train" / "0.png", 2)
    (flat / "annotations").mkdir()
    (flat / "annotations" / "0.json").write_text("{}")
    result = invoke("audit", flat, "--out", tmp_path / "run2", *QUICK)
    assert result.exit_code == 3 and "mixed folder layout" in result.stderr


def test_portable_anymap_images_are_read_as_torchvision_reads_them(tmp_path):
    # The ORL and Yale face sets are .pgm files, which torchvision's ImageFolder trains on; they
    # were skipped as non-images ("no images found ... skipped 6 non-image file(s)").
    data = tmp_path / "faces"
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (28, 23), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    for label in ("s1", "s2"):
        (data / label).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.roll(grey, 7 * i + (label == "s2") * 40, axis=1)).save(data / label / f"{i}.pgm")
        shifted = np.roll(grey, 20 if label == "s2" else 60, axis=0)
        Image.fromarray(np.stack([shifted, shifted[::-1], shifted[:, ::-1]], -1)).save(data / label / "colour.ppm")
    # A 16-bit PGM (maxval 65535) of the first face: measured as the 8-bit one, not clipped white.
    Image.fromarray(grey.astype(np.uint16) * 257).save(data / "s1" / "deep.pgm")
    result = invoke("audit", data, "--out", tmp_path / "run", "-q", "--json", *QUICK)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["samples"], summary["skipped_files"]) == (7, {})
    findings = pd.read_parquet(tmp_path / "run" / "findings.parquet")
    dark = findings[findings["check"] == "dark"].set_index("sample_id")["details"].map(json.loads)
    assert dark["s1/deep.pgm"]["brightness_high"] == dark["s1/0.pgm"]["brightness_high"] < 255
    exact = findings[(findings["check"] == "exact_duplicates") & findings["is_issue"]]
    assert exact.empty  # 16-bit and 8-bit files hold other pixels: near duplicates, not exact
    near = findings[findings["check"] == "near_duplicates"].set_index("sample_id")
    assert near.loc["s1/deep.pgm", "is_issue"] != near.loc["s1/0.pgm", "is_issue"]  # one copy kept


def test_repairs_of_a_one_class_audit_say_why_its_checks_were_off(tmp_path):
    # The default audit of one class runs label_issues and clusters, which turn themselves off
    # (no second class to suggest, no model to embed); relabel --auto and balance told the user
    # to "audit with the label_issues check" / "--checks including clusters", which they had done.
    for i in range(12):
        make_image(tmp_path / "data" / "only" / f"{i}.png", i)
    ran = invoke("audit", tmp_path / "data", "--out", tmp_path / "run", "-q", "--workers", "0", "--cache-dir", "off")
    assert ran.exit_code == 0, ran.output
    relabel = invoke("relabel", tmp_path / "run", "--auto", "--drop", "--out", tmp_path / "fixed")
    line = assert_one_line_error(relabel, 2, "--auto needs label suggestions",
                                 "label_issues was off: no sample has out-of-fold probabilities: confident learning needs "
                                 "labels of two classes or more")
    assert "audit with the label_issues check" not in line
    assert invoke("relabel", tmp_path / "run", "--drop", "--out", tmp_path / "fixed", "-q").exit_code == 0
    balance = invoke("balance", tmp_path / "run", "--out", tmp_path / "plan")
    line = assert_one_line_error(balance, 2, "clusters was off: no embeddings", "--strategy classes")
    assert "--checks including clusters" not in line
    assert invoke("balance", tmp_path / "run", "--out", tmp_path / "plan", "--strategy", "classes", "-q").exit_code == 0


def test_a_class_with_val_images_and_none_in_train_is_the_worst_imbalance(tmp_path):
    # root/val/triangle/ without root/train/triangle/: a model trained on the split never learns
    # triangles, yet class_imbalance counted train's classes only and flagged nothing.
    data = tmp_path / "data"
    seed = 0
    for split, sizes in (("train", {"circle": 6, "square": 5}), ("val", {"circle": 2, "square": 2, "triangle": 3})):
        for label, n in sizes.items():
            for i in range(n):
                make_image(data / split / label / f"{i}.png", seed)
                seed += 1
    result = invoke("audit", data, "--checks", "class_imbalance", "--out", tmp_path / "run", "--json", "--workers", "0")
    assert result.exit_code == 0, result.output
    check = json.loads(result.stdout)["checks"]["class_imbalance"]
    assert (check["flagged"], check["scored"]) == (3, 14)
    assert check["threshold"]["not_in_train"] == ["triangle"] and check["threshold"]["median_class_size"] == 5.5
    assert format_threshold(check["threshold"]) == "class size < 2.75 (train); none in train: triangle"
    findings = pd.read_parquet(tmp_path / "run" / "findings.parquet")
    flagged = findings[findings["is_issue"]]
    assert sorted(flagged["sample_id"]) == [f"val/triangle/{i}.png" for i in range(3)]
    assert (flagged["score"] == 0).all()
    assert set(findings.loc[~findings["is_issue"], "split"]) == {"train"}


def test_a_file_without_an_image_extension_is_refused_before_a_folder_is_written(tmp_path):
    # A manifest may list "blobs/ab12" or "x.jfif" (Pillow reads them by content), but the folder
    # written by relabel --materialize, augment and fix is scanned by extension: the originals
    # were linked there and then left out ("no images found in fix/steps/2-relabel/dataset").
    data = tmp_path / "data"
    names = ["a0.jfif", "a1", "a2.png", "b0", "b1.png", "b2.png"]
    for i, name in enumerate(names):
        make_image(data / "blobs" / f"{i}.png", i).rename(data / "blobs" / name)  # PNG bytes by any name
    manifest = data / "manifest.csv"
    pd.DataFrame({"path": [f"blobs/{n}" for n in names], "label": list("aaabbb")}).to_csv(manifest, index=False)
    ran = invoke("audit", manifest, "--out", tmp_path / "run", "-q", "--json", *QUICK)
    assert ran.exit_code == 0 and json.loads(ran.stdout)["samples"] == 6
    for args in (["relabel", tmp_path / "run", "--drop", "--out", tmp_path / "rel", "--materialize", tmp_path / "mat"],
                 ["balance", tmp_path / "run", "--strategy", "classes", "--out", tmp_path / "plan", "-q"],
                 ["augment", tmp_path / "plan", "--out", tmp_path / "aug", "--workers", "0"]):
        result = invoke(*args)
        if args[0] != "balance":
            assert_one_line_error(result, 3, "cannot write 'blobs/a0.jfif' into a folder dataset", ".png")
    assert not any((tmp_path / name).exists() for name in ("rel", "mat", "aug"))


def test_fix_names_the_classes_its_relabel_step_left_without_rows(tmp_path):
    # Class "zz" holds two exact copies of "aa" images: relabel --drop keeps the aa copies, so
    # zz is gone from the result. datacheck relabel says so in a note; fix said nothing (notes
    # [] in summary.json, no note line) and wrote a dataset without the class.
    data = tmp_path / "data"
    for label, seed in (("aa", 0), ("bb", 100)):
        for i in range(8):
            make_image(data / label / f"{i}.png", seed + i)
    (data / "zz").mkdir()
    for i in range(2):
        (data / "zz" / f"copy{i}.png").write_bytes((data / "aa" / f"{i}.png").read_bytes())
    config = tmp_path / "fast.toml"
    # random images: the model is at chance, and its label suggestions (what this is about) are asked for anyway
    config.write_text("[train]\nepochs = 2\n" + JUDGE_AT_CHANCE_TOML)
    result = invoke("fix", data, "--out", tmp_path / "fixed", "--budget", "20", "--config", config,
                    "--workers", "0", "--no-boost", "-q")
    assert result.exit_code == 0, result.output
    note = "class zz left without training rows: relabel moved or dropped every one"
    assert f"datacheck: note: {note}" in result.stderr
    summary = json.loads((tmp_path / "fixed" / "summary.json").read_text())
    assert summary["notes"] == [note] and summary["classes"]["zz"]["after"] == 0

"""A messy but valid image folder, as a real team has one: odd class names, mixed formats and
modes, sizes far from the rest. Each test pins a bug found by using datacheck on such data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from datacheck.manifest import load_manifest

from .conftest import invoke, make_image

QUICK = ("--checks", "image_properties,exact_duplicates,near_duplicates", "--workers", "0", "--cache-dir", "off")


def test_a_class_named_like_a_split_beside_other_classes_is_a_class(tmp_path):
    # Pascal VOC has a class "train": root/train/*.jpg beside root/bus/*.jpg is the
    # root/<class>/* layout (a split folder holds class folders, this one holds images), and so
    # is what relabel --materialize writes for a manifest without splits, which must audit again.
    data = tmp_path / "voc"
    for label, seed in (("train", 0), ("bus", 10), ("Test", 20)):
        for i in range(3):
            make_image(data / label / f"{i}.png", seed + i)
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

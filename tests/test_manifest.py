"""Manifest loading: folder layouts, CSV/Parquet/JSONL, normalisation, extra columns."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from datacheck.errors import BadDataError
from datacheck.manifest import load_manifest

from .conftest import make_image


def test_split_class_folder_layout(tiny_dataset):
    m = load_manifest(tiny_dataset)
    assert list(m.frame.columns) == ["sample_id", "path", "label", "split"]
    assert len(m) == 16 and m.format == "folder"
    assert m.frame["split"].value_counts().to_dict() == {"train": 12, "val": 4}
    assert m.frame.loc[0].to_dict() == {"sample_id": "train/cat/cat0.png", "path": "train/cat/cat0.png",
                                        "label": "cat", "split": "train"}
    assert m.root == tiny_dataset.resolve()


def test_class_folder_layout_with_nested_files_and_skips(tmp_path):
    root = tmp_path / "d"
    make_image(root / "a" / "1.png", 1)
    make_image(root / "a" / "sub" / "2.JPG", 2)
    make_image(root / "b" / "3.bmp", 3)
    (root / "b" / "meta-data.json").write_text("{}")
    (root / "README.md").write_text("hi")
    (root / "b" / ".DS_Store").write_text("")
    m = load_manifest(root)
    assert m.frame["sample_id"].tolist() == ["a/1.png", "a/sub/2.JPG", "b/3.bmp"]
    assert m.frame["label"].tolist() == ["a", "a", "b"]
    assert m.frame["split"].isna().all()
    assert m.skipped == {"non_image": 2}


def test_valid_folder_is_the_val_split(tmp_path):
    make_image(tmp_path / "d" / "Train" / "x" / "1.png", 1)
    make_image(tmp_path / "d" / "valid" / "x" / "2.png", 2)
    assert load_manifest(tmp_path / "d").frame["split"].tolist() == ["train", "val"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_manifest_files_keep_extra_columns(tiny_dataset, fmt):
    frame = pd.DataFrame({
        "path": ["train/cat/cat0.png", "val/dog/dog1.png", "train/dog/dog2.png"],
        "label": ["cat", "dog", None],
        "split": ["train", "Validation", None],
        "annotator": ["ann", "bob", "cy"],
        "weight": [1.5, 2.0, 0.5],
    })
    path = tiny_dataset / f"m.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path)
    else:
        path.write_text("\n".join(json.dumps(r) for r in frame.to_dict("records")) + "\n")
    m = load_manifest(path)
    assert list(m.frame.columns) == ["sample_id", "path", "label", "split", "annotator", "weight"]
    assert m.frame["sample_id"].tolist() == frame["path"].tolist()
    assert m.frame["split"].tolist()[:2] == ["train", "val"] and pd.isna(m.frame["split"][2])
    assert pd.isna(m.frame["label"][2])
    assert m.frame["annotator"].tolist() == ["ann", "bob", "cy"]
    assert m.frame["weight"].tolist() == [1.5, 2.0, 0.5]
    assert m.format == fmt


def test_numeric_labels_and_ids_are_names(tiny_dataset):
    path = tiny_dataset / "m.jsonl"
    path.write_text('{"path": "train/cat/cat0.png", "label": 3, "sample_id": 10}\n'
                    '{"path": "train/cat/cat1.png", "label": 3, "sample_id": 11}\n')
    m = load_manifest(path)
    assert m.frame["label"].tolist() == ["3", "3"]
    assert m.frame["sample_id"].tolist() == ["10", "11"]


def test_fingerprint_changes_when_a_file_changes(tiny_dataset):
    before = load_manifest(tiny_dataset).fingerprint
    assert load_manifest(tiny_dataset).fingerprint == before
    make_image(tiny_dataset / "train" / "cat" / "cat0.png", seed=1234)
    assert load_manifest(tiny_dataset).fingerprint != before


def test_every_listed_file_missing(tiny_dataset):
    path = tiny_dataset / "m.csv"
    path.write_text("path,label\nnope.png,cat\n")
    with pytest.raises(BadDataError, match="no images found"):
        load_manifest(path, max_missing=5)


def test_empty_path_cell(tiny_dataset):
    path = tiny_dataset / "m.csv"
    path.write_text("path,label\ntrain/cat/cat0.png,cat\n,dog\n")
    with pytest.raises(BadDataError, match=r"empty path .* \(row 2\)"):
        load_manifest(path)

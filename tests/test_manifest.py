"""Manifest loading: folder layouts, CSV/Parquet/JSONL, normalisation, extra columns."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from datacheck.errors import BadDataError, ExitStatus
from datacheck.manifest import load_manifest, write_manifest

from .conftest import assert_one_line_error, invoke, make_image


def audit_error(manifest, out, *args) -> str:
    """Audit ``manifest``; assert exit 3 with one error line, no traceback; return that line."""
    result = invoke("audit", manifest, "--out", out, "--workers", 0, "--checks", "class_imbalance", *args)
    return assert_one_line_error(result, ExitStatus.BAD_DATA)


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


def test_images_beside_class_folders_are_named_so(tmp_path):
    flat = tmp_path / "flat"
    for i in range(3):
        make_image(flat / f"{i}.png", i)
    make_image(flat / "a" / "x.png", 9)
    manifest = load_manifest(flat)
    assert manifest.skipped == {"outside_class_folder": 3}
    assert manifest.frame["path"].tolist() == ["a/x.png"]


def test_a_folder_of_images_without_class_folders_is_unlabeled_images(tmp_path):
    """A folder of photos (what CleanVision audits) was 'no images found'; its images are
    unlabeled samples: the image checks and duplicates run, the label checks say they are off."""
    flat = tmp_path / "flat"
    for i in range(3):
        make_image(flat / f"{i}.png", i)
    make_image(flat / "copy.png", 0)
    (flat / "notes.txt").write_text("not an image")
    (flat / "annotations").mkdir()  # a folder of no images is no class
    (flat / "annotations" / "0.json").write_text("{}")
    manifest = load_manifest(flat)
    assert manifest.frame["path"].tolist() == ["0.png", "1.png", "2.png", "copy.png"]
    assert manifest.frame["label"].isna().all() and manifest.frame["split"].isna().all()
    assert manifest.skipped == {"non_image": 1}
    result = invoke("audit", flat, "--out", tmp_path / "run", "--checks", "exact_duplicates,class_imbalance",
                    "--workers", 0, "--cache-dir", "off", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["samples"] == 4 and summary["checks"]["exact_duplicates"]["flagged"] == 1
    assert summary["checks"]["class_imbalance"]["threshold"]["rule"] == "off: fewer than two labeled classes"


def test_split_folders_of_images_without_class_folders_are_unlabeled_splits(tmp_path):
    data = tmp_path / "d"
    make_image(data / "train" / "a.png", 1)
    make_image(data / "test" / "b.png", 2)
    frame = load_manifest(data).frame
    assert frame["path"].tolist() == ["test/b.png", "train/a.png"]
    assert frame["split"].tolist() == ["test", "train"] and frame["label"].isna().all()


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


NA_WORDS = ["NA", "None", "null", "n/a", "nan", "NaN"]


def test_na_words_are_class_names_in_csv(tmp_path):
    # A class folder called "NA" keeps its name through relabel's CSV and a second audit.
    root = tmp_path / "d"
    folder_names = [w for w in NA_WORDS if "/" not in w]  # "n/a" would be a nested folder
    for i, word in enumerate(folder_names):
        make_image(root / word / f"{i}.png", i)
    make_image(root / "cat" / "c.png", 99)
    make_image(root / "n" / "a" / "x.png", 98)
    folder = load_manifest(root)
    again = load_manifest(write_manifest(folder.frame, root, root / "m.csv"))
    assert again.frame["label"].tolist() == folder.frame["label"].tolist() == sorted([*folder_names, "cat", "n"])

    # Only an empty cell is missing in path/label/split/sample_id; extra columns are parsed
    # as pandas always parses them ("NA" is NaN there, a numeric column stays numeric).
    path = root / "m2.csv"
    path.write_text("sample_id,path,label,split,note,weight\n"
                    "NA,NA/0.png,n/a,,NA,1.5\n"
                    "null,None/1.png,,train,n/a,NA\n"
                    "x,cat/c.png,nan,val,ok,\n")
    m = load_manifest(path)
    assert m.frame["sample_id"].tolist() == ["NA", "null", "x"]
    assert m.frame["path"].tolist() == ["NA/0.png", "None/1.png", "cat/c.png"]
    assert m.frame["label"].tolist()[::2] == ["n/a", "nan"] and pd.isna(m.frame["label"][1])
    assert pd.isna(m.frame["split"][0]) and m.frame["split"].tolist()[1:] == ["train", "val"]
    assert pd.isna(m.frame["note"][0]) and pd.isna(m.frame["note"][1]) and m.frame["note"][2] == "ok"
    assert m.frame["weight"].dtype == "float64" and m.frame["weight"].tolist()[0] == 1.5
    assert m.frame["weight"][1:].isna().all()

    # So "None" in the split column is an unknown split name now, not "no split".
    path.write_text("path,label,split\nNA/0.png,NA,None\n")
    with pytest.raises(BadDataError, match="unknown split name\\(s\\) 'none'"):
        load_manifest(path)


def test_integral_float_labels_are_integer_names(tiny_dataset, tmp_path):
    paths = ["train/cat/cat0.png", "train/cat/cat1.png", "train/dog/dog0.png"]
    jsonl = tiny_dataset / "m.jsonl"  # a null among ints: pandas makes the column float
    jsonl.write_text("".join(json.dumps({"path": p, "label": v}) + "\n" for p, v in zip(paths, [1, None, 2])))
    labels = load_manifest(jsonl).frame["label"]
    assert labels[0] == "1" and pd.isna(labels[1]) and labels[2] == "2"

    parquet = tiny_dataset / "m.parquet"
    pd.DataFrame({"path": paths, "label": [1.0, None, 0.5], "sample_id": [10.0, 11.0, 12.0]}).to_parquet(parquet)
    m = load_manifest(parquet)
    assert m.frame["label"][0] == "1" and pd.isna(m.frame["label"][1]) and m.frame["label"][2] == "0.5"
    assert m.frame["sample_id"].tolist() == ["10", "11", "12"]

    # The same labels saved as CSV by pandas read "1.0": the class 1 too, in a column of numbers
    csv = tiny_dataset / "m.csv"
    pd.DataFrame({"path": paths, "label": [1.0, None, 3.0]}).to_csv(csv, index=False)
    assert load_manifest(csv).frame["label"].tolist()[::2] == ["1", "3"]
    # ...and only there: a class named "v1.0" or a column with other names stays as written
    pd.DataFrame({"path": paths, "label": ["v1.0", "2.0", "cat"]}).to_csv(csv, index=False)
    assert load_manifest(csv).frame["label"].tolist() == ["v1.0", "2.0", "cat"]


@pytest.mark.parametrize(
    "label, shown",
    [(["circle"], "['circle']"), ({"name": "circle"}, "{'name': 'circle'}"), ([], "[]")],
    ids=["list", "dict", "empty_list"],
)
def test_list_or_dict_label_is_refused(tiny_dataset, tmp_path, label, shown):
    path = tiny_dataset / "m.jsonl"
    path.write_text(json.dumps({"path": "train/cat/cat0.png", "label": "cat"}) + "\n"
                    + json.dumps({"path": "train/cat/cat1.png", "label": label}) + "\n")
    line = audit_error(path, tmp_path / "run")
    assert line == f"datacheck: error: label in {path} (row 2) is not a single value: {shown}"


def test_parquet_list_label_is_refused(tiny_dataset):
    path = tiny_dataset / "m.parquet"
    pd.DataFrame({"path": ["train/cat/cat0.png"], "label": [["cat", "dog"]]}).to_parquet(path)
    with pytest.raises(BadDataError, match=r"label in .* \(row 1\) is not a single value: \['cat', 'dog'\]"):
        load_manifest(path)


def test_path_too_long_counts_as_missing(tiny_dataset, tmp_path):
    # No file can have a 300-character name: like any path the OS cannot stat, it is missing.
    long_name = "a" * 300 + ".png"
    path = tiny_dataset / "m.csv"
    path.write_text(f"path,label\ntrain/cat/cat0.png,cat\ntrain/{long_name},cat\ntrain/dog/dog0.png,dog\n")
    line = audit_error(path, tmp_path / "run")
    assert line.startswith(f"datacheck: error: 1 of 3 files listed in {path} are missing (first: 'train/{long_name}')")
    m = load_manifest(path, max_missing=1)
    assert m.missing == [f"train/{long_name}"] and len(m) == 2


def test_path_with_nul_byte_is_refused(tiny_dataset, tmp_path):
    path = tiny_dataset / "m.jsonl"
    path.write_text(json.dumps({"path": "train/cat/cat0.png"}) + "\n" + json.dumps({"path": "train/cat/x\x00.png"}) + "\n")
    line = audit_error(path, tmp_path / "run", "--max-missing", "5")
    assert line == f"datacheck: error: path contains a NUL byte: 'train/cat/x\\x00.png' (row 2 of {path})"


@pytest.mark.parametrize(
    "body, reason",
    [
        # pandas would take the surplus first field as the index and shift every column left
        ("train/cat/cat0.png,cat,x\ntrain/cat/cat1.png,cat\ntrain/dog/dog0.png,dog\n,\n",
         "ragged CSV: the first row after the header has 3 fields, the header has 2 (a stray delimiter?)"),
        ("train/cat/cat0.png,cat\ntrain/cat/cat1.png,cat,x,y\ntrain/dog/dog0.png,dog\n",
         "ragged CSV: line 3 has 4 fields, the header has 2"),
    ],
    ids=["first_row", "later_row"],
)
def test_ragged_csv_names_the_bad_row(tiny_dataset, tmp_path, body, reason):
    path = tiny_dataset / "m.csv"
    path.write_text("path,label\n" + body)
    assert audit_error(path, tmp_path / "run") == f"datacheck: error: cannot read manifest {path}: {reason}"


def test_a_csv_naming_a_column_of_ours_twice_is_refused(tiny_dataset, tmp_path):
    """pandas would rename the second ``label`` and the first would be used without a word."""
    path = tiny_dataset / "m.csv"
    for text in ("path,label,label\ntrain/cat/cat0.png,cat,dog\n",
                 "\r\n\r\npath,label,label\r\ntrain/cat/cat0.png,cat,dog\r\n"):  # blank lines before the header too
        path.write_text(text)
        assert audit_error(path, tmp_path / "run") == f"datacheck: error: manifest {path} has more than one 'label' column; keep one"
    path.write_text("path,label,note,note\ntrain/cat/cat0.png,cat,a,b\n")  # the user's own: kept as pandas names them
    from datacheck import load_manifest

    assert list(load_manifest(path).frame.columns)[-2:] == ["note", "note.1"]


def test_folder_names_with_surrounding_spaces_are_kept(tmp_path):
    """A stray blank in a CSV cell is stripped, but a file whose name has one is found as it is."""
    from datacheck import load_manifest

    from .conftest import make_image

    make_image(tmp_path / "ds" / " lead" / "a.png", seed=1)
    make_image(tmp_path / "ds" / "b" / "c.png", seed=2)
    frame = load_manifest(tmp_path / "ds").frame
    assert sorted(frame["path"]) == [" lead/a.png", "b/c.png"]
    (tmp_path / "m.csv").write_text("path,label\n b/c.png ,b\n")
    assert load_manifest(tmp_path / "m.csv", root=tmp_path / "ds").frame["path"].tolist() == ["b/c.png"]


@pytest.mark.parametrize("line, words", [("[1, 2, 3]", "line 3 is list, not a JSON object"),
                                         ("42", "line 3 is int, not a JSON object"),
                                         ("null", "line 3 is null, not a JSON object")])
def test_a_jsonl_line_that_is_not_an_object_is_bad_data(tmp_path, line, words):
    for i in range(3):
        make_image(tmp_path / "img" / f"{i}.png", i)
    rows = [json.dumps({"path": f"img/{i}.png", "label": "ab"[i % 2]}) for i in range(3)]
    (tmp_path / "m.jsonl").write_text("\n".join(rows[:2] + [line] + rows[2:]) + "\n")
    result = invoke("audit", tmp_path / "m.jsonl", "--checks", "class_imbalance", "--out", tmp_path / "run", "-q")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "cannot read manifest", words)


def test_a_jsonl_manifest_with_a_byte_order_mark_is_read_like_a_csv_one(tmp_path):
    for i in range(4):
        make_image(tmp_path / "img" / f"{i}.png", i)
    rows = [{"path": f"img/{i}.png", "label": "ab"[i % 2]} for i in range(4)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8-sig")
    assert load_manifest(tmp_path / "m.jsonl").frame["label"].tolist() == ["a", "b", "a", "b"]


def test_a_root_that_is_a_file_is_named_as_such(tmp_path):
    make_image(tmp_path / "img" / "0.png", 0)
    (tmp_path / "m.csv").write_text("path,label\nimg/0.png,a\n")
    result = invoke("audit", tmp_path / "m.csv", "--root", tmp_path / "m.csv", "--out", tmp_path / "run", "-q")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "m.csv is a file, not a folder")

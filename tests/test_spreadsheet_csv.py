"""CSV files as spreadsheets save them, read by one reader (datacheck.spreadsheet_csv) for
manifests and review files alike: Windows-1252, UTF-16, ``;`` and tabs; and the Windows drive
paths such manifests hold."""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil

import pandas as pd
import pytest

from datacheck.audit_run import open_run
from datacheck.errors import ExitStatus
from datacheck.manifest import load_manifest

from .conftest import assert_one_line_error, invoke, make_tiny_dataset

#: Drive and UNC paths are absolute on Windows, and "C:" no folder name there.
posix_only = pytest.mark.skipif(os.sep != "/", reason="Windows paths as read on Linux and macOS")
QUICK = ["--checks", "image_properties", "--workers", 0, "--cache-dir", "off", "-q"]


def listed(root) -> list[str]:
    """The dataset's images, relative POSIX paths in sorted order."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))


@pytest.fixture(scope="module")
def review_run(tmp_path_factory):
    """An audit of a tiny dataset without a model (seconds): (dataset, run folder)."""
    root = tmp_path_factory.mktemp("spreadsheet")
    data = make_tiny_dataset(root / "tiny")
    result = invoke("audit", data, "--out", root / "run", *QUICK)
    assert result.exit_code == 0, result.output
    return data, root / "run"


@pytest.mark.parametrize("sep", [",", ";"], ids=["excel_csv", "excel_csv_europe"])
def test_a_windows_1252_manifest_with_a_non_ascii_path_audits(tiny_dataset, tmp_path, sep):
    # Excel's plain "CSV" on Western-European Windows is Windows-1252: "café" is the byte 0xe9,
    # and the audit failed on "'utf-8' codec can't decode byte 0xe9 in position ...".
    for i, name in enumerate(["café0.png", "café1.png"]):
        shutil.copy(tiny_dataset / "train" / "cat" / f"cat{i}.png", tiny_dataset / "train" / "cat" / name)
    files = listed(tiny_dataset)
    assert len(files) == 18
    label = {p: "chat" if "/cat/" in p else "chien" for p in files}
    manifest = tiny_dataset / "m.csv"
    manifest.write_bytes((f"path{sep}label{sep}note\r\n"
                          + "".join(f"{p}{sep}{label[p]}{sep}déjà vu €\r\n" for p in files)).encode("cp1252"))
    assert b"caf\xe9" in manifest.read_bytes()
    result = invoke("audit", manifest, "--out", tmp_path / "run", *QUICK)
    assert result.exit_code == 0, result.output
    frame = open_run(tmp_path / "run").manifest().frame
    assert frame["path"].tolist() == files
    assert "train/cat/café1.png" in set(frame["sample_id"])
    assert frame["label"].value_counts().to_dict() == {"chat": 10, "chien": 8}
    assert set(frame["note"]) == {"déjà vu €"}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["samples"] == 18


def test_a_manifest_byte_that_windows_1252_leaves_undefined_is_one_line(tiny_dataset, tmp_path):
    manifest = tiny_dataset / "m.csv"
    head = "path,label\ntrain/cat/cat0.png,cat\n".encode()
    manifest.write_bytes(head + b"train/cat/caf\xe9\x81.png,cat\n")  # 0x81: no character in Windows-1252
    result = invoke("audit", manifest, "--out", tmp_path / "run", *QUICK)
    line = assert_one_line_error(result, ExitStatus.BAD_DATA, f"cannot read manifest {manifest}: ")
    assert line.endswith(f"it is neither UTF-8 nor Windows-1252 text (byte 0x81 at offset {len(head) + 14}); "
                         "save it as CSV UTF-8")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("encoding, bom, sep", [("utf-16-le", b"\xff\xfe", "\t"), ("utf-16-be", b"\xfe\xff", ";")],
                         ids=["excel_unicode_text", "utf16_be_semicolons"])
def test_a_utf16_review_csv_is_read_by_relabel(review_run, tmp_path, encoding, bom, sep):
    # Excel's "Unicode text": UTF-16 with a byte-order mark, tab-separated. It was "it is
    # neither UTF-8 nor Windows-1252 text (byte 0x81 ...)" or "lacks column(s) sample_id, ...".
    _, run = review_run
    ids = open_run(run).manifest().frame["sample_id"].tolist()
    cat = [i for i in ids if "/cat/" in i]
    rows = [["sample_id", "reason", "decision", "new_label"], [cat[0], "flou, très", "drop", ""],
            [cat[1], "déjà vu", "relabel", "dog"], [cat[2], "", "keep", ""], [cat[3], "", "", ""]]
    review = tmp_path / "review.csv"
    review.write_bytes(bom + "\r\n".join(sep.join(row) for row in rows).encode(encoding))
    result = invoke("relabel", run, "--import-review", review, "--out", tmp_path / "fixed", "--json", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"] == {"relabel": 1, "drop": 1, "review": 0, "keep": 1}
    changes = pd.read_parquet(tmp_path / "fixed" / "changes.parquet").set_index("sample_id")
    assert changes.loc[cat[1], "new_label"] == "dog"
    assert changes.loc[cat[0], "action"] == "drop"


@posix_only
@pytest.mark.parametrize("prefix, windows", [("C:\\data\\", True), ("D:/", False), ("\\\\server\\share\\", True),
                                             ("c:/Users/me/", False)],
                         ids=["drive_backslashes", "drive_slashes", "unc", "lower_case_drive"])
def test_a_windows_drive_path_is_one_line_naming_its_row(tiny_dataset, tmp_path, prefix, windows):
    # "C:\data\train\cat\cat1.png" read on Linux was a path under the dataset root: each such row
    # was one more missing file ("15 of 16 files listed in m.csv are missing"; with --max-missing,
    # an audit of the one other file that exited 0), a UNC path one that "escapes the dataset root".
    files = listed(tiny_dataset)
    written = [prefix + (p.replace("/", "\\") if windows else p) for p in files]
    manifest = tiny_dataset / "m.csv"
    manifest.write_text("path,label\n" + files[0] + ",cat\n" + "".join(f"{w},cat\n" for w in written[1:]))
    result = invoke("audit", manifest, "--out", tmp_path / "run", *QUICK, "--max-missing", 100)
    line = assert_one_line_error(result, ExitStatus.BAD_DATA)
    assert line == (f"datacheck: error: path is a Windows drive path, not a path on this machine: {written[1]!r} "
                    f"(row 2 of {manifest}); paths must be relative to the manifest's folder {tiny_dataset} "
                    "(or absolute on this machine)")
    assert not (tmp_path / "run").exists()


@posix_only
@pytest.mark.parametrize("written", ["C:/x.png", "C:\\x.png"], ids=["slashes", "backslashes"])
def test_a_folder_named_like_a_drive_is_still_that_folder(tiny_dataset, written):
    # On Linux "C:" is a folder name like any other: a file under it is listed as it is.
    (tiny_dataset / "C:").mkdir()
    shutil.copy(tiny_dataset / "train" / "cat" / "cat0.png", tiny_dataset / "C:" / "x.png")
    manifest = tiny_dataset / "m.csv"
    manifest.write_text(f"path,label\n{written},cat\ntrain/dog/dog0.png,dog\n")
    assert load_manifest(manifest).frame["path"].tolist() == ["C:/x.png", "train/dog/dog0.png"]


def test_a_csv_manifest_is_opened_once(tiny_dataset, monkeypatch):
    # It was opened four times: to guess its encoding, to read it, to read the contract columns
    # again verbatim and to read its header again (a million-row manifest read four times).
    files = listed(tiny_dataset)
    manifest = tiny_dataset / "m.csv"
    manifest.write_text("path;label;note\n" + "".join(f"{p};NA;NA\n" for p in files))
    opened = []
    real_open = io.open

    def counting_open(file, *args, **kwargs):
        if str(file) == str(manifest):
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    frame = load_manifest(manifest).frame
    assert len(opened) == 1
    assert frame["label"].tolist() == ["NA"] * 16  # a class called "NA", still verbatim
    assert frame["note"].isna().all()


def test_the_documented_missing_value_words_are_pandas_own():
    """The fallback for pandas' private set of missing-value words is the same set (a pandas
    that changes it fails here, not silently in the manifests it reads)."""
    from datacheck.spreadsheet_csv import _DOCUMENTED_NA_WORDS

    parsers = pytest.importorskip("pandas._libs.parsers")
    STR_NA_VALUES = getattr(parsers, "STR_NA_VALUES", None)
    if STR_NA_VALUES is None:
        pytest.skip("this pandas keeps no STR_NA_VALUES: the documented list is used")

    assert set(STR_NA_VALUES) == _DOCUMENTED_NA_WORDS

"""Manifest files as teams export them: Windows paths, URLs, Excel's encodings and separators."""

from __future__ import annotations

import pytest

from datacheck.manifest import load_manifest

from .conftest import REPO_ROOT, assert_one_line_error, invoke, tree_digest

QUICK = ["--config", REPO_ROOT / "datacheck" / "presets" / "quick.toml", "--workers", 0, "-q", "--fail-on", ""]


def listed(root) -> list[str]:
    """The tiny dataset's images, relative POSIX paths in sorted order."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))


def test_windows_backslash_paths_are_read_as_folders(tiny_dataset, tmp_path):
    # A manifest written on Windows: "train\cat\cat0.png". On Linux no file has that name, and
    # all 16 rows were "missing"; a backslash is a separator there unless such a file exists.
    files = listed(tiny_dataset)
    manifest = tiny_dataset / "m.csv"
    manifest.write_text("path,label\r\n" + "".join(f"{p.replace('/', chr(92))},{p.split('/')[1]}\r\n" for p in files))
    loaded = load_manifest(manifest)
    assert loaded.frame["path"].tolist() == files
    assert loaded.frame["sample_id"].tolist() == files
    before = tree_digest(tiny_dataset)
    result = invoke("audit", manifest, "--out", tmp_path / "run", *QUICK)
    assert result.exit_code == 0, result.output
    assert tree_digest(tiny_dataset) == before


def test_a_file_whose_name_holds_a_backslash_is_still_that_file(tiny_dataset):
    (tiny_dataset / "train" / "cat" / "a\\b.png").write_bytes((tiny_dataset / "train" / "cat" / "cat0.png").read_bytes())
    manifest = tiny_dataset / "m.csv"
    manifest.write_text("path,label\ntrain/cat/a\\b.png,cat\n")
    assert load_manifest(manifest).frame["path"].tolist() == ["train/cat/a\\b.png"]


@pytest.mark.parametrize("prefix, hint", [("s3://bucket/data/", "download them"), ("https://example.com/data/", "download"),
                                          ("file:///TINY/", "list it as a plain path")])
def test_a_url_in_the_path_column_is_one_line_naming_its_row(tiny_dataset, tmp_path, prefix, hint):
    # Cloud exports list s3:// or https:// URLs; os.path.normpath made them "s3:/bucket/..." and
    # every row was reported missing (16 of 16, however high --max-missing).
    files = listed(tiny_dataset)
    prefix = prefix.replace("TINY", str(tiny_dataset).lstrip("/"))
    manifest = tiny_dataset / "m.csv"
    manifest.write_text("path,label\n" + files[0] + ",cat\n" + "".join(f"{prefix}{p},x\n" for p in files[1:]))
    result = invoke("audit", manifest, "--out", tmp_path / "run", *QUICK, "--max-missing", 100)
    assert_one_line_error(result, 3, f"path is a URL, not a local file: '{prefix}{files[1]}' (row 2 of {manifest})", hint)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("sep, encoding, bom", [(";", "utf-8", b"\xef\xbb\xbf"), ("\t", "utf-8", b""), ("\t", "utf-16-le", b"\xff\xfe"),
                                                (",", "utf-16-be", b"\xfe\xff")],
                         ids=["excel_semicolons_bom", "tsv_named_csv", "excel_unicode_text", "utf16_be_commas"])
def test_csv_as_excel_saves_it_is_read(tiny_dataset, sep, encoding, bom):
    # Excel in a European locale separates with ";", its "Unicode text" is UTF-16 with tabs, and a
    # TSV is often saved as .csv: each was "no 'path' column (columns: path;label)" or a UTF-8
    # decoding error.
    files = listed(tiny_dataset)
    text = f"path{sep}label{sep}split\r\n" + "".join(f"{p}{sep}{'chat' if '/cat/' in p else 'hund'}é{sep}{p.split('/')[0]}\r\n"
                                                     for p in files)
    manifest = tiny_dataset / "m.csv"
    manifest.write_bytes(bom + text.encode(encoding))
    frame = load_manifest(manifest).frame
    assert frame["path"].tolist() == files
    assert frame["label"].value_counts().to_dict() == {"chaté": 8, "hundé": 8}
    assert frame["split"].tolist() == [p.split("/")[0] for p in files]


@pytest.mark.parametrize("name, content", [("m.csv", b"path,label\r\n"), ("m.jsonl", b"\n"), ("m.jsonl", b"\n  \n")],
                         ids=["csv_header_only", "jsonl_blank_line", "jsonl_blank_lines"])
def test_an_empty_manifest_says_it_has_no_rows(tmp_path, name, content):
    # Was "no images found" for the CSV and "no 'path' column (columns: none)" for the JSONL.
    manifest = tmp_path / name
    manifest.write_bytes(content)
    result = invoke("audit", manifest, "--out", tmp_path / "run", *QUICK)
    assert_one_line_error(result, 3, f"the manifest {manifest} has no rows")
    assert manifest.read_bytes() == content


def test_trailing_blank_lines_of_a_jsonl_manifest_are_not_rows(tiny_dataset):
    files = listed(tiny_dataset)
    manifest = tiny_dataset / "m.jsonl"
    manifest.write_text("".join(f'{{"path": "{p}", "label": "cat"}}\n' for p in files) + "\n\n")
    assert load_manifest(manifest).frame["path"].tolist() == files

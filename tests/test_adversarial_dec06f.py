"""Adversarial pass (helper-57): file names with a carriage return in every CSV and JUnit export.

Linux allows "\\r" in a file name. Python's csv writer quotes a field only for the characters of
its line end, so with "\\n" such a name was written bare and every reader (csv, pandas,
spreadsheets, the audit reading a relabelled manifest) split the row in two; in JUnit XML a raw
"\\r" in text is read back as "\\n".
"""

from __future__ import annotations

import csv

import pandas as pd

from .conftest import invoke, make_image

#: Names a spreadsheet or a parser could stumble on; the first ones hold a carriage return.
NAMES = ["\rcr.png", "a\rb.png", "=HYPERLINK(\"x\",\"y\").png", "+1.png", "-2.png", "@x.png", "\tt.png", "a,b.png",
         'q"u.png', "<&>.png", "'=q.png"]


def _dataset(root):
    """2 classes (one named ``-1``) x the NAMES, distinct images, and one exact duplicate with a "\\r"."""
    seed = 0
    for label in ("cat", "-1"):
        for name in NAMES:
            make_image(root / "train" / label / name, seed)
            seed += 1
    (root / "train" / "cat" / "dup\r.png").write_bytes((root / "train" / "cat" / "\rcr.png").read_bytes())
    return root


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_carriage_return_names_in_findings_csv_and_manifest(tmp_path):
    data = _dataset(tmp_path / "data")
    run = tmp_path / "run"
    result = invoke("audit", data, "--checks", "exact_duplicates", "--out", run, "-q", "--workers", 0)
    assert result.exit_code == 0, result.output
    ids = set(pd.read_parquet(run / "findings.parquet")["sample_id"])
    assert "train/cat/dup\r.png" in ids

    assert invoke("report", run, "--csv").exit_code == 0
    rows = _rows(run / "findings.csv")
    assert {len(row) for row in rows} == {len(rows[0])}, "a row was split at a carriage return"
    column = rows[0].index("sample_id")
    assert {row[column] for row in rows[1:]} == ids
    assert pd.read_csv(run / "findings.csv", dtype=str, keep_default_na=False)["sample_id"].isin(ids).all()

    from datacheck.manifest import write_manifest

    manifest = pd.DataFrame({"path": sorted(ids), "label": "cat"})
    write_manifest(manifest, None, tmp_path / "m.csv")
    back = pd.read_csv(tmp_path / "m.csv", dtype=str, keep_default_na=False)
    assert back["path"].tolist() == manifest["path"].tolist()
    result = invoke("audit", tmp_path / "m.csv", "--root", data, "--checks", "exact_duplicates",
                    "--out", tmp_path / "again", "-q", "--workers", 0)
    assert result.exit_code == 0, result.output  # was: exit 3, "empty path in m.csv (row 2)"


def test_review_csv_with_carriage_return_reads_back(tmp_path):
    from datacheck.actions.review import REVIEW_COLUMNS, read_review_table, write_review_csv

    ids = [f"train/-1/{name}" for name in NAMES]
    queue = pd.DataFrame({"sample_id": ids, "path": ids, "split": "train", "label": "-1", "suggested_label": "cat",
                          "confidence": 0.9, "checks": "label_issues", "reason": "r", "decision": "",
                          "new_label": ""}, columns=REVIEW_COLUMNS)
    write_review_csv(queue, tmp_path / "review.csv")
    rows = _rows(tmp_path / "review.csv")
    assert len(rows) == len(ids) + 1 and {len(row) for row in rows} == {len(REVIEW_COLUMNS)}
    assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for row in rows for cell in row)  # no formula
    assert read_review_table(tmp_path / "review.csv")["sample_id"].tolist() == ids


def test_junit_keeps_a_carriage_return_in_a_file_name(tmp_path):
    import xml.etree.ElementTree as ET

    data = _dataset(tmp_path / "data")
    junit = tmp_path / "junit.xml"
    result = invoke("audit", data, "--checks", "exact_duplicates", "--fail-on", "exact_duplicates>0",
                    "--junit", junit, "--out", tmp_path / "run", "-q", "--workers", 0)
    assert result.exit_code == 1, result.output
    case = next(c for c in ET.parse(junit).getroot().iter("testcase") if c.get("name") == "exact_duplicates")
    assert "train/cat/dup\r.png" in case.find("failure").text  # was read back as "dup\n.png"


def test_label_studio_export_refuses_a_class_it_cannot_offer(tmp_path):
    import xml.etree.ElementTree as ET

    import pytest

    from datacheck.actions.review import REVIEW_COLUMNS, write_label_studio
    from datacheck.errors import BadDataError

    queue = pd.DataFrame({"sample_id": ["train/-1/a.png"], "path": ["train/-1/a.png"], "split": "train",
                          "label": "-1", "suggested_label": "<x&y>", "confidence": 0.9, "checks": "label_issues",
                          "reason": "r", "decision": "", "new_label": ""}, columns=REVIEW_COLUMNS)
    classes = ["-1", "<x&y>", "t\tab", '=HYPERLINK("x","y")']
    tasks, config = write_label_studio(queue, classes, tmp_path / "ok.json", "datacheck run")
    assert [c.get("value") for c in ET.parse(config).getroot().iter("Choice")] == [*classes, "(drop)"]
    # a class named "(drop)": its choice would drop the sample; a form feed: the config would not parse
    for bad in ("(drop)", "r\x0cing"):
        with pytest.raises(BadDataError, match="cannot export class .* to Label Studio"):
            write_label_studio(queue, [*classes, bad], tmp_path / "bad.json", "datacheck run")
        assert not (tmp_path / "bad.json").exists() and not (tmp_path / "bad.label_config.xml").exists()

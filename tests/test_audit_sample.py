"""The default audit on sample_data: recall and precision of every planted issue, per check."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from datacheck.schema import FINDINGS_SCHEMA

from .conftest import SAMPLE_DATA

MIN_RECALL, MIN_PRECISION = 0.9, 0.8

IMAGE_PROPERTY_CHECKS = ["dark", "light", "blurry", "low_information", "odd_size", "odd_aspect_ratio", "grayscale", "corrupt"]


def flagged(findings: pd.DataFrame, check: str) -> set[str]:
    rows = findings[(findings["check"] == check) & findings["is_issue"]]
    return set(rows["sample_id"])


def recall_precision(found: set, truth: set) -> tuple[float, float]:
    hits = len(found & truth)
    return hits / len(truth), (hits / len(found) if found else 1.0)


@pytest.mark.parametrize("check", IMAGE_PROPERTY_CHECKS)
def test_image_property_recall_and_precision(sample_audit, truth, check):
    planted = set(truth.loc[truth["issue"] == check, "sample_id"])
    assert planted, f"sample_data plants no {check} images"
    recall, precision = recall_precision(flagged(sample_audit.findings, check), planted)
    assert recall >= MIN_RECALL, f"{check}: recall {recall:.2f}"
    assert precision >= MIN_PRECISION, f"{check}: precision {precision:.2f}"


def _groups(truth: pd.DataFrame, identical: bool) -> dict[str, set[str]]:
    """Planted duplicate groups whose copies are pixel-identical (or not)."""
    dup = truth[truth["group"].notna()]
    is_identical = dup["issue"].eq("exact_duplicate") | dup["note"].str.contains("identical pixels", na=False)
    groups = dup[is_identical.groupby(dup["group"]).transform("any") == identical]
    return {g: set(rows["sample_id"]) for g, rows in groups.groupby("group")}


@pytest.mark.parametrize("check, identical", [("exact_duplicates", True), ("near_duplicates", False)])
def test_duplicate_groups_recall_and_precision(sample_audit, truth, check, identical):
    """A planted group is found when one member is flagged with the other as its group mate."""
    findings = sample_audit.findings
    groups = _groups(truth, identical)
    rows = findings[(findings["check"] == check) & findings["is_issue"]]
    reported = {sid: json.loads(d) for sid, d in zip(rows["sample_id"], rows["details"])}
    found = 0
    for members in groups.values():
        for sid in members & set(reported):
            mates = {reported[sid]["representative"], *reported[sid].get("copies", reported[sid].get("members", []))}
            if members - {sid} <= mates:
                found += 1
                break
    all_members = set().union(*groups.values())
    recall = found / len(groups)
    precision = len(set(reported) & all_members) / max(len(reported), 1)
    assert recall >= MIN_RECALL, f"{check}: group recall {recall:.2f}"
    assert precision >= MIN_PRECISION, f"{check}: precision {precision:.2f}"
    assert len(reported) >= len(groups)  # one flagged copy per group at least


def test_split_leakage_flags_the_val_copies(sample_audit, truth):
    leaks = truth[truth["issue"] == "split_leakage"]
    planted = set(leaks.loc[leaks["sample_id"].str.startswith("val/"), "sample_id"])
    recall, precision = recall_precision(flagged(sample_audit.findings, "split_leakage"), planted)
    assert recall >= MIN_RECALL and precision >= MIN_PRECISION, (recall, precision)
    # the train member is never the one flagged
    assert not any(s.startswith("train/") for s in flagged(sample_audit.findings, "split_leakage"))


def test_class_imbalance_flags_the_small_class(sample_audit):
    found = flagged(sample_audit.findings, "class_imbalance")
    assert found and {s.split("/")[1] for s in found} == {"star"}
    assert all(s.startswith("train/") for s in found)


def test_findings_file_has_the_pinned_schema(sample_audit):
    table = pq.read_table(sample_audit.run_dir / "findings.parquet")
    assert table.schema.equals(FINDINGS_SCHEMA, check_metadata=False)
    assert table.schema.names == [
        "run_id", "sample_id", "path", "split", "label", "check", "score",
        "is_issue", "suggested_label", "suggested_confidence", "details",
    ]
    assert table.schema.metadata[b"datacheck.findings_schema_version"] == b"1"


def test_findings_are_sorted_scored_and_complete(sample_audit):
    findings = pd.read_parquet(sample_audit.run_dir / "findings.parquet")
    assert findings["score"].between(0, 1).all()
    assert findings.equals(findings.sort_values(["check", "score"], kind="stable").reset_index(drop=True))
    for details in findings["details"]:
        assert isinstance(json.loads(details), dict)
    # every readable image is scored by every image-property check that applies to it
    n = sample_audit.summary["samples"]
    assert (findings["check"] == "corrupt").sum() == n
    assert (findings["check"] == "odd_size").sum() == n - 1  # all but the corrupt file
    # no check flags an issue with a "good" score: score < 0.5 <=> flagged for image properties
    props = findings[findings["check"].isin(IMAGE_PROPERTY_CHECKS[:-2])]
    assert ((props["score"] < 0.5) == props["is_issue"]).all()


def test_run_directory_contents(sample_audit):
    run = sample_audit.run_dir
    assert {p.name for p in run.iterdir()} == {"findings.parquet", "summary.json", "run.json", "artifacts"}
    summary = json.loads((run / "summary.json").read_text())
    assert summary == json.loads(json.dumps(sample_audit.summary))
    assert summary["samples"] == 564
    assert summary["skipped_files"] == {"non_image": 2}  # truth.csv and README.md
    assert summary["exit_status"] == 0
    assert summary["checks"]["near_duplicates"]["threshold"]["min_similarity"] >= 0.95
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "complete"
    assert info["seed"] == 0 and len(info["manifest_fingerprint"]) == 64
    assert set(info["versions"]) >= {"python", "numpy", "pandas", "pyarrow", "pillow", "torch"}
    assert not list(run.rglob(".*.tmp"))  # no temporary files left behind


def test_same_input_and_seed_give_identical_findings(sample_audit, tmp_path):
    import datacheck

    again = datacheck.audit(sample_audit.summary["dataset"], out=tmp_path / "again", workers=0)
    a = sample_audit.findings.drop(columns="run_id")
    b = again.findings.drop(columns="run_id")
    pd.testing.assert_frame_equal(a, b)


def test_rerun_reuses_cached_image_statistics(sample_audit, tmp_path):
    import shutil

    import datacheck

    run = shutil.copytree(sample_audit.run_dir, tmp_path / "run")
    result = datacheck.audit(sample_audit.summary["dataset"], out=run, checks=["image_properties"])
    assert "image_stats (cached)" in result.summary["timings_s"]
    # the eight image checks, and their fused review ranking
    assert set(result.findings["check"]) == {*datacheck.detectors.registry.get_detector_class("image_properties").checks,
                                             "issue_score"}


def test_approximate_candidate_search_finds_the_same_duplicates(sample_audit, tmp_path, monkeypatch):
    """Above the exact limit, near-duplicate candidates come from the kNN-graph builder's
    inverted file: on sample_data (forced approximate) it flags the same copies and leaks."""
    import datacheck
    import datacheck.features.knn as knn

    monkeypatch.setattr(knn, "EXACT_MAX", 100)
    checks = ["exact_duplicates", "near_duplicates", "split_leakage"]
    result = datacheck.audit(SAMPLE_DATA, checks=checks, out=tmp_path / "run", workers=2)
    search = result.summary["checks"]["near_duplicates"]["threshold"]["candidate_search"]
    assert search["method"] == "ivf" and search["recall_k"] == 1 and search["recall_at_k"] >= knn.TARGET_RECALL
    for check in checks:
        assert flagged(result.findings, check) == flagged(sample_audit.findings, check), check

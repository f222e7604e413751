"""The fused review ranking (issue_score) and the data-adaptive cuts behind it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from datacheck.detectors.aum import noise_rate
from datacheck.fusion import CHECK, LABEL_CHECK, issue_scores, label_scores, review_ranks
from datacheck.robust import expected_beyond, normal_sf, tail_cut


def _rows(check: str, scores: dict, flagged: set, suggested: dict | None = None) -> pd.DataFrame:
    ids = list(scores)
    suggested = suggested or {}
    return pd.DataFrame({
        "run_id": "r", "sample_id": ids, "path": ids, "split": "train", "label": "a", "check": check,
        "score": [scores[i] for i in ids], "is_issue": [i in flagged for i in ids],
        "suggested_label": [suggested.get(i) for i in ids],
        "suggested_confidence": [0.9 if i in suggested else np.nan for i in ids], "details": "{}",
    })


def test_label_fused_flags_the_mean_count_by_the_mean_evidence():
    findings = pd.concat([
        _rows("label_issues", {"s1": 0.9, "s2": 0.8, "s3": 0.7, "s4": 0.2, "s5": 0.95}, {"s3", "s4"}, {"s3": "b", "s4": "c"}),
        _rows("aum", {"s1": 0.95, "s2": 0.1, "s3": 0.3, "s4": 0.6, "s5": 0.7}, {"s2", "s3", "s4", "s5"} - {"s4", "s5"}),
        _rows("aum", {"s6": 0.05}, {"s6"}),  # scored by one label check only: its own evidence
    ], ignore_index=True)
    rows, threshold = label_scores(findings, ["label_issues", "aum"])
    assert (rows["check"] == LABEL_CHECK).all() and len(rows) == 6
    # calibrated: flagged x/2, unflagged (1+x)/2; mean over the checks that scored the sample
    evidence = {"s1": (0.95 + 0.975) / 2, "s2": (0.9 + 0.05) / 2, "s3": (0.35 + 0.15) / 2, "s4": (0.1 + 0.8) / 2,
                "s5": (0.975 + 0.85) / 2, "s6": 0.025}
    assert threshold["flag_counts"] == {"label_issues": 2, "aum": 3} and threshold["n"] == 3  # 2.5, rounded up
    assert rows["sample_id"].tolist()[:3] == ["s6", "s3", "s4"]  # the three lowest mean evidences
    assert rows["is_issue"].tolist() == [True, True, True, False, False, False]
    assert ((rows["score"] < 0.5) == rows["is_issue"]).all() and rows["score"].is_monotonic_increasing
    got = {i: json.loads(d)["evidence"] for i, d in zip(rows["sample_id"], rows["details"])}
    assert got == pytest.approx(evidence, abs=1e-4)
    assert json.loads(rows.set_index("sample_id").loc["s3", "details"])["checks"] == ["aum", "label_issues"]
    assert rows.set_index("sample_id").loc["s3", "suggested_label"] == "b"  # from the check that flags it
    assert threshold["cut"] == pytest.approx((evidence["s4"] + evidence["s2"]) / 2, abs=1e-4)


def test_issue_score_is_the_worst_agreed_score_in_review_order():
    findings = pd.concat([
        # cleanlab's quality score need not agree with its flags: s3 is flagged at 0.7, s4 not at 0.2
        _rows("label_issues", {"s1": 0.9, "s2": 0.8, "s3": 0.7, "s4": 0.2}, {"s3"}, {"s3": "b"}),
        _rows("aum", {"s1": 0.95, "s2": 0.1, "s3": 0.3, "s4": 0.6}, {"s2", "s3"}),
        _rows("dark", {"s1": 0.05, "s2": 0.9, "s3": 0.9, "s4": 0.9}, {"s1"}),
    ], ignore_index=True)
    fused = issue_scores(findings, ["label_issues", "aum", "dark"])
    assert (fused["check"] == CHECK).all()
    assert fused["sample_id"].tolist() == ["s1", "s2", "s3", "s4"]
    # flagged scores halved, unflagged ones moved into [0.5, 1]: s4's unflagged 0.2 counts 0.6
    np.testing.assert_allclose(fused["score"], [0.025, 0.05, 0.15, 0.6])
    assert fused["is_issue"].tolist() == [True, True, True, False]
    details = [json.loads(d) for d in fused["details"]]
    assert [d["rank"] for d in details] == [1, 2, 3, 4]
    assert details[2]["checks"] == ["aum", "label_issues"]  # worst first
    assert fused["suggested_label"].tolist()[2] == "b"
    assert review_ranks(fused).to_dict() == {"s1": 1, "s2": 2, "s3": 3, "s4": 4}
    # The label checks judge the same thing: averaged (s3, rejected by both, moves before s2)
    averaged = issue_scores(findings, ["label_issues", "aum", "dark"], label_checks=["label_issues", "aum"])
    assert averaged["sample_id"].tolist() == ["s1", "s3", "s2", "s4"]
    np.testing.assert_allclose(averaged["score"], [0.025, 0.25, 0.475, 0.7])


def test_ties_go_to_the_sample_flagged_by_more_checks():
    findings = pd.concat([
        _rows("exact_duplicates", {"a": 0.0, "b": 0.0}, {"a", "b"}),
        _rows("split_leakage", {"a": 1.0, "b": 0.0}, {"b"}),
    ], ignore_index=True)
    assert issue_scores(findings, ["exact_duplicates", "split_leakage"])["sample_id"].tolist() == ["b", "a"]


def test_noise_rate_recovers_the_wrong_share_of_a_mixture():
    rng = np.random.default_rng(0)
    wrong = rng.normal(-2.0, 1.0, 600)  # wrong labels: margins like the threshold samples'
    clean = rng.normal(3.0, 1.0, 9400)
    threshold = rng.normal(-2.0, 1.0, 2000)
    estimate = noise_rate(np.concatenate([wrong, clean]), threshold)
    assert estimate == pytest.approx(0.06, abs=0.01)
    assert noise_rate(clean, threshold) < 0.002  # no wrong labels: (almost) none estimated


def test_normal_tail_matches_scipy_far_into_the_tail():
    from scipy.special import ndtr

    z = np.array([-40.0, -3.0, 0.0, 0.5, 1.96, 5.0, 10.0, 37.0])
    assert np.allclose(normal_sf(z), ndtr(-z), rtol=1e-12, atol=0)
    assert normal_sf(37.0) == pytest.approx(5.725571e-300, rel=1e-6)  # not rounded to 0
    assert np.isnan(normal_sf(np.array([np.nan]))).all()


def test_tail_cut_lowers_the_cut_only_when_many_samples_stand_out():
    rng = np.random.default_rng(0)
    bulk = rng.normal(size=5000)
    assert tail_cut(bulk, 2.0, 3.0, 0.2) == 3.0  # a clean normal sample keeps the ceiling
    with_outliers = np.concatenate([bulk, rng.normal(3.0, 0.3, 150)])
    cut = tail_cut(with_outliers, 2.0, 3.0, 0.2)
    assert 2.0 <= cut < 2.7
    flagged = with_outliers > cut
    expected_clean = expected_beyond(cut, len(with_outliers))
    assert expected_clean / flagged.sum() <= 0.2  # the false discovery rate it promises
    assert tail_cut(np.concatenate([bulk, np.full(2000, 2.5)]), 2.0, 3.0, 0.2) == 2.0  # never below the floor


def test_gates_on_the_fused_checks(tiny_dataset, tmp_path):
    """``--fail-on`` accepts the fused checks where the audit computes them, and applies them."""
    from .conftest import JUDGE_AT_CHANCE_TOML, assert_one_line_error, invoke

    config = tmp_path / "short.toml"
    config.write_text("[train]\nimage_size = 16\nfolds = 2\nepochs = 1\n" + JUDGE_AT_CHANCE_TOML)  # random images
    common = ["--config", config, "--cache-dir", "off", "--json", "-q"]
    result = invoke("audit", tiny_dataset, "--checks", "label_issues,aum", "--out", tmp_path / "run",
                    "--fail-on", f"{LABEL_CHECK}>=0,{CHECK}>=0", *common)
    assert result.exit_code == 1, result.output
    gates = {g["gate"]: g for g in json.loads(result.stdout)["gates"]}
    assert set(gates) == {f"{LABEL_CHECK}>=0", f"{CHECK}>=0"} and all(g["failed"] for g in gates.values())
    assert gates[f"{LABEL_CHECK}>=0"]["scored"] == 16  # every sample, val included (label_issues scores it)
    # one label check: no label_fused to gate on
    assert_one_line_error(invoke("audit", tiny_dataset, "--checks", "aum", "--out", tmp_path / "other",
                                 "--fail-on", f"{LABEL_CHECK}>0", *common), 2, "which this audit does not run")

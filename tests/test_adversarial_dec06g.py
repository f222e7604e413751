"""Shapes of data at scale: many classes (thousands, most with a handful of samples), extreme skew."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd

from datacheck.detectors import create_detector
from datacheck.features.arrays import manifest_for_outputs
from datacheck.features.model import ModelOutputs
from datacheck.testing import make_context


def test_coreset_with_many_classes_never_copies_the_whole_probability_matrix():
    """The gradient (softmax - one-hot) is built a class at a time: the whole (N, C) float32 copy
    (and nan_to_num's second one) took 4 GB beside a 1 GB input at 50,000 x 5,000."""
    n, k = 4000, 2000
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, size=n)
    probs = rng.dirichlet(np.ones(k), size=n).astype(np.float32)  # 32 MB
    outputs = ModelOutputs([f"c{i}" for i in range(k)], labels, probs, None, "test")
    ctx = make_context(manifest_for_outputs(outputs, "arrays"), outputs=outputs, seed=0)
    detector = create_detector("coreset")
    tracemalloc.start()
    try:
        findings = detector.run(ctx)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (findings["check"] == "coreset").sum() == n
    assert peak < probs.nbytes / 2, f"peak {peak / 1e6:.0f} MB for a {probs.nbytes / 1e6:.0f} MB input"


def test_relabel_plan_looks_up_suggestions_without_a_loc_per_row(monkeypatch):
    """label_issues suggests a class for every scored sample; plan_changes read each with
    ``.loc`` (0.35 ms a row: relabel --auto of 50,000 rows took 18 s, longer than their audit)."""
    from pandas.core import indexing

    from datacheck.actions.relabel import plan_changes

    n = 3000
    ids = [f"s{i}" for i in range(n)]
    frame = pd.DataFrame({"sample_id": ids, "path": ids, "label": ["cat"] * n, "split": [None] * n})
    flagged = np.arange(n) % 3 == 0
    findings = pd.DataFrame({"sample_id": ids + ids, "check": ["label_issues"] * n + ["aum"] * n,
                             "is_issue": np.concatenate([flagged, flagged]),
                             "suggested_label": ["dog"] * n + [None] * n,
                             "suggested_confidence": [0.9] * n + [None] * n})
    calls = []
    getitem = indexing._LocIndexer.__getitem__

    def counting(self, key):
        calls.append(1)
        return getitem(self, key)

    monkeypatch.setattr(indexing._LocIndexer, "__getitem__", counting)
    changes = plan_changes(frame, findings, auto=True).set_index("sample_id")
    assert (changes["action"] == "relabel").sum() == flagged.sum()
    assert (changes["action"] == "review").sum() == n - flagged.sum()  # confident, unflagged
    assert changes.loc["s0", "new_label"] == "dog" and changes.loc["s0", "checks"] == "aum,label_issues"
    assert len(calls) < 10, f"{len(calls)} .loc lookups for {n} rows"


def test_relabel_table_of_many_classes_prints_the_most_changed_and_counts_the_rest(tmp_path):
    """10,000 classes printed a 10,000-line 'Changes per class' table on stderr; now the 50
    classes with the most changes, in class order, and a caption counting the rest."""
    from .conftest import invoke

    n, k = 1200, 200
    rng = np.random.default_rng(0)
    labels = np.arange(n) % k
    probs = np.full((n, k), 0.1 / (k - 1), dtype=np.float32)
    truth = labels.copy()
    truth[:100] = (labels[:100] + 1) % k  # 100 mislabels
    probs[np.arange(n), truth] = 0.9
    np.save(tmp_path / "P.npy", probs)
    np.save(tmp_path / "L.npy", labels)
    run = tmp_path / "run"
    assert invoke("audit", "--pred-probs", tmp_path / "P.npy", "--labels", tmp_path / "L.npy",
                  "--checks", "label_issues", "--out", run, "-q").exit_code == 0
    result = invoke("relabel", run, "--auto")
    assert result.exit_code == 0, result.stderr
    rows = [line for line in result.stderr.splitlines() if line.startswith("│")]
    assert len(rows) == 50, len(rows)
    assert f"{k - 50:,} more classes with fewer changes not shown" in result.stderr
    assert all(int(r.split("│")[3]) + int(r.split("│")[4]) > 0 for r in rows)  # relabel_out + relabel_in


def test_label_issues_leaves_no_copy_of_the_probabilities_in_cleanlab():
    """cleanlab's find_label_issues keeps every row of pred_probs, grouped by class, in a module
    global (for its worker processes) and never clears it: an (N, C) copy stayed resident after
    the check (2 GB for 50,000 x 10,000 classes), and after the audit in Python."""
    import cleanlab.filter

    n, k = 3000, 300
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, size=n)
    probs = rng.dirichlet(np.ones(k) * 0.05, size=n).astype(np.float32)
    outputs = ModelOutputs([f"c{i}" for i in range(k)], labels, probs, None, "test")
    ctx = make_context(manifest_for_outputs(outputs, "arrays"), outputs=outputs, seed=0)
    findings = create_detector("label_issues", judge_at_chance=True).run(ctx)  # random probabilities
    assert (findings["check"] == "label_issues").sum() == n
    held = getattr(cleanlab.filter, "pred_probs_by_class", None) or {}
    assert sum(v.nbytes for v in held.values()) == 0


def test_label_issues_draws_no_cleanlab_progress_bar(monkeypatch):
    """cleanlab's pool draws a tqdm bar on stderr when C x N > 1e8 (100,000 rows, 1,001 classes:
    '0/1001 [00:06<1:55:18]' in the middle of an audit, with --quiet too): off for the call."""
    import cleanlab.filter

    seen = []
    real = cleanlab.filter.find_label_issues

    def recording(*args, **kwargs):
        seen.append(cleanlab.filter.tqdm_exists)
        return real(*args, **kwargs)

    monkeypatch.setattr(cleanlab.filter, "find_label_issues", recording)
    n, k = 600, 6
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, size=n)
    probs = rng.dirichlet(np.ones(k), size=n).astype(np.float32)
    outputs = ModelOutputs([f"c{i}" for i in range(k)], labels, probs, None, "test")
    ctx = make_context(manifest_for_outputs(outputs, "arrays"), outputs=outputs, seed=0)
    before = cleanlab.filter.tqdm_exists
    create_detector("label_issues", judge_at_chance=True).run(ctx)  # random probabilities
    assert seen == [False] and cleanlab.filter.tqdm_exists == before

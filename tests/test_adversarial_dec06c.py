"""Sample-id order, the kNN graph's scan bound and the report's notes, as a user breaks them
(adversarial pass of 2026-12-06, c)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import datacheck
from datacheck.manifest import Manifest, _normalise

from .test_adversarial_determinism import _arrays


def _manifest(ids) -> Manifest:
    frame = _normalise(pd.DataFrame({"sample_id": ids}), None, Path("m.csv"))
    return Manifest(frame, Path("."), Path("m.csv"), "csv")


@pytest.mark.parametrize("ids", [["01", "1", "2"], ["+1", "1", "2"], ["-0", "0", "2"], ["1e5", "100000", "2"],
                                 [str(2**70), str(2**70 + 1), "5"]],
                         ids=["leading-zero", "plus", "negative-zero", "exponent", "past-2**53"])
def test_ids_of_one_value_sort_alike_in_any_row_order(ids):
    """Distinct ids that read as the same number ("01" and "1"; ints past 2**53 read as one
    float) tied in id_rank and kept their row order: the same manifest listed in another order
    took its samples in another order."""
    orders = set()
    for order in ([0, 1, 2], [1, 0, 2], [2, 1, 0]):
        manifest = _manifest([ids[i] for i in order])
        orders.add(tuple(manifest.frame["sample_id"].iloc[np.argsort(manifest.id_rank)]))
    assert len(orders) == 1


def test_a_shuffled_manifest_of_large_integer_ids_keeps_the_same_duplicate():
    """Ids past 2**53 (a 64-bit hash written as text) read as floats, several as one value: which
    copy of an exact duplicate was kept, and the findings table, followed the row order."""
    frame, probs, embeddings = _arrays(n=120)
    frame["sample_id"] = [str(2**70 + i) for i in range(len(frame))]
    embeddings[7] = embeddings[8]
    order = np.random.default_rng(2).permutation(len(frame))
    checks = ["exact_duplicates", "label_issues"]
    first = datacheck.audit(frame, pred_probs=probs, embeddings=embeddings, checks=checks, seed=0)
    shuffled = datacheck.audit(frame.iloc[order].reset_index(drop=True), pred_probs=probs[order],
                               embeddings=embeddings[order], checks=checks, seed=0)
    same = ["run_id", "path"]
    pd.testing.assert_frame_equal(first.findings.drop(columns=same), shuffled.findings.drop(columns=same))


def test_a_recall_just_short_of_the_target_does_not_read_as_the_target(monkeypatch):
    """A recall of 0.9496 was noted "recall@10 is 0.95, short of the 0.95 target", and one of
    0.94997 (28,499 of 30 neighbours by 1,000 queries) was recorded as recall_at_k 0.95 beside
    recall_target_met false."""
    import datacheck.features.knn as knn

    info = {"recall_target_met": False, "recall_k": 10, "recall_at_k": 0.9496, "scanned_per_query": 16384,
            "nprobe": 64, "nlist": 2828}
    note = knn.recall_notes(info)[0]
    assert "recall@10 is 0.9496, short of the 0.95 target" in note
    assert "recall@10 is 0.34, short" in knn.recall_notes({**info, "recall_at_k": 0.3417})[0]

    x = np.random.default_rng(0).standard_normal((3000, 16)).astype(np.float32)
    monkeypatch.setattr(knn, "EXACT_MAX", 100)
    monkeypatch.setattr(knn, "_SCAN_VALUES", 16)  # stops at the first nprobe
    monkeypatch.setattr(knn, "_recall", lambda found, true: 28499 / 30000)
    graph = knn.build_knn_graph(x, 30, exact_max=100)
    assert graph.info["recall_target_met"] is False
    assert graph.info["recall_at_k"] == 0.9499
    assert "is 0.9499, short of the 0.95 target" in knn.recall_notes(graph.info)[0]

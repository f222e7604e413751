"""The non_iid check: is the dataset's order informative? (cleanlab Datalab's non-IID issue)."""

from __future__ import annotations

import json
import time
import tracemalloc

import numpy as np
import pytest
from scipy.special import ndtri
from scipy.stats import gaussian_kde

import datacheck
import datacheck.detectors.non_iid  # registers non_iid until it joins the built-ins
from datacheck.detectors import create_detector, list_detectors
from datacheck.detectors.non_iid import NonIID, non_iid_test
from datacheck.engine.knn import knn_cosine
from datacheck.errors import UsageError
from datacheck.features.knn import build_knn_graph
from datacheck.features.arrays import manifest_for_outputs
from datacheck.features.model import ModelOutputs
from datacheck.schema import FINDINGS_COLUMNS
from datacheck.testing import check_detector, make_context

#: Seed of the shuffles, unlike the test's own (0): a shuffle drawn from the very stream the
#: test re-orders with would have its first permutation undo it exactly.
SHUFFLE = 123


def sorted_clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """600 samples of 6 Gaussian clusters in 16-d, stored cluster after cluster."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(6, 16))
    labels = np.repeat(np.arange(6), 100)
    return (centres[labels] + rng.normal(size=(600, 16))).astype(np.float32), labels


def drifting(seed: int = 0, n: int = 600) -> np.ndarray:
    """One Gaussian cloud whose mean moves slowly along the order (by 6 noise s.d. in all)."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=16)
    direction /= np.linalg.norm(direction)
    mean = 3.0 * rng.normal(size=16) + 6.0 * (np.arange(n) / n)[:, None] * direction
    return (mean + rng.normal(size=(n, 16))).astype(np.float32)


def shuffled(x: np.ndarray) -> np.ndarray:
    return x[np.random.default_rng(SHUFFLE).permutation(len(x))]


def neighbours(x: np.ndarray, k: int = 10) -> np.ndarray:
    return knn_cosine(x, k)[1]


# --- the test itself ---------------------------------------------------------------------


def test_sorted_clusters_make_the_order_informative():
    result = non_iid_test(neighbours(sorted_clusters()[0]))
    # Measured: statistic 0.718 against permutation statistics of 0.014 +- 0.005, so the
    # p-value underflows to 0; every sample's neighbours sit within its own block of 100.
    assert result.p_value < 0.01
    assert result.statistic > 0.6
    assert result.null_statistics.shape == (25,) and result.null_statistics.max() < 0.05
    assert result.scores.shape == (600,) and np.isfinite(result.scores).all()
    assert (result.scores < 0.05).mean() > 0.95


def test_shuffled_clusters_are_iid():
    result = non_iid_test(neighbours(shuffled(sorted_clusters()[0])))
    # Measured: p 0.87, statistic 0.009 (permutations: 0.014 +- 0.004); 4.3 % of samples
    # below 0.05, as for p-values.
    assert result.p_value > 0.05
    assert result.statistic < 0.03
    assert 0.02 < (result.scores < 0.05).mean() < 0.09
    assert 0.45 < result.scores.mean() < 0.55


def test_drift_makes_the_order_informative():
    drift = non_iid_test(neighbours(drifting()))
    # Measured: statistic 0.253, p 0; 58 % of the samples below 0.05. Shuffled: p 0.35.
    assert drift.p_value < 0.01
    assert drift.statistic > 0.15
    assert (drift.scores < 0.05).mean() > 0.3
    assert non_iid_test(neighbours(shuffled(drifting()))).p_value > 0.05


def test_statistic_is_the_exact_ks_distance():
    """Against a brute-force KS: every pair of positions for the background, every integer
    distance for the supremum."""
    rng = np.random.default_rng(4)
    n, k = 40, 3
    graph = rng.integers(0, n, size=(n, k))
    graph[graph == np.arange(n)[:, None]] = -1
    result = non_iid_test(graph)
    i = np.repeat(np.arange(n), k)[graph.ravel() >= 0]
    distances = np.abs(i - graph.ravel()[graph.ravel() >= 0])
    pairs = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))[np.triu_indices(n, 1)]
    grid = np.arange(n)
    ecdf = (distances[None, :] <= grid[:, None]).mean(axis=1)
    background = (pairs[None, :] <= grid[:, None]).mean(axis=1)
    assert result.statistic == pytest.approx(np.abs(ecdf - background).max(), abs=1e-12)


def test_p_value_is_the_kde_tail_cleanlab_uses():
    # cleanlab: gaussian_kde(permutation statistics).integrate_box_1d(observed, 100)
    result = non_iid_test(neighbours(shuffled(sorted_clusters()[0])))
    expected = gaussian_kde(result.null_statistics).integrate_box_1d(result.statistic, 100)
    assert result.p_value == pytest.approx(expected, rel=1e-9)


def test_sample_score_is_a_standardised_mid_rank():
    """With one neighbour, over the n-1 places it can be, the score's z has mean 0 and
    variance 1 exactly (the mid-CDF's moments), wherever the sample sits."""
    n = 9
    for i in range(n):
        others = np.array([j for j in range(n) if j != i])
        graph = np.full((n, 1), -1)
        z = []
        for j in others:
            graph[i, 0] = j
            z.append(ndtri(non_iid_test(graph).scores[i]))
        assert np.mean(z) == pytest.approx(0.0, abs=1e-9)
        assert np.var(z) == pytest.approx(1.0, rel=1e-9)


def test_missing_neighbours_and_self_are_ignored():
    graph = neighbours(sorted_clusters()[0], k=5)
    padded = np.hstack([graph, np.full((600, 2), -1), np.arange(600)[:, None]])
    a, b = non_iid_test(graph), non_iid_test(padded)
    assert a.p_value == b.p_value and a.statistic == b.statistic
    np.testing.assert_array_equal(a.scores, b.scores)
    graph[7] = -1  # a sample without neighbours: no evidence against it
    assert non_iid_test(graph).scores[7] == 1.0
    # nothing to compare: p 1, scores 1
    empty = non_iid_test(np.full((10, 3), -1))
    assert (empty.p_value, empty.statistic) == (1.0, 0.0) and (empty.scores == 1.0).all()
    assert non_iid_test(np.zeros((0, 4), dtype=np.int64)).scores.shape == (0,)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="positions"):
        non_iid_test(np.array([[1], [2]]))
    with pytest.raises(ValueError, match="integer"):
        non_iid_test(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="n_permutations"):
        non_iid_test(np.array([[1], [0]]), n_permutations=0)


def test_deterministic_given_the_seed():
    graph = neighbours(drifting())
    a, b = non_iid_test(graph, seed=5), non_iid_test(graph, seed=5)
    assert (a.p_value, a.statistic) == (b.p_value, b.statistic)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.null_statistics, b.null_statistics)
    # the seed draws the re-orderings only: the scores are analytic
    c = non_iid_test(graph, seed=6)
    assert not np.array_equal(a.null_statistics, c.null_statistics)
    np.testing.assert_array_equal(a.scores, c.scores)


def test_large_n_in_linear_memory():
    """N = 20,000 and k = 10: an N x N array would be 400 MB even as bools (3.2 GB as int64);
    the test works on the 200,000 edges, one re-ordering at a time."""
    n, k = 20_000, 10
    graph = np.random.default_rng(0).integers(0, n, size=(n, k))  # a random graph: IID
    tracemalloc.start()
    started = time.perf_counter()
    result = non_iid_test(graph)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Measured: 0.1 s and 13 MB.
    assert peak < 40e6, peak
    assert elapsed < 5.0, elapsed
    assert result.p_value > 0.05
    # the per-sample scores are calibrated p-values under the null
    assert abs((result.scores < 0.05).mean() - 0.05) < 0.01
    assert abs((result.scores < 0.01).mean() - 0.01) < 0.005


# --- the detector ------------------------------------------------------------------------


def write_arrays(directory, embeddings, labels):
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(6), size=len(labels)) * 0.5 + 0.5 * np.eye(6)[labels]
    np.save(directory / "p.npy", probs)
    np.save(directory / "l.npy", labels)
    np.save(directory / "e.npy", embeddings)
    return {name: directory / f"{short}.npy" for name, short in
            (("pred_probs", "p"), ("labels", "l"), ("embeddings", "e"))}


def test_audit_flags_a_sorted_dataset(tmp_path):
    x, labels = sorted_clusters()
    result = datacheck.audit(None, out=tmp_path / "run", checks=["non_iid"], **write_arrays(tmp_path, x, labels))
    findings = result.findings
    assert list(findings.columns) == FINDINGS_COLUMNS
    assert len(findings) == 600 and set(findings["check"]) == {"non_iid"}
    summary = result.summary["checks"]["non_iid"]
    assert summary["threshold"]["non_iid"] is True and summary["threshold"]["p_value"] < 0.01
    assert summary["threshold"]["alpha"] == 0.05
    assert summary["flagged"] > 570
    details = json.loads(findings["details"].iloc[0])
    assert details["p_value"] == summary["threshold"]["p_value"] and details["statistic"] > 0.6
    # the findings are the pure function's scores, row for row
    expected = non_iid_test(neighbours(x)).scores
    ids = findings["sample_id"].astype(int).to_numpy()
    np.testing.assert_allclose(findings["score"], expected[ids])
    np.testing.assert_array_equal(findings["is_issue"], expected[ids] < 0.05)


def test_audit_of_a_shuffled_dataset_flags_nothing(tmp_path):
    x, labels = sorted_clusters()
    order = np.random.default_rng(SHUFFLE).permutation(600)
    result = datacheck.audit(None, out=tmp_path / "run", checks=["non_iid"],
                             **write_arrays(tmp_path, x[order], labels[order]))
    summary = result.summary["checks"]["non_iid"]
    assert summary["threshold"]["non_iid"] is False and summary["threshold"]["p_value"] > 0.05
    assert summary["scored"] == 600 and summary["flagged"] == 0
    # some samples score below alpha by chance; the dataset verdict keeps them unflagged
    assert (result.findings["score"] < 0.05).sum() > 0


def context(embeddings, seed=0, only=None):
    labels = np.zeros(len(embeddings), dtype=np.int64)
    probs = np.ones((len(embeddings), 1), dtype=np.float32)
    outputs = ModelOutputs(["a"], labels, probs, embeddings, "test")
    return make_context(manifest_for_outputs(outputs, "arrays"), outputs=outputs, seed=seed, only=only)


def test_detector_skips_unembedded_rows():
    x = drifting()
    x[::7] = np.nan  # samples without an embedding (unreadable, unlabeled)
    detector = create_detector("non_iid")
    findings = detector.run(context(x))
    embedded = np.flatnonzero(~np.isnan(x[:, 0]))
    ids = findings["sample_id"].astype(int).to_numpy()
    assert sorted(ids) == embedded.tolist()
    # tested in the order of the embedded rows, mapped back to manifest rows
    expected = non_iid_test(neighbours(x[embedded])).scores
    np.testing.assert_allclose(findings["score"], expected[np.searchsorted(embedded, ids)])
    assert detector.thresholds_["non_iid"]["non_iid"] is True
    assert findings["is_issue"].sum() > 0.3 * len(embedded)


def test_detector_is_off_without_enough_embedded_samples():
    few, none = context(drifting(n=10)), context(drifting(n=20))
    none.features.provide("knn_graph", lambda: build_knn_graph(None, 10), timed=False)
    for ctx in (few, none):
        detector = create_detector("non_iid")
        assert detector.run(ctx).empty and "off" in detector.thresholds_["non_iid"]["rule"]


def test_detector_protocol():
    assert "non_iid" in list_detectors() and "non_iid" not in list_detectors(default_only=True)
    detector = create_detector("non_iid", k=5)
    assert isinstance(detector, NonIID)
    assert detector.get_params() == {"k": 5, "n_permutations": 25, "alpha": 0.05}
    findings = check_detector(detector, lambda only: context(drifting(n=200), only=only))
    assert len(findings) == 200 and findings["is_issue"].any()


@pytest.mark.parametrize("params, name", [({"k": 0}, "k"), ({"k": 2.5}, "k"), ({"n_permutations": 0}, "n_permutations"),
                                          ({"alpha": 0.0}, "alpha"), ({"alpha": 1.0}, "alpha"),
                                          ({"alpha": float("nan")}, "alpha"), ({"alpha": True}, "alpha")])
def test_invalid_parameters(params, name):
    with pytest.raises(UsageError, match=f"non_iid.{name}"):
        NonIID(**params).validate_params()


def test_identical_embeddings_are_not_called_non_iid(tmp_path):
    """Every distance 0: the graph kept the tied samples the search met first, by position, so
    which stood as a sample's neighbours followed the order itself (600 identical embeddings:
    non-IID, 112 flagged). Neighbours tied with the k-th where two or more are are left out; a
    copy that is its original's nearest (a tie of one, not at the cut) is still evidence."""
    x = np.ones((600, 8), np.float32)
    labels = np.arange(600) % 3
    result = datacheck.audit(None, out=tmp_path / "run", checks=["non_iid"], **write_arrays(tmp_path, x, labels))
    assert result.summary["checks"]["non_iid"]["flagged"] == 0
    assert result.summary["checks"]["non_iid"]["threshold"]["non_iid"] is False
    # real-valued rows keep every neighbour: the sorted-clusters verdict is as before
    from datacheck.detectors.non_iid import _without_cut_ties

    distances = np.sort(np.random.default_rng(0).random((50, 10)).astype(np.float32), axis=1)
    kept = _without_cut_ties(distances, np.tile(np.arange(10), (50, 1)))
    assert (kept >= 0).all()
    distances[:5, 7:] = distances[:5, 7:8]  # three tied at the cut: those three left out
    kept = _without_cut_ties(distances, np.tile(np.arange(10), (50, 1)))
    assert (kept[:5, 7:] == -1).all() and (kept[:5, :7] >= 0).all() and (kept[5:] >= 0).all()


def folder_context(embeddings, labels, seed=0):
    """A context whose manifest is a folder's (its order datacheck's listing, class by class)."""
    import dataclasses

    names = [f"c{i}" for i in range(labels.max() + 1)]
    probs = np.eye(len(names), dtype=np.float32)[labels]
    outputs = ModelOutputs(names, labels, probs, embeddings, "test")
    manifest = dataclasses.replace(manifest_for_outputs(outputs, "arrays"), format="folder")
    return make_context(manifest, outputs=outputs, seed=seed)


def test_a_folder_is_tested_within_its_classes():
    """A folder is listed class by class, so its order always looked informative (sample_data:
    412 of 563 flagged). Within each class, the listing of shuffled members is not; one class
    whose files are listed along a drift is, and the flags are its members."""
    x, labels = sorted_clusters()
    within = np.concatenate([shuffled(x[labels == c]) for c in range(6)])
    assert non_iid_test(neighbours(within)).p_value < 0.01  # the whole listing: informative
    detector = create_detector("non_iid")
    findings = detector.run(folder_context(within, labels))
    threshold = detector.thresholds_["non_iid"]
    assert threshold["non_iid"] is False and threshold["within_classes"] == 6 and threshold["p_value"] > 0.05
    assert not findings["is_issue"].any() and len(findings) == 600
    # class 2 listed along a drift (its members' order follows their content)
    drift = drifting(n=100) + x[labels == 2].mean(axis=0)
    ordered = within.copy()
    ordered[labels == 2] = drift
    findings = detector.run(folder_context(ordered, labels))
    threshold = detector.thresholds_["non_iid"]
    assert threshold["non_iid"] is True and threshold["p_value"] < 0.01
    flagged = findings.loc[findings["is_issue"], "sample_id"].astype(int).to_numpy()
    assert len(flagged) > 20 and (labels[flagged] == 2).all()  # measured 61 of its 100

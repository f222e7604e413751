"""Non-IID order: is the dataset's order informative?

If samples were collected or stored in an order that follows their content (sorted by class,
by source, by capture time under drifting conditions), then samples that are close in
feature space tend to be close in dataset order too. The test follows cleanlab Datalab's
non-IID issue (``NonIIDIssueManager``; Cummings et al., "Detecting Dataset Drift and Non-IID
Sampling via k-Nearest Neighbors", arXiv:2305.15696):

1. take each sample's ``k`` nearest neighbours in embedding space;
2. measure how far apart in dataset *order* each sample and its neighbours are
   (``|i - j|``, the index distance);
3. compare the distribution of these index distances with the one a random order would give
   (the distances between all pairs of positions), by a Kolmogorov-Smirnov statistic;
4. calibrate the statistic against random re-orderings of the same neighbour graph.

The test is dataset-level: its p-value says whether the order carries information. The
per-sample scores say which samples' neighbours sit unusually close to them in the order
(the samples that make the order informative).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ..features.knn import MAX_NEIGHBOURS
from ..robust import normal_sf
from ..validation import Interval
from .base import AuditContext, Detector, partial_findings
from .registry import register_detector


@dataclass(frozen=True)
class NonIIDResult:
    """The outcome of :func:`non_iid_test`.

    Attributes
    ----------
    p_value : float
        Dataset-level p-value of "the order is random" (exchangeable); small = the order is
        informative. In [0, 1].
    statistic : float
        Kolmogorov-Smirnov distance between the neighbour index distances and the index
        distances of a random order; in [0, 1].
    scores : ndarray of shape (N,), float64
        Per sample, in [0, 1]: the one-sided p-value of "this sample's neighbours are no
        closer to it in the order than chance". Lower = more suspicious; 1.0 for a sample
        without neighbours.
    null_statistics : ndarray of shape (n_permutations,), float64
        The statistic under each random re-ordering (the permutation null).
    """

    p_value: float
    statistic: float
    scores: np.ndarray
    null_statistics: np.ndarray


def non_iid_test(neighbours: np.ndarray, *, n_permutations: int = 25, seed: int = 0) -> NonIIDResult:
    """Test whether the order of a dataset is informative, given its k-nearest-neighbour graph.

    Parameters
    ----------
    neighbours : ndarray of shape (N, k), int
        Row ``i`` holds the positions (dataset order, 0..N-1) of sample ``i``'s ``k`` nearest
        neighbours, itself excluded. ``-1`` means "no neighbour" and is ignored (so is ``i``
        itself, should it appear).
    n_permutations : int, default 25
        Random re-orderings of the dataset that calibrate the statistic (cleanlab's
        ``num_permutations``).
    seed : int, default 0
        Seeds the re-orderings; the result is a deterministic function of the inputs.

    Returns
    -------
    NonIIDResult
        ``p_value`` and ``statistic`` (dataset level), ``scores`` of shape (N,) (per sample)
        and ``null_statistics`` of shape (n_permutations,).

    Notes
    -----
    **Statistic** (as cleanlab's ``_get_statistics``). Pool the ``M`` index distances
    ``d = |i - j|`` over every edge ``i -> j`` of the graph. In a random order, the positions
    of an edge's two ends are a uniformly random pair of distinct positions, so ``d`` follows
    the distribution of ``|a - b|`` over all pairs, ``P(d) = 2 (N - d) / (N (N - 1))``, with CDF
    ``F0(d) = d (2N - d - 1) / (N (N - 1))``. The statistic is the two-sided KS distance
    ``sup_d |F_M(d) - F0(d)|`` to the empirical CDF ``F_M`` of the pooled distances. Both are
    step functions on the integers, so the supremum is a maximum over ``d = 1..N-1``, which a
    histogram of the distances gives exactly. (cleanlab compares the empirical CDF just below
    each sorted distance with ``F0`` *at* it, which mixes two evaluation points and can be off
    by one background step, up to 2/N; the two agree to that.) Two-sided, like cleanlab's: an
    order that keeps similar samples *apart* is informative too.

    **p-value** (as cleanlab's ``_permutation_test``). The M distances are not independent
    (edges share samples, mutual neighbours count twice), so the KS distribution does not
    apply. Instead the graph is kept and the order is redrawn ``n_permutations`` times: under
    the null hypothesis the observed order is one more such draw. As cleanlab does, the
    permutation statistics are smoothed by a Gaussian kernel density (Scott's bandwidth, as
    ``scipy.stats.gaussian_kde``) and the p-value is its upper tail beyond the observed
    statistic, which, unlike a rank among 25 draws (at least 1/26), can be as small as the
    evidence warrants. With fewer than two distinct permutation statistics it falls back to
    the rank ``(1 + #{null >= observed}) / (n_permutations + 1)``.

    **Per-sample score** (our own; cleanlab's ``_score_dataset`` maps an unsigned area between
    CDFs through tanh, which also scores neighbours *farther* than chance as suspicious and
    has no scale). For sample ``i`` at position ``i``, a random order puts each neighbour at a
    uniformly random other position, so its index distance ``d`` has the CDF
    ``G_i(d) = (min(d, i) + min(d, N-1-i)) / (N-1)`` (two positions per distance while both
    sides of ``i`` reach, one after). The mid-CDF ``u = G_i(d-1) + P_i(d)/2`` ("share of the
    dataset closer to ``i`` in order than this neighbour", ties halved) then has mean exactly
    1/2 and variance ``(1 - sum P_i^3)/12``. The score is the normal approximation of the
    one-sided p-value of the mean ``u`` of the sample's ``k_i`` neighbours (drawn without
    replacement from ``N-1`` positions, hence the finite-population factor): ``Phi(z)`` with
    ``z = (mean(u) - 1/2) / sqrt(var / k_i * (N-1-k_i) / (N-2))``. So ``score < alpha`` reads
    "this sample's neighbours are closer to it in the order than chance, at level alpha".
    It needs no permutation and does not depend on ``seed``.

    Memory is O(N k) (the edges and one permutation at a time); nothing is N x N.
    """
    neighbours = np.asarray(neighbours)
    if neighbours.ndim != 2 or not (neighbours.size == 0 or np.issubdtype(neighbours.dtype, np.integer)):
        raise ValueError(f"neighbours must be a 2-d integer array, got shape {neighbours.shape} of {neighbours.dtype}")
    if not (isinstance(n_permutations, (int, np.integer)) and n_permutations >= 1):
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    n = len(neighbours)
    if neighbours.size and (neighbours.min() < -1 or neighbours.max() >= n):
        raise ValueError(f"neighbours must hold positions in [0, {n}) or -1")

    # The edges i -> j as two flat arrays (M = number of valid entries <= N k).
    position = np.broadcast_to(np.arange(n, dtype=np.int64)[:, None], neighbours.shape)
    valid = (neighbours >= 0) & (neighbours != position)
    src = position[valid]
    dst = neighbours[valid].astype(np.int64)
    del position, valid
    if n < 3 or len(src) == 0:  # no pair to compare, or only one possible distance
        return NonIIDResult(1.0, 0.0, np.ones(n), np.zeros(n_permutations))

    background = _background_cdf(n)
    statistic = _ks_statistic(np.abs(src - dst), background)
    rng = np.random.default_rng(seed)
    null = np.empty(n_permutations)
    for b in range(n_permutations):
        # Sample s moves to position order[s]; the graph (who neighbours whom) is kept.
        order = rng.permutation(n)
        null[b] = _ks_statistic(np.abs(order[src] - order[dst]), background)
    return NonIIDResult(_kde_upper_tail(null, statistic), statistic, _sample_scores(src, dst, n), null)


def _background_cdf(n: int) -> np.ndarray:
    """``F0(d)`` for ``d = 1..n-1``: the share of position pairs at most ``d`` apart. Shape (n-1,)."""
    d = np.arange(1, n, dtype=np.float64)
    return d * (2 * n - d - 1) / (n * (n - 1.0))


def _ks_statistic(distances: np.ndarray, background: np.ndarray) -> float:
    """``max_d |F_M(d) - F0(d)|`` over ``d = 1..n-1``, by a histogram (O(M + n), no sort)."""
    counts = np.bincount(distances, minlength=len(background) + 1)[1:]
    ecdf = np.cumsum(counts) / len(distances)
    return float(np.abs(ecdf - background).max())


def _kde_upper_tail(null: np.ndarray, statistic: float) -> float:
    """``P(T >= statistic)`` under a Gaussian KDE of ``null`` (Scott's rule), in closed form.

    cleanlab computes ``gaussian_kde(null).integrate_box_1d(statistic, 100)``; for one
    dimension that is the mean over the kernels of ``1 - Phi((statistic - t_b) / h)`` with
    ``h = std(null, ddof=1) * B ** (-1/5)``.
    """
    b = len(null)
    h = float(np.std(null, ddof=1)) * b ** (-0.2) if b >= 2 else 0.0
    if not h > 0:  # a KDE needs spread; fall back to the permutation rank
        return float((1 + np.count_nonzero(null >= statistic)) / (b + 1))
    return float(np.clip(normal_sf((statistic - null) / h).mean(), 0.0, 1.0))


def _sample_scores(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    """Per-sample one-sided p-values of "neighbours closer in order than chance". Shape (n,).

    See :func:`non_iid_test` (Notes) for the derivation; every array is per edge (M,) or per
    sample (n,).
    """
    d = np.abs(src - dst)
    before, after = src, n - 1 - src  # positions available on each side of the sample
    closer = np.minimum(d - 1, before) + np.minimum(d - 1, after)  # positions strictly closer
    tied = (d <= before).astype(np.int64) + (d <= after)  # positions at exactly distance d: 1 or 2
    u = (closer + 0.5 * tied) / (n - 1)
    k = np.bincount(src, minlength=n)
    mean_u = np.bincount(src, weights=u, minlength=n) / np.maximum(k, 1)
    # Variance of the mid-CDF of a discrete law: (1 - sum p^3) / 12. Distance d has two
    # positions for d <= min(i, n-1-i), one beyond.
    both = np.minimum(np.arange(n), n - 1 - np.arange(n))
    sum_p3 = (8.0 * both + (n - 1 - 2 * both)) / (n - 1.0) ** 3
    variance = (1.0 - sum_p3) / 12.0 / np.maximum(k, 1) * (n - 1.0 - k) / (n - 2.0)
    informative = (k > 0) & (variance > 0)  # a sample whose neighbours are all others: no evidence
    scores = np.ones(n)
    scores[informative] = normal_sf((0.5 - mean_u[informative]) / np.sqrt(variance[informative]))
    return np.clip(scores, 0.0, 1.0)


# Upper bound of the permutations, checked before any work (exit 2): each is a pass over the
# graph's N k edges, so 10**12 was an audit that does not end. 10000 resolve a p-value to 1e-4.
# k is bounded as every graph reader's is (MAX_NEIGHBOURS); cleanlab's test uses k = 10.
MAX_PERMUTATIONS = 10_000


@register_detector
class NonIID(Detector):
    """Flag a dataset whose order is informative (non-IID), and the samples that make it so.

    Runs :func:`non_iid_test` on the audit's cosine k-nearest-neighbour graph of the
    embeddings (cleanlab Datalab's non-IID check). The verdict is about the dataset:
    ``thresholds_["non_iid"]["non_iid"]`` is ``p_value < alpha``. Every embedded sample gets
    a finding; its ``score`` is the per-sample p-value that its neighbours are no closer to it
    in the order than chance, and it is flagged when the dataset is (``p_value < alpha``)
    *and* ``score < alpha``: in a dataset whose order is random nothing is flagged; in one
    whose order is not, the samples flagged are those stored next to their look-alikes. The
    order tested is manifest order among the embedded samples.

    Off by default (``--checks non_iid``): an ordered dataset (sorted by class folder, say)
    is often harmless, and worth knowing about before splitting it by position or training
    on it in stored order.

    A folder's order is datacheck's own listing, split by split and class by class, so there
    the test is run within each class (its members in listed order, their neighbours of the
    same class): does the files' order inside a class folder follow their content (names by
    capture time under drifting conditions, bursts of look-alikes)? Across classes the
    listing would always look informative (sample_data: 412 of 563 flagged). The classes'
    p-values are combined by Bonferroni (the smallest times the number of classes tested).

    Parameters
    ----------
    k : int, default 10
        Neighbours per sample, at most 1000.
    n_permutations : int, default 25
        Random re-orderings that calibrate the p-value, at most 10000.
    alpha : float, default 0.05
        Significance level, in (0, 1): of the dataset test and of each sample's score.
    """

    name = "non_iid"
    requires = frozenset({"knn_graph"})
    checks = ("non_iid",)
    tags = frozenset({"dataset"})
    default = False
    _parameter_constraints = {
        "k": [Interval(int, 1, MAX_NEIGHBOURS)],
        "n_permutations": [Interval(int, 1, MAX_PERMUTATIONS)],
        # alpha = 1 would call every dataset non-IID (every p-value is below 1)
        "alpha": [Interval(float, 0, 1, "neither")],
    }

    def __init__(self, *, k: int = 10, n_permutations: int = 25, alpha: float = 0.05):
        self.k = k
        self.n_permutations = n_permutations
        self.alpha = alpha

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        graph = ctx.get("knn_graph")
        # The graph covers the embedded samples only (graph.rows, in manifest order) and
        # its indices are positions among them: the order tested is theirs, so a block of
        # unembedded rows neither adds nor hides order information.
        rows = graph.rows
        if len(rows) <= self.k:
            self.thresholds_[self.name] = {"rule": f"off: needs more than k={self.k} embedded samples"}
            return partial_findings([], self.name, [], [], [])
        distances, neighbours = graph.first(self.k)
        neighbours = _without_cut_ties(distances, neighbours)
        labels = ctx.manifest.frame["label"].iloc[rows]
        within = ctx.manifest.format == "folder" and labels.nunique() > 1
        if within:
            tested_classes = _within_classes(neighbours, pd.factorize(labels)[0], self.n_permutations, ctx.seed)
            if tested_classes is None:
                # Not a test that passed: nothing was tested (a non_iid gate is then untested, said so).
                return self._off(f"a folder's order is tested within each class, and none has {MIN_CLASS_TESTED} "
                                 "or more embedded samples")
            result, tested, group_p = tested_classes
        else:
            result = non_iid_test(neighbours, n_permutations=self.n_permutations, seed=ctx.seed)
            group_p = np.full(len(rows), result.p_value)
        dataset_flagged = result.p_value < self.alpha
        p_value, statistic = _significant(result.p_value), round(result.statistic, 6)
        scope = (f"within each of {tested} classes (a folder's order is its listing, class by class), "
                 f"Bonferroni" if within else "")
        self.thresholds_[self.name] = {
            "non_iid": bool(dataset_flagged),
            "p_value": p_value,
            "alpha": self.alpha,
            "statistic": statistic,
            "rule": f"dataset: p_value < {self.alpha} (KS of neighbour index distances, {self.k}-NN, "
                    f"{self.n_permutations} permutations{'; ' + scope if scope else ''}); "
                    f"sample: also score < {self.alpha}",
            **({"within_classes": tested} if within else {}),
        }
        # The details are the same for every sample: one JSON text, shared (Arrow fast path).
        text = json.dumps({"p_value": p_value, "statistic": statistic}, sort_keys=True)
        details = pa.array([text] * len(rows), type=pa.string())
        # Flagged: the samples of an informative order (the dataset's, or, in a folder, their
        # class's) whose neighbours sit closer to them in it than chance.
        is_issue = (group_p < self.alpha) & (result.scores < self.alpha)
        return partial_findings(rows, self.name, result.scores, is_issue, details)


#: The fewest members of a class whose order :func:`_within_classes` tests.
MIN_CLASS_TESTED = 3


def _within_classes(neighbours: np.ndarray, codes: np.ndarray, n_permutations: int,
                    seed: int) -> tuple[NonIIDResult, int, np.ndarray] | None:
    """:func:`non_iid_test` of each class's members in their order, on the graph's edges
    within the class; the number of classes tested (those of :data:`MIN_CLASS_TESTED` samples
    or more; unlabeled samples form one more group); and each sample's class p-value,
    Bonferroni-adjusted. None where no class is tested.

    Parameters
    ----------
    neighbours : ndarray of shape (N, k), int
        Positions among the N samples, -1 for none.
    codes : ndarray of shape (N,), int
        Each sample's class code (-1: unlabeled).

    Returns
    -------
    NonIIDResult
        ``p_value``: the smallest class p-value times the classes tested (Bonferroni, at most
        1); ``statistic``: that class's; ``scores`` (N,): each sample's within its class;
        ``null_statistics``: that class's.
    int
    ndarray of shape (N,), float
        The adjusted p-value of each sample's class (1 where its class was not tested).
    """
    scores, group_p = np.ones(len(codes)), np.ones(len(codes))
    # The classes' members in one stable sort (each class's in its own order), and every
    # sample's position within its class: O(N log N) for all classes, where a pass over the N
    # samples per class was O(N x classes) (10,000 classes of a long tail).
    order = np.argsort(codes, kind="stable")
    found, starts, counts = np.unique(codes[order], return_index=True, return_counts=True)
    position = np.empty(len(codes), dtype=np.int64)
    position[order] = np.arange(len(codes)) - np.repeat(starts, counts)
    tested = [(code, order[start : start + count]) for code, start, count in zip(found, starts, counts)
              if count >= MIN_CLASS_TESTED]
    best = None
    for code, members in tested:
        # Each member's neighbours as positions in the class; -1 for none or another class's.
        near = neighbours[members]
        same = (near >= 0) & (codes[near] == code)
        result = non_iid_test(np.where(same, position[near], -1), n_permutations=n_permutations,
                              seed=seed + int(code) + 1)
        scores[members] = result.scores
        group_p[members] = min(1.0, result.p_value * len(tested))
        best = result if best is None or result.p_value < best.p_value else best
    if best is None:
        return None
    adjusted = min(1.0, best.p_value * len(tested))
    return NonIIDResult(adjusted, best.statistic, scores, best.null_statistics), len(tested), group_p


def _without_cut_ties(distances: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """``neighbours`` (N, k) with -1 for the neighbours tied with a sample's k-th where two or
    more are (``distances`` (N, k), ascending).

    Where the k-th neighbour's distance is shared, the tie may go on past k, and the search
    kept the tied samples it met first, by position: which ones stand in the graph then
    follows the order, the very thing tested. 600 identical embeddings (every distance 0)
    were called non-IID, 112 samples flagged. Those neighbours are left out; a row whose
    distances differ (real-valued embeddings) keeps all ``k``."""
    if neighbours.shape[1] < 2:
        return neighbours
    cut = distances == distances[:, -1:]
    return np.where(cut & (cut.sum(axis=1, keepdims=True) >= 2), -1, neighbours)


def _significant(p: float) -> float:
    """``p`` to 4 significant digits: a p-value of 1e-30 must not round to 0."""
    return float(f"{p:.4g}")

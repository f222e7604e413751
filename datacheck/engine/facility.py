"""Facility location by (lazy or stochastic) greedy selection, in numpy.

Selects ``budget`` medoids ``S`` of a point set maximising ``F(S) = sum_i max_{j in S} s_ij``
with ``s_ij = M - ||x_i - x_j||`` (``M`` bounds the distances, so ``s >= 0``) and
``s_ii = 0``: a point never represents itself, so a medoid is worth what it stands for
*other* points, and an isolated point is chosen last. ``F`` is a facility-location function
(monotone submodular), so greedy selection is within ``1 - 1/e`` of the optimum.

* Up to ``exact_max`` points: the ``N x N`` similarity matrix and lazy greedy (Minoux 1978):
  stale gains in a max-heap, re-evaluated only when they reach the top.
* Above: stochastic greedy (Mirzasoleiman et al., AAAI 2015, "Lazier than lazy greedy"):
  each step evaluates ``ceil(N / budget * ln(1 / epsilon))`` random candidates (all N for a
  budget below ``ln(1 / epsilon)``) against all points, in blocks of at most
  :data:`_STEP_TILE` distances, so memory is bounded whatever the budget, never N x N;
  within ``1 - 1/e - epsilon`` in expectation. Its time is still ``ln(1 / epsilon) N^2``
  distances whatever the budget (a class of 32,000: 52 s; 190,000 did not finish in 10
  minutes).
* Above ``part_max`` points: stochastic greedy over the whole set, each candidate's gain
  counted only within its *region*: the points are split into regions of at most
  ``part_max`` by recursive median cuts along the principal axis (:func:`_deal`), so a
  region is a compact piece of the space where most points' nearest medoid lies. A step
  then costs ``candidates x part_max`` distances instead of ``candidates x N``: time linear
  in N. The budget goes wherever it gains most, as undivided (a region of near-duplicates
  gets one medoid, a spread-out one many); points are assigned among their region's
  medoids. Measured against the undivided selection (points' mean distance to the nearest
  medoid, 8,192 points in 8 regions, budgets 0.5 and 0.1): within 0.94-1.035 x on clustered
  gradients, clusters of 2-16 near-duplicates and a dense blob beside a spread sheet, where
  random parts each with a proportional share of the budget (GreeDi's first round) were
  1.4-6.6 x on tiny clusters and up to 1.6 x on the blob, and their within-part assignment
  up to 21 x. The benchmark's 10-class gradients at a budget of half: 32,768 points in
  7.8 s (undivided 17.2 s), 0.1 % farther from the nearest medoid than undivided, 0.8 % from
  the assigned one; 200,000 in 66 s on one busy core, peak RSS 330 MB; the time a point grows
  with the regions one step's candidates touch, up to their number (10 at a budget of half),
  and is linear in N beyond (``benchmarks/coreset_scale.py``).

numpy rather than torch: the greedy steps are many small vector operations, where torch's
per-operation thread start-up costs more than the work on a CPU (measured: minutes instead of
seconds for a 6,000-sample class on a busy 2-core machine).
"""

from __future__ import annotations

import heapq
import math

import numpy as np

_TILE = 1 << 24  # elements of one distance block in the final assignment (64 MB float32)
#: Elements of one block of a greedy step's candidate distances (16 MB float32): a step holds
#: two such blocks (distances, gains), 32 MB, where one block of all N = 8,192 candidates
#: with its temporaries was about 1 GB.
_STEP_TILE = 1 << 22

#: Points above which :func:`facility_location` counts gains within regions of at most this
#: many points (see the module's notes; ``benchmarks/coreset_scale.py``).
PART_MAX = 8192


def facility_location(x, budget: int, *, exact_max: int = 4096, part_max: int = PART_MAX, epsilon: float = 0.01,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy facility location on the rows of ``x``.

    Parameters
    ----------
    x : array-like of shape (N, D), float
    budget : int
        Medoids to select, 1 <= budget <= N.
    exact_max : int, default 4096
        Largest N (of the whole, or of a part) for the exact lazy greedy on the N x N matrix;
        above it, stochastic greedy.
    part_max : int, default :data:`PART_MAX`
        Largest N selected from as one set; above it, gains are counted within regions of at
        most this size, always by stochastic greedy (see the module's notes).
    epsilon : float, default 0.01
        Stochastic greedy's approximation slack.
    seed : int, default 0
        Random candidates of stochastic greedy, and the regions' cuts (unused by the exact path).

    Returns
    -------
    selected : ndarray of shape (budget,), int64
        Medoid row numbers, in the order chosen.
    medoid : ndarray of shape (N,), int64
        Row number of each point's nearest medoid (a medoid's is itself); above ``part_max``
        points and ``part_max`` medoids, the nearest of its region's medoids (of all, for a
        region without one).
    distance : ndarray of shape (N,), float32
        Distance of each point to its medoid, divided by ``M`` (so in [0, 1]).
    """
    points = np.ascontiguousarray(x, dtype=np.float32)
    n = len(points)
    if not 1 <= budget <= n:
        raise ValueError(f"facility_location needs 1 <= budget <= N={n}, got {budget}")
    with np.errstate(over="ignore", invalid="ignore"):
        norms = (points * points).sum(axis=1)
    if not np.isfinite(norms).all():  # NaN made lazy greedy loop for ever
        raise ValueError("facility_location needs finite points (a row with NaN or inf, or values whose squares "
                         "overflow float32)")
    # Twice the largest distance from the mean bounds every pairwise distance.
    bound = float(2 * np.linalg.norm(points - points.mean(axis=0), axis=1).max()) or 1.0
    rng = np.random.default_rng(seed) if n > exact_max or n > part_max else None  # (a negative seed is refused here)
    if n > part_max:
        selected, medoid, distance = _in_regions(points, norms, budget, bound, part_max, epsilon, rng)
    else:
        selected = _greedy(points, norms, budget, bound, exact_max, epsilon, rng)
        medoid, distance = _assign(points, norms, selected)
    return selected, medoid, (distance / bound).clip(0, 1)


def selection_method(n: int, exact_max: int = 4096, part_max: int = PART_MAX) -> str:
    """How :func:`facility_location` selects from ``n`` points: ``"lazy greedy"``,
    ``"stochastic greedy"``, or ``"stochastic greedy in R regions"``."""
    if n > part_max:
        return f"stochastic greedy in {-(-n // part_max)} regions"
    return "lazy greedy" if n <= exact_max else "stochastic greedy"


def nearest_others(x, selected: np.ndarray, k: int, *, part_max: int = PART_MAX, seed: int = 0) -> np.ndarray:
    """Each medoid's ``k`` nearest other medoids, nearest first.

    What ``balance`` needs to give a medoid it drops to the nearest one it keeps, without the
    features. In blocks of at most :data:`_STEP_TILE` distances; above ``part_max`` medoids,
    among the medoids of its region only (median cuts along the principal axis, as
    :func:`facility_location` counts gains), so the time is M x ``part_max`` distances, not M^2.

    Parameters
    ----------
    x : array-like of shape (N, D), float
        The points :func:`facility_location` selected from.
    selected : ndarray of shape (M,), int
        The medoids' row numbers in ``x``.
    k : int
        Neighbours a medoid, at least 1.
    part_max : int, default :data:`PART_MAX`
    seed : int, default 0
        The regions' cuts (unused up to ``part_max`` medoids).

    Returns
    -------
    ndarray of shape (M, min(k, M - 1)), int64
        Positions in ``selected`` (not rows of ``x``), nearest first (equal distances: the
        lower position first); -1 after the last where a region holds ``k`` or fewer medoids.
    """
    medoids = np.ascontiguousarray(np.asarray(x)[selected], dtype=np.float32)
    norms = (medoids * medoids).sum(axis=1)
    count = len(medoids)
    near = np.full((count, min(k, count - 1)), -1, dtype=np.int64)
    if count <= part_max:
        regions = [np.arange(count)]
    else:
        regions = [np.sort(r) for r in _deal(medoids, -(-count // part_max), np.random.default_rng(seed))]
    for region in regions:
        take = min(k, len(region) - 1)
        if take < 1:
            continue
        for block in _even_blocks(len(region), len(region)):
            rows = region[block]
            d = cdist(medoids[rows], norms[rows], medoids[region], norms[region])  # (block, region)
            at = np.arange(len(rows))
            d[at, np.arange(block.start, block.stop)] = np.inf  # not itself
            # k passes of argmin (vectorised; the first of equals) took a tenth of argpartition's time
            for j in range(take):
                nearest = d.argmin(axis=1)
                near[rows, j] = region[nearest]
                d[at, nearest] = np.inf
    return near


def _greedy(points: np.ndarray, norms: np.ndarray, budget: int, bound: float, exact_max: int, epsilon: float,
            rng: np.random.Generator) -> np.ndarray:
    """``budget`` medoids of ``points`` (N, D) by lazy greedy up to ``exact_max`` points, else
    stochastic greedy: their row numbers, in the order chosen."""
    if len(points) <= exact_max:
        return _lazy_greedy(points, norms, budget, bound)
    return _stochastic_greedy(points, norms, budget, bound, epsilon, rng)


def _in_regions(points: np.ndarray, norms: np.ndarray, budget: int, bound: float, part_max: int, epsilon: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`facility_location`'s selection and assignment (undivided distances) above
    ``part_max`` points: stochastic greedy over all points, a candidate's gain counted within
    its region (:func:`_deal`), so a step costs ``candidates x part_max`` distances. Each point
    is assigned to the nearest of all medoids when there are at most ``part_max`` (N x budget
    distances), else to the nearest of its region's (of all, for a region without one)."""
    n = len(points)
    regions = _deal(points, -(-n // part_max), rng)
    starts = np.cumsum([0] + [len(r) for r in regions])
    order = np.concatenate([np.sort(r) for r in regions])  # region by region, ascending rows within
    p, q = points[order], norms[order]
    region_of = np.repeat(np.arange(len(regions)), np.diff(starts))
    per_step = min(n, math.ceil(n / budget * math.log(1 / epsilon)))
    # slack = M - covered: a candidate at distance d gains max(slack - d, 0) on a point, and
    # on itself (d = 0, s_ii = 0) nothing, so its own slack is taken off again
    slack = np.full(n, bound, dtype=np.float32)
    pool, left = np.arange(n), n  # positions (in p) not yet selected: pool[:left]
    chosen = np.empty(budget, dtype=np.int64)
    for step in range(budget):
        draw = rng.choice(left, size=min(per_step, left), replace=False)
        candidates = pool[draw]
        by_region = np.argsort(region_of[candidates], kind="stable")
        cuts = np.flatnonzero(np.diff(region_of[candidates[by_region]])) + 1
        best, best_gain, best_d = -1, -1.0, None
        for whole in np.split(by_region, cuts):
            r = region_of[candidates[whole[0]]]
            a, b = starts[r], starts[r + 1]
            for block in _even_blocks(len(whole), b - a):
                group = whole[block]
                c = candidates[group]
                d = cdist(p[c], q[c], p[a:b], q[a:b])
                gain = np.subtract(slack[a:b], d, out=np.empty_like(d))
                gains = np.maximum(gain, 0, out=gain).sum(axis=1, dtype=np.float64) - slack[c]
                i = int(np.argmax(gains))
                if gains[i] > best_gain:  # ties: the region, then the block, first in order
                    # a copy: a view of the row kept the whole block alive beside the next
                    best, best_gain, best_d, span, own = group[i], float(gains[i]), d[i].copy(), (a, b), c[i] - a
                del d, gain  # freed before the next block's distances: two blocks at a time
        chosen[step] = candidates[best]
        best_d[own] = np.inf  # a medoid does not cover itself
        np.minimum(slack[span[0] : span[1]], best_d, out=slack[span[0] : span[1]])
        left -= 1
        pool[draw[best]] = pool[left]
    if budget <= part_max:  # N x budget distances, no more than a greedy step's: the nearest of all medoids
        return (order[chosen],) + _assign(points, norms, order[chosen], tile=min(_TILE, part_max * part_max))
    medoid, distance = np.empty(n, np.int64), np.empty(n, np.float32)
    homeless = []
    for r in range(len(regions)):
        a, b = starts[r], starts[r + 1]
        mine = chosen[(chosen >= a) & (chosen < b)]
        if len(mine) == 0:
            homeless.append(np.arange(a, b))
            continue
        nearest, distance[order[a:b]] = _assign(p[a:b], q[a:b], mine - a)
        medoid[order[a:b]] = order[nearest + a]
    if homeless:
        rows = np.concatenate(homeless)
        where, distance[order[rows]] = _nearest(p, q, p[chosen], q[chosen], rows)
        medoid[order[rows]] = order[chosen[where]]
    return order[chosen], medoid, distance


def _deal(points: np.ndarray, n_parts: int, rng: np.random.Generator, sample: int = 2048) -> list[np.ndarray]:
    """Row numbers of ``points`` in ``n_parts`` parts of at most ``ceil(N / n_parts)`` rows, each
    a compact region: recursive median splits along the principal axis (power iteration on a
    random ``sample`` of the rows being split, so the seed moves the cuts a little). O(N D log P)."""
    parts, todo = [], [(np.arange(len(points)), n_parts)]
    while todo:
        rows, k = todo.pop()
        if k == 1:
            parts.append(rows)
            continue
        k_left = k // 2
        n_left = len(rows) * k_left // k  # both halves then hold at most ceil(len / k) rows a part
        fit = points[rows if len(rows) <= sample else rng.choice(rows, sample, replace=False)].astype(np.float64)
        centre = fit.mean(axis=0)
        fit -= centre
        axis = rng.normal(size=points.shape[1])
        for _ in range(10):
            axis = fit.T @ (fit @ axis)
            axis /= np.linalg.norm(axis) or 1.0
        axis = axis.astype(np.float32)
        step = max(1, _TILE // max(1, points.shape[1]))  # blocks: no float64 or whole copy of the rows
        projection = np.concatenate([points[rows[i : i + step]] @ axis for i in range(0, len(rows), step)])
        order = np.argsort(projection - np.float32(centre @ axis), kind="stable")
        todo += [(rows[order[n_left:]], k - k_left), (rows[order[:n_left]], k_left)]
    return parts


def cdist(a: np.ndarray, a_norms: np.ndarray, b: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) by one matrix product, float32 (``a``, ``b`` and
    their squared norms float32); two arrays of that size at a time (the expression
    ``norms - 2.0 * (a @ b.T)`` held three), the same values."""
    sq = a @ b.T
    sq *= 2.0
    np.subtract(a_norms[:, None] + b_norms[None, :], sq, out=sq)
    return np.sqrt(np.maximum(sq, 0, out=sq), out=sq)


def _lazy_greedy(points: np.ndarray, norms: np.ndarray, budget: int, bound: float) -> np.ndarray:
    sim = bound - cdist(points, norms, points, norms)
    np.fill_diagonal(sim, 0)
    covered = np.zeros(len(points), dtype=np.float32)
    gains = sim.sum(axis=0, dtype=np.float64)
    heap = [(-g, j) for j, g in enumerate(gains.tolist())]  # ties: the lower row number first
    heapq.heapify(heap)
    selected: list[int] = []
    while len(selected) < budget:
        _, j = heapq.heappop(heap)
        gain = float(np.maximum(sim[:, j] - covered, 0).sum(dtype=np.float64))
        if not heap or gain >= -heap[0][0] - 1e-9 * bound:
            selected.append(j)
            np.maximum(covered, sim[:, j], out=covered)
        else:
            heapq.heappush(heap, (-gain, j))
    return np.asarray(selected, dtype=np.int64)


def _stochastic_greedy(points: np.ndarray, norms: np.ndarray, budget: int, bound: float, epsilon: float,
                       rng: np.random.Generator) -> np.ndarray:
    """``budget`` medoids of ``points`` (N, D) by stochastic greedy: their row numbers (budget,),
    in the order chosen.

    A step's candidates are evaluated against all N points in blocks of at most
    :data:`_STEP_TILE` distances (:func:`_even_blocks`), never the (candidates, N) matrix: with a
    small budget a step draws all N candidates. A candidate's gain is the float64 sum of its own
    row, so the blocks choose what the whole matrix did, first maximum included.
    """
    n = len(points)
    per_step = min(n, math.ceil(n / budget * math.log(1 / epsilon)))
    covered = np.zeros(n, dtype=np.float32)
    available = np.ones(n, dtype=bool)
    selected: list[int] = []
    for _ in range(budget):
        remaining = np.flatnonzero(available)
        candidates = rng.choice(remaining, size=min(per_step, len(remaining)), replace=False)
        best, best_gain, best_sim = -1, -1.0, None
        for block in _even_blocks(len(candidates), n):
            c = candidates[block]
            d = cdist(points[c], norms[c], points, norms)  # (block, N)
            sim = np.subtract(bound, d, out=d)
            sim[np.arange(len(c)), c] = 0
            gain = np.subtract(sim, covered)
            gains = np.maximum(gain, 0, out=gain).sum(axis=1, dtype=np.float64)
            i = int(np.argmax(gains))
            if gains[i] > best_gain:  # ties: the block first in order, as argmax over all
                best, best_gain, best_sim = int(c[i]), float(gains[i]), sim[i].copy()
            del d, sim, gain  # freed before the next block's distances: two blocks at a time
        selected.append(best)
        available[best] = False
        np.maximum(covered, best_sim, out=covered)
    return np.asarray(selected, dtype=np.int64)


def _even_blocks(count: int, width: int) -> list[slice]:
    """Slices cutting ``count`` rows of ``width`` distances each into blocks of at most
    :data:`_STEP_TILE` distances (one row, at least), all of nearly the same size.

    Even rather than full blocks and a remainder: BLAS multiplies a small block by other
    kernels (gemv for one row, small-matrix kernels) whose sums round differently, so a short
    last block changed its candidates' distances in the last bits, and with them a close
    choice; blocks of at least half of :data:`_STEP_TILE` / ``width`` rows go through the same
    kernel as the whole matrix (rows bit-identical, measured with OpenBLAS 0.3.31).
    """
    rows = max(1, _STEP_TILE // max(1, width))
    parts = -(-count // rows)
    return [slice(i * count // parts, (i + 1) * count // parts) for i in range(parts)]


def _assign(points: np.ndarray, norms: np.ndarray, selected: np.ndarray,
            tile: int = _TILE) -> tuple[np.ndarray, np.ndarray]:
    """Nearest medoid (N,) and the distance to it (N,), in blocks of about ``tile`` distances;
    medoids map to themselves."""
    where, distance = _nearest(points, norms, points[selected], norms[selected], tile=tile)
    nearest = selected[where]
    nearest[selected] = selected
    distance[selected] = 0.0
    return nearest, distance


def _nearest(points: np.ndarray, norms: np.ndarray, medoids: np.ndarray, medoid_norms: np.ndarray,
             rows: np.ndarray | None = None, tile: int = _TILE) -> tuple[np.ndarray, np.ndarray]:
    """Each point's nearest of ``medoids`` (M, D): its index there and the distance, (R,) each, for
    the points ``rows`` (all N when None), in blocks of about ``tile`` distances (a block of
    ``rows`` is the only copy of the points made)."""
    count = len(points) if rows is None else len(rows)
    where, distance = np.empty(count, dtype=np.int64), np.empty(count, dtype=np.float32)
    step = max(1, tile // len(medoids))
    for start in range(0, count, step):
        block = slice(start, start + step) if rows is None else rows[start : start + step]
        d = cdist(points[block], norms[block], medoids, medoid_norms)
        where[start : start + step] = d.argmin(axis=1)
        distance[start : start + step] = d[np.arange(len(d)), where[start : start + step]]
    return where, distance

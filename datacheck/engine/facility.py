"""Facility location by (lazy or stochastic) greedy selection, in numpy.

Selects ``budget`` medoids ``S`` of a point set maximising ``F(S) = sum_i max_{j in S} s_ij``
with ``s_ij = M - ||x_i - x_j||`` (``M`` bounds the distances, so ``s >= 0``) and
``s_ii = 0``: a point never represents itself, so a medoid is worth what it stands for
*other* points, and an isolated point is chosen last. ``F`` is a facility-location function
(monotone submodular), so greedy selection is within ``1 - 1/e`` of the optimum.

* Up to ``exact_max`` points: the ``N x N`` similarity matrix and lazy greedy (Minoux 1978):
  stale gains in a max-heap, re-evaluated only when they reach the top.
* Above: stochastic greedy (Mirzasoleiman et al., AAAI 2015, "Lazier than lazy greedy"):
  each step evaluates ``ceil(N / budget * ln(1 / epsilon))`` random candidates against all
  points, so memory is O(candidates x N), never N x N; within ``1 - 1/e - epsilon`` in
  expectation. Its time is still ``ln(1 / epsilon) N^2`` distances whatever the budget
  (a class of 32,000: 52 s; 190,000 did not finish in 10 minutes).
* Above ``part_max`` points: the points are dealt at random into parts of at most
  ``part_max`` and each part gets its share of the budget, selected and assigned within
  the part (the first round of GreeDi, Mirzasoleiman et al., NeurIPS 2013, "Distributed
  submodular maximization"): time linear in N. Each part is a random sample of the whole,
  so its medoids stand for its points about as well as medoids chosen from all of them.

numpy rather than torch: the greedy steps are many small vector operations, where torch's
per-operation thread start-up costs more than the work on a CPU (measured: minutes instead of
seconds for a 6,000-sample class on a busy 2-core machine).
"""

from __future__ import annotations

import heapq
import math

import numpy as np

_TILE = 1 << 24  # elements of one distance block in the final assignment (64 MB float32)

#: Points above which :func:`facility_location` selects in random parts. Measured on clustered
#: 10-class gradients at a budget of half, one core: 32,768 points undivided 19 s, in parts of
#: 16,384 11 s, of 8,192 7 s, with the points' mean distance to their nearest medoid 1.5 % and
#: 2.5 % above the undivided selection's (``benchmarks/coreset_scale.py``: 200-250 µs a point
#: from 16,384 to 262,144 points).
PART_MAX = 8192
METHOD = "regions"


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
        Largest N selected from as one set; above it, random parts of at most this size, each
        with its share of the budget (see the module's notes).
    epsilon : float, default 0.01
        Stochastic greedy's approximation slack.
    seed : int, default 0
        Random candidates of stochastic greedy (unused by the exact path).

    Returns
    -------
    selected : ndarray of shape (budget,), int64
        Medoid row numbers, in the order chosen.
    medoid : ndarray of shape (N,), int64
        Row number of each point's nearest medoid (a medoid's is itself); with parts, the
        nearest of its part's medoids (of all, when the budget is below the number of parts).
    distance : ndarray of shape (N,), float32
        Distance of each point to its medoid, divided by ``M`` (so in [0, 1]).
    """
    points = np.ascontiguousarray(x, dtype=np.float32)
    n = len(points)
    if not 1 <= budget <= n:
        raise ValueError(f"facility_location needs 1 <= budget <= N={n}, got {budget}")
    # Twice the largest distance from the mean bounds every pairwise distance.
    bound = float(2 * np.linalg.norm(points - points.mean(axis=0), axis=1).max()) or 1.0
    norms = (points * points).sum(axis=1)
    rng = np.random.default_rng(seed)
    if n > part_max and METHOD == "regions":
        selected, medoid, distance = _in_regions(points, norms, budget, bound, part_max, epsilon, rng)
    elif n > part_max:
        selected, medoid, distance = _in_parts(points, norms, budget, bound, exact_max, part_max, epsilon, rng)
    else:
        selected = _greedy(points, norms, budget, bound, exact_max, epsilon, rng)
        medoid, distance = _assign(points, norms, selected)
    return selected, medoid, (distance / bound).clip(0, 1)


def selection_method(n: int, exact_max: int = 4096, part_max: int = PART_MAX) -> str:
    """How :func:`facility_location` selects from ``n`` points: ``"lazy greedy"``,
    ``"stochastic greedy"``, or either ``"in P random parts"``."""
    if n > part_max:
        parts = -(-n // part_max)
        return f"{selection_method(-(-n // parts), exact_max, part_max)} in {parts} random parts"
    return "lazy greedy" if n <= exact_max else "stochastic greedy"


def _greedy(points: np.ndarray, norms: np.ndarray, budget: int, bound: float, exact_max: int, epsilon: float,
            rng: np.random.Generator) -> np.ndarray:
    """``budget`` medoids of ``points`` (N, D) by lazy greedy up to ``exact_max`` points, else
    stochastic greedy: their row numbers, in the order chosen."""
    if len(points) <= exact_max:
        return _lazy_greedy(points, norms, budget, bound)
    return _stochastic_greedy(points, norms, budget, bound, epsilon, rng)


def _in_parts(points: np.ndarray, norms: np.ndarray, budget: int, bound: float, exact_max: int, part_max: int,
              epsilon: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`facility_location`'s selection and assignment (undivided distances) in random
    parts of at most ``part_max`` points, each selecting its share of ``budget`` (largest
    remainders); a part's points are assigned among its medoids, or among all medoids when
    some part has none (a budget below the number of parts)."""
    n = len(points)
    parts = _deal(points, -(-n // part_max), rng)
    sizes = np.array([len(part) for part in parts])
    share = budget * sizes / n
    budgets = np.floor(share).astype(np.int64)
    budgets[np.argsort(budgets - share, kind="stable")[: budget - budgets.sum()]] += 1  # largest remainders first
    selected, medoid, distance = [], np.empty(n, np.int64), np.empty(n, np.float32)
    for part, part_budget in zip(parts, budgets):
        if part_budget == 0:
            continue
        part = np.sort(part)  # ties of the greedy by row number, as undivided
        chosen = part[_greedy(points[part], norms[part], int(part_budget), bound, exact_max, epsilon, rng)]
        selected.append(chosen)
        if budgets.min() > 0:
            nearest, distance[part] = _assign(points[part], norms[part], np.searchsorted(part, chosen))
            medoid[part] = part[nearest]
    selected = np.concatenate(selected)
    if budgets.min() == 0:
        medoid, distance = _assign(points, norms, selected)
    return selected, medoid, distance


def _in_regions(points: np.ndarray, norms: np.ndarray, budget: int, bound: float, part_max: int, epsilon: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stochastic greedy over the whole class with each candidate's gain counted within its
    region (:func:`_deal`): the budget goes where it gains most, as undivided; a step costs
    ``candidates x part_max`` distances, so time is linear in N."""
    n = len(points)
    regions = _deal(points, -(-n // part_max), rng)
    sizes = np.array([len(r) for r in regions])
    starts = np.concatenate([[0], np.cumsum(sizes)])
    order = np.concatenate([np.sort(r) for r in regions])  # region by region, rows ascending within
    p, q = points[order], norms[order]
    region_of = np.repeat(np.arange(len(regions)), sizes)
    per_step = min(n, math.ceil(n / budget * math.log(1 / epsilon)))
    covered = np.zeros(n, dtype=np.float32)
    pool, size = np.arange(n), n  # positions (in p) not selected: pool[:size]
    chosen: list[int] = []
    for _ in range(budget):
        draw = rng.choice(size, size=min(per_step, size), replace=False)
        candidates = pool[draw]
        best, best_gain, best_sim = -1, -1.0, None
        for r in np.unique(region_of[candidates]):
            a, b = starts[r], starts[r + 1]
            mine = np.flatnonzero(region_of[candidates] == r)
            sim = bound - cdist(p[candidates[mine]], q[candidates[mine]], p[a:b], q[a:b])
            sim[np.arange(len(mine)), candidates[mine] - a] = 0
            gains = np.maximum(sim - covered[a:b], 0).sum(axis=1, dtype=np.float64)
            i = int(np.argmax(gains))
            if gains[i] > best_gain:
                best, best_gain, best_sim = mine[i], float(gains[i]), sim[i]
        j = int(candidates[best])
        r = region_of[j]
        np.maximum(covered[starts[r] : starts[r + 1]], best_sim, out=covered[starts[r] : starts[r + 1]])
        chosen.append(j)
        size -= 1
        pool[draw[best]] = pool[size]
    chosen = np.asarray(chosen, dtype=np.int64)
    medoid, distance = np.empty(n, np.int64), np.empty(n, np.float32)
    in_region = region_of[chosen]
    orphans = []
    for r in range(len(regions)):
        a, b = starts[r], starts[r + 1]
        mine = chosen[in_region == r]
        if len(mine) == 0:
            orphans.append(np.arange(a, b))
            continue
        nearest, distance[order[a:b]] = _assign(p[a:b], q[a:b], mine - a)
        medoid[order[a:b]] = order[nearest + a]
    if orphans:  # a region without a medoid (a budget below the number of regions): the nearest of all
        rows = np.concatenate(orphans)
        d = np.empty(len(rows), np.float32); nn = np.empty(len(rows), np.int64)
        step = max(1, _TILE // len(chosen))
        for s0 in range(0, len(rows), step):
            blk = rows[s0 : s0 + step]
            dd = cdist(p[blk], q[blk], p[chosen], q[chosen])
            w = dd.argmin(axis=1)
            d[s0 : s0 + step], nn[s0 : s0 + step] = dd[np.arange(len(blk)), w], chosen[w]
        distance[order[rows]], medoid[order[rows]] = d, order[nn]
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
        order = np.argsort((points[rows] - centre) @ axis, kind="stable")
        todo += [(rows[order[n_left:]], k - k_left), (rows[order[:n_left]], k_left)]
    return parts


def cdist(a: np.ndarray, a_norms: np.ndarray, b: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) by one matrix product, float32."""
    sq = a_norms[:, None] + b_norms[None, :] - 2.0 * (a @ b.T)
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
    n = len(points)
    per_step = min(n, math.ceil(n / budget * math.log(1 / epsilon)))
    covered = np.zeros(n, dtype=np.float32)
    available = np.ones(n, dtype=bool)
    selected: list[int] = []
    for _ in range(budget):
        remaining = np.flatnonzero(available)
        candidates = rng.choice(remaining, size=min(per_step, len(remaining)), replace=False)
        sim = bound - cdist(points[candidates], norms[candidates], points, norms)  # (candidates, N)
        sim[np.arange(len(candidates)), candidates] = 0
        best = int(np.argmax(np.maximum(sim - covered, 0).sum(axis=1, dtype=np.float64)))
        selected.append(int(candidates[best]))
        available[candidates[best]] = False
        np.maximum(covered, sim[best], out=covered)
    return np.asarray(selected, dtype=np.int64)


def _assign(points: np.ndarray, norms: np.ndarray, selected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest medoid (N,) and the distance to it (N,), blockwise; medoids map to themselves."""
    n = len(points)
    medoids, medoid_norms = points[selected], norms[selected]
    nearest = np.empty(n, dtype=np.int64)
    distance = np.empty(n, dtype=np.float32)
    step = max(1, _TILE // len(selected))
    for start in range(0, n, step):
        d = cdist(points[start : start + step], norms[start : start + step], medoids, medoid_norms)
        where = d.argmin(axis=1)
        distance[start : start + step] = d[np.arange(len(d)), where]
        nearest[start : start + step] = selected[where]
    nearest[selected] = selected
    distance[selected] = 0.0
    return nearest, distance

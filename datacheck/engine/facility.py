"""Facility location by (lazy or stochastic) greedy selection, with torch on any device.

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
  expectation.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import torch

_TILE = 1 << 24  # elements of one distance block in the final assignment (64 MB float32)


def facility_location(x, budget: int, *, exact_max: int = 4096, epsilon: float = 0.01, seed: int = 0,
                      device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy facility location on the rows of ``x``.

    Parameters
    ----------
    x : array-like of shape (N, D), float
    budget : int
        Medoids to select, 1 <= budget <= N.
    exact_max : int, default 4096
        Largest N for the exact lazy greedy on the N x N matrix; above it, stochastic greedy.
    epsilon : float, default 0.01
        Stochastic greedy's approximation slack.
    seed : int, default 0
        Random candidates of stochastic greedy (unused by the exact path).
    device : str, default "cpu"

    Returns
    -------
    selected : ndarray of shape (budget,), int64
        Medoid row numbers, in the order chosen.
    medoid : ndarray of shape (N,), int64
        Row number of each point's nearest medoid (a medoid's is itself).
    distance : ndarray of shape (N,), float32
        Distance of each point to its medoid, divided by ``M`` (so in [0, 1]).
    """
    points = torch.as_tensor(x, device=device).to(torch.float32)
    n = len(points)
    if not 1 <= budget <= n:
        raise ValueError(f"facility_location needs 1 <= budget <= N={n}, got {budget}")
    with torch.inference_mode():
        # Twice the largest distance from the mean bounds every pairwise distance.
        bound = float(2 * (points - points.mean(dim=0)).norm(dim=1).max()) or 1.0
        if n <= exact_max:
            selected = _lazy_greedy(points, budget, bound)
        else:
            selected = _stochastic_greedy(points, budget, bound, epsilon, np.random.default_rng(seed))
        medoid, distance = _assign(points, selected)
    return selected, medoid, (distance / bound).clip(0, 1)


def _lazy_greedy(points: torch.Tensor, budget: int, bound: float) -> np.ndarray:
    sim = bound - torch.cdist(points, points)
    sim.fill_diagonal_(0)
    covered = torch.zeros(len(points), dtype=torch.float32, device=points.device)
    gains = sim.sum(dim=0).double().cpu().numpy()
    heap = [(-g, j) for j, g in enumerate(gains)]  # ties: the lower row number first
    heapq.heapify(heap)
    selected: list[int] = []
    while len(selected) < budget:
        _, j = heapq.heappop(heap)
        gain = float((sim[:, j] - covered).clamp_min(0).sum())
        if not heap or gain >= -heap[0][0] - 1e-9 * bound:
            selected.append(j)
            covered = torch.maximum(covered, sim[:, j])
        else:
            heapq.heappush(heap, (-gain, j))
    return np.asarray(selected, dtype=np.int64)


def _stochastic_greedy(points: torch.Tensor, budget: int, bound: float, epsilon: float,
                       rng: np.random.Generator) -> np.ndarray:
    n = len(points)
    per_step = min(n, math.ceil(n / budget * math.log(1 / epsilon)))
    covered = torch.zeros(n, dtype=torch.float32, device=points.device)
    available = np.ones(n, dtype=bool)
    selected: list[int] = []
    for _ in range(budget):
        remaining = np.flatnonzero(available)
        candidates = rng.choice(remaining, size=min(per_step, len(remaining)), replace=False)
        index = torch.as_tensor(candidates, device=points.device)
        sim = bound - torch.cdist(points[index], points)  # (candidates, N)
        sim[torch.arange(len(index), device=points.device), index] = 0
        best = int(torch.argmax((sim - covered).clamp_min(0).sum(dim=1)))
        selected.append(int(candidates[best]))
        available[candidates[best]] = False
        covered = torch.maximum(covered, sim[best])
    return np.asarray(selected, dtype=np.int64)


def _assign(points: torch.Tensor, selected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest medoid (N,) and the distance to it (N,), blockwise; medoids map to themselves."""
    n = len(points)
    medoids = points[torch.as_tensor(selected, device=points.device)]
    nearest = np.empty(n, dtype=np.int64)
    distance = np.empty(n, dtype=np.float32)
    step = max(1, _TILE // len(selected))
    for start in range(0, n, step):
        d = torch.cdist(points[start : start + step], medoids)
        low, where = d.min(dim=1)
        distance[start : start + step] = low.cpu().numpy()
        nearest[start : start + step] = selected[where.cpu().numpy()]
    nearest[selected] = selected
    distance[selected] = 0.0
    return nearest, distance

"""K-means (k-means++ seeding, Lloyd iterations) and PCA with torch, on any device.

Built for many small problems (one per class) and for single large ones:

* every initialisation of one problem runs in the same batch: the distances of a block of
  points to the ``n_init x k`` centres are one matrix product, so ``n_init`` costs little more
  than one run where the matrix product dominates;
* distances are computed for a block of points at a time, so memory is
  O(block x n_init x k) besides the data, never N x k x D;
* each run is seeded by *greedy* k-means++ (Arthur & Vassilvitskii 2007, with
  ``2 + log k`` candidates per step, as scikit-learn does) and refined by Lloyd iterations
  until the centres move less than ``tol`` x the data's mean per-feature variance (squared
  shift summed over centres), scikit-learn's stopping rule;
* large inputs are first clustered on a random subsample of ``warm_start`` points (all
  ``n_init`` runs); the centres of the run with the lowest subsample inertia then start the
  Lloyd iterations on all points: seeding and the early iterations happen on the subsample,
  where they are cheap, and full passes only polish one result (``warm_start=0`` turns this
  off, and every run is then iterated on all points).

Results are deterministic for a given seed: random numbers come from a CPU generator, so
the same seed picks the same points on every device (up to floating-point rounding in the
distances).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch

# Elements of one distance tile (block x centres): 2**18 float32 = 1 MB, which stays in a CPU's
# cache between the matrix product and the reduction that follows it (measured: larger and
# smaller tiles are slower on a CPU).
_TILE = 1 << 18


@dataclass
class KMeansResult:
    """The best of ``n_init`` K-means runs.

    Attributes
    ----------
    centers : ndarray of shape (k, D), float32
    labels : ndarray of shape (N,), int64
        Index of each point's nearest centre.
    inertia : float
        Sum of squared distances of the points to their nearest centre.
    n_iter : int
        Lloyd iterations on all points of the best run (after any warm start).
    """

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int


def kmeans(
    x,
    k: int,
    *,
    n_init: int = 1,
    max_iter: int = 300,
    tol: float = 1e-4,
    seed: int = 0,
    device: str = "cpu",
    warm_start: int = 10_000,
) -> KMeansResult:
    """Cluster the rows of ``x`` into ``k`` groups.

    Parameters
    ----------
    x : array-like of shape (N, D), float
        Points (numpy array or torch tensor); used as float32.
    k : int
        Number of clusters, 1 <= k <= N.
    n_init : int, default 1
        Independent k-means++ initialisations, run side by side; the run with the lowest
        inertia wins (scikit-learn's ``n_init="auto"`` is 1 for k-means++).
    max_iter : int, default 300
        Lloyd iterations at most (on the subsample and again on all points).
    tol : float, default 1e-4
        Stop when the squared centre shift, summed over centres, is at most ``tol`` times the
        mean per-feature variance of ``x``.
    seed : int, default 0
    device : str, default "cpu"
        torch device for the computation.
    warm_start : int, default 10000
        Seed and iterate on a random subsample of ``max(warm_start, 50 * k)`` points first
        when N is more than twice that (at least 50 points per cluster keep the subsample's
        solution close to the full one); 0 disables.

    Returns
    -------
    KMeansResult
    """
    points = torch.as_tensor(x, device=device).to(torch.float32)
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"kmeans needs a non-empty 2-D array, got shape {tuple(points.shape)}")
    n = len(points)
    if not 1 <= k <= n:
        raise ValueError(f"kmeans needs 1 <= k <= N={n}, got k={k}")
    generator = torch.Generator().manual_seed(int(seed))
    # sklearn's tolerance is relative to the data's scale; in float64 for large N.
    tol_abs = float(points.double().var(dim=0, unbiased=False).mean()) * tol
    sq_norms = (points * points).sum(dim=1)
    with torch.inference_mode(), _single_thread_on_cpu(points.device):
        size = max(warm_start, 50 * k)
        if warm_start and n > 2 * size:
            sample = torch.randperm(n, generator=generator)[:size].sort().values.to(points.device)
            sub, sub_norms = points[sample], sq_norms[sample]
            centers = _kmeans_plus_plus(sub, sub_norms, k, n_init, generator)
            centers, _ = _lloyd(sub, sub_norms, centers, max_iter, tol_abs)
            # The subsample's inertia estimates the full one: only the best run is polished.
            _, sub_dist = _assign(sub, sub_norms, centers)
            centers = centers[int(torch.argmin(sub_dist.double().sum(dim=0)))][None]
        else:
            centers = _kmeans_plus_plus(points, sq_norms, k, n_init, generator)
        centers, n_iter = _lloyd(points, sq_norms, centers, max_iter, tol_abs)
        labels, dist = _assign(points, sq_norms, centers)
        inertia = dist.double().sum(dim=0)  # (n_init,)
        best = int(torch.argmin(inertia))
    return KMeansResult(
        centers=centers[best].cpu().numpy(),
        labels=labels[:, best].cpu().numpy().astype(np.int64),
        inertia=float(inertia[best]),
        n_iter=int(n_iter[best]),
    )


@contextlib.contextmanager
def _single_thread_on_cpu(device: torch.device):
    """Run torch on one CPU thread for the duration (restored after).

    The iterations are many small tensor operations; torch starts its OpenMP threads for
    each, which costs more than it saves, and on a busy machine (more runnable threads than
    cores) the spinning threads stall each other. Measured on a 2-core machine under load,
    100,000 x 32 points, k=32: 0.6 s on one thread, 2 to 26 s on two.
    """
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


#: Most points whose K-means runs iterate side by side (:func:`_lloyd_together`).
_TOGETHER_MAX = 20_000


def _block(n_centers: int) -> int:
    return max(256, _TILE // max(1, n_centers))


def _sq_dist(xb: torch.Tensor, xb_norms: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Squared distances (b, R, k) of a block (b, D) to ``R`` sets of ``k`` centres (R, k, D)."""
    r, k, d = centers.shape
    flat = centers.reshape(r * k, d)
    dist = torch.addmm((flat * flat).sum(dim=1)[None, :] + xb_norms[:, None], xb, flat.T, alpha=-2.0)
    return dist.clamp_min_(0).view(len(xb), r, k)


def _assign(points, sq_norms, centers) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre (N, R) and its squared distance (N, R) for each of the R runs."""
    n = len(points)
    r, k, _ = centers.shape
    labels = torch.empty((n, r), dtype=torch.int64, device=points.device)
    dist = torch.empty((n, r), dtype=torch.float32, device=points.device)
    step = _block(r * k)
    for start in range(0, n, step):
        stop = min(start + step, n)
        d = _sq_dist(points[start:stop], sq_norms[start:stop], centers)
        dist[start:stop], labels[start:stop] = d.min(dim=2)
    return labels, dist


def _lloyd(points, sq_norms, centers, max_iter: int, tol_abs: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd iterations for each of R runs; returns centres (R, k, D) and iterations (R,).

    Up to :data:`_TOGETHER_MAX` points the runs iterate together (:func:`_lloyd_together`);
    above, one at a time with Hamerly's bounds (:func:`_lloyd_one`).
    """
    if len(points) <= _TOGETHER_MAX:
        return _lloyd_together(points, sq_norms, centers, max_iter, tol_abs)
    finals, iters = zip(*(_lloyd_one(points, sq_norms, c, max_iter, tol_abs) for c in centers))
    return torch.stack(finals), torch.tensor(iters, dtype=torch.int64)


def _lloyd_together(points, sq_norms, centers, max_iter: int, tol_abs: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain Lloyd iterations of R runs side by side: each step measures every point against
    the R x k centres in one matrix product and counts the clusters of all runs in one
    ``bincount`` (their float64 sums, as :func:`_cluster_sums` makes them, one ``index_add_`` a
    run, from one float64 copy of the points); a run that has converged keeps its centres
    while the others go on.

    On a few thousand points a step's work is a few microseconds, and the dozen torch calls
    of a step cost more: :func:`_lloyd_one`, run after run and with the bookkeeping of its
    bounds, spent 0.2 s per class of 1,000 points choosing k (2..8, 3 runs each; 25 of the
    38 s of a 100,000 x 512 array audit). The iterates are Lloyd's, as :func:`_lloyd_one`'s,
    up to rounding: the cluster sums are added up afresh each step rather than updated, so on
    10,000 points a run sometimes stops one step sooner or later (measured 1.2-1.6x faster
    there, 1.1x at 20,000).
    """
    runs, k, _ = centers.shape
    centers = centers.clone()
    wide = points.double()  # cluster sums in float64, as _cluster_sums
    offsets = (torch.arange(runs, device=points.device) * k)[None, :]  # (1, R): run r's clusters are r*k ...
    done = torch.zeros(runs, dtype=torch.bool, device=points.device)
    iters = torch.zeros(runs, dtype=torch.int64)
    for n_iter in range(1, max_iter + 1):
        labels, dist = _assign(points, sq_norms, centers)  # (N, R)
        sums = torch.zeros((runs, k, points.shape[1]), dtype=torch.float64, device=points.device)
        for r in range(runs):
            sums[r].index_add_(0, labels[:, r], wide)
        counts = torch.bincount((labels + offsets).reshape(-1), minlength=runs * k).view(runs, k)
        new = (sums / counts.clamp_min(1)[:, :, None]).float()
        empty = counts == 0
        for r in torch.nonzero(empty.any(dim=1) & ~done).flatten().tolist():
            # Empty clusters: move each onto a far point (scikit-learn's rule).
            new[r] = _relocate_empty(points, dist[:, r], new[r], empty[r])
        shift = ((new - centers) ** 2).sum(dim=(1, 2))  # (R,)
        moving = ~done
        centers[moving] = new[moving]
        iters[moving.cpu()] = n_iter
        done |= (shift <= tol_abs) & ~empty.any(dim=1)
        if bool(done.all()):
            break
    return centers, iters


def _lloyd_one(points, sq_norms, centers, max_iter: int, tol_abs: float) -> tuple[torch.Tensor, int]:
    """Lloyd iterations from ``centers`` (k, D), accelerated with Hamerly's bounds.

    Each point keeps an upper bound on the distance to its own centre and a lower bound on
    the distance to any other; after the centres move by ``delta`` the bounds loosen by
    ``delta`` and only points whose bounds overlap are measured again (Hamerly 2010). The
    iterates are those of plain Lloyd; the saving is that late iterations, where few
    points can change cluster, touch few points. Cluster sums are updated incrementally in
    float64 from the points that changed cluster.
    """
    k = len(centers)
    labels, upper, lower = _nearest_two(points, sq_norms, centers)
    sums, counts = _cluster_sums(points, labels, k)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        if bool((counts == 0).any()):
            # Empty clusters: move each onto a far point (scikit-learn's rule), then start the
            # bounds afresh from exact distances.
            new = _relocate_empty(points, upper * upper, (sums / counts.clamp_min(1)[:, None]).float(), counts == 0)
            labels, upper, lower = _nearest_two(points, sq_norms, new)
            sums, counts = _cluster_sums(points, labels, k)
            centers = new
            continue
        new = (sums / counts[:, None]).float()
        delta = (new - centers).norm(dim=1)
        centers = new
        if float((delta * delta).sum()) <= tol_abs:
            break
        upper += delta[labels]
        lower -= delta.max()
        if k > 1:
            between = torch.cdist(centers, centers)
            between.fill_diagonal_(float("inf"))
            bound = torch.maximum(between.min(dim=1).values[labels] / 2, lower)
        else:
            bound = torch.full_like(upper, float("inf"))
        # Measured: re-measuring these points against all centres (one matrix product) costs
        # less than Hamerly's intermediate step of first tightening the upper bound (gathers).
        todo = torch.nonzero(upper > bound).flatten()
        if len(todo) == 0:
            continue
        nearest, up, low = _nearest_two(points[todo], sq_norms[todo], centers)
        old = labels[todo]
        upper[todo], lower[todo], labels[todo] = up, low, nearest
        moved = torch.nonzero(nearest != old).flatten()
        if len(moved) == 0:
            continue
        moving = points[todo[moved]].double()
        sums.index_add_(0, old[moved], -moving)
        sums.index_add_(0, nearest[moved], moving)
        counts += torch.bincount(nearest[moved], minlength=k) - torch.bincount(old[moved], minlength=k)
    return centers, n_iter


def _nearest_two(points, sq_norms, centers) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest centre (N,), its distance (N,) and the distance to the second nearest (N,)."""
    n, k = len(points), len(centers)
    labels = torch.empty(n, dtype=torch.int64, device=points.device)
    first = torch.empty(n, dtype=torch.float32, device=points.device)
    second = torch.full((n,), float("inf"), dtype=torch.float32, device=points.device)
    step = _block(k)
    for start in range(0, n, step):
        stop = min(start + step, n)
        d = _sq_dist(points[start:stop], sq_norms[start:stop], centers[None]).view(stop - start, k)
        if k > 1:  # two min passes: much faster than topk(2) on a CPU
            low, where = d.min(dim=1)
            first[start:stop], labels[start:stop] = low, where
            second[start:stop] = d.scatter_(1, where[:, None], float("inf")).min(dim=1).values
        else:
            first[start:stop], labels[start:stop] = d[:, 0], 0
    return labels, first.sqrt_(), second.sqrt_()


def _cluster_sums(points, labels, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster coordinate sums (k, D) in float64 and sizes (k,), blockwise."""
    sums = torch.zeros((k, points.shape[1]), dtype=torch.float64, device=points.device)
    step = 1 << 16
    for start in range(0, len(points), step):
        sums.index_add_(0, labels[start : start + step], points[start : start + step].double())
    return sums, torch.bincount(labels, minlength=k)


def _relocate_empty(points, dist, centers, empty) -> torch.Tensor:
    """Move each empty cluster's centre (``empty``: (k,) bool) onto one of the points
    farthest from their own centre (``dist``: (N,)), a different point per empty cluster."""
    centers = centers.clone()
    slots = torch.nonzero(empty).flatten()
    far = torch.topk(dist, min(len(slots), len(points))).indices
    centers[slots[: len(far)]] = points[far]
    return centers


def _kmeans_plus_plus(points, sq_norms, k: int, n_init: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding of ``n_init`` runs at once: centres of shape (n_init, k, D).

    At each step every run draws ``2 + floor(log k)`` candidates with probability proportional
    to their squared distance to the nearest centre so far and keeps the candidate that lowers
    the total most (scikit-learn's ``_kmeans_plusplus``).
    """
    n, d = points.shape
    trials = 2 + int(math.log(k)) if k > 1 else 1
    device = points.device
    first = torch.randint(n, (n_init,), generator=generator).to(device)
    centers = torch.empty((n_init, k, d), dtype=torch.float32, device=device)
    centers[:, 0] = points[first]
    closest = _sq_dist_all(points, sq_norms, centers[:, :1]).squeeze(2)  # (N, n_init)
    for c in range(1, k):
        weights = torch.cumsum(closest.double(), dim=0)  # (N, n_init)
        total = weights[-1]
        draws = torch.rand((trials, n_init), generator=generator, dtype=torch.float64).to(device) * total
        picks = torch.searchsorted(weights.T.contiguous(), draws.T.contiguous()).clamp_max_(n - 1)  # (n_init, trials)
        candidates = points[picks]  # (n_init, trials, D)
        cand_dist = _sq_dist_all(points, sq_norms, candidates)  # (N, n_init, trials)
        pots = torch.minimum(cand_dist, closest[:, :, None]).double().sum(dim=0)  # (n_init, trials)
        best = torch.argmin(pots, dim=1)
        runs = torch.arange(n_init, device=device)
        centers[:, c] = candidates[runs, best]
        closest = torch.minimum(closest, cand_dist[:, runs, best])
    return centers


def _sq_dist_all(points, sq_norms, centers) -> torch.Tensor:
    """Squared distances (N, R, m) of all points to R sets of m centres, computed blockwise."""
    n = len(points)
    r, m, _ = centers.shape
    out = torch.empty((n, r, m), dtype=torch.float32, device=points.device)
    step = _block(r * m)
    for start in range(0, n, step):
        stop = min(start + step, n)
        out[start:stop] = _sq_dist(points[start:stop], sq_norms[start:stop], centers)
    return out


# --------------------------------------------------------------------------- PCA


def pca(x, n_components: int, device: str = "cpu", fit=None) -> np.ndarray:
    """Project the rows of ``x`` on the top principal components of (some of) them.

    The components are the eigenvectors of the covariance matrix (computed in float64, one
    D x D matrix, so memory does not grow with N beyond the data; the thin SVD of the centred
    data when N <= D), with the sign fixed so that each component's largest-magnitude loading
    is positive (scikit-learn's ``svd_flip`` convention): the projection is deterministic.

    Parameters
    ----------
    x : array-like of shape (N, D), float
    n_components : int
        Capped at ``min(M - 1, D)`` (at least 1), M the number of fitting rows.
    device : str, default "cpu"
    fit : ndarray of shape (N,), bool, optional
        Rows that define the mean and the components (default: all); every row is projected.

    Returns
    -------
    ndarray of shape (N, n_components'), float32
        Rows centred on the fitting rows' mean, in the component basis, components by
        decreasing variance.
    """
    data = torch.as_tensor(x, device=device).to(torch.float64)
    basis = data if fit is None else data[torch.as_tensor(np.asarray(fit, dtype=bool), device=data.device)]
    m_rows, d = basis.shape
    m = max(1, min(n_components, m_rows - 1, d))
    # One thread on the CPU, as for K-means: a class's PCA is small, and OpenMP threads on a
    # busy 2-core machine made each SVD 40x slower (0.43 s instead of 0.01 s).
    with torch.inference_mode(), _single_thread_on_cpu(data.device):
        if m_rows < 2:
            return np.zeros((len(data), m), dtype=np.float32)
        mean = basis.mean(dim=0)
        centred = basis - mean
        if m_rows <= d:  # few points in many dimensions: the thin SVD is the cheaper route
            components = torch.linalg.svd(centred, full_matrices=False).Vh[:m].T
        else:
            _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
            components = vectors[:, -m:].flip(1)  # (D, m), descending
        biggest = components.abs().argmax(dim=0)
        signs = torch.sign(components[biggest, torch.arange(m, device=components.device)])
        components = components * torch.where(signs == 0, torch.ones_like(signs), signs)
        return ((data - mean) @ components).to(torch.float32).cpu().numpy()

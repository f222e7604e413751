"""Blocked exact k-nearest neighbours by cosine similarity, on the device.

The points are cut into blocks of rows and similarities are computed one block pair at a
time, so memory stays O(block x block) and no N x N matrix ever exists. Similarity is
symmetric, so only the pairs (i, j) with j >= i are computed: each tile updates the running
neighbours of block i's rows (along its rows) and of block j's rows (along its columns).
That halves the matrix products, which dominate the cost.
"""

from __future__ import annotations

import numpy as np
import torch

# Similarity tile elements: 2**24 float32 = 64 MB, i.e. 4096 x 4096 blocks (large enough for
# an efficient matrix product, small enough to stay in memory next to the running top-k).
_TILE = 1 << 24


def knn_cosine(
    x: np.ndarray, k: int, device: str = "cpu", exclude_self: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``x`` to each row, by cosine distance.

    Parameters
    ----------
    x : ndarray of shape (N, D), float
    k : int
    device : str
        torch device for the matrix products.
    exclude_self : bool, default True
        Skip each row itself (exact duplicates of it still count).

    Returns
    -------
    distances : ndarray of shape (N, k), float32
        ``1 - cosine similarity``, ascending.
    indices : ndarray of shape (N, k), int64
    """
    n = len(x)
    k = min(k, n - 1 if exclude_self else n)
    if k <= 0:
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    x = np.ascontiguousarray(x, dtype=np.float32)
    # torch shares only writable memory (a read-only array, e.g. from Arrow, would warn): copy those
    points = torch.as_tensor(x if x.flags.writeable else x.copy(), device=device)
    points = torch.nn.functional.normalize(points, dim=1)
    block = max(1, int(_TILE**0.5))
    starts = range(0, n, block)
    # Running best similarities and their indices per row; -inf marks "none yet".
    best = torch.full((n, k), -float("inf"), device=device)
    where = torch.zeros((n, k), dtype=torch.int64, device=device)
    with torch.inference_mode():
        for i in starts:
            rows = slice(i, min(i + block, n))
            for j in starts[i // block :]:
                cols = slice(j, min(j + block, n))
                sims = points[rows] @ points[cols].T  # (block_i, block_j)
                if i == j and exclude_self:
                    sims.fill_diagonal_(-float("inf"))
                _merge(best, where, rows, *torch.topk(sims, min(k, sims.shape[1]), dim=1), j)
                if i != j:  # the same tile, read along its columns, serves block j's rows
                    _merge(best, where, cols, *_column_topk(sims, min(k, sims.shape[0])), i)
    distances = (1.0 - best).clamp_min(0).cpu().numpy()
    return distances, where.cpu().numpy()


def _merge(best: torch.Tensor, where: torch.Tensor, rows: slice, top: torch.Tensor, idx: torch.Tensor,
           offset: int) -> None:
    """Fold a tile's top similarities (R, k') and their column indices (points ``offset + idx``)
    into the running top-k of ``rows``, in place."""
    k = best.shape[1]
    candidates = torch.cat([best[rows], top], dim=1)
    indices = torch.cat([where[rows], idx + offset], dim=1)
    # A stable sort: among equal similarities the candidate found first stays first.
    order = torch.sort(candidates, dim=1, descending=True, stable=True).indices[:, :k]
    best[rows] = torch.gather(candidates, 1, order)
    where[rows] = torch.gather(indices, 1, order)


def knn_vote_probs(queries: np.ndarray, points: np.ndarray, labels: np.ndarray, num_classes: int, k: int,
                   device: str = "cpu") -> np.ndarray:
    """Class probabilities from the labels of each query's ``k`` nearest points (cosine).

    A k-nearest-neighbour classifier over a model's embeddings: the share of the neighbours'
    votes per class, with an additive prior of 0.1 vote per class so that no class gets
    probability 0.

    Parameters
    ----------
    queries : ndarray of shape (Q, D), float
    points : ndarray of shape (M, D), float
    labels : ndarray of shape (M,), int in [0, num_classes)
    num_classes : int
    k : int
        Neighbours per query; at most M.

    Returns
    -------
    ndarray of shape (Q, num_classes), float32
        Rows sum to 1.
    """
    k = min(k, len(points))
    q = torch.nn.functional.normalize(torch.as_tensor(queries, dtype=torch.float32, device=device), dim=1)
    p = torch.nn.functional.normalize(torch.as_tensor(points, dtype=torch.float32, device=device), dim=1)
    target = torch.as_tensor(labels, dtype=torch.int64, device=device)
    votes = torch.zeros((len(q), num_classes), dtype=torch.float32, device=device)
    block = max(1, _TILE // max(len(p), 1))
    with torch.inference_mode():
        for start in range(0, len(q), block):
            nearest = torch.topk(q[start : start + block] @ p.T, k, dim=1).indices  # (block, k)
            votes[start : start + block].scatter_add_(1, target[nearest], torch.ones_like(nearest, dtype=torch.float32))
    return ((votes + 0.1) / (k + 0.1 * num_classes)).cpu().numpy()


#: Rows per group in :func:`_column_topk`.
_GROUP = 64


def _column_topk(sims: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(sims, k, dim=0)`` of a row-major tile (R, M), transposed to (M, k); exact.

    A top-k across the rows of a row-major tile costs three times one along them. Instead:
    the top k of a column lie in the k groups of ``_GROUP`` consecutive rows with the largest
    maxima (every entry of any other group is below k larger ones), and group maxima reduce
    along the memory layout, so only k x ``_GROUP`` candidates per column are ranked.
    """
    groups = sims.shape[0] // _GROUP
    if groups <= 2 * k:
        top, idx = torch.topk(sims, k, dim=0)
        return top.T, idx.T
    full = groups * _GROUP
    maxima = sims[:full].unflatten(0, (groups, _GROUP)).amax(dim=1)  # (groups, M)
    chosen = torch.topk(maxima, k, dim=0).indices  # (k, M)
    offsets = torch.arange(_GROUP, device=sims.device)[:, None]
    index = (chosen.unsqueeze(1) * _GROUP + offsets).flatten(0, 1)  # (k * _GROUP, M)
    if full < sims.shape[0]:  # the last, partial group is always a candidate
        tail = torch.arange(full, sims.shape[0], device=sims.device)[:, None].expand(-1, sims.shape[1])
        index = torch.cat([index, tail])
    top, pos = torch.topk(torch.gather(sims, 0, index), k, dim=0)
    return top.T, torch.gather(index, 0, pos).T

"""Blocked exact k-nearest neighbours by cosine similarity, on the device.

Queries are processed in blocks against all points with one matrix product each, so
memory stays O(block x N) and no N x N matrix ever exists.
"""

from __future__ import annotations

import numpy as np
import torch

# Similarity tile elements per block: 2**26 float32 = 256 MB (larger blocks keep the matrix
# product efficient; it dominates the cost).
_TILE = 1 << 26


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
    points = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=device)
    points = torch.nn.functional.normalize(points, dim=1)
    block = max(1, _TILE // n)
    dists = np.empty((n, k), dtype=np.float32)
    idx = np.empty((n, k), dtype=np.int64)
    with torch.inference_mode():
        for start in range(0, n, block):
            stop = min(start + block, n)
            sims = points[start:stop] @ points.T  # (block, N)
            if exclude_self:
                rows = torch.arange(stop - start, device=device)
                sims[rows, rows + start] = -float("inf")
            top, where = torch.topk(sims, k, dim=1)
            dists[start:stop] = (1.0 - top).clamp_min(0).cpu().numpy()
            idx[start:stop] = where.cpu().numpy()
    return dists, idx

"""The audit's one kNN graph: the nearest neighbours of every embedded sample, built once.

Every check that needs neighbours in embedding space (outliers, non_iid, ...) reads this
graph instead of searching again. It is built with as many neighbours as the most demanding
detector of the audit asks for; a detector that wants fewer reads the first columns (exact
search ranks neighbours by distance, so the first ``k`` columns of a larger graph are the
``k``-graph), which keeps each check's findings independent of which others run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KnnGraph:
    """Nearest neighbours by cosine distance over the embedded samples.

    Attributes
    ----------
    rows : ndarray of shape (M,), int64
        Manifest rows of the embedded samples (finite embedding), ascending.
    indices : ndarray of shape (M, k), int64
        Neighbours of each of them as positions in ``rows`` (so ``rows[indices]`` are
        manifest rows), nearest first; never the sample itself.
    distances : ndarray of shape (M, k), float32
        ``1 - cosine similarity``, ascending along each row.
    method : str
        How it was searched (``"exact"``).
    """

    rows: np.ndarray
    indices: np.ndarray
    distances: np.ndarray
    method: str = "exact"

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def first(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)`` of the ``k`` nearest (k <= :attr:`k`), each (M, k)."""
        if k > self.k:
            raise ValueError(f"the graph has {self.k} neighbours per sample, {k} were asked for")
        return self.distances[:, :k], self.indices[:, :k]


def build_knn_graph(embeddings: np.ndarray | None, k: int, device: str = "cpu") -> KnnGraph:
    """Exact blocked kNN (:func:`datacheck.engine.knn.knn_cosine`) over the finite rows of ``embeddings``.

    Parameters
    ----------
    embeddings : ndarray of shape (N, D) or None
        Rows with a NaN are left out (not embedded: unreadable or unlabeled).
    k : int
        Neighbours per sample; fewer when there are not ``k + 1`` embedded samples.
    """
    if embeddings is None:
        empty = np.zeros(0, np.int64)
        return KnnGraph(empty, np.zeros((0, 0), np.int64), np.zeros((0, 0), np.float32))
    rows = np.flatnonzero(np.isfinite(embeddings).all(axis=1))
    if len(rows) < 2:
        return KnnGraph(rows, np.zeros((len(rows), 0), np.int64), np.zeros((len(rows), 0), np.float32))
    from ..engine.knn import knn_cosine  # torch: only once a graph is needed

    distances, indices = knn_cosine(embeddings[rows], k, device=device)
    return KnnGraph(rows, indices, distances)

"""Run per-batch functions over a manifest's files in torch DataLoader workers."""

from __future__ import annotations

import os
from typing import Callable

import pandas as pd

from .image_stats import STAT_COLUMNS, analyze_batch

ProgressCallback = Callable[[int, int], None]


class _PathBatches:
    """A map-style dataset whose items are whole batches of paths (torch's ``batch_size=None``)."""

    def __init__(self, paths: list[str], batch_size: int, fn: Callable[[dict], dict]):
        self.paths = paths
        self.batch_size = batch_size
        self.fn = fn

    def __len__(self) -> int:
        return (len(self.paths) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, i: int) -> dict:
        return self.fn({"path": self.paths[i * self.batch_size : (i + 1) * self.batch_size]})


def default_workers() -> int:
    """Worker processes for decoding: one per CPU this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def map_batches(
    paths: list[str],
    fn: Callable[[dict], dict],
    workers: int,
    batch_size: int = 32,
    progress: ProgressCallback | None = None,
) -> dict:
    """Apply ``fn`` to batches of ``paths`` in ``workers`` processes, keeping row order.

    Parameters
    ----------
    paths : list of str, length N
    fn : callable
        Pure batch function, ``{"path": list} -> dict of lists``.
    workers : int
        DataLoader worker processes; 0 runs in this process.
    progress : callable, optional
        ``progress(done, total)`` after each batch.

    Returns
    -------
    dict of str to list
        Each list has length N.
    """
    from torch.utils.data import DataLoader  # torch is heavy: only imported when images are read

    batches = _PathBatches(paths, batch_size, fn)
    workers = min(workers, len(batches))
    loader = DataLoader(
        batches,
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    out: dict[str, list] = {}
    done = 0
    for result in loader:
        for key, values in result.items():
            out.setdefault(key, []).extend(values)
        done += len(next(iter(result.values()))) if result else 0
        if progress:
            progress(done, len(paths))
    return out


def compute_image_stats(
    paths: list[str], workers: int, batch_size: int = 32, progress: ProgressCallback | None = None
) -> pd.DataFrame:
    """Decode every image once and return one row of :data:`STAT_COLUMNS` per path."""
    stats = map_batches(paths, analyze_batch, workers, batch_size, progress)
    return pd.DataFrame(stats, columns=STAT_COLUMNS)

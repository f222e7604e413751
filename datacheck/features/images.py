"""Image features: per-image statistics and decoded pixels, from the files of a manifest.

Both come from the pure batch function :func:`datacheck.engine.image_stats.analyze_batch`
(statistics) and the loader's decode-and-resize (pixels), run over the files by the local
engine's worker processes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..engine.image_stats import STATS_VERSION
from ..manifest import Manifest
from ..runs import write_parquet

#: Where a run keeps the statistics of the images it audited (reused by a rerun of the same dataset).
IMAGE_STATS_ARTIFACT = "image_stats.parquet"


def image_stats(manifest: Manifest, workers: int, batch_size: int, *, artifacts: Path | None = None,
                progress=None, timings: dict | None = None) -> pd.DataFrame:
    """Per-image statistics (one row per manifest row, :data:`~datacheck.engine.image_stats.STAT_COLUMNS`).

    Parameters
    ----------
    artifacts : path-like, optional
        A run's artifacts folder: statistics saved there for this very dataset (same manifest
        fingerprint and statistics version) are read back instead of decoding again, and
        new ones are saved there.
    """
    from ..engine.loader import compute_image_stats

    t0 = time.perf_counter()
    timings = timings if timings is not None else {}
    cached = artifacts / IMAGE_STATS_ARTIFACT if artifacts is not None else None
    key = f"{manifest.fingerprint}|{STATS_VERSION}".encode()
    table = None
    if cached is not None:
        try:
            table = pq.read_table(cached)
        except (OSError, pa.ArrowException):  # not there yet, or damaged: computed again
            table = None
    if table is not None and (table.schema.metadata or {}).get(b"datacheck.manifest_fingerprint") == key:
        timings["image_stats (cached)"] = round(time.perf_counter() - t0, 3)
        return table.to_pandas()
    stats = compute_image_stats(
        manifest.abspaths(), workers=workers, batch_size=batch_size,
        progress=(lambda done, total: progress("decode images", done, total)) if progress else None,
    )
    if cached is not None:
        table = pa.Table.from_pandas(stats, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"datacheck.manifest_fingerprint": key})
        write_parquet(cached, table)
    timings["image_stats"] = round(time.perf_counter() - t0, 3)
    return stats


def pixels(manifest: Manifest, side: int, workers: int, cache_dir, progress=None) -> tuple:
    """Decoded pixels for the models (:func:`datacheck.engine.loader.load_pixels`), decoded once
    for every model that trains on them."""
    from ..engine.loader import load_pixels

    return load_pixels(manifest.abspaths(), side, workers, cache_dir,
                       progress=(lambda done, total: progress("decode for model", done, total)) if progress else None)

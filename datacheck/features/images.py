"""Image features: per-image statistics and decoded pixels, from the files of a manifest.

Both come from the pure batch function :func:`datacheck.engine.image_stats.analyze_batch`
(statistics) and the loader's decode-and-resize (pixels), run over the files by the local
engine's worker processes.
"""

from __future__ import annotations

import hashlib
import shutil
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
        new ones are saved there. While they are computed, every :data:`CHECKPOINT_ROWS`
        rows are saved as a part, so an interrupted audit resumes where it stopped.
    """
    t0 = time.perf_counter()
    timings = timings if timings is not None else {}
    cached = artifacts / IMAGE_STATS_ARTIFACT if artifacts is not None else None
    key = f"{manifest.fingerprint}|{STATS_VERSION}".encode()
    table = _read_stats(cached, key) if cached is not None else None
    if table is not None:
        timings["image_stats (cached)"] = round(time.perf_counter() - t0, 3)
        return table.to_pandas()
    stats = _compute_in_parts(manifest.abspaths(), workers, batch_size, progress,
                              parts=artifacts / _PARTS / hashlib.sha256(key).hexdigest()[:16] if artifacts else None)
    if cached is not None:
        table = pa.Table.from_pandas(stats, preserve_index=False)
        write_parquet(cached, table.replace_schema_metadata({**(table.schema.metadata or {}), _KEY: key}))
        shutil.rmtree(artifacts / _PARTS, ignore_errors=True)
    timings["image_stats"] = round(time.perf_counter() - t0, 3)
    return stats


#: Rows per saved part of the statistics while they are computed (a few minutes of decoding).
CHECKPOINT_ROWS = 50_000
_PARTS = "image_stats.parts"
_KEY = b"datacheck.manifest_fingerprint"


def _read_stats(path: Path, key: bytes) -> pa.Table | None:
    """Statistics saved at ``path`` for this dataset (``key``), or None (absent, damaged or another dataset's)."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):
        return None
    return table if (table.schema.metadata or {}).get(_KEY) == key else None


def _compute_in_parts(paths: list[str], workers, batch_size: int, progress, parts: Path | None) -> pd.DataFrame:
    """:func:`~datacheck.engine.loader.compute_image_stats` of ``paths``, :data:`CHECKPOINT_ROWS`
    at a time; each part is saved under ``parts`` (when given) and read back by a rerun."""
    from ..engine.loader import compute_image_stats

    if parts is None:
        return compute_image_stats(paths, workers=workers, batch_size=batch_size,
                                   progress=(lambda done, total: progress("decode images", done, total)) if progress else None)
    frames = []
    for start in range(0, max(len(paths), 1), CHECKPOINT_ROWS):
        part = parts / f"rows-{start:012d}.parquet"
        rows = min(CHECKPOINT_ROWS, len(paths) - start)
        try:
            frame = pq.read_table(part).to_pandas()  # saved by an interrupted run (written atomically)
            if len(frame) != rows:
                raise ValueError(f"{part} has {len(frame)} rows, not {rows}")  # parts of another size
        except (OSError, ValueError, pa.ArrowException):
            report = (lambda done, total, start=start: progress("decode images", start + done, len(paths))) if progress else None
            frame = compute_image_stats(paths[start : start + CHECKPOINT_ROWS], workers=workers, batch_size=batch_size,
                                        progress=report)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            write_parquet(part, table)
            frame = table.to_pandas()  # as a resumed run reads it back: the same columns either way
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def pixels(manifest: Manifest, side: int, workers: int, cache_dir, progress=None) -> tuple:
    """Decoded pixels for the models (:func:`datacheck.engine.loader.load_pixels`), decoded once
    for every model that trains on them."""
    from ..engine.loader import load_pixels

    return load_pixels(manifest.abspaths(), side, workers, cache_dir,
                       progress=(lambda done, total: progress("decode for model", done, total)) if progress else None)

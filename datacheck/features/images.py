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

from ..engine.image_stats import STAT_COLUMNS, STATS_VERSION
from ..manifest import Manifest
from ..runs import write_parquet

#: Where a run keeps the statistics of the images it audited (reused by a rerun of the same
#: dataset): a folder of Parquet parts of :data:`CHECKPOINT_ROWS` rows, each saved as soon as it
#: is computed, so the parts that make an interrupted audit resumable are also the finished
#: artifact (written once, never gathered into one more file).
IMAGE_STATS_ARTIFACT = "image_stats"

#: Rows per saved part of the statistics (a few minutes of decoding).
CHECKPOINT_ROWS = 50_000
_KEY = b"datacheck.manifest_fingerprint"
#: Thumbnails (12 KB of pixels each) do not compress: stored plainly, without a dictionary
#: tried first, a part reads back at the speed of a copy instead of through a decompressor.
_STORAGE = {"compression": {name: "none" if name == "thumbnail" else "snappy" for name in STAT_COLUMNS},
            "use_dictionary": [name for name in STAT_COLUMNS if name not in ("thumbnail", "pixel_hash")]}


def image_stats(manifest: Manifest, workers: int, batch_size: int, *, artifacts: Path | None = None,
                progress=None, timings: dict | None = None) -> pd.DataFrame:
    """Per-image statistics (one row per manifest row, :data:`~datacheck.engine.image_stats.STAT_COLUMNS`).

    Parameters
    ----------
    artifacts : path-like, optional
        A run's artifacts folder. Parts saved there for this very dataset (same manifest
        fingerprint and statistics version, :data:`IMAGE_STATS_ARTIFACT`) are read back
        instead of decoding again; a missing, damaged or other dataset's part is computed
        and saved. A rerun after an interrupted audit thus decodes only what is missing.
    """
    t0 = time.perf_counter()
    timings = timings if timings is not None else {}
    key = f"{manifest.fingerprint}|{STATS_VERSION}".encode()
    folder = artifacts / IMAGE_STATS_ARTIFACT if artifacts is not None else None
    stats, decoded = _compute_in_parts(manifest.abspaths(), workers, batch_size, progress, folder, key)
    timings["image_stats" if decoded else "image_stats (cached)"] = round(time.perf_counter() - t0, 3)
    return stats


def _compute_in_parts(paths: list[str], workers, batch_size: int, progress, folder: Path | None,
                      key: bytes) -> tuple[pd.DataFrame, bool]:
    """:func:`~datacheck.engine.loader.compute_image_stats` of ``paths``, :data:`CHECKPOINT_ROWS`
    at a time; each part is read from ``folder`` when saved there for ``key``, else computed
    and saved there (when ``folder`` is given). Returns the statistics and whether any part
    was decoded."""
    from ..engine.loader import compute_image_stats

    if folder is None:
        return compute_image_stats(paths, workers=workers, batch_size=batch_size,
                                   progress=(lambda done, total: progress("decode images", done, total)) if progress else None), True
    names, frames, decoded = [], [], False
    for start in range(0, max(len(paths), 1), CHECKPOINT_ROWS):
        part = folder / f"rows-{start:012d}.parquet"
        names.append(part.name)
        table = _read_part(part, key, rows=min(CHECKPOINT_ROWS, len(paths) - start))
        if table is None:
            report = (lambda done, total, start=start: progress("decode images", start + done, len(paths))) if progress else None
            frame = compute_image_stats(paths[start : start + CHECKPOINT_ROWS], workers=workers, batch_size=batch_size,
                                        progress=report)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), _KEY: key})
            write_parquet(part, table, **_STORAGE)
            decoded = True
        frames.append(table.to_pandas())  # as a rerun reads it back: the same columns either way
    for stale in folder.iterdir():  # parts of a larger, earlier version of the dataset
        if stale.name not in names:
            stale.unlink(missing_ok=True)
    return pd.concat(frames, ignore_index=True), decoded


def _read_part(path: Path, key: bytes, rows: int) -> pa.Table | None:
    """The part saved at ``path`` for this dataset (``key``) with ``rows`` rows, or None
    (absent, damaged, another dataset's or another part size's)."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):
        return None
    return table if (table.schema.metadata or {}).get(_KEY) == key and table.num_rows == rows else None


def pixels(manifest: Manifest, side: int, workers: int, cache_dir, progress=None) -> tuple:
    """Decoded pixels for the models (:func:`datacheck.engine.loader.load_pixels`), decoded once
    for every model that trains on them."""
    from ..engine.loader import load_pixels

    return load_pixels(manifest.abspaths(), side, workers, cache_dir,
                       progress=(lambda done, total: progress("decode for model", done, total)) if progress else None)

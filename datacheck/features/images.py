"""Image features: per-image statistics, thumbnails and their descriptors, and decoded pixels,
from the files of a manifest.

Both come from the pure batch function :func:`datacheck.engine.image_stats.analyze_batch`
(statistics) and the loader's decode-and-resize (pixels), run over the files by the local
engine's worker processes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..engine.image_stats import CHECKPOINT_ROWS, STAT_COLUMNS, STATS_VERSION, THUMB_SIDE
from ..engine.memory import release_rows, temporary_map
from ..engine.similarity import descriptor_size
from ..manifest import Manifest
from ..runs import write_parquet

#: Where a run keeps the statistics of the images it audited (reused by a rerun of the same
#: dataset): a folder of Parquet parts of :data:`CHECKPOINT_ROWS` rows, each saved as soon as it
#: is computed, so the parts that make an interrupted audit resumable are also the finished
#: artifact (written once, never gathered into one more file).
IMAGE_STATS_ARTIFACT = "image_stats"

#: Values copied at a time from a part into the audit's thumbnails or descriptors (50 MB of thumbnails).
_THUMBNAIL_SLICE = 4096
#: The columns of fixed-size binary values kept out of the statistics frame, in arrays: each
#: column's feature name, the shape of one row's array and its type.
ARRAY_COLUMNS = {
    "thumbnail": ("thumbnails", (THUMB_SIDE, THUMB_SIDE, 3), np.uint8),
    "descriptor": ("thumbnail_descriptors", (descriptor_size(THUMB_SIDE),), np.float32),
    "quarter": ("thumbnail_quarters", (THUMB_SIDE // 4, THUMB_SIDE // 4, 3), np.uint8),
}
_KEY = b"datacheck.manifest_fingerprint"
#: Thumbnails (12 KB of pixels each), their descriptors (480 bytes of float32) and quarters: LZ4,
#: without a dictionary tried first. A colour picture's thumbnail hardly compresses (sample_data:
#: 13.3 -> 13.1 KB a row) and LZ4 gives up on it at about the speed of a copy; a scan's or a
#: document's (grey, on white) shrinks 7x (roman's 2,880: 37 -> 5 MB), and both read back as
#: fast as stored plainly (a part of roman in 0.014 s either way).
_STORAGE = {"compression": {name: "lz4" if name in ARRAY_COLUMNS else "snappy" for name in STAT_COLUMNS},
            "use_dictionary": [name for name in STAT_COLUMNS if name not in (*ARRAY_COLUMNS, "pixel_hash")]}


def image_stats(manifest: Manifest, workers: int, batch_size: int, *, artifacts: Path | None = None,
                progress=None, timings: dict | None = None) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per-image statistics, thumbnails, and the thumbnails' near-duplicate descriptors and quarters.

    Parameters
    ----------
    artifacts : path-like, optional
        A run's artifacts folder. Parts saved there for this very dataset (same manifest
        fingerprint and statistics version, :data:`IMAGE_STATS_ARTIFACT`) are read back
        instead of decoding again; a missing, damaged or other dataset's part is computed
        and saved. A rerun after an interrupted audit thus decodes only what is missing.

    Returns
    -------
    stats : pandas.DataFrame
        One row per manifest row: :data:`~datacheck.engine.image_stats.STAT_COLUMNS` but those of
        :data:`ARRAY_COLUMNS` (a few hundred bytes per image).
    arrays : dict of str to ndarray
        By feature name (:data:`ARRAY_COLUMNS`), row-aligned with ``stats``, zeros where
        unreadable: ``thumbnails`` (N, THUMB_SIDE, THUMB_SIDE, 3) uint8,
        ``thumbnail_descriptors`` (N, D) float32 (:func:`~datacheck.engine.similarity.spectral_descriptors`)
        and ``thumbnail_quarters`` (N, THUMB_SIDE / 4, THUMB_SIDE / 4, 3) uint8. With
        ``artifacts``, each is a memory map of a nameless temporary file in that folder (for
        the thumbnails 12 KB per image on disk, read through the page cache, gone when the
        audit ends), so a folder of millions of images does not hold them in memory.
    """
    t0 = time.perf_counter()
    timings = timings if timings is not None else {}
    key = f"{manifest.fingerprint}|{STATS_VERSION}".encode()
    folder = artifacts / IMAGE_STATS_ARTIFACT if artifacts is not None else None
    stats, arrays, decoded = _compute_in_parts(manifest.abspaths(), workers, batch_size, progress, folder, key)
    timings["image_stats" if decoded else "image_stats (cached)"] = round(time.perf_counter() - t0, 3)
    return stats, arrays


def split_arrays(stats: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """``stats`` as :func:`~datacheck.engine.loader.compute_image_stats` returns it, split into
    the statistics without the columns of :data:`ARRAY_COLUMNS` and those columns as arrays by
    feature name (as :func:`image_stats` returns them), in memory."""
    arrays = {}
    for column, (feature, shape, dtype) in ARRAY_COLUMNS.items():
        arrays[feature] = np.zeros((len(stats), *shape), dtype)
        _fill_rows(arrays[feature], 0, stats[column])
    return stats.drop(columns=list(ARRAY_COLUMNS)), arrays


def _fill_rows(out: np.ndarray, start: int, column) -> None:
    """Copy a column of each row's bytes (a thumbnail or a descriptor, b"" where unreadable; a
    list or pandas Series of bytes, or an Arrow binary column) into ``out[start:]``, read as
    ``out.dtype``; other rows of ``out`` are left as they are, and so are values of another
    size than a row of ``out`` (a damaged part)."""
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        for chunk in chunks:
            _fill_from_arrow(out, start, chunk)
            start += len(chunk)
        return
    size = out[0].nbytes if len(out) else 0
    column = column.tolist() if isinstance(column, pd.Series) else column
    for s in range(0, len(column), _THUMBNAIL_SLICE):  # a few thousand at a time: bounded temporaries
        part = column[s : s + _THUMBNAIL_SLICE]
        whole = np.array([len(b) == size for b in part], dtype=bool)
        if whole.any():
            values = np.frombuffer(b"".join(b for b, w in zip(part, whole) if w), out.dtype)
            out[start + s + np.flatnonzero(whole)] = values.reshape(-1, *out.shape[1:])


def _fill_from_arrow(out: np.ndarray, start: int, chunk: pa.Array) -> None:
    """:func:`_fill_rows` of one Arrow binary array, read in place from its buffers.

    A value is either whole (a thumbnail: 12 KB) or empty, so the whole ones lie back to back
    in the array's data buffer, in row order: one view of it is every value, with no Python
    bytes object per row (a 50,000-row part of thumbnails: 0.3 s instead of 1.2 s). A value
    of another length (a damaged part) is left out, as the per-row path leaves it out.
    """
    if not len(chunk):
        return
    size = out[0].nbytes
    width = np.int64 if pa.types.is_large_binary(chunk.type) else np.int32  # offsets of binary / large_binary
    offsets = np.frombuffer(chunk.buffers()[1], width)[chunk.offset : chunk.offset + len(chunk) + 1]
    lengths = np.diff(offsets)
    whole = lengths == size
    if chunk.null_count:
        whole &= chunk.is_valid().to_numpy(zero_copy_only=False)
    if not whole.any():
        return
    data = np.frombuffer(chunk.buffers()[2], np.uint8)
    if ((lengths == 0) | whole).all():
        values = data[offsets[0] : offsets[-1]]
    else:
        values = np.concatenate([data[o : o + size] for o in offsets[:-1][whole]])
    values = values.view(out.dtype).reshape(-1, *out.shape[1:])
    if whole.all():
        out[start : start + len(chunk)] = values
    else:
        out[start + np.flatnonzero(whole)] = values


def _compute_in_parts(paths: list[str], workers, batch_size: int, progress, folder: Path | None,
                      key: bytes) -> tuple[pd.DataFrame, dict[str, np.ndarray], bool]:
    """The statistics and arrays of ``paths`` (:func:`_decode_rows`), :data:`CHECKPOINT_ROWS`
    at a time; each part is read from ``folder`` when saved there for ``key``, else computed
    and saved there (when ``folder`` is given). Returns the statistics, the arrays (as
    :func:`image_stats`) and whether any part was decoded."""
    if folder is None:
        arrays = {feature: np.zeros((len(paths), *shape), dtype) for feature, shape, dtype in ARRAY_COLUMNS.values()}
        frame = _decode_rows(paths, arrays, 0, workers, batch_size,
                             (lambda done, total: progress("decode images", done, total)) if progress else None)
        return frame, arrays, True
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {feature: temporary_map((len(paths), *shape), dtype, folder.parent, "the thumbnails")
              for feature, shape, dtype in ARRAY_COLUMNS.values()}
    names, frames, decoded = [], [], False
    for start in range(0, max(len(paths), 1), CHECKPOINT_ROWS):
        part = folder / f"rows-{start:012d}.parquet"
        names.append(part.name)
        table = _read_part(part, key, rows=min(CHECKPOINT_ROWS, len(paths) - start))
        if table is None:
            report = (lambda done, total, start=start: progress("decode images", start + done, len(paths))) if progress else None
            frame = _decode_rows(paths[start : start + CHECKPOINT_ROWS], arrays, start, workers, batch_size, report)
            stop, whole = start + len(frame), (frame["error"] == "").to_numpy()
            table = pa.Table.from_pandas(frame, preserve_index=False)
            for column, (feature, _, _) in ARRAY_COLUMNS.items():
                table = table.append_column(column, _binary_rows(arrays[feature][start:stop], whole))
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), _KEY: key})
            del frame
            write_parquet(part, table, **_STORAGE)
            decoded = True
        else:
            for column, (feature, _, _) in ARRAY_COLUMNS.items():
                _fill_rows(arrays[feature], start, table.column(column))
        for feature, _, _ in ARRAY_COLUMNS.values():  # written (or read back) and saved: out of memory
            release_rows(arrays[feature], start, start + table.num_rows)
        # As a rerun reads it back: the same columns either way; no Python bytes per thumbnail.
        frames.append(table.drop_columns(list(ARRAY_COLUMNS)).to_pandas())
    for stale in folder.iterdir():  # parts of a larger, earlier version of the dataset
        if stale.name not in names:
            stale.unlink(missing_ok=True)
    return pd.concat(frames, ignore_index=True), arrays, decoded


def _decode_rows(paths: list[str], arrays: dict, start: int, workers, batch_size: int, progress) -> pd.DataFrame:
    """Decode and measure ``paths``, the audit's rows from ``start`` on
    (:func:`~datacheck.engine.image_stats.analyze_batch` in the workers).

    Each batch's thumbnails, descriptors and quarters are copied into ``arrays`` (by feature)
    as the batch arrives, while the workers decode the next ones: no Python bytes object per
    thumbnail outlives its batch (a 50,000-image part held 600 MB of them, and a joined copy),
    and nothing is left to copy once the last batch is in. Returns the statistics, the other
    columns of :data:`~datacheck.engine.image_stats.STAT_COLUMNS`, one row per path.
    """
    from ..engine import decode_ahead
    from ..engine.image_stats import analyze_batch
    from ..engine.loader import iter_batches

    names = [name for name in STAT_COLUMNS if name not in ARRAY_COLUMNS]
    columns: dict[str, list] = {name: [] for name in names}
    started = decode_ahead.take(paths, batch_size) if isinstance(workers, int) and workers > 0 else None
    for first, result in iter_batches(paths, analyze_batch, workers, batch_size, progress, started):
        for column, (feature, _, _) in ARRAY_COLUMNS.items():
            _fill_rows(arrays[feature], start + first, result[column])
        for name in names:
            columns[name].extend(result[name])
    return pd.DataFrame(columns, columns=names)


def _binary_rows(values: np.ndarray, whole: np.ndarray) -> pa.Array:
    """Rows of ``values`` (n, ...) as an Arrow binary column, as the workers give them: each row's
    bytes where ``whole`` (n,) is True, b"" elsewhere. Read in place from ``values`` (a memory
    map) when every row is whole; a 50,000-image part is 600 MB, within 32-bit offsets."""
    size = values[0].nbytes if len(values) else 0
    offsets = np.zeros(len(values) + 1, np.int64)
    np.cumsum(np.where(whole, size, 0), out=offsets[1:])
    data = np.ascontiguousarray(values if whole.all() else values[whole])
    kind, width = (pa.binary(), np.int32) if offsets[-1] < 2**31 else (pa.large_binary(), np.int64)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(offsets.astype(width)), pa.py_buffer(data)])


def _read_part(path: Path, key: bytes, rows: int) -> pa.Table | None:
    """The part saved at ``path`` for this dataset (``key``) with ``rows`` rows, or None
    (absent, damaged, another dataset's or another part size's, or without the columns of
    :data:`~datacheck.engine.image_stats.STAT_COLUMNS`, binary where they hold arrays, or
    with an array value not :func:`_whole_arrays`)."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):
        return None
    if (table.schema.metadata or {}).get(_KEY) != key or table.num_rows != rows:
        return None
    if set(table.column_names) != set(STAT_COLUMNS):
        return None
    binary = all(pa.types.is_binary(t) or pa.types.is_large_binary(t) for t in
                 (table.schema.field(name).type for name in ARRAY_COLUMNS))
    return table if binary and _whole_arrays(table) else None


def _whole_arrays(table: pa.Table) -> bool:
    """Whether every array value of a part (:data:`ARRAY_COLUMNS`) is as the workers make it:
    whole (finite numbers, for a descriptor) where the image was read, empty in all where not."""
    import pyarrow.compute as pc

    lengths = []
    for name, (_, shape, dtype) in ARRAY_COLUMNS.items():
        column = table.column(name)
        if column.null_count:
            return False
        length = pc.binary_length(column).to_numpy()
        if not np.isin(length, (0, int(np.prod(shape)) * np.dtype(dtype).itemsize)).all():
            return False
        lengths.append(length > 0)
    if any(not np.array_equal(lengths[0], other) for other in lengths[1:]):
        return False
    _, shape, dtype = ARRAY_COLUMNS["descriptor"]
    descriptors = np.zeros((table.num_rows, *shape), dtype)
    _fill_rows(descriptors, 0, table.column("descriptor"))
    return bool(np.isfinite(descriptors).all())


def pixels(manifest: Manifest, side: int, workers: int, cache_dir, progress=None) -> tuple:
    """Decoded pixels for the models (:func:`datacheck.engine.loader.load_pixels`), decoded once
    for every model that trains on them."""
    from ..engine.loader import load_pixels

    return load_pixels(manifest.abspaths(), side, workers, cache_dir,
                       progress=(lambda done, total: progress("decode for model", done, total)) if progress else None)

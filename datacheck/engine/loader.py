"""Run per-batch functions over a manifest's files in worker processes, or on Ray.

Every per-sample function here is pure over a batch (``{"path": [...]}`` in, a dict of
equal-length lists out), so the same functions run in local worker processes or, given a
:class:`datacheck.engine.ray_engine.RayEngine` as ``workers``, as Ray Data stages.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from PIL import Image

from ..runs import atomic_write, cache_file
from .image_stats import (
    DECODE_ERRORS,
    HIGH_BIT_MODES,
    STAT_COLUMNS,
    STRIP_PIXELS,
    analyze_batch,
    displayed,
    open_image,
    require_regular_file,
    shrink_in_strips,
    upright,
)
from .workers import PathBatches, run_in_workers

ProgressCallback = Callable[[int, int], None]


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
    workers : int or RayEngine
        Worker processes (0 runs in this process), or a Ray engine to run the batches on.
    progress : callable, optional
        ``progress(done, total)`` after each batch.

    Returns
    -------
    dict of str to list
        Each list has length N.
    """
    out: dict[str, list] = {}
    for _, result in iter_batches(paths, fn, workers, batch_size, progress):
        for key, values in result.items():
            out.setdefault(key, []).extend(values)
    return out


def iter_batches(
    paths: list[str],
    fn: Callable[[dict], dict],
    workers: int,
    batch_size: int = 32,
    progress: ProgressCallback | None = None,
    started=None,
) -> Iterator[tuple[int, dict]]:
    """Like :func:`map_batches`, but yield ``(first row, fn's result)`` per batch, in row
    order, so a caller can write each batch into place instead of holding them all.
    ``started``: these very batches already running (what :func:`datacheck.engine.decode_ahead.take`
    gives), whose ``results()`` are given instead."""
    if not isinstance(workers, int):  # a RayEngine: Ray Data partitions, schedules and retries
        from .ray_engine import ray_batches

        yield from ray_batches(paths, fn, workers, batch_size, progress)
        return
    batches = PathBatches(paths, batch_size, fn)
    workers = min(workers, len(batches))
    done = 0
    for result in run_in_workers(batches, workers, started):
        yield done, result
        done += len(next(iter(result.values()))) if result else 0
        if progress:
            progress(done, len(paths))


def compute_image_stats(
    paths: list[str], workers: int, batch_size: int = 32, progress: ProgressCallback | None = None
) -> pd.DataFrame:
    """Decode every image once and return one row of :data:`STAT_COLUMNS` per path."""
    stats = map_batches(paths, analyze_batch, workers, batch_size, progress)
    return pd.DataFrame(stats, columns=STAT_COLUMNS)


# --------------------------------------------------------------------------- model inputs


def model_input(image: Image.Image, side: int) -> np.ndarray:
    """An image as the models take it: upright (EXIF orientation), transparency on white, RGB, resized to side x side,
    shape (3, side, side) uint8."""
    image = upright(image)
    width, height = image.size
    # A large image is first reduced a strip of rows at a time, as its statistics are, by the
    # whole factor the resize's reducing_gap=2 would start with: laid on white whole, a
    # 64-megapixel RGBA PNG took 1 GB beside its decode (four RGBA or RGB copies).
    factor = min(width, height) // (2 * side)
    if factor > 1 and width * height > STRIP_PIXELS and image.mode not in HIGH_BIT_MODES:
        shown = shrink_in_strips(image, factor)
        # The last reduced row and column may stand for less than `factor` pixels: the
        # fractional box keeps the picture's geometry.
        box = (0.0, 0.0, width / factor, height / factor)
    else:
        shown, box = displayed(image), None
    # Resized before a grey image is made RGB: the same values (each channel is resized alike),
    # without a whole-size RGB copy (192 MB for a 64-megapixel scan).
    rgb = shown.resize((side, side), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0).convert("RGB")
    return np.asarray(rgb).transpose(2, 0, 1)


def decode_resize_batch(batch: dict, side: int) -> dict:
    """Decode and resize a batch of image files for a model.

    Parameters
    ----------
    batch : dict
        ``{"path": list of str}``.
    side : int
        Output height and width in pixels (aspect ratio is not kept).

    Returns
    -------
    dict
        ``"pixels"``: list of ndarray (3, side, side) uint8 (grey images replicated to RGB,
        unreadable ones zeros); ``"ok"``: list of bool.
    """
    pixels, ok = [], []
    for path in batch["path"]:
        try:
            with open_image(path) as im:
                im.draft("RGB", (side * 2, side * 2))  # JPEG: decode at reduced size, much faster
                pixels.append(model_input(im, side))
            ok.append(True)
        except DECODE_ERRORS:
            pixels.append(np.zeros((3, side, side), dtype=np.uint8))
            ok.append(False)
    return {"pixels": pixels, "ok": ok}


def file_digest(paths: list[str]) -> str:
    """SHA-256 over the contents of ``paths`` in order: the cache key of anything derived from them."""
    digest = hashlib.sha256()
    for path in paths:
        h = hashlib.blake2b(digest_size=16)
        try:
            require_regular_file(path)  # a pipe would block and /dev/zero never end: never read them
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            h.update(b"<unreadable>")
        digest.update(h.digest())
    return digest.hexdigest()


def load_pixels(
    paths: list[str],
    side: int,
    workers: int,
    cache_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Decoded, resized images for a model, cached on disk by file content and ``side``.

    Each batch is written into place as it is decoded (no second copy of the whole set).
    With a cache the pixels live in an ``.npy`` file that is memory-mapped read-only, so a
    large set at a large ``side`` is paged in from disk as batches are read rather than
    held in memory.

    Returns
    -------
    pixels : ndarray of shape (N, 3, side, side), uint8
        A read-only memory map when cached.
    ok : ndarray of shape (N,), bool
        False where the file could not be decoded.
    key : str
        Content key (also in the cache file name), for caching what is computed from these pixels.
    """
    # v2: 16-bit and float images scaled to 8 bits, not clipped (image_stats.eight_bit); v3: upright
    # (EXIF); v4: transparency on white (image_stats.on_white); v5: float images' NaN and infinite pixels
    # out of their range; v6: 16-bit grey's transparent value on white; v7: a damaged PNG stream is not ok;
    # v8: images over STRIP_PIXELS reduced in strips before the resize (model_input)
    key = f"{file_digest(paths)[:32]}-s{side}-v8"
    shape = (len(paths), 3, side, side)
    cache = cache_file(cache_dir, "pixels", key, suffix=".npy")
    if cache is None:
        pixels = np.empty(shape, dtype=np.uint8)
        return pixels, _decode_into(pixels, paths, side, workers, progress), key
    ok_file = cache.with_suffix(".ok.npy")
    try:
        pixels, ok = np.load(cache, mmap_mode="r"), np.load(ok_file)
        if pixels.shape == shape and ok.shape == shape[:1]:
            return pixels, ok, key
    except (OSError, ValueError):  # not cached yet, or a damaged cache file: decode again
        pass

    def write(tmp: Path) -> None:
        pixels = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        ok = _decode_into(pixels, paths, side, workers, progress)
        pixels.flush()
        del pixels
        # The flags go first: the pixel file, renamed into place last, marks a complete pair.
        atomic_write(ok_file, lambda tmp_ok: _save_npy(tmp_ok, ok))

    atomic_write(cache, write)
    return np.load(cache, mmap_mode="r"), np.load(ok_file), key


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:  # np.save(path) would append ".npy" to a temporary name
        np.save(fh, array)


def _decode_into(pixels: np.ndarray, paths: list[str], side: int, workers: int,
                 progress: ProgressCallback | None) -> np.ndarray:
    """Decode ``paths`` into ``pixels`` (N, 3, side, side) batch by batch; the ok flags (N,) bool."""
    ok = np.zeros(len(paths), dtype=bool)
    batches = iter_batches(paths, functools.partial(decode_resize_batch, side=side), workers, progress=progress)
    for start, batch in batches:
        stop = start + len(batch["ok"])
        pixels[start:stop] = np.stack(batch["pixels"])
        ok[start:stop] = batch["ok"]
    return ok

"""Per-image statistics from a single decode.

:func:`analyze_batch` is a pure function over a batch (``{"path": [...]}`` in, a dict of
equal-length lists out), so it can run in torch DataLoader workers today and in
``ray.data.Dataset.map_batches`` tomorrow. Every property the image checks and the
duplicate checks need is computed from one decode of each file.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import stat
import warnings

import numpy as np
from PIL import Image, ImageOps

from .similarity import describe_thumbnails

# Statistics are computed on a copy no larger than this on its longer side: it bounds the
# cost for large photos and keeps blur comparable between image sizes.
ANALYSIS_SIDE = 256
# Near-duplicate search compares RGB thumbnails of this side (aspect ratio not kept, so
# resized copies match).
THUMB_SIDE = 64
#: Rows per saved part of the statistics (a few minutes of decoding; :mod:`datacheck.features.images`).
CHECKPOINT_ROWS = 50_000
# Below this grey-level standard deviation an image is flat: blur and near-duplicate
# similarity are meaningless there (the low-information check reports such images instead).
FLAT_STD = 2.0

#: Bumped when a statistic's definition changes, so cached statistics are recomputed. 7: large
#: JPEGs decoded at a reduced scale; 8: the thumbnails' descriptors; 9: quarters; 10: transparency
#: on white; 11: NaN and infinite pixels of float images do not set their range; 12: 16-bit grey's
#: transparent value on white.
STATS_VERSION = 12

STAT_COLUMNS = [
    "width",  # int, pixels
    "height",  # int, pixels
    "mode",  # PIL mode of the file ("RGB", "L", ...)
    # Luminance (0-255) of the darkest 0.1 % and the brightest 1 % of pixels. Content is
    # often small and dark on a bright ground (documents, handwriting), so "over-exposed"
    # means that even the darkest few pixels are bright, and "dark" that even the brightest are dark.
    "brightness_low",
    "brightness_high",
    "brightness_mean",
    "contrast",  # std of luminance, 0-255
    "entropy",  # Shannon entropy of a 32-bin luminance histogram over the image's own range, bits
    "sharpness",  # log(steepest edge / tonal range), <= ~0; NaN for flat images and those under 3 px on a side
    "colorfulness",  # mean max channel difference, 0-1; 0 for grey images
    "speckle",  # fraction of isolated pixels (impulse noise, dust), 0-1; NaN for flat images and those under 3 px on a side
    "pixel_hash",  # hex digest of mode, size and decoded pixels ("" if unreadable)
    "thumbnail",  # bytes: THUMB_SIDE x THUMB_SIDE x 3 uint8 RGB, b"" if unreadable
    # bytes: the thumbnail's near-duplicate descriptor, float32 (datacheck.engine.similarity.
    # spectral_descriptors), b"" if unreadable. Made here, beside the thumbnail, so the
    # workers that decode the images describe them too, instead of one more pass afterwards.
    "descriptor",
    # bytes: the thumbnail reduced to a quarter of its side (THUMB_SIDE / 4 square, RGB uint8:
    # the near-duplicate search's first screen), b"" if unreadable; made beside the descriptor.
    "quarter",
    "has_content",  # bool: not flat (grey std >= FLAT_STD) and readable
    "error",  # "" if decoded, else why not
]

DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, MemoryError, Image.DecompressionBombError)


class SpecialFileError(OSError):
    """A dataset path names a pipe, socket, device or folder instead of a regular file.

    Such a path is never opened: reading a named pipe without a writer blocks forever, and a
    device such as ``/dev/zero`` never ends. As an :class:`OSError` it is one of
    :data:`DECODE_ERRORS`, so every reader reports the sample as unreadable (the ``corrupt``
    check) without a case of its own.
    """


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def require_regular_file(path: str | os.PathLike) -> None:
    """Raise unless ``path``, symlinks followed, is a regular file; call it before any open.

    Only the file's metadata is read. A file swapped for a pipe between this check and the
    open would still block, but the dataset would then be changing during the audit, which
    the manifest fingerprint is there to reveal.

    Raises
    ------
    SpecialFileError
        ``path`` is a named pipe, socket, device or folder.
    OSError
        ``path`` cannot be looked up: missing, a symlink loop (ELOOP), no permission.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = next((name for is_kind, name in _SPECIAL_KINDS if is_kind(mode)), "a special file")
        raise SpecialFileError(f"{kind}, not a regular file: not read")


def open_image(path: str | os.PathLike) -> Image.Image:
    """``PIL.Image.open(path)`` for a regular file only (see :func:`require_regular_file`).

    Readers of dataset images open them through here, so a pipe or a device in a dataset is
    reported as unreadable instead of hanging the command.

    Raises
    ------
    SpecialFileError
        ``path`` is not a regular file (never opened).
    OSError, ValueError, ...
        Any of :data:`DECODE_ERRORS`, as from ``PIL.Image.open``.
    """
    require_regular_file(path)
    # A JPEG's EXIF is read at open (for its resolution): a damaged block warns "Corrupt EXIF
    # data", which the Python API printed from every process reading the file (see upright).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im = Image.open(path)
    if im.format == "TIFF":
        _quiet_libtiff()
    return im


@functools.cache
def _quiet_libtiff() -> None:
    """Stop the libtiff that Pillow decodes with from printing its errors and warnings.

    libtiff writes them to the process's stderr itself ("ZIPDecode: Decoding error at
    scanline 0, incorrect data check", without a newline), past ``--quiet`` and into the
    middle of the command's own output, while Pillow raises the same failure as an error
    that the ``corrupt`` check reports. Its handlers are set to none in the copy of the
    library this process has loaded (found in ``/proc/self/maps``; elsewhere, or if it
    cannot be found, libtiff keeps printing: nothing else changes).
    """
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            loaded = {line.split()[-1] for line in maps if "libtiff" in line and "/" in line}
        for path in loaded:
            library = ctypes.CDLL(path)
            library.TIFFSetErrorHandler(None)
            library.TIFFSetWarningHandler(None)
    except (OSError, AttributeError):  # no /proc (macOS, Windows), a library without the calls
        pass


#: The EXIF tag that says how a stored image is turned for display (1: as stored).
_ORIENTATION = 0x0112


def upright(im: Image.Image) -> Image.Image:
    """``im`` as viewers display it: turned by its EXIF orientation, if it has one other than 1.

    Cameras and phones store many photos sideways with an orientation tag. The statistics
    (aspect ratio), duplicates, thumbnails, model inputs and augmented copies all use the
    picture a person sees, so a tagged copy and a rotated copy of one photo are one picture.
    """
    # Decoded first, outside the guard below: a PNG's EXIF may follow its pixel data, so
    # getexif() decodes them, and a damaged stream's error swallowed there left the image
    # "loaded" with the pixels decoded so far (Pillow does not raise it again).
    im.load()
    # EXIF is optional metadata: a damaged block (Pillow raises struct.error, KeyError, ...
    # from its parser, or warns "Corrupt EXIF data") leaves the image as stored rather than
    # making readable pixels unreadable, and says nothing: the command line silences Pillow's
    # warnings, a notebook calling the Python API got one from every process reading the file
    # (a PNG's EXIF is read here, a JPEG's at open_image).
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if im.getexif().get(_ORIENTATION, 1) not in range(2, 9):
                return im
            return ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 -- see above
        return im


def on_white(im: Image.Image) -> Image.Image:
    """``im`` laid on white paper where it is transparent (RGB; ``L`` for grey with alpha), as
    viewers and the report show it; an image without transparency is returned unchanged.

    Dropping the alpha channel instead shows what the file stores under its transparent
    pixels, mostly black: a dark logo or icon on a transparent background became a dark
    square, flagged ``dark``, and its thumbnail and model input were that square.
    """
    if im.mode not in ("RGBA", "RGBa", "LA", "La", "PA") and "transparency" not in im.info:
        return im
    grey = im.mode in ("LA", "La", "L")
    flat = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA")).convert("RGB")
    return flat.convert("L") if grey else flat


#: Modes of more than 8 bits per pixel: 16-bit (PNG, TIFF), 32-bit integer and float grey.
HIGH_BIT_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")


def eight_bit(im: Image.Image) -> Image.Image:
    """``im`` in an 8-bit mode: high-bit grey (16-bit, 32-bit integer, float) scaled to ``L``.

    Pillow's own ``convert`` clips such images at 255, which turns a 16-bit scan white. They
    are scaled from their type's nominal range instead, so exposure means the same as in 8
    bits: 16-bit by 255/65535; 32-bit integers by the smallest of 255, 65535 and their own
    maximum that holds their values; floats from [0, 1] when they lie there, else as integers.
    Other modes are returned unchanged. An image with a transparent grey value comes back as
    ``LA``, its alpha 0 where that value is.

    The values are read in their own type and scaled a strip of rows at a time: in float64
    at once, a 64-megapixel 16-bit scan took 2.6 GB (five whole-image float64 arrays).
    """
    if im.mode not in HIGH_BIT_MODES:
        return im
    values = np.asarray(im)  # (H, W) uint16, int32 or float32, as stored
    strips = [values[top : top + _SCALE_ROWS] for top in range(0, values.shape[0], _SCALE_ROWS)]
    # The range is that of the finite values: depth maps mark pixels without a depth NaN or
    # infinite, and a NaN or infinite maximum scaled every pixel to black. Such a pixel shows
    # as 0 (NaN, -inf) or full scale (+inf).
    low, top = _finite_range(strips)
    if im.mode == "F" and 0.0 <= low and top <= 1.0:
        full = 1.0
    elif im.mode.startswith("I;16"):
        full = 65535.0
    else:
        full = 255.0 if top <= 255.0 else 65535.0 if top <= 65535.0 else top
    scaled = np.empty(values.shape, np.uint8)
    for first, strip in zip(range(0, values.shape[0], _SCALE_ROWS), strips):
        part = np.clip(strip.astype(np.float64), 0.0, full)
        scaled[first : first + len(strip)] = np.rint(np.nan_to_num(part, copy=False) * (255.0 / full))
    transparent = im.info.get("transparency")
    if isinstance(transparent, int):
        # A grey value marked transparent (PNG's tRNS, 16 bits as in 8) becomes an alpha band,
        # which on_white lays on white as for an 8-bit image: a new image keeps no info, and
        # the scaled value would also hide the opaque pixels that round to it.
        return Image.fromarray(np.stack([scaled, np.where(values == transparent, 0, 255).astype(np.uint8)], axis=2), "LA")
    return Image.fromarray(scaled, "L")


#: Rows of a high-bit image scaled at once by :func:`eight_bit` (a 10,000-pixel-wide float
#: strip: 20 MB in float64).
_SCALE_ROWS = 256


def _finite_range(strips: list[np.ndarray]) -> tuple[float, float]:
    """The smallest and largest finite value of the arrays ``strips``; (0, 0) when there is none."""
    low, top = math.inf, -math.inf
    for strip in strips:
        if strip.dtype.kind == "f":
            finite = np.isfinite(strip)
            low = min(low, float(np.min(strip, where=finite, initial=math.inf)))
            top = max(top, float(np.max(strip, where=finite, initial=-math.inf)))
        else:
            low, top = min(low, float(strip.min())), max(top, float(strip.max()))
    return (low, top) if top >= low else (0.0, 0.0)


def analyze_batch(batch: dict) -> dict:
    """Statistics of a batch of image files.

    Each file is decoded once and shrunk to its analysis copy right away (so a batch of large
    photos never sits in memory); the statistics of the copies are then computed together,
    one numpy pass per group of equally sized copies, which for small images (32 px) costs a
    fraction of a pass per image.

    Parameters
    ----------
    batch : dict
        ``{"path": list of str}``, absolute file paths.

    Returns
    -------
    dict of str to list
        One list per name in :data:`STAT_COLUMNS`, each of length ``len(batch["path"])``.
    """
    rows = [_decode(p) for p in batch["path"]]
    _measure_copies([row for row in rows if not row["error"]])
    _describe_thumbnails([row for row in rows if not row["error"]])
    return {name: [row[name] for row in rows] for name in STAT_COLUMNS}


def analyze_image(path: str) -> dict:
    """Decode one image and measure it; never raises for a bad file (see ``error``)."""
    return {name: value[0] for name, value in analyze_batch({"path": [path]}).items()}


def measure_image(im: Image.Image) -> dict:
    """The statistics of one decoded image (a row of ``image_stats``; ``error`` empty)."""
    row = _identify(im)
    _measure_copies([row])
    _describe_thumbnails([row])
    return {name: row[name] for name in STAT_COLUMNS}


def _decode(path: str) -> dict:
    """:func:`_identify` of the image at ``path``, or an unreadable row; never raises for a bad file.

    A JPEG at least twice :data:`ANALYSIS_SIDE` on both sides is decoded at 1/2, 1/4 or 1/8
    of its size (libjpeg's scaled IDCT, Pillow's ``draft``), never below that side: the
    statistics, the thumbnail and the analysis copy are made from a copy no larger anyway
    (the same size of copy either way), and a 12-megapixel photo then costs about a quarter
    of its full decode and hash. Its width and height are the file's. Its
    ``pixel_hash`` is of those scaled pixels, the same for every copy of the file's image data
    (a copy with other metadata too), but not equal to the hash of a lossless re-save of its
    full pixels (a PNG made from it), which the near-duplicate check finds instead.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # palette/transparency chatter from Pillow
            with open_image(path) as im:
                stored = im.size
                scaled = im.draft(None, (ANALYSIS_SIDE, ANALYSIS_SIDE)) is not None and im.size != stored
                im.load()
                shown = upright(im)
                # The file's own size, as shown (a 90-degree turn swaps its sides).
                size = stored[::-1] if shown.size == im.size[::-1] and shown.size != im.size else stored
                return _identify(shown, size if scaled else None)
    except DECODE_ERRORS as exc:
        # Pillow names the file by the path it was given, absolute here: the reason names it by
        # its file name, so the findings of one dataset do not depend on where it lies.
        message = str(exc).replace(path, os.path.basename(path))
        return _unreadable(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def _unreadable(reason: str) -> dict:
    row = {name: math.nan for name in STAT_COLUMNS}
    row.update(width=0, height=0, mode="", pixel_hash="", thumbnail=b"", descriptor=b"", quarter=b"", has_content=False,
               error=reason.splitlines()[0])
    return row


def _identify(im: Image.Image, file_size: tuple[int, int] | None = None) -> dict:
    """What needs the whole decoded image: size, mode, pixel hash, thumbnail, and the analysis
    copy (``"copy"``: uint8 (H, W) grey or (H, W, 3) RGB, at most :data:`ANALYSIS_SIDE` on
    its longer side). ``file_size`` is the image's (width, height) when ``im`` was decoded
    at a reduced scale (:func:`_decode`)."""
    width, height = im.size
    mode = im.mode
    # SHA-256 (hardware-accelerated on current x86 and ARM cores, 2-3x faster than BLAKE2b
    # there), truncated to 128 bits: an exact-duplicate identity, not a signature. Pixels
    # decoded at a reduced scale say so, so they never equal a full decode of that size.
    scaled = f"<{file_size[0]}x{file_size[1]}" if file_size else ""
    digest = hashlib.sha256(f"{mode}:{width}x{height}{scaled}:".encode())
    factor = math.ceil(max(width, height) / ANALYSIS_SIDE)
    if width * height > STRIP_PIXELS and mode not in HIGH_BIT_MODES:
        small, pixels = shrink_in_strips(im, factor, digest), None
    else:
        pixels = _hashed_bytes(im)
        digest.update(pixels)
        shown = displayed(im)
        small = shown.reduce(factor) if factor > 1 else shown
    pixel_hash = digest.hexdigest()[:32]
    thumbnail = small.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0).convert("RGB")
    if small is im:  # an RGB or L image, small: its bytes, taken for the hash, are the copy
        copy = np.frombuffer(pixels, dtype=np.uint8).reshape((height, width, 3) if mode == "RGB" else (height, width))
    else:
        copy = np.asarray(small)
    if file_size:
        width, height = file_size
    return {"width": width, "height": height, "mode": mode, "pixel_hash": pixel_hash,
            "thumbnail": thumbnail.tobytes(), "error": "", "copy": copy}


#: Images of more pixels than this are hashed and shrunk a strip of rows at a time
#: (:func:`shrink_in_strips`), high-bit ones (scaled by their whole range) excepted.
STRIP_PIXELS = 4_000_000


def _hashed_bytes(im: Image.Image) -> bytes:
    """The bytes of ``im`` that its pixel hash is of. Palette images store indices: two files
    with one index map but different palettes are different pictures, so their colours are
    hashed, not the indices."""
    return im.convert("RGBA").tobytes() if im.mode in ("P", "PA") else im.tobytes()


def displayed(im: Image.Image) -> Image.Image:
    """``im`` as it is measured and shown to the models: 8 bits, transparency on white, ``L`` or ``RGB``."""
    eight = on_white(eight_bit(im))
    return eight.convert("RGB") if eight.mode not in ("RGB", "L") else eight


def shrink_in_strips(im: Image.Image, factor: int, digest=None) -> Image.Image:
    """``displayed(im).reduce(factor)``, with ``digest`` (when given) updated by ``im``'s pixels
    (colours of a palette image) as :func:`_identify` hashes them, computed a strip of rows at a time.

    Whole, a 169-megapixel RGBA PNG took 3.3 GB on top of its decode (its bytes for the hash,
    two RGBA copies laid on white, the RGB copy) before being shrunk to 256 px. Strips are
    whole multiples of ``factor`` rows, so the box averages of ``reduce`` and the per-pixel
    conversions give exactly the whole image's values, and the bytes hashed strip after strip
    are the whole image's.
    """
    width, height = im.size
    rows = factor * max(1, STRIP_PIXELS // (width * factor * 4))  # each strip about a quarter of the limit
    parts = []
    for top in range(0, height, rows):
        strip = im.crop((0, top, width, min(top + rows, height)))
        if digest is not None:
            digest.update(_hashed_bytes(strip))
        parts.append(displayed(strip).reduce(factor))
    small = Image.new(parts[0].mode, (parts[0].width, sum(part.height for part in parts)))
    top = 0
    for part in parts:
        small.paste(part, (0, top))
        top += part.height
    return small


def _measure_copies(rows: list[dict]) -> None:
    """Add the pixel statistics of each row's analysis copy to the row (and drop the copy).

    Copies of one shape are stacked and measured together: every statistic works on 8-bit
    grey levels and their 256-bin histogram (percentiles, moments and entropy then cost
    O(pixels) once, not a sort per statistic), all of them per image along the stack's first axis.
    """
    groups: dict = {}
    for row in rows:
        copy = row.pop("copy")
        groups.setdefault(copy.shape, []).append((row, copy))
    members, greys, colours = [], [], []
    for shape, group in groups.items():
        stack = np.stack([copy for _, copy in group])  # (G, H, W) or (G, H, W, 3)
        if len(shape) == 2:
            grey, colorfulness = stack, np.zeros(len(group))
        else:
            red, green, blue = (stack[..., channel].astype(np.uint32) for channel in range(3))
            # ITU-R 601 luma in 16-bit fixed point, rounded: what Pillow's convert("L") computes
            grey = ((red * 19595 + green * 38470 + blue * 7471 + 0x8000) >> 16).astype(np.uint8)
            spread = (np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue))
            colorfulness = spread.reshape(len(group), -1).sum(axis=1) / (shape[0] * shape[1]) / 255.0
        members += [row for row, _ in group]
        greys.append(grey)
        colours.append(colorfulness)
    if members:
        for row, stats, c in zip(members, _grey_statistics(greys), np.concatenate(colours)):
            row.update(stats, colorfulness=float(c))


def _describe_thumbnails(rows: list[dict]) -> None:
    """Add each row's thumbnail descriptor (float32 bytes) and quarter-size thumbnail (uint8
    bytes) to the row, one pass for them all."""
    if rows:
        thumbs = np.frombuffer(b"".join(row["thumbnail"] for row in rows), np.uint8)
        descriptors, quarters = describe_thumbnails(thumbs.reshape(-1, THUMB_SIDE, THUMB_SIDE, 3))
        for row, descriptor, quarter in zip(rows, descriptors, quarters):
            row["descriptor"], row["quarter"] = descriptor.tobytes(), quarter.tobytes()


def _grey_statistics(greys: list[np.ndarray]) -> list[dict]:
    """Exposure, contrast, entropy, sharpness and speckle of stacks of grey images.

    The statistics of the histograms are computed for every image at once (photos of many
    sizes make stacks of one image each, and those small array operations cost more per
    image than counting its pixels); the edges, per stack.

    Parameters
    ----------
    greys : list of ndarray of shape (G_s, H_s, W_s), uint8

    Returns
    -------
    list of dict, one per image, stack after stack
    """
    hist = np.concatenate([_histograms(grey.reshape(len(grey), -1), 256) for grey in greys])  # (N, 256)
    size = hist.sum(axis=1)
    low, high = _hist_percentile(hist, 0.1), _hist_percentile(hist, 99.0)
    levels = np.arange(256, dtype=np.int64)
    mean = (hist @ levels) / size  # integer sums: exact
    contrast = np.sqrt(np.maximum((hist @ levels**2) / size - mean * mean, 0.0))
    entropy = _entropy(hist, low, high)
    flat = contrast < FLAT_STD
    sharpness = np.full(len(hist), np.nan)
    speckle = np.full(len(hist), np.nan)
    start = 0
    for grey in greys:
        # Sharpness and speckle compare a pixel with its neighbours on all four sides, which an
        # image under 3 px on a side does not have: they stay NaN there (not scored by the blurry
        # and noisy checks), but such an image can have content all the same (a 1x5000 strip).
        rows = np.arange(start, start + len(grey))
        start += len(grey)
        measurable = ~flat[rows] & (min(grey.shape[1:]) >= 3)
        if measurable.any():
            rows = rows[measurable]
            sharpness[rows], speckle[rows] = _edge_statistics(grey[measurable], low[rows], high[rows])
    return [{"brightness_low": float(low[i]), "brightness_high": float(high[i]), "brightness_mean": float(mean[i]),
             "contrast": float(contrast[i]), "entropy": float(entropy[i]), "sharpness": float(sharpness[i]),
             "speckle": float(speckle[i]), "has_content": not flat[i]} for i in range(len(hist))]


#: Rows of at least this many 8-bit values are counted one row at a time (:func:`_byte_histogram`);
#: shorter rows, many small images, in one bincount over the stack.
_BYTE_HISTOGRAM_MIN = 4096


def _histograms(values: np.ndarray, bins: int, weights: np.ndarray | None = None) -> np.ndarray:
    """One histogram per row: ``values`` (G, M) of ints in ``[0, bins)`` -> counts (G, bins)
    (summed ``weights`` (G, M) when given)."""
    if weights is None and bins == 256 and values.dtype == np.uint8 and values.shape[1] >= _BYTE_HISTOGRAM_MIN:
        return np.stack([_byte_histogram(row) for row in np.ascontiguousarray(values)])
    offset = values + bins * np.arange(len(values))[:, None]
    flat = np.bincount(offset.ravel(), weights=None if weights is None else weights.ravel(), minlength=bins * len(values))
    return flat.reshape(len(values), bins)


def _byte_histogram(row: np.ndarray) -> np.ndarray:
    """Counts of each value 0-255 in a contiguous uint8 ``row`` (M,), int64 (256,).

    A histogram loop stalls when consecutive values are equal (each increment waits for the
    previous one to the same counter): on a page that is 90 % white, or the grey-level
    steps of one (98 % zero), counting costs 3x what it does on varied values. So when a
    sample of the row shows one value in the majority, only the other values are counted
    and the majority value's count is what remains; otherwise Pillow counts the whole row.
    """
    sample = np.bincount(row[:: max(1, row.size // 512)], minlength=256)
    common = int(sample.argmax())
    if sample[common] * 2 > sample.sum():
        rest = row[row != common]
        hist = np.bincount(rest, minlength=256)
        hist[common] = row.size - rest.size
        return hist.astype(np.int64, copy=False)
    return np.array(Image.frombuffer("L", (row.size, 1), row, "raw", "L", 0, 1).histogram(), dtype=np.int64)


def _hist_percentile(hist: np.ndarray, q: float) -> np.ndarray:
    """The ``q``-th percentile (0-100) of the values counted in each row of ``hist`` (G, L):
    the lowest level whose cumulative count reaches it, float (G,)."""
    cumulative = np.cumsum(hist, axis=1)
    return (cumulative < (q / 100.0 * cumulative[:, -1:])).sum(axis=1).astype(np.float64)


def _entropy(hist: np.ndarray, low: np.ndarray, high: np.ndarray, bins: int = 32) -> np.ndarray:
    """Shannon entropy (bits) of the grey levels, binned over each image's own tonal range.

    Binning over ``[low, high]`` rather than 0-255 makes a dark or washed-out picture
    carry as much information as its normal version (its levels are merely squeezed);
    only an image that is mostly one tone, with little else, scores low.

    Parameters
    ----------
    hist : ndarray of shape (G, 256)
        Pixel counts per grey level.
    low, high : ndarray of shape (G,)

    Returns
    -------
    ndarray of shape (G,), 0 where ``high - low < 1``
    """
    spread = high - low
    toned = spread >= 1.0
    scale = np.where(toned, bins / np.where(toned, spread, 1.0), 0.0)
    level_bin = np.clip(((np.arange(256) - low[:, None]) * scale[:, None]).astype(np.int64), 0, bins - 1)
    prob = _histograms(level_bin, bins, weights=hist.astype(np.float64)) / hist.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(prob > 0, prob * np.log2(prob), 0.0)
    return np.where(toned, -terms.sum(axis=1), 0.0)


def _edge_statistics(grey: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sharpness and speckle of each image, both from the grey-level steps between neighbouring pixels.

    *Sharpness* is log(steepest edge / tonal range): about 0 for a crisp step edge, lower
    when blurred. Blur spreads every edge over more pixels, so the steepest step shrinks
    relative to the image's tonal range (``high - low``). Normalising by the range makes a
    dark or washed-out but sharp image as sharp as its normal version, and taking the
    steepest edges (not the mean) makes the value independent of how much of the image is
    edges (thin pen strokes versus thick marker strokes).

    *Speckle* is the fraction of pixels brighter or darker than all four of their neighbours
    by more than a quarter of the tonal range: impulse (salt-and-pepper) noise, dust and
    sensor specks. Strokes, edges and textures are not isolated on all four sides, so a
    clean image scores about 0 whatever its content, and a noisy scan about its noise density.

    Parameters
    ----------
    grey : ndarray of shape (G, H, W), uint8, H and W >= 3
    low, high : ndarray of shape (G,)

    Returns
    -------
    sharpness, speckle : ndarray of shape (G,)
    """
    # Everything in 8 bits, as numpy's byte loops run it (1.5x faster than widening every
    # pixel to int16 first, same values): |a - b| is max(a, b) - min(a, b), and "exceeds by
    # more than the jump" a difference clipped at 0 (x - min(x, y)) compared with the jump (8 to 63).
    # Each image is taken as one flat row, where the neighbours above and below are W away:
    # contiguous slices, faster than 2-D strided views (1.3x on roman); what a flat
    # "neighbour" across the last column wraps to (the next row's first pixel) is left out.
    count, height, width = grey.shape
    flat = np.ascontiguousarray(grey).reshape(count, height * width)
    # The step from each pixel of the first H - 1 rows to the pixel below and to the one on
    # its right, the larger of the two; the last column's are set to 0 and uncounted.
    pixel, below, right_of = flat[:, : -width], flat[:, width:], flat[:, 1 : height * width - width + 1]
    step = np.maximum(np.maximum(pixel, below) - np.minimum(pixel, below),
                      np.maximum(pixel, right_of) - np.minimum(pixel, right_of))  # (G, (H - 1) W)
    step.reshape(count, height - 1, width)[:, :, -1] = 0
    steps = _histograms(step, 256)
    steps[:, 0] -= height - 1
    steepest = _hist_percentile(steps, 99.9)
    sharpness = np.log(np.maximum(steepest, 1e-3) / np.maximum(high - low, 1e-3))

    # An interior pixel is isolated when it exceeds the brightest of its four neighbours, or
    # falls below the darkest, by more than the jump (never both: the brightest is not below
    # the darkest). Differences are integers, so "> jump" is "> floor(jump)". The first and
    # last columns are left out of the count.
    centre = flat[:, width:-width]
    above, below_flat = flat[:, : -2 * width], flat[:, 2 * width :]
    left, right_flat = flat[:, width - 1 : -width - 1], flat[:, width + 1 : height * width - width + 1]
    brightest = np.maximum(np.maximum(above, below_flat), np.maximum(left, right_flat))
    darkest = np.minimum(np.minimum(above, below_flat), np.minimum(left, right_flat))
    jump = np.floor(np.maximum((high - low) / 4.0, 8.0)).astype(np.uint8)[:, None]  # <= 63
    isolated = ((centre - np.minimum(centre, brightest)) > jump) | ((darkest - np.minimum(darkest, centre)) > jump)
    interior = isolated.reshape(count, height - 2, width)[:, :, 1:-1].reshape(count, -1)
    return sharpness, np.count_nonzero(interior, axis=1) / interior.shape[1]

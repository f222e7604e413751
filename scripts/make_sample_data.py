"""Generate the small synthetic image dataset that ships with datacheck.

The dataset is a toy classification problem -- 8 classes of simple coloured
shapes on light gradient backgrounds -- with a known set of data-quality
problems planted in it (mislabels, duplicates, split leakage, dark / washed
out / blurry / blank images, odd sizes, grayscale, a corrupt file, outliers
and an under-represented sub-group).  Every planted sample is listed in
``truth.csv`` so that the audits can be checked against a ground truth.

Layout written under ``--out`` (default: ``<repo root>/sample_data``)::

    train/<class>/<8 hex chars>.png|.jpg
    val/<class>/<8 hex chars>.png|.jpg
    truth.csv       sample_id,issue,group,true_label,note
    README.md

Output is fully determined by ``--seed``: only numpy's seeded generator and
Pillow are used, so re-running produces byte-identical files (given the same
numpy / Pillow / zlib / libjpeg versions).

Usage::

    python scripts/make_sample_data.py [--out DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import colorsys
import csv
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO_ROOT = Path(__file__).resolve().parents[1]

CLASSES = ("circle", "square", "triangle", "cross", "ring", "star", "hbars", "vbars")
SPLITS = ("train", "val")
# Files per class folder, planted files included.  `star` is deliberately
# small in train so that a class-imbalance check has something to find.
FOLDER_SIZES = {
    "train": {**{c: 60 for c in CLASSES}, "star": 24},
    "val": {c: 15 for c in CLASSES},
}

IMAGE_SIZE = 64
SUPERSAMPLE = 4  # shapes are drawn 4x larger then box-filtered: crisp, anti-aliased edges
NOISE_STD = 3.0  # mild sensor-like noise, so clean images are never pixel-identical
# Pillow's `optimize` implies maximum compression (it overrides compress_level).
PNG_OPTIONS = {"compress_level": 9, "optimize": True}
# Exact-duplicate copies use other encoder settings: same pixels, other bytes.
PNG_COPY_OPTIONS = {"compress_level": 1, "optimize": False}
JPEG_QUALITY = 70

TRUTH_COLUMNS = ("sample_id", "issue", "group", "true_label", "note")

# Issue name -> one-line description, in the order used by truth.csv / README.
ISSUES = {
    "mislabeled": "drawn as one class, saved in another class folder (true_label = drawn class)",
    "exact_duplicate": "original + copy with identical pixels but different PNG bytes, same folder",
    "near_duplicate": "original + copy that is resized to 72x72, re-saved as JPEG q=70, or shifted 2-3 px",
    "split_leakage": "train image with a copy in val (identical pixels, JPEG q=70 or 2 px shift)",
    "dark": "pixel values multiplied by 0.15",
    "light": "over-exposed: p' = 255 - (255 - p) * 0.12",
    "blurry": "Gaussian blur, radius 3",
    "low_information": "blank image of one uniform colour (+-1 grey level noise)",
    "odd_size": "square image rendered at an unusual size (16, 20, 256 px)",
    "odd_aspect_ratio": "image rendered at 128x32, 32x128 or 160x40",
    "grayscale": "normal content saved as a single-channel 'L' image",
    "corrupt": "PNG truncated to its first 40 % of bytes; cannot be decoded",
    "outlier": "belongs to no class (texture / clutter / glyphs); true_label empty",
    "subgroup": "under-represented sub-group: triangle pointing down (6 of 60 in train)",
}

# Largest random rotation per class, in degrees.  Circles and rings are
# rotation invariant; the bars stay nearly axis-aligned so hbars and vbars
# cannot be confused.
MAX_ROTATION = {
    "circle": 0.0,
    "ring": 0.0,
    "square": 15.0,
    "triangle": 10.0,
    "cross": 12.0,
    "star": 12.0,
    "hbars": 6.0,
    "vbars": 6.0,
}

OUTLIER_KINDS = (
    "checkerboard",
    "polygon_clutter",
    "noise_texture",
    "glyph_strokes",
    "concentric_stripes",
    "sunburst",
)


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


def _circle(radius: float, n: int = 180) -> np.ndarray:
    """A circle as a polygon, so every shape goes through the same code path."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def _bars(rng: np.random.Generator, vertical: bool) -> list[np.ndarray]:
    """2-3 parallel bars filling the unit box, with gaps about as wide as the bars."""
    n = int(rng.integers(2, 4))
    gap_ratio = rng.uniform(0.8, 1.1)
    thickness = 2.0 / (n + (n - 1) * gap_ratio)
    bars = []
    for i in range(n):
        start = -1.0 + i * thickness * (1.0 + gap_ratio)
        bar = _rect(-1.0, start, 1.0, start + thickness)
        bars.append(bar[:, ::-1] if vertical else bar)
    return bars


def _shape_parts(kind: str, rng: np.random.Generator, pointing_down: bool) -> list[tuple[np.ndarray, int]]:
    """Geometry of one shape in unit coordinates (about [-1, 1]^2, y down).

    Returns (polygon, fill) pairs drawn in order; fill 0 punches a hole.
    """
    if kind == "circle":
        return [(_circle(1.0), 255)]
    if kind == "ring":
        return [(_circle(1.0), 255), (_circle(rng.uniform(0.5, 0.6)), 0)]
    if kind == "square":
        return [(_rect(-0.85, -0.85, 0.85, 0.85), 255)]
    if kind == "triangle":
        tri = np.array([[0.0, -0.866], [1.0, 0.866], [-1.0, 0.866]])
        return [(tri * [1.0, -1.0] if pointing_down else tri, 255)]
    if kind == "cross":
        half = rng.uniform(0.17, 0.22)  # half arm width
        return [(_rect(-1.0, -half, 1.0, half), 255), (_rect(-half, -1.0, half, 1.0), 255)]
    if kind == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5  # first point straight up
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return [(np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1), 255)]
    if kind in ("hbars", "vbars"):
        return [(bar, 255) for bar in _bars(rng, vertical=kind == "vbars")]
    raise ValueError(f"unknown shape {kind!r}")


def _uniform_or_mid(rng: np.random.Generator, low: float, high: float) -> float:
    # A very small canvas may leave no room for jitter; then just centre the shape.
    return rng.uniform(low, high) if high > low else (low + high) / 2.0


def _shape_mask(
    kind: str, width: int, height: int, rng: np.random.Generator, pointing_down: bool = False
) -> np.ndarray:
    """Anti-aliased coverage mask (float, 0..1) of one randomly placed shape."""
    parts = _shape_parts(kind, rng, pointing_down)
    angle = np.deg2rad(rng.uniform(-1.0, 1.0) * MAX_ROTATION[kind])
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    # The shape's nominal extent is 45-70 % of the shorter image side.
    scale = rng.uniform(0.45, 0.70) * min(width, height) / 2.0
    parts = [((poly @ rotation) * scale, fill) for poly, fill in parts]

    # Jitter the position, but keep the whole (rotated) shape inside the image.
    points = np.concatenate([poly for poly, _ in parts])
    lo, hi = points.min(axis=0), points.max(axis=0)
    margin = 0.04 * min(width, height)
    cx = _uniform_or_mid(rng, margin - lo[0], width - margin - hi[0])
    cy = _uniform_or_mid(rng, margin - lo[1], height - margin - hi[1])

    canvas = Image.new("L", (width * SUPERSAMPLE, height * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    for poly, fill in parts:
        xy = (poly + [cx, cy]) * SUPERSAMPLE
        draw.polygon([tuple(p) for p in xy], fill=fill)
    mask = canvas.resize((width, height), Image.Resampling.BOX)
    return np.asarray(mask, dtype=np.float64) / 255.0


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Linear gradient between two random light colours, float HxWx3."""
    c1, c2 = rng.uniform(175.0, 250.0, size=(2, 3))
    theta = rng.uniform(0.0, 2.0 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width]
    proj = xx * np.cos(theta) + yy * np.sin(theta)
    t = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-9)
    return c1 + (c2 - c1) * t[..., None]


def _ink_colour(rng: np.random.Generator, value: tuple[float, float] = (0.25, 0.6)) -> np.ndarray:
    """A saturated, fairly dark colour that contrasts with the light backgrounds."""
    rgb = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.6, 1.0), rng.uniform(*value))
    return np.array(rgb) * 255.0


def _finish(pixels: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Add mild Gaussian noise and quantise to an 8-bit RGB image."""
    noisy = pixels + rng.normal(0.0, NOISE_STD, size=pixels.shape)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), "RGB")


def render_shape(
    kind: str,
    rng: np.random.Generator,
    size: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE),
    pointing_down: bool = False,
) -> Image.Image:
    """One clean RGB image of class `kind` at `size` (width, height)."""
    width, height = size
    background = _background(width, height, rng)
    alpha = _shape_mask(kind, width, height, rng, pointing_down)[..., None]
    ink = _ink_colour(rng)
    return _finish(background * (1.0 - alpha) + ink * alpha, rng)


def _downsample(pattern: np.ndarray) -> np.ndarray:
    """Box-filter a supersampled 0/1 pattern down to image resolution."""
    h, w = pattern.shape[0] // SUPERSAMPLE, pattern.shape[1] // SUPERSAMPLE
    return pattern.reshape(h, SUPERSAMPLE, w, SUPERSAMPLE).mean(axis=(1, 3))


def _two_tone(pattern: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Colour a 0..1 pattern with one light and one dark colour (full contrast)."""
    light = rng.uniform(190.0, 245.0, size=3)
    dark = _ink_colour(rng, value=(0.3, 0.55))
    p = pattern[..., None]
    return _finish(light * (1.0 - p) + dark * p, rng)


def _supersampled_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = (np.arange(size * SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    return np.meshgrid(coords, coords)  # xx, yy in image pixel units


def render_outlier(kind: str, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Image.Image:
    """An image that belongs to none of the classes, with normal brightness and contrast."""
    xx, yy = _supersampled_grid(size)
    if kind == "checkerboard":
        cell = rng.uniform(6.0, 9.0)
        a = np.deg2rad(rng.uniform(-30.0, 30.0))
        u = (xx * np.cos(a) + yy * np.sin(a)) / cell
        v = (-xx * np.sin(a) + yy * np.cos(a)) / cell
        return _two_tone(_downsample((np.floor(u) + np.floor(v)) % 2), rng)
    if kind == "concentric_stripes":
        # Centre may lie off-image, so the stripes fill the frame as arcs.
        cx, cy = rng.uniform(-0.3, 1.3, size=2) * size
        period = rng.uniform(5.0, 7.0)
        r = np.hypot(xx - cx, yy - cy)
        return _two_tone(_downsample((np.sin(2 * np.pi * r / period) > 0).astype(float)), rng)
    if kind == "sunburst":
        cx, cy = rng.uniform(0.2, 0.8, size=2) * size
        wedges = 2 * int(rng.integers(8, 12))  # even, so the colours alternate all the way round
        angle = np.arctan2(yy - cy, xx - cx) + np.pi
        return _two_tone(_downsample(np.floor(angle / (2 * np.pi / wedges)) % 2), rng)
    if kind == "noise_texture":
        return _noise_texture(rng, size)
    if kind == "polygon_clutter":
        return _polygon_clutter(rng, size)
    if kind == "glyph_strokes":
        return _glyph_strokes(rng, size)
    raise ValueError(f"unknown outlier {kind!r}")


def _noise_texture(rng: np.random.Generator, size: int) -> Image.Image:
    """Multi-octave value noise ('fractal' clouds) thresholded into two-tone blobs.

    Thresholding gives crisp contour edges: smooth or finely banded clouds would look
    blurry to a sharpness check, and outliers should have no other issue.
    """
    big = size * SUPERSAMPLE
    field = np.zeros((big, big))
    amplitude = 1.0
    for cells in (3, 6, 12, 24):
        coarse = Image.fromarray(rng.random((cells, cells)).astype(np.float32), "F")
        field += amplitude * np.asarray(coarse.resize((big, big), Image.Resampling.BICUBIC))
        amplitude *= 0.6
    return _two_tone(_downsample((field > np.median(field)).astype(float)), rng)


def _polygon_clutter(rng: np.random.Generator, size: int) -> Image.Image:
    """Many small overlapping random polygons in random colours."""
    big = size * SUPERSAMPLE
    canvas = Image.fromarray(np.clip(_background(big, big, rng), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(28, 40))):
        centre = rng.uniform(0.0, big, size=2)
        n_vertices = int(rng.integers(3, 6))
        radius = rng.uniform(0.12, 0.28) * big
        # Roughly even vertex angles give chunky polygons rather than slivers.
        steps = np.arange(n_vertices) + rng.uniform(-0.3, 0.3, size=n_vertices)
        angles = rng.uniform(0.0, 2 * np.pi) + steps * (2 * np.pi / n_vertices)
        radii = radius * rng.uniform(0.5, 1.0, size=n_vertices)
        xy = centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        colour = tuple(int(c) for c in _ink_colour(rng, value=(0.3, 0.95)))
        draw.polygon([tuple(p) for p in xy], fill=colour)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return _finish(np.asarray(small, dtype=np.float64), rng)


def _glyph_strokes(rng: np.random.Generator, size: int) -> Image.Image:
    """Rows of random pen strokes that look like unreadable handwriting."""
    big = size * SUPERSAMPLE
    canvas = Image.fromarray(np.clip(_background(big, big, rng), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    ink = tuple(int(c) for c in _ink_colour(rng, value=(0.15, 0.4)))
    cell_w, cell_h = 7 * SUPERSAMPLE, 10 * SUPERSAMPLE
    width = int(1.4 * SUPERSAMPLE)
    for top in range(3 * SUPERSAMPLE, big - cell_h, cell_h + 2 * SUPERSAMPLE):
        for left in range(3 * SUPERSAMPLE, big - cell_w, cell_w):
            if rng.random() < 0.15:  # word gap
                continue
            for _ in range(int(rng.integers(1, 3))):
                pts = rng.uniform([left, top], [left + cell_w, top + cell_h], size=(3, 2))
                draw.line([tuple(p) for p in pts], fill=ink, width=width, joint="curve")
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return _finish(np.asarray(small, dtype=np.float64), rng)


# --------------------------------------------------------------------------
# Image transformations used by the planted issues
# --------------------------------------------------------------------------


def _map_pixels(img: Image.Image, fn) -> Image.Image:
    arr = fn(np.asarray(img, dtype=np.float64))
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), img.mode)


def darken(img: Image.Image) -> Image.Image:
    return _map_pixels(img, lambda p: p * 0.15)


def overexpose(img: Image.Image) -> Image.Image:
    return _map_pixels(img, lambda p: 255.0 - (255.0 - p) * 0.12)


def shift(img: Image.Image, dx: int, dy: int) -> Image.Image:
    """Translate by (dx, dy) pixels, filling the uncovered border with edge pixels."""
    arr = np.asarray(img)
    k = max(abs(dx), abs(dy))
    padded = np.pad(arr, ((k, k), (k, k), (0, 0)), mode="edge")
    h, w = arr.shape[:2]
    return Image.fromarray(padded[k - dy : k - dy + h, k - dx : k - dx + w], img.mode)


def random_shift(rng: np.random.Generator, magnitudes: tuple[int, ...]) -> tuple[int, int]:
    """A shift of the given size along x or y (random axis and sign)."""
    step = int(rng.choice(magnitudes)) * int(rng.choice([-1, 1]))
    return (step, 0) if rng.random() < 0.5 else (0, step)


def encode_png(img: Image.Image, options: dict | None = None) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **(PNG_OPTIONS if options is None else options))
    return buf.getvalue()


def encode_jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


# --------------------------------------------------------------------------
# Planting
# --------------------------------------------------------------------------


@dataclass
class Sample:
    """One file to be written, plus its ground-truth row if it is planted."""

    split: str
    folder: str
    data: bytes
    ext: str = ".png"
    issue: str = ""
    group: str = ""
    true_label: str = ""
    note: str = ""
    sample_id: str = ""  # assigned when file names are drawn


class Planner:
    """Collects samples and decides which class folder each plant goes into."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.samples: list[Sample] = []
        self.used = {split: {c: 0 for c in CLASSES} for split in SPLITS}

    def pick_folder(self, split: str, n_files: int = 1, exclude: tuple[str, ...] = ()) -> str:
        """The class folder that stays least full (relative to its size) after
        adding `n_files`; ties broken at random.  This spreads plants evenly and
        keeps the small `star` folder from being swamped by them."""
        sizes = FOLDER_SIZES[split]
        candidates = [c for c in CLASSES if c not in exclude]
        load = np.array([(self.used[split][c] + n_files) / sizes[c] for c in candidates])
        best = [c for c, x in zip(candidates, load) if np.isclose(x, load.min())]
        return str(self.rng.choice(best))

    def add(self, sample: Sample) -> Sample:
        self.used[sample.split][sample.folder] += 1
        if self.used[sample.split][sample.folder] > FOLDER_SIZES[sample.split][sample.folder]:
            raise RuntimeError(f"folder {sample.split}/{sample.folder} overfull")
        self.samples.append(sample)
        return sample

    def room(self, split: str, folder: str) -> int:
        return FOLDER_SIZES[split][folder] - self.used[split][folder]

    def clean(self, cls: str, pointing_down: bool = False) -> Image.Image:
        return render_shape(cls, self.rng, pointing_down=pointing_down)


def plant_subgroup(p: Planner) -> None:
    for _ in range(6):
        img = p.clean("triangle", pointing_down=True)
        p.add(Sample("train", "triangle", encode_png(img), issue="subgroup",
                     true_label="triangle", note="triangle pointing down"))


def plant_split_leakage(p: Planner) -> None:
    # One leak per class at most, so no single val folder is dominated by leaks.
    taken: tuple[str, ...] = ()
    for i in range(6):
        cls = p.pick_folder("train", exclude=taken)
        taken += (cls,)
        group = f"l{i + 1}"
        img = p.clean(cls)
        p.add(Sample("train", cls, encode_png(img), issue="split_leakage", group=group,
                     true_label=cls, note="train original"))
        if i < 3:
            copy, ext, note = encode_png(img), ".png", "val copy; identical pixels"
        elif i % 2 == 1:
            copy, ext, note = encode_jpeg(img), ".jpg", f"val copy; jpeg q={JPEG_QUALITY}"
        else:
            dx, dy = random_shift(p.rng, (2,))
            copy, ext, note = encode_png(shift(img, dx, dy)), ".png", f"val copy; shift dx={dx} dy={dy}"
        p.add(Sample("val", cls, copy, ext, issue="split_leakage", group=group, true_label=cls, note=note))


def plant_exact_duplicates(p: Planner) -> None:
    for i in range(6):
        cls = p.pick_folder("train", n_files=2)
        group = f"e{i + 1}"
        img = p.clean(cls)
        original, copy = encode_png(img), encode_png(img, PNG_COPY_OPTIONS)
        # The point of this plant is "same pixels, different bytes": make sure.
        assert original != copy, "PNG encoder settings produced identical bytes"
        p.add(Sample("train", cls, original, issue="exact_duplicate", group=group,
                     true_label=cls, note="original"))
        p.add(Sample("train", cls, copy, issue="exact_duplicate", group=group,
                     true_label=cls, note="copy; identical pixels; png compress_level=1 optimize=False"))


def plant_near_duplicates(p: Planner) -> None:
    for i in range(9):
        cls = p.pick_folder("train", n_files=2)
        group = f"n{i + 1}"
        img = p.clean(cls)
        kind = ("resize", "jpeg", "shift")[i // 3]
        if kind == "resize":
            big = img.resize((72, 72), Image.Resampling.BICUBIC)
            copy, ext, note = encode_png(big), ".png", "copy; resized to 72x72 bicubic"
        elif kind == "jpeg":
            copy, ext, note = encode_jpeg(img), ".jpg", f"copy; jpeg q={JPEG_QUALITY}"
        else:
            dx, dy = random_shift(p.rng, (2, 3))
            copy, ext, note = encode_png(shift(img, dx, dy)), ".png", f"copy; shift dx={dx} dy={dy}"
        p.add(Sample("train", cls, encode_png(img), issue="near_duplicate", group=group,
                     true_label=cls, note="original"))
        p.add(Sample("train", cls, copy, ext, issue="near_duplicate", group=group,
                     true_label=cls, note=note))


def plant_mislabeled(p: Planner) -> None:
    for _ in range(24):
        folder = p.pick_folder("train")
        drawn = str(p.rng.choice([c for c in CLASSES if c != folder]))
        p.add(Sample("train", folder, encode_png(p.clean(drawn)), issue="mislabeled",
                     true_label=drawn, note=f"drawn as {drawn}; filed under {folder}"))


def plant_transformed(p: Planner, issue: str, count: int, transform, note: str) -> None:
    """Plants made by applying a pixel transform to a fresh clean image."""
    for _ in range(count):
        cls = p.pick_folder("train")
        img = transform(p.clean(cls))
        p.add(Sample("train", cls, encode_png(img), issue=issue, true_label=cls, note=note))


def plant_low_information(p: Planner) -> None:
    first_hue = p.rng.uniform()
    for k in range(4):
        cls = p.pick_folder("train")
        # Hues a quarter turn apart so the four are clearly different colours;
        # mid brightness so they read as "blank", not as "dark" or "light".
        hue = (first_hue + k / 4) % 1.0
        rgb = colorsys.hsv_to_rgb(hue, p.rng.uniform(0.3, 0.6), p.rng.uniform(0.6, 0.8))
        colour = np.rint(np.array(rgb) * 255).astype(int)
        arr = colour + p.rng.integers(-1, 2, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        r, g, b = (int(c) for c in colour)
        p.add(Sample("train", cls, encode_png(img), issue="low_information",
                     true_label=cls, note=f"uniform rgb {r} {g} {b}"))


def plant_odd_geometry(p: Planner) -> None:
    for issue, sizes in (
        ("odd_size", ((16, 16), (20, 20), (256, 256))),
        ("odd_aspect_ratio", ((128, 32), (32, 128), (160, 40))),
    ):
        for w, h in sizes:
            cls = p.pick_folder("train")
            img = render_shape(cls, p.rng, size=(w, h))
            p.add(Sample("train", cls, encode_png(img), issue=issue, true_label=cls, note=f"{w}x{h}"))


def plant_corrupt(p: Planner) -> None:
    cls = p.pick_folder("train")
    data = encode_png(p.clean(cls))
    keep = int(len(data) * 0.4)
    p.add(Sample("train", cls, data[:keep], issue="corrupt", true_label=cls,
                 note=f"png truncated to 40% ({keep} of {len(data)} bytes)"))


def plant_outliers(p: Planner) -> None:
    for kind in OUTLIER_KINDS:
        cls = p.pick_folder("train")
        img = render_outlier(kind, p.rng)
        p.add(Sample("train", cls, encode_png(img), issue="outlier", note=kind.replace("_", " ")))


def fill_clean(p: Planner) -> None:
    """Top every folder up to its size with clean, correctly labelled images."""
    for split in SPLITS:
        for cls in CLASSES:
            # A few val triangles point down too (the rare sub-group also appears
            # at evaluation time); they are not issues, so not in truth.csv.
            n_down = 2 if (split, cls) == ("val", "triangle") else 0
            for i in range(p.room(split, cls)):
                img = p.clean(cls, pointing_down=i < n_down)
                p.add(Sample(split, cls, encode_png(img)))


def plan_dataset(rng: np.random.Generator) -> list[Sample]:
    p = Planner(rng)
    plant_subgroup(p)
    plant_split_leakage(p)
    plant_exact_duplicates(p)
    plant_near_duplicates(p)
    plant_mislabeled(p)
    plant_transformed(p, "dark", 5, darken, "pixels x0.15")
    plant_transformed(p, "light", 5, overexpose, "p' = 255 - (255 - p) * 0.12")
    plant_transformed(p, "blurry", 5, lambda im: im.filter(ImageFilter.GaussianBlur(3)),
                      "gaussian blur radius 3")
    plant_low_information(p)
    plant_odd_geometry(p)
    plant_transformed(p, "grayscale", 4, lambda im: im.convert("L"), "saved as mode L")
    plant_corrupt(p)
    plant_outliers(p)
    fill_clean(p)
    return p.samples


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def assign_names(samples: list[Sample], rng: np.random.Generator) -> None:
    """Random 8-hex-digit names, so nothing about a plant shows in its name or order."""
    seen: set[str] = set()
    for s in samples:
        name = f"{int(rng.integers(0, 2**32)):08x}"
        while name in seen:
            name = f"{int(rng.integers(0, 2**32)):08x}"
        seen.add(name)
        s.sample_id = f"{s.split}/{s.folder}/{name}{s.ext}"


def truth_rows(samples: list[Sample]) -> list[dict[str, str]]:
    order = {issue: i for i, issue in enumerate(ISSUES)}

    def group_key(g: str) -> tuple[str, int]:
        return (g[:1], int(g[1:])) if g else ("", 0)

    planted = [s for s in samples if s.issue]
    planted.sort(key=lambda s: (order[s.issue], group_key(s.group), s.sample_id))
    return [{col: getattr(s, col) for col in TRUTH_COLUMNS} for s in planted]


def write_truth(path: Path, rows: list[dict[str, str]]) -> None:
    # Explicit "\n" line endings keep the file byte-identical across platforms.
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=TRUTH_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def readme_text(rows: list[dict[str, str]], seed: int) -> str:
    counts = {issue: sum(r["issue"] == issue for r in rows) for issue in ISSUES}
    train_sizes = ", ".join(f"{c} {n}" for c, n in FOLDER_SIZES["train"].items())
    lines = [
        "# datacheck sample data",
        "",
        "A small synthetic image-classification dataset with known, planted",
        "data-quality problems, used to demo and test `datacheck`.",
        "",
        "Generated (deterministically) by:",
        "",
        "    python scripts/make_sample_data.py" + ("" if seed == 0 else f" --seed {seed}"),
        "",
        "Do not edit by hand; change the generator and re-run it instead.",
        "",
        "## Contents",
        "",
        "- 8 classes of 64x64 RGB shape images: " + ", ".join(CLASSES) + ".",
        "  Light gradient background, a darker saturated shape with random position,",
        "  size and small rotation, plus mild Gaussian noise.",
        f"- `train/<class>/`: {train_sizes} files (star is deliberately small).",
        "- `val/<class>/`: 15 files per class.",
        "- File names are random hex; `sample_id` is the path relative to this folder,",
        "  e.g. `train/circle/3fa0c1d2.png`.",
        "- `truth.csv` (`sample_id,issue,group,true_label,note`) lists every planted",
        "  sample. Each planted sample has exactly one issue. Duplicate and leakage",
        "  rows share a `group` id and include the original. `true_label` is the",
        "  class the image really shows. Everything not listed is a clean,",
        "  correctly labelled 64x64 RGB PNG (except that 2 val triangles point down).",
        "",
        "## Planted issues",
        "",
        "| issue | rows in truth.csv | what |",
        "|---|---|---|",
    ]
    lines += [f"| `{issue}` | {counts[issue]} | {desc} |" for issue, desc in ISSUES.items()]
    lines += [
        "",
        "Duplicate/leakage counts are rows, i.e. both members of each pair: 6 exact",
        "duplicate pairs, 9 near-duplicate pairs and 6 train/val leakage pairs.",
        "",
    ]
    return "\n".join(lines)


def _clear_previous_output(out_dir: Path) -> None:
    """Remove only what this script writes, so stale files can't linger."""
    for split in SPLITS:
        if (out_dir / split).exists():
            shutil.rmtree(out_dir / split)
    for name in ("truth.csv", "README.md"):
        (out_dir / name).unlink(missing_ok=True)


def generate(out_dir: Path, seed: int = 0) -> None:
    """Write the sample dataset to `out_dir` (replacing an earlier run's output)."""
    out_dir = Path(out_dir)
    # Independent streams: content and file names don't perturb each other.
    content_seq, names_seq = np.random.SeedSequence(seed).spawn(2)
    samples = plan_dataset(np.random.default_rng(content_seq))
    assign_names(samples, np.random.default_rng(names_seq))

    _clear_previous_output(out_dir)
    for s in samples:
        path = out_dir / s.sample_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s.data)

    rows = truth_rows(samples)
    write_truth(out_dir / "truth.csv", rows)
    (out_dir / "README.md").write_text(readme_text(rows, seed), encoding="utf-8", newline="\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "sample_data",
                        help="output directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    generate(args.out, seed=args.seed)
    print(f"wrote sample dataset to {args.out}")


if __name__ == "__main__":
    main()

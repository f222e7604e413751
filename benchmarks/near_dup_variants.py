"""Which kinds of copies each tool calls a near duplicate: datacheck against CleanVision, per transform.

Nobody had measured, per kind of copy, what ``near_duplicates`` finds against a peer. This
script makes a small folder of varied images, plants in ``val`` one copy each of some
``train`` images, each copy made by ONE transform, plants look-alike pairs of *different*
images (hard negatives), and asks both tools which files belong together.

1. **Data** (``--work``/seed<N>/images, made again on every run; ``--repeats`` folders, seeds
   ``--seed`` onwards, their counts summed): ``--sources`` source images in
   ``train/<kind>/``, 64-256 px, of three kinds:

   * ``photo``: non-overlapping tiles (64-112 px) of the sample photographs shipped with
     scikit-learn (``china.jpg``, ``flower.jpg``) and matplotlib (``grace_hopper.jpg``),
     where installed, at most a quarter of the sources (72 of 300);
   * ``dataset``: a fifth of the sources, real dataset images: grey handwritten numerals from
     ``../shared/data/roman``
     (fitted to a long side of 80-200 px; files with the same pixels kept once), or, without
     ``../shared``, ``sample_data`` images that its ``truth.csv`` lists for no issue;
   * ``drawn``: the rest, procedural pictures, 64-256 px a side (a fifth of them grey): a
     gradient, striped or cloudy background under 3-7 shapes (discs, boxes, triangles,
     lines), 40 % with a word in large type, drawn at 2x and reduced, +-3 levels of noise.

   For ``--per-transform`` sources per transform (default 12: 3 photos, 3 dataset images, 6
   drawn; the colour-only transforms ``greyscale`` and ``hue`` take 4 photos and 8 colour
   drawn images), one copy in ``val/<kind>/`` made by that transform alone (see
   ``TRANSFORMS``). Each source is copied at most once. ``--negatives`` hard-negative pairs
   per kind, one member in ``train`` and one in ``val`` (so a false match is also a false
   leak): ``retext`` (the same drawn template, another word), ``moved_shapes`` (the same
   background, palette and shapes, laid out anew), ``photo_neighbour`` (two adjacent,
   non-overlapping tiles of one photo), ``dataset_same_class`` (two different dataset images
   of one class, fitted to one size). ``truth.json`` beside the folder lists everything.

2. **datacheck**: ``python -m datacheck audit DIR --checks
   exact_duplicates,near_duplicates,split_leakage --out RUN -q --cache-dir off --fail-on ""
   --workers W`` in a measured subprocess (``scale.measured``: wall, CPU, peak RSS, imports
   included). Its groups: every sample is joined to the ``group`` in its ``details`` for each
   of the three checks (exact and near groups are one set of connected components).

3. **CleanVision** (``cleanvision.Imagelab(data_path=DIR).find_issues({"exact_duplicates": {},
   "near_duplicates": {}}, n_jobs=W)``, its defaults: md5 of the pixels, equal 8x8 pHash) in a
   measured subprocess of this script; its groups: the union of
   ``imagelab.info[...]["sets"]`` of both.

4. **Scores**, per tool: per transform, recall = copies in the same group as their source;
   hard negatives: pairs put in one group; unrelated pairs: pairs of files from different
   planted families (a source and its copy are a family; a hard negative is its own) put in
   one group, the hard-negative pairs themselves left out. Also datacheck's ``split_leakage``
   flags on the copies (every copy is a train->val leak) and the ``nearest_similarity`` its
   ``near_duplicates`` details give each copy, with the cut it used.

Run from the repository root (560 files a folder; on 2 cores about 9 s a folder, 5 of them
making it)::

    python benchmarks/near_dup_variants.py [--seed 0] [--repeats 1] [--work DIR] [--sources 300]
        [--per-transform 12] [--negatives 10] [--workers 2] [--json PATH]

Exit status 1 when either tool failed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

import numpy as np
from _common import int_at_least  # benchmarks/ is on sys.path when run as a script
from scale import measured
from scale_images import flagged_ids, fmt

CHECKS = "exact_duplicates,near_duplicates,split_leakage"
REPO = Path(__file__).resolve().parents[1]
SHARED_ROMAN = REPO.parent / "shared" / "data" / "roman"
SAMPLE_DATA = REPO / "sample_data"

#: Transform -> what it does (one per copy; see ``transformed``).
TRANSFORMS = {
    "exact": "the same pixels saved again (PNG, other compression level)",
    "jpeg_q30": "saved as JPEG, quality 30",
    "resize_0.5x": "half the width and height (Lanczos)",
    "shift_2-4px": "content moved 2-4 px on one or both axes, edge pixels repeated",
    "brightness_+20%": "PIL ImageEnhance.Brightness 1.2",
    "contrast_+30%": "PIL ImageEnhance.Contrast 1.3",
    "blur_r1": "Gaussian blur, radius 1",
    "greyscale": "converted to grey (L)",
    "rotate_3deg": "rotated 3 degrees (bicubic), same size, black corners",
    "rotate_90deg": "rotated 90 degrees",
    "hflip": "mirrored left-right",
    "crop_80%": "centre 80 % of each side, enlarged back to the original size (Lanczos)",
    "letterbox": "black bars above and below, 12.5 % of the height each",
    "watermark": "'(c) STOCK' in white at 45 % opacity, 1/6 of the height, across the lower middle",
    "hue_+28deg": "hue turned by 20/255 of the circle (HSV)",
}
COLOUR_ONLY = {"greyscale", "hue_+28deg"}  # copied from colour sources only
#: Hard-negative kind -> the kind of picture (and folder) its two files are.
KIND_OF_NEGATIVE = {"retext": "drawn", "moved_shapes": "drawn", "photo_neighbour": "photo",
                    "dataset_same_class": "dataset"}
NEGATIVE_KINDS = tuple(KIND_OF_NEGATIVE)
KINDS = ("photo", "dataset", "drawn")
WORDS = ("SALE", "OPEN", "NORTH", "RIVER", "DELTA", "ORBIT", "PIXEL", "MANGO", "TIGER", "CLOUD", "STONE", "EMBER",
         "LUNAR", "QUARTZ", "VELVET", "HARBOR", "CANYON", "SIGNAL", "MEADOW", "COBALT", "FOREST", "ZEPHYR", "TEMPLE",
         "ISLAND", "GARDEN", "MARKET", "ROCKET", "PLANET", "BRIDGE", "CASTLE")
SUPERSAMPLE = 2
PHOTO_TILE = (64, 112)  # side range of photo tiles


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the generated folder (default: 0)")
    parser.add_argument("--work", type=Path, default=None,
                        help="work folder: images/, truth.json, runs/ (default: a new temporary folder, kept)")
    parser.add_argument("--repeats", type=int_at_least(1), default=1,
                        help="folders made and scored, seeds SEED..SEED+REPEATS-1, counts summed (default: 1)")
    parser.add_argument("--sources", type=int_at_least(60), default=300, help="source images in train (default: 300)")
    parser.add_argument("--per-transform", type=int_at_least(1), default=12,
                        help="copies per transform (default: 12)")
    parser.add_argument("--negatives", type=int_at_least(0), default=10,
                        help="hard-negative pairs per kind (default: 10)")
    parser.add_argument("--workers", type=int_at_least(1), default=2,
                        help="datacheck --workers and CleanVision n_jobs (default: 2)")
    parser.add_argument("--json", type=Path, default=None, help="also write everything to this JSON file")
    parser.add_argument("--cleanvision-worker", nargs=3, metavar=("DIR", "OUT", "JOBS"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- drawing


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=max(int(size), 6))  # Pillow >= 10.1: a scalable font
    except TypeError:  # older Pillow
        return ImageFont.truetype("DejaVuSans-Bold.ttf", max(int(size), 6))


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def drawn_picture(palette_seed: list[int], layout_seed: list[int], noise_seed: list[int], word: str | None):
    """A procedural picture (PIL image, RGB or L). The palette stream fixes its size, style,
    background, colours, kinds of shapes and whether it is grey; the layout stream where the
    shapes and the word go; ``word`` what is written (None: nothing)."""
    from PIL import Image, ImageDraw

    pal = np.random.default_rng(palette_seed)
    lay = np.random.default_rng(layout_seed)
    w, h = (int(v) for v in pal.integers(64, 257, 2))
    if max(w, h) / min(w, h) > 1.8:  # no extreme strips
        h = int(min(max(h, w / 1.8), 256))
        w = int(min(max(w, h / 1.8), 256))
    W, H = w * SUPERSAMPLE, h * SUPERSAMPLE
    ends = pal.integers(0, 256, (2, 3)).astype(float)
    y, x = np.mgrid[0:H, 0:W].astype(float)
    angle = pal.uniform(0, 2 * np.pi)
    t = x * np.cos(angle) + y * np.sin(angle)
    t = (t - t.min()) / max(np.ptp(t), 1e-9)
    style = pal.choice(["gradient", "stripes", "clouds"])
    if style == "stripes":
        period = pal.uniform(0.08, 0.3) * max(W, H)
        across = x * np.cos(angle + 1.3) + y * np.sin(angle + 1.3)
        t = 0.6 * t + 0.4 * (0.5 + 0.5 * np.sin(2 * np.pi * across / period))
    elif style == "clouds":
        coarse = pal.random((5, 5))
        cloud = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((W, H), Image.BICUBIC), float) / 255
        t = 0.5 * t + 0.5 * cloud
    canvas = Image.fromarray(((1 - t[..., None]) * ends[0] + t[..., None] * ends[1]).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(pal.integers(3, 8))):
        colour, shape = _colour(pal), int(pal.integers(0, 4))
        cx, cy = lay.uniform(0, W), lay.uniform(0, H)
        rx, ry = lay.uniform(0.06, 0.25, 2) * min(W, H)
        if shape == 0:
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)
        elif shape == 1:
            draw.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)
        elif shape == 2:
            draw.polygon([(cx, cy - ry), (cx + rx, cy + ry), (cx - rx, cy + ry)], fill=colour)
        else:
            width = int(lay.integers(2, 7)) * SUPERSAMPLE
            draw.line([(cx - rx, cy - ry), (cx + rx, cy + ry)], fill=colour, width=width)
    if word:
        font = _font(pal.uniform(0.16, 0.26) * H)
        box = draw.textbbox((0, 0), word, font=font)
        tw, th = box[2] - box[0], box[3] - box[1]
        if tw > 0.9 * W:  # shrink to fit
            font = _font(font.size * 0.9 * W / tw)
            box = draw.textbbox((0, 0), word, font=font)
            tw, th = box[2] - box[0], box[3] - box[1]
        tx = lay.uniform(0.02 * W, max(0.02 * W, 0.98 * W - tw)) - box[0]
        ty = lay.uniform(0.02 * H, max(0.02 * H, 0.98 * H - th)) - box[1]
        light = ends.mean() < 128
        draw.text((tx, ty), word, font=font, fill=(250, 250, 250) if light else (15, 15, 15))
    pixels = np.asarray(canvas.resize((w, h), Image.BOX), np.int16)
    pixels = pixels + np.random.default_rng(noise_seed).integers(-3, 4, pixels.shape)
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    return image.convert("L") if pal.random() < 0.2 else image


def photo_tiles(rng: np.random.Generator) -> list[list]:
    """Non-overlapping tiles of the sample photos installed (scikit-learn's, matplotlib's):
    per photo, a list of rows, each a list of (photo name, PIL tile) left to right."""
    from PIL import Image

    paths = []
    for package, parts in (("sklearn", ("datasets", "images", "china.jpg")),
                           ("sklearn", ("datasets", "images", "flower.jpg")),
                           ("matplotlib", ("mpl-data", "sample_data", "grace_hopper.jpg"))):
        spec = importlib.util.find_spec(package)  # found, not imported (importing sklearn takes a second)
        if spec and spec.submodule_search_locations:
            path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
            if path.is_file():
                paths.append(path)
    rows = []
    low, high = PHOTO_TILE
    for path in paths:
        with Image.open(path) as opened:
            photo = opened.convert("RGB")
        top = 0
        while top + low <= photo.height:
            th = int(min(rng.integers(low, high + 1), photo.height - top))
            left, row = 0, []
            while left + low <= photo.width:
                tw = int(min(rng.integers(low, high + 1), photo.width - left))
                row.append((path.stem, photo.crop((left, top, left + tw, top + th))))
                left += tw
            rows.append(row)
            top += th
    return rows


def dataset_images(rng: np.random.Generator, count: int) -> tuple[str, list[tuple[str, object]]]:
    """``count`` real dataset images as (class, PIL image): roman numerals from ../shared
    (grey, fitted to a long side of 80-200 px, one file per distinct pixels) or clean
    sample_data images. Returns (source description, list)."""
    from PIL import Image

    if SHARED_ROMAN.is_dir():
        files, source = sorted(SHARED_ROMAN.glob("*/*/*.png")), "../shared/data/roman"
    else:
        planted = set()
        truth = SAMPLE_DATA / "truth.csv"
        if truth.is_file():
            planted = {line.split(",")[0] for line in truth.read_text().splitlines()[1:]}
        files = [p for p in sorted(SAMPLE_DATA.glob("*/*/*.png"))
                 if p.relative_to(SAMPLE_DATA).as_posix() not in planted]
        source = "sample_data (files in no truth.csv row)"
    out, seen = [], set()
    for index in rng.permutation(len(files)):
        path = files[index]
        with Image.open(path) as opened:
            image = opened.convert("L") if opened.mode in ("L", "I;16", "I", "1") else opened.convert("RGB")
        digest = hashlib.sha1(image.tobytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        long_side = int(rng.integers(80, 201))
        scale = long_side / max(image.size)
        if source.startswith("../shared"):
            size = (max(round(image.width * scale), 16), max(round(image.height * scale), 16))
            image = image.resize(size, Image.LANCZOS)
        out.append((path.parent.name, image))
        if len(out) == count:
            break
    return source, out


# --------------------------------------------------------------------------- copies


def transformed(image, transform: str, rng: np.random.Generator):
    """The copy of ``image`` (PIL) made by ``transform``: (PIL image, file suffix, save options)."""
    from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

    w, h = image.size
    if transform == "exact":
        return image, ".png", {"compress_level": 1}
    if transform == "jpeg_q30":
        return image, ".jpg", {"quality": 30}
    if transform == "resize_0.5x":
        return image.resize((max(round(w / 2), 1), max(round(h / 2), 1)), Image.LANCZOS), ".png", {}
    if transform == "shift_2-4px":
        dy = dx = 0
        while dy == 0 and dx == 0:
            dy, dx = (int(rng.integers(2, 5) * rng.choice([-1, 1]) * (rng.random() < 0.67)) for _ in range(2))
        pixels = np.asarray(image)
        pad = ((4, 4), (4, 4)) + (((0, 0),) if pixels.ndim == 3 else ())
        padded = np.pad(pixels, pad, mode="edge")
        return Image.fromarray(padded[4 - dy : 4 - dy + h, 4 - dx : 4 - dx + w].copy()), ".png", {}
    if transform == "brightness_+20%":
        return ImageEnhance.Brightness(image).enhance(1.2), ".png", {}
    if transform == "contrast_+30%":
        return ImageEnhance.Contrast(image).enhance(1.3), ".png", {}
    if transform == "blur_r1":
        return image.filter(ImageFilter.GaussianBlur(1)), ".png", {}
    if transform == "greyscale":
        return image.convert("L"), ".png", {}
    if transform == "rotate_3deg":
        return image.rotate(3, resample=Image.BICUBIC, fillcolor=0), ".png", {}
    if transform == "rotate_90deg":
        return image.transpose(Image.ROTATE_90), ".png", {}
    if transform == "hflip":
        return image.transpose(Image.FLIP_LEFT_RIGHT), ".png", {}
    if transform == "crop_80%":
        box = (round(0.1 * w), round(0.1 * h), round(0.9 * w), round(0.9 * h))
        return image.crop(box).resize((w, h), Image.LANCZOS), ".png", {}
    if transform == "letterbox":
        bar = round(0.125 * h)
        canvas = Image.new(image.mode, (w, h + 2 * bar), 0)
        canvas.paste(image, (0, bar))
        return canvas, ".png", {}
    if transform == "watermark":
        mode = image.mode
        base = image.convert("RGBA")
        layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        text = "(c) STOCK"
        font = _font(h / 6)
        box = draw.textbbox((0, 0), text, font=font)
        if box[2] - box[0] > 0.95 * w:
            font = _font(font.size * 0.95 * w / (box[2] - box[0]))
            box = draw.textbbox((0, 0), text, font=font)
        x = (w - (box[2] - box[0])) / 2 - box[0]
        y = 0.62 * h - (box[3] - box[1]) / 2 - box[1]
        draw.text((x, y), text, font=font, fill=(255, 255, 255, 115))
        return Image.alpha_composite(base, layer).convert(mode), ".png", {}
    if transform == "hue_+28deg":
        hsv = np.asarray(image.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + 20) % 256
        return Image.fromarray(hsv, "HSV").convert("RGB"), ".png", {}
    raise ValueError(f"unknown transform {transform!r}")


# --------------------------------------------------------------------------- the folder


def make_folder(work: Path, seed: int, args: argparse.Namespace) -> dict:
    """Write ``work``/images and ``work``/truth.json (see the module docstring); returns the truth."""
    from PIL import Image

    root = work / "images"
    shutil.rmtree(root, ignore_errors=True)
    for split in ("train", "val"):
        for kind in KINDS:
            (root / split / kind).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1])
    sources: dict[str, dict] = {}  # sample id -> {kind, colour}
    images: dict[str, object] = {}
    negatives: list[dict] = []

    def save(sample_id: str, image, options: dict | None = None) -> None:
        image.save(root / sample_id, **(options or {}))

    # Photos: adjacent pairs of tiles are reserved for hard negatives first (one per row,
    # rows in random order, then a second one per row while too few).
    rows = photo_tiles(rng)
    taken = [np.zeros(len(row), bool) for row in rows]
    neighbour_pairs = []
    for _ in range(2):
        for r in rng.permutation(len(rows)):
            starts = [i for i in range(len(rows[r]) - 1) if not taken[r][i] and not taken[r][i + 1]]
            if starts and len(neighbour_pairs) < args.negatives:
                i = int(rng.choice(starts))
                taken[r][i : i + 2] = True
                neighbour_pairs.append((rows[r][i], rows[r][i + 1]))
    photo_pool = [tile for row, used in zip(rows, taken) for tile, u in zip(row, used) if not u]
    photo_pool = [photo_pool[i] for i in rng.permutation(len(photo_pool))][: args.sources // 4]

    n_dataset = args.sources // 5
    dataset_source, dataset_pool = dataset_images(rng, n_dataset + 2 * args.negatives + 40)
    by_class: dict[str, list] = {}
    for cls, image in dataset_pool[n_dataset:]:
        by_class.setdefault(cls, []).append(image)
    dataset_pool = dataset_pool[:n_dataset]
    n_drawn = args.sources - len(photo_pool) - len(dataset_pool)

    for i, (name, tile) in enumerate(photo_pool):
        sid = f"train/photo/p{i:04d}_{name}.png"
        sources[sid], images[sid] = {"kind": "photo", "colour": True}, tile
    for i, (cls, image) in enumerate(dataset_pool):
        sid = f"train/dataset/d{i:04d}_{cls}.png"
        sources[sid], images[sid] = {"kind": "dataset", "colour": image.mode != "L"}, image
    for i in range(n_drawn):
        word = WORDS[int(rng.integers(len(WORDS)))] if rng.random() < 0.4 else None
        image = drawn_picture([seed, 2, i], [seed, 3, i], [seed, 4, i], word)
        sid = f"train/drawn/g{i:04d}.png"
        sources[sid], images[sid] = {"kind": "drawn", "colour": image.mode != "L"}, image
    for sid, image in images.items():
        save(sid, image)

    # Copies: per transform, a fixed mix of kinds, each source copied at most once.
    free = {kind: [s for s in sources if sources[s]["kind"] == kind] for kind in KINDS}
    for kind in KINDS:
        free[kind] = [free[kind][i] for i in rng.permutation(len(free[kind]))]
    pairs = []
    n = args.per_transform
    for transform in TRANSFORMS:
        if transform in COLOUR_ONLY:
            quota = {"photo": n // 3, "drawn": n - n // 3}
        else:
            quota = {"photo": n // 4, "dataset": n // 4, "drawn": n - 2 * (n // 4)}
        chosen = []
        for kind, count in quota.items():
            usable = [s for s in free[kind] if sources[s]["colour"] or transform not in COLOUR_ONLY][:count]
            if len(usable) < count:  # too few of this kind left: take drawn ones
                extra = [s for s in free["drawn"]
                         if s not in usable and (sources[s]["colour"] or transform not in COLOUR_ONLY)]
                usable += extra[: count - len(usable)]
            for s in usable:
                free[sources[s]["kind"]].remove(s)
            chosen += usable
        for source in chosen:
            copy, suffix, options = transformed(images[source], transform, np.random.default_rng([seed, 5, len(pairs)]))
            kind = sources[source]["kind"]
            sid = f"val/{kind}/c{len(pairs):04d}_{transform}{suffix}"
            save(sid, copy, options)
            pairs.append({"transform": transform, "kind": kind, "source": source, "copy": sid})

    # Hard negatives: look-alike pairs of different pictures, one in train and one in val.
    def negative(kind: str, first, second, suffix: str = ".png") -> None:
        k = len(negatives)
        folder = KIND_OF_NEGATIVE[kind]
        a, b = f"train/{folder}/n{k:03d}a_{kind}{suffix}", f"val/{folder}/n{k:03d}b_{kind}{suffix}"
        save(a, first)
        save(b, second)
        negatives.append({"kind": kind, "a": a, "b": b})

    for i in range(args.negatives):
        words = rng.choice(len(WORDS), 2, replace=False)
        palette, layout = [seed, 6, i], [seed, 7, i]
        negative("retext", drawn_picture(palette, layout, [seed, 8, i], WORDS[words[0]]),
                 drawn_picture(palette, layout, [seed, 9, i], WORDS[words[1]]))
    for i in range(args.negatives):
        palette = [seed, 10, i]
        word = WORDS[int(rng.integers(len(WORDS)))] if rng.random() < 0.4 else None
        negative("moved_shapes", drawn_picture(palette, [seed, 11, i], [seed, 12, i], word),
                 drawn_picture(palette, [seed, 13, i], [seed, 14, i], word))
    for (_, left), (_, right) in neighbour_pairs:
        negative("photo_neighbour", left, right)
    classes = [c for c in sorted(by_class) if len(by_class[c]) >= 2]
    for i in range(args.negatives if classes else 0):
        cls = classes[i % len(classes)]
        if len(by_class[cls]) < 2:
            continue
        first, second = by_class[cls].pop(), by_class[cls].pop()
        negative("dataset_same_class", first, second.resize(first.size, Image.LANCZOS))

    truth = {"seed": seed, "dataset_source": dataset_source, "sources": sources, "pairs": pairs,
             "negatives": negatives, "files": len(sources) + len(pairs) + 2 * len(negatives)}
    (work / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth


# --------------------------------------------------------------------------- the tools


def components(groups: list[list[str]]) -> dict[str, str]:
    """Union of overlapping groups (lists of sample ids): sample id -> component key."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for group in groups:
        for member in group[1:]:
            ra, rb = find(group[0]), find(member)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def run_datacheck(root: Path, runs: Path, workers: int) -> dict:
    """The audit in a measured subprocess; its groups (every sample joined to the ``group`` of
    its details, per check), split_leakage flags, the copies' nearest similarity and the cut."""
    import pyarrow.parquet as pq

    run_dir = runs / "datacheck"
    shutil.rmtree(run_dir, ignore_errors=True)
    runs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "datacheck", "audit", str(root), "--checks", CHECKS, "--out", str(run_dir), "-q",
           "--cache-dir", "off", "--fail-on", "", "--workers", str(workers)]
    report = runs / "datacheck.measure.json"
    result = {"command": shlex.join(["datacheck", *cmd[3:]]), **measured(cmd, report)}
    if result["returncode"] != 0:
        lines = Path(f"{report}.stderr").read_text(errors="replace").strip().splitlines()
        return {**result, "error": " | ".join(lines[-5:]) or "(no output)"}
    frame = pq.read_table(run_dir / "findings.parquet", columns=["sample_id", "check", "details"]).to_pandas()
    groups, nearest = [], {}
    for sample_id, check, details in zip(frame["sample_id"], frame["check"], frame["details"]):
        info = json.loads(details) if details else {}
        if "group" in info:
            groups.append([sample_id, info["group"]])
        if check == "near_duplicates":
            nearest[sample_id] = info.get("nearest_similarity")
    summary = json.loads((run_dir / "summary.json").read_text())
    result["threshold"] = summary["checks"]["near_duplicates"].get("threshold", {})
    result["timings_s"] = summary.get("timings_s", {})
    result["flags"] = {check: sorted(ids) for check, ids in flagged_ids(run_dir / "findings.parquet").items()}
    result["groups"] = groups
    result["nearest_similarity"] = nearest
    return result


CLEANVISION_ISSUES = ("exact_duplicates", "near_duplicates")


def cleanvision_worker(root: str, out: str, jobs: str) -> None:
    """Subprocess side: CleanVision's duplicate sets of ``root``, as sample ids, to ``out``."""
    started = time.perf_counter()
    from cleanvision import Imagelab, __version__

    imported = time.perf_counter()
    lab = Imagelab(data_path=root)
    lab.find_issues({issue: {} for issue in CLEANVISION_ISSUES}, n_jobs=int(jobs), verbose=False)
    done = time.perf_counter()
    base = Path(root).resolve()
    sets = {issue: [[Path(p).resolve().relative_to(base).as_posix() for p in group]
                    for group in lab.info[issue]["sets"]] for issue in CLEANVISION_ISSUES}
    Path(out).write_text(json.dumps({"version": __version__, "import_s": imported - started,
                                     "find_s": done - imported, "sets": sets}))


def run_cleanvision(root: Path, runs: Path, workers: int) -> dict:
    out = runs / "cleanvision.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--cleanvision-worker", str(root), str(out), str(workers)]
    report = runs / "cleanvision.measure.json"
    result = measured(cmd, report)
    if result["returncode"] != 0 or not out.is_file():
        lines = Path(f"{report}.stderr").read_text(errors="replace").strip().splitlines()
        return {**result, "error": " | ".join(lines[-5:]) or "(no output)"}
    found = json.loads(out.read_text())
    result.update({k: found[k] for k in ("version", "import_s", "find_s")})
    result["sets"] = found["sets"]
    result["groups"] = [g for issue in CLEANVISION_ISSUES for g in found["sets"][issue]]
    return result


# --------------------------------------------------------------------------- scoring


def score(groups: list[list[str]], truth: dict) -> dict:
    """One tool's answer on one folder: per planted pair whether the copy is in its source's
    group (``copies``, in ``truth["pairs"]`` order), per hard negative whether its two files
    are in one group (``negatives``), and the pairs of files of different planted families in
    one group, hard-negative pairs left out (``unrelated``)."""
    component = components(groups)

    def together(a: str, b: str) -> bool:
        return a in component and component.get(a) == component.get(b)

    family = {s: s for s in truth["sources"]}
    family.update({p["copy"]: p["source"] for p in truth["pairs"]})
    negative_pairs = {frozenset((n["a"], n["b"])) for n in truth["negatives"]}
    members: dict[str, list[str]] = {}
    for sample_id, key in component.items():
        members.setdefault(key, []).append(sample_id)
    unrelated = [[a, b] for group in members.values() for a, b in combinations(sorted(group), 2)
                 if family.get(a, a) != family.get(b, b) and frozenset((a, b)) not in negative_pairs]
    return {"copies": [together(p["source"], p["copy"]) for p in truth["pairs"]],
            "negatives": [together(n["a"], n["b"]) for n in truth["negatives"]], "unrelated": unrelated}


TOOLS = ("datacheck", "cleanvision")
BULKY = ("groups", "sets", "nearest_similarity", "flags")  # per-file answers, kept per pair instead


def run_seed(seed: int, work: Path, args: argparse.Namespace) -> dict:
    """Make the folder of ``seed`` under ``work``, run both tools on it and score them."""
    work.mkdir(parents=True, exist_ok=True)
    print(f"seed {seed}: generating the folder in {work} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    truth = make_folder(work, seed, args)
    print(f"  {truth['files']} files in {time.perf_counter() - started:.1f} s; datacheck audit ...",
          file=sys.stderr, flush=True)
    root, runs = work / "images", work / "runs"
    tools = {"datacheck": run_datacheck(root, runs, args.workers)}
    print("  CleanVision ...", file=sys.stderr, flush=True)
    tools["cleanvision"] = run_cleanvision(root, runs, args.workers)
    scores = {name: (score(tool["groups"], truth) if "groups" in tool else None) for name, tool in tools.items()}
    dc = tools["datacheck"]
    leaks, nearest = set(dc.get("flags", {}).get("split_leakage", [])), dc.get("nearest_similarity", {})
    pairs = [{**p, **{name: (scores[name]["copies"][k] if scores[name] else None) for name in TOOLS},
              "datacheck_leak": p["copy"] in leaks, "datacheck_nearest": nearest.get(p["copy"])}
             for k, p in enumerate(truth["pairs"])]
    negatives = [{**n, **{name: (scores[name]["negatives"][k] if scores[name] else None) for name in TOOLS}}
                 for k, n in enumerate(truth["negatives"])]
    return {"seed": seed, "work": str(work), "files": truth["files"], "dataset_source": truth["dataset_source"],
            "sources": {k: sum(s["kind"] == k for s in truth["sources"].values()) for k in KINDS},
            "pairs": pairs, "negatives": negatives,
            "unrelated": {name: (scores[name]["unrelated"] if scores[name] else None) for name in TOOLS},
            "tools": {name: {k: v for k, v in tool.items() if k not in BULKY} for name, tool in tools.items()}}


def summarize(results: list[dict]) -> dict:
    """The numbers of the report, summed over the seeds."""
    pairs = [p for r in results for p in r["pairs"]]
    negatives = [n for r in results for n in r["negatives"]]

    def found(rows: list[dict], name: str) -> int | None:
        return None if any(row[name] is None for row in rows) else sum(bool(row[name]) for row in rows)

    transforms = {}
    for transform in TRANSFORMS:
        rows = [p for p in pairs if p["transform"] == transform]
        sims = [p["datacheck_nearest"] for p in rows if p["datacheck_nearest"] is not None]
        transforms[transform] = {
            "planted": len(rows), **{name: found(rows, name) for name in TOOLS},
            "datacheck_leak": sum(p["datacheck_leak"] for p in rows),
            "datacheck_nearest_median": float(np.median(sims)) if sims else None,
            "by_kind": {k: {"planted": sum(p["kind"] == k for p in rows),
                            **{name: found([p for p in rows if p["kind"] == k], name) for name in TOOLS}}
                        for k in KINDS if any(p["kind"] == k for p in rows)}}
    hard = {kind: {"pairs": sum(n["kind"] == kind for n in negatives),
                   **{name: found([n for n in negatives if n["kind"] == kind], name) for name in TOOLS}}
            for kind in NEGATIVE_KINDS}
    planted_together = sum(len(r["pairs"]) + len(r["negatives"]) for r in results)
    unrelated = {"pairs": sum(r["files"] * (r["files"] - 1) // 2 for r in results) - planted_together,
                 **{name: (None if any(r["unrelated"][name] is None for r in results)
                           else sum(len(r["unrelated"][name]) for r in results)) for name in TOOLS}}
    timing = {}
    for name in TOOLS:
        runs = [r["tools"][name] for r in results if "error" not in r["tools"][name]]
        if runs:
            timing[name] = {key: float(np.mean([t[key] for t in runs])) for key in ("wall_s", "cpu_s", "peak_rss_mb")}
    return {"transforms": transforms, "hard_negatives": hard, "unrelated": unrelated,
            "copies": {"planted": len(pairs), **{name: found(pairs, name) for name in TOOLS},
                       "datacheck_leak": sum(p["datacheck_leak"] for p in pairs)},
            "timing_mean_per_run": timing}


# --------------------------------------------------------------------------- report


def environment(args: argparse.Namespace, seeds: list[int]) -> dict:
    import PIL

    import datacheck

    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "seeds": seeds, "sources": args.sources, "per_transform": args.per_transform,
            "negatives": args.negatives, "workers": args.workers, "checks": CHECKS,
            "cpu_count": os.cpu_count(), "nproc": len(os.sched_getaffinity(0)), "machine": platform.machine(),
            "versions": {"python": platform.python_version(), "datacheck": datacheck.__version__,
                         "numpy": np.__version__, "pillow": PIL.__version__}}


def _count(value: int | None, total: int) -> str:
    return "-" if value is None else f"{value}/{total}"


def print_report(env: dict, results: list[dict], table: dict) -> None:
    v, first = env["versions"], results[0]
    cv_version = next((r["tools"]["cleanvision"].get("version") for r in results
                       if r["tools"]["cleanvision"].get("version")), "?")
    print(f"seeds {', '.join(map(str, env['seeds']))}: per seed {first['files']} files: "
          f"{sum(first['sources'].values())} sources ({', '.join(f'{k} {n}' for k, n in first['sources'].items())}; "
          f"dataset images from {first['dataset_source']}), {len(first['pairs'])} copies, "
          f"{len(first['negatives'])} hard-negative pairs; nproc={env['nproc']}; Python {v['python']}, "
          f"datacheck {v['datacheck']}, CleanVision {cv_version}, Pillow {v['pillow']}")
    for r in results:
        for name, tool in r["tools"].items():
            if "error" in tool:
                print(f"seed {r['seed']}: {name} FAILED (exit {tool['returncode']}): {tool['error']}")
    print(f"\n{'copy made by':<17}{'n':>4}{'datacheck':>11}{'CleanVision':>13}{'dc leak':>9}{'dc nearest':>12}"
          "   by kind, datacheck | CleanVision (photo dataset drawn)")
    for transform, row in table["transforms"].items():
        n = row["planted"]
        median = fmt(row["datacheck_nearest_median"], ".3f", 12)
        kinds = [" ".join(_count(k[name], k["planted"]) for k in row["by_kind"].values()) for name in TOOLS]
        print(f"{transform:<17}{n:>4}{_count(row['datacheck'], n):>11}{_count(row['cleanvision'], n):>13}"
              f"{row['datacheck_leak']:>9}{median}   {kinds[0]} | {kinds[1]}")
    c = table["copies"]
    print(f"{'all copies':<17}{c['planted']:>4}{_count(c['datacheck'], c['planted']):>11}"
          f"{_count(c['cleanvision'], c['planted']):>13}{c['datacheck_leak']:>9}")
    print(f"\n{'false positives (pairs grouped)':<36}{'pairs':>8}{'datacheck':>11}{'CleanVision':>13}")
    for kind, row in table["hard_negatives"].items():
        print(f"{'hard negative, ' + kind:<36}{row['pairs']:>8}{fmt(row['datacheck'], 'd', 11)}"
              f"{fmt(row['cleanvision'], 'd', 13)}")
    u = table["unrelated"]
    print(f"{'unrelated pairs':<36}{u['pairs']:>8}{fmt(u['datacheck'], 'd', 11)}{fmt(u['cleanvision'], 'd', 13)}")
    print(f"\n{'per run':<13}{'wall s':>8}{'CPU s':>8}{'peak RSS MB':>13}")
    for name, t in table["timing_mean_per_run"].items():
        print(f"{name:<13}{t['wall_s']:>8.1f}{t['cpu_s']:>8.1f}{t['peak_rss_mb']:>13.0f}")
    dc = first["tools"]["datacheck"]
    if "error" not in dc:
        th = dc.get("threshold", {})
        print(f"datacheck: {dc['command']}; near-duplicate cut {th.get('min_similarity')} "
              f"(chance q0.99 {th.get('chance_similarity_q0.99')}, seed {first['seed']})")
    cv = first["tools"]["cleanvision"]
    if "error" not in cv:
        print(f"CleanVision: Imagelab.find_issues(exact_duplicates, near_duplicates), defaults (md5 of the "
              f"pixels, equal 8x8 pHash); import {cv['import_s']:.1f} s, find_issues {cv['find_s']:.1f} s "
              f"(seed {first['seed']})")
    print("(found: the copy in the same group/set as its source; dc leak: copies flagged by split_leakage; dc "
          "nearest: median over the copies of near_duplicates' nearest_similarity, the copy's highest similarity "
          "to a descriptor candidate with other pixels; wall/CPU/RSS: the tool's process, imports included)")
    for name in TOOLS:
        grouped = [p for r in results for p in (r["unrelated"][name] or [])]
        if grouped:
            print(f"{name}, unrelated pairs grouped (first 5): " + "; ".join(" + ".join(p) for p in grouped[:5]))
        wrong = [f"{n['a']} + {n['b']}" for r in results for n in r["negatives"] if n[name]]
        if wrong:
            print(f"{name}, hard negatives grouped (first 5): " + "; ".join(wrong[:5]))


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cleanvision_worker:
        cleanvision_worker(*args.cleanvision_worker)
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="datacheck-near-dup-variants-"))
    seeds = list(range(args.seed, args.seed + args.repeats))
    results = [run_seed(seed, work / f"seed{seed}", args) for seed in seeds]
    table = summarize(results)
    env = environment(args, seeds)
    print_report(env, results, table)
    if args.json:
        args.json.write_text(json.dumps({**env, "work": str(work), "transforms": TRANSFORMS, "summary": table,
                                         "runs": results}, indent=1) + "\n")
    return 1 if any("error" in tool for r in results for tool in r["tools"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())

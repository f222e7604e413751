"""How fast ``datacheck audit`` reads a folder of camera-sized JPEG photos, against a full decode.

Photos are where decoding dominates: a 12-megapixel JPEG takes a few hundred milliseconds to
decode and hash whole, while every image statistic is taken on a copy of at most 256 px. So
datacheck decodes a JPEG of at least 512 px a side at 1/2-1/8 scale (libjpeg's scaled IDCT)
and the audit may beat the bare full decode of the same files.

1. **Data** (made once, cached under ``--data-dir``): ``--photos`` JPEGs (quality 90) of
   ``--width`` x ``--height`` pixels in ``train/cK/`` folders, 4 classes: smooth colour
   fields under soft shapes, drawn at 1/8 size and enlarged, with per-pixel sensor noise of
   +-6 levels (so the files have a photo's entropy). Planted, each from its own original:
   ``--plants`` *metadata copies* (the same JPEG bytes with an EXIF description added: other
   file, same image data), *lossless re-saves* (the original's decoded pixels saved as PNG)
   and *re-encodes* (saved again as JPEG at quality 75). ``truth.json`` lists them.
2. **Full decode**: every file opened with PIL and made an RGB numpy array by ``--workers``
   processes (page cache warmed first).
3. **Audit**: ``datacheck audit DIR --checks image_properties,exact_duplicates,near_duplicates
   --cache-dir off --workers W -q --json`` in a measured subprocess (as ``scale_images.py``).
4. **Scores**: a metadata copy should be an ``exact_duplicates`` pair with its original; a
   lossless re-save and a re-encode a ``near_duplicates`` pair (either member flagged).

Run from the repository root::

    python benchmarks/photo_folder.py [--photos 120] [--width 4000] [--height 3000]
        [--plants 8] [--workers 2] [--seed 0] [--data-dir DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from _common import int_at_least  # benchmarks/ is on sys.path when run as a script
from scale import measured
from scale_images import decode_seconds, flagged_ids  # the full decode in a pool, and the flags per check

CHECKS = "image_properties,exact_duplicates,near_duplicates"
CLASSES = 4
GENERATOR_VERSION = 1
PLANTED = {"metadata copy": "exact_duplicates", "lossless re-save": "near_duplicates", "re-encode": "near_duplicates"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    default_dir = Path(tempfile.gettempdir()) / "datacheck-photos"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int_at_least(20), default=120, help="original photos (default: 120)")
    parser.add_argument("--width", type=int_at_least(64), default=4000, help="photo width in pixels (default: 4000)")
    parser.add_argument("--height", type=int_at_least(64), default=3000, help="photo height in pixels (default: 3000)")
    parser.add_argument("--plants", type=int_at_least(1), default=8, help="planted copies of each kind (default: 8)")
    parser.add_argument("--workers", type=int_at_least(1), default=2, help="processes for decoding and the audit")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the generated photos")
    parser.add_argument("--data-dir", type=Path, default=default_dir, help=f"generated folders and runs (default: {default_dir})")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- the data


def draw_photo(index: int, seed: int, width: int, height: int) -> np.ndarray:
    """A photo-like RGB image (height, width, 3) uint8, drawn from ``default_rng([seed, index])``."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng([seed, index])
    small_w, small_h = max(8, width // 8), max(8, height // 8)
    corners = rng.integers(0, 256, (2, 2, 3)).astype(np.float32)
    ys, xs = np.linspace(0, 1, small_h)[:, None, None], np.linspace(0, 1, small_w)[None, :, None]
    field = (corners[0, 0] * (1 - ys) * (1 - xs) + corners[0, 1] * (1 - ys) * xs
             + corners[1, 0] * ys * (1 - xs) + corners[1, 1] * ys * xs)
    image = Image.fromarray(field.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 7))):
        x0, y0 = rng.integers(0, small_w), rng.integers(0, small_h)
        size = int(rng.integers(small_w // 10, small_w // 3))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x0 + size, y0 + size * rng.uniform(0.5, 1.5)), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.5)).resize((width, height), Image.Resampling.BICUBIC)
    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-6, 7, (height, width, 3), dtype=np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _write(job: tuple) -> None:
    from PIL import Image

    root, index, seed, width, height = job
    path = root / "train" / f"c{index % CLASSES}" / f"{index:05d}.jpg"
    Image.fromarray(draw_photo(index, seed, width, height)).save(path, quality=90)


def generated_folder(args: argparse.Namespace) -> Path:
    """The cached folder of photos and planted copies (made here when missing)."""
    from PIL import Image

    name = f"photos{args.photos}-{args.width}x{args.height}-plants{args.plants}-seed{args.seed}-v{GENERATOR_VERSION}"
    root = args.data_dir / name
    if (root / "truth.json").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for label in range(CLASSES):
        (root / "train" / f"c{label}").mkdir(parents=True)
    with ProcessPoolExecutor(args.workers) as pool:
        list(pool.map(_write, [(root, i, args.seed, args.width, args.height) for i in range(args.photos)]))
    rng = np.random.default_rng(args.seed)
    originals = rng.choice(args.photos, size=3 * args.plants, replace=False)
    pairs = []
    for k, index in enumerate(originals):
        kind = list(PLANTED)[k // args.plants]
        source = root / "train" / f"c{index % CLASSES}" / f"{index:05d}.jpg"
        stem = source.parent / f"copy{k:03d}"
        if kind == "metadata copy":
            copy = stem.with_suffix(".jpg")
            exif = Image.Exif()
            exif[0x010E] = "a description added by a photo manager"  # ImageDescription
            data = source.read_bytes()  # the image data kept byte for byte: an APP1 segment spliced in after SOI
            segment = b"Exif\x00\x00" + exif.tobytes()
            copy.write_bytes(data[:2] + b"\xff\xe1" + (len(segment) + 2).to_bytes(2, "big") + segment + data[2:])
        elif kind == "lossless re-save":
            copy = stem.with_suffix(".png")
            with Image.open(source) as image:
                image.convert("RGB").save(copy, compress_level=1)
        else:
            copy = stem.with_suffix(".jpg")
            with Image.open(source) as image:
                image.save(copy, quality=75)
        pairs.append({"kind": kind, "original": source.relative_to(root).as_posix(), "copy": copy.relative_to(root).as_posix()})
    (root / "truth.json").write_text(json.dumps({"pairs": pairs}, indent=1))
    return root


# --------------------------------------------------------------------------- measuring


def image_paths(root: Path) -> list[str]:
    return sorted(str(p) for p in (root / "train").rglob("*") if p.suffix in (".jpg", ".png"))


def run_audit(root: Path, runs: Path, workers: int) -> dict:
    run_dir = runs / f"audit-{root.name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    runs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "datacheck", "audit", str(root), "--out", str(run_dir), "--checks", CHECKS,
           "--cache-dir", "off", "--workers", str(workers), "-q", "--json", "--fail-on", ""]
    result = {"command": " ".join(["datacheck", *cmd[3:]]), **measured(cmd, runs / f"{run_dir.name}.measure.json")}
    if result["returncode"] == 0:
        result["timings_s"] = json.loads((run_dir / "summary.json").read_text())["timings_s"]
        result["flags"] = flagged_ids(run_dir / "findings.parquet")
    return result


def score(flags: dict, pairs: list[dict]) -> dict:
    """Found / planted per kind: the pair flagged (either member) by the check that answers it."""
    out = {}
    for kind, check in PLANTED.items():
        flagged = flags.get(check, set())
        planted = [p for p in pairs if p["kind"] == kind]
        found = [p for p in planted if p["copy"] in flagged or p["original"] in flagged]
        out[kind] = {"check": check, "planted": len(planted), "found": len(found)}
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    root = generated_folder(args)
    print(f"data: {root} (made or found in {time.perf_counter() - started:.0f} s)")
    paths = image_paths(root)
    for path in paths:  # into the page cache, for both measurements
        Path(path).read_bytes()
    decode = decode_seconds(paths, args.workers, chunk=8)  # a few photos per task: both processes busy
    audit = run_audit(root, args.data_dir / "runs", args.workers)
    if audit["returncode"] != 0:
        print(f"audit failed (exit {audit['returncode']})", file=sys.stderr)
        return 1
    scores = score(audit["flags"], json.loads((root / "truth.json").read_text())["pairs"])
    ratio = audit["wall_s"] / decode
    print(f"{len(paths)} files of {args.width}x{args.height}, {args.workers} processes")
    print(f"full decode      {decode:8.2f} s  ({len(paths) / decode:.1f} photos/s)")
    print(f"datacheck audit  {audit['wall_s']:8.2f} s  peak RSS {audit['peak_rss_mb']:.0f} MB  "
          f"image_stats {audit['timings_s'].get('image_stats', float('nan')):.2f} s")
    print(f"audit / full decode: {ratio:.2f}")
    for kind, s in scores.items():
        print(f"  {kind:18s} {s['check']:17s} found {s['found']}/{s['planted']}")
    if args.json:
        audit.pop("flags")  # sets: not JSON
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "files": len(paths), "decode_s": decode,
                                         "audit": audit, "audit_over_decode": ratio, "scores": scores}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

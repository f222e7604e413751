"""How fast ``datacheck audit`` reads a large folder of images, against the machine's decode rate.

The second part of issue 17's scale benchmark. Target: the whole image audit (image
properties, exact and near duplicates, split leakage, class imbalance: no model) takes at
most 2.0 times as long as decoding the same files, with the same number of processes.

1. **Data** (made once, cached under ``--data-dir``): ``--images`` 32x32 RGB PNGs laid out as
   ``split/class/file.png``, about 80 % ``train`` and 20 % ``val``, 10 classes. Each image
   is a smooth two-colour gradient under 2-4 shapes (discs, boxes, lines) of random colours,
   sizes and places, then the class's emblem (a shape per class, a hue per class, both
   jittered), drawn at 4x and reduced (smooth edges), with +-3 levels of per-pixel noise.
   Image ``i`` is drawn from ``np.random.default_rng([seed, i])``. Planted, about 0.5 % of
   the files each, and listed in ``truth.json`` at the dataset root (sample ids = paths
   relative to the root, as datacheck names them):

   * exact duplicates: an image's pixels saved again in the same split with another PNG
     compression level (other bytes, same pixels);
   * near duplicates: in the same split, a copy shifted by 1-2 pixels (edges repeated),
     reduced to 3/4 size and enlarged again (Lanczos), or 3-8 levels brighter or darker;
   * train->val leaks: an exact or near copy (as above) of a train image, placed in val.

2. **Decode rate**: every file opened with PIL, converted to RGB and made a numpy array by
   ``--workers`` processes (page cache warmed first), in images/s.
3. **Audit**: ``python -m datacheck audit DIR --out RUN --checks CHECKS --cache-dir off
   --workers W -q --json`` in a subprocess (a fresh run folder: a reused one would read its
   image statistics back), its wall time and peak resident memory measured by the small
   process that waits for it (``scale.measured``), and the seconds per stage from its
   ``summary.json``.
4. **Scores** from ``findings.parquet``, per planted kind with the check that answers it:
   recall = planted pairs found (exact/near duplicates: either member flagged, as a group
   keeps one member unflagged; leaks: the val copy flagged by ``split_leakage``); precision =
   share of the check's flags on members of the planted pairs it should find
   (``exact_duplicates``: pairs of identical pixels, leaks included; ``near_duplicates``:
   near copies, leaks included; ``split_leakage``: leaks).

Run from the repository root (generating 100,000 images takes about 90 s on 2 cores, once)::

    python benchmarks/scale_images.py [--images 100000] [--data-dir /tmp/datacheck-scale-images]
        [--workers 2] [--seed 0] [--json PATH]

The run folder (findings, ``summary.json``, the audit's stdout/stderr) is kept under
``--data-dir``/runs. Exit status 1 when the audit failed.
"""

from __future__ import annotations

import argparse
import colorsys
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _common import int_at_least  # benchmarks/ is on sys.path when run as a script
from scale import measured

CHECKS = "image_properties,exact_duplicates,near_duplicates,split_leakage,class_imbalance"
TARGET_RATIO = 2.0  # audit wall time / bare decode time
GENERATOR_VERSION = 1  # part of the cached folder's name: bump when the images change

# ---- the generated images (see draw_image and plan)
SIDE = 32
SUPERSAMPLE = 4  # shapes are drawn at 4x and reduced by area averaging: smooth edges
CLASSES = 10
EMBLEMS = ("disc", "square", "triangle", "diamond", "ring")  # class k's emblem: EMBLEMS[k % 5], hue k / 10
NOISE = 3  # per-pixel noise, uniform in -3..3 levels
VAL_FRACTION = 0.2
PLANT_RATE = 0.005  # of the images, per planted kind
NEAR_VARIANTS = ("shift", "resize", "brightness")
EXACT_COMPRESS_LEVEL = 1  # originals use PIL's default, 6
CHUNK = 2_000  # images per generation task
DECODE_CHUNK = 256  # files per decode task

# Planted kind -> variants its copies take, and the check that answers it.
KINDS = {"exact duplicates": ("exact",), "near duplicates": NEAR_VARIANTS,
         "train->val leaks": ("exact", *NEAR_VARIANTS)}
CHECK_OF = {"exact duplicates": "exact_duplicates", "near duplicates": "near_duplicates",
            "train->val leaks": "split_leakage"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    default_dir = Path(tempfile.gettempdir()) / "datacheck-scale-images"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int_at_least(200), default=100_000, help="images to generate (default: 100000)")
    parser.add_argument("--data-dir", type=Path, default=default_dir,
                        help=f"cache of generated folders and run folders (default: {default_dir})")
    parser.add_argument("--workers", type=int_at_least(1), default=2,
                        help="processes for the decode rate and the audit's --workers (default: 2)")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the generated images")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- the data


def plan(n: int, seed: int) -> dict[str, np.ndarray]:
    """What each of the ``n`` files is: ``label`` (n,) int, ``split`` (n,) str, ``source``
    (n,) int (the original a planted copy is made from, -1 for an original), ``kind`` and
    ``variant`` (n,) str ("" for an original).

    Copies and their originals are disjoint random files; a copy takes its original's label,
    and its split (duplicates) or val with the original in train (leaks)."""
    rng = np.random.default_rng([seed, n])
    label = rng.integers(0, CLASSES, n)
    split = np.where(rng.random(n) < VAL_FRACTION, "val", "train").astype(object)
    source = np.full(n, -1)
    kind = np.full(n, "", dtype=object)
    variant = np.full(n, "", dtype=object)
    count = round(PLANT_RATE * n)
    shuffled = rng.permutation(n)
    for k, (name, variants) in enumerate(KINDS.items()):
        copies = shuffled[2 * k * count : (2 * k + 1) * count]
        originals = shuffled[(2 * k + 1) * count : (2 * k + 2) * count]
        source[copies], kind[copies], label[copies] = originals, name, label[originals]
        variant[copies] = rng.choice(variants, len(copies))
        if name == "train->val leaks":
            split[originals], split[copies] = "train", "val"
        else:
            split[copies] = split[originals]
    return {"label": label, "split": split, "source": source, "kind": kind, "variant": variant}


def sample_id(index: int, label: int, split: str) -> str:
    """The file's path relative to the dataset root: datacheck's sample id for a folder."""
    return f"{split}/c{label}/{index:07d}.png"


def draw_image(index: int, label: int, seed: int) -> np.ndarray:
    """Image ``index`` of class ``label``, (SIDE, SIDE, 3) uint8, from its own random stream."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed, index])
    big = SIDE * SUPERSAMPLE
    ends = rng.integers(0, 256, (2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:big, 0:big]
    t = x * np.cos(angle) + y * np.sin(angle)
    t = ((t - t.min()) / (t.max() - t.min()))[..., None]
    canvas = Image.fromarray(((1 - t) * ends[0] + t * ends[1]).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(2, 5)):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = rng.uniform(0, big, 2)
        rx, ry = rng.uniform(0.08, 0.3) * big * rng.uniform(0.5, 1.5, 2)
        shape = rng.integers(0, 3)
        if shape == 0:
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)
        elif shape == 1:
            draw.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)
        else:
            ends_xy = [tuple(rng.uniform(0, big, 2)), tuple(rng.uniform(0, big, 2))]
            draw.line(ends_xy, fill=colour, width=int(rng.integers(1, 4)) * SUPERSAMPLE)
    _draw_emblem(draw, label, rng, big)
    pixels = np.asarray(canvas.resize((SIDE, SIDE), Image.BOX), dtype=np.int16)
    pixels = pixels + rng.integers(-NOISE, NOISE + 1, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _draw_emblem(draw, label: int, rng: np.random.Generator, big: int) -> None:
    """The class's element, on top: its shape, in its hue family, at a random place."""
    hue = (label / CLASSES + rng.uniform(-0.03, 0.03)) % 1.0
    colour = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1), rng.uniform(0.6, 1)))
    r = rng.uniform(0.2, 0.3) * big
    cx, cy = rng.uniform(r, big - r, 2)
    emblem = EMBLEMS[label % len(EMBLEMS)]
    if emblem == "disc":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif emblem == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif emblem == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=colour)
    elif emblem == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=colour)
    else:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=int(0.3 * r))


def near_copy(pixels: np.ndarray, variant: str, rng: np.random.Generator) -> np.ndarray:
    """A copy a careful person would call the same picture: ``shift`` by 1-2 pixels (the
    edge pixels repeated), ``resize`` to 3/4 and back (Lanczos: a bilinear round trip blurs
    a 32-pixel image visibly), or ``brightness`` +-3..8 levels."""
    from PIL import Image

    if variant == "shift":
        dy, dx = 0, 0
        while max(abs(dy), abs(dx)) == 0:
            dy, dx = rng.integers(-2, 3, 2)
        padded = np.pad(pixels, ((2, 2), (2, 2), (0, 0)), mode="edge")
        return padded[2 + dy : 2 + dy + SIDE, 2 + dx : 2 + dx + SIDE].copy()
    if variant == "resize":
        small = Image.fromarray(pixels).resize((SIDE * 3 // 4, SIDE * 3 // 4), Image.LANCZOS)
        return np.asarray(small.resize((SIDE, SIDE), Image.LANCZOS))
    if variant == "brightness":
        delta = rng.integers(3, 9) * rng.choice([-1, 1])
        return np.clip(pixels.astype(np.int16) + delta, 0, 255).astype(np.uint8)
    raise ValueError(f"unknown variant {variant!r}")


def _write_images(job: tuple[str, int, list[tuple]]) -> None:
    """Write one chunk of files; a job's rows are ``(index, label, split, source, variant)``."""
    from PIL import Image

    root, seed, rows = job
    for index, label, split, source, variant in rows:
        path = Path(root) / sample_id(index, label, split)
        if source < 0:
            Image.fromarray(draw_image(index, label, seed)).save(path)
            continue
        pixels = draw_image(source, label, seed)
        if variant == "exact":
            Image.fromarray(pixels).save(path, compress_level=EXACT_COMPRESS_LEVEL)
        else:
            Image.fromarray(near_copy(pixels, variant, np.random.default_rng([seed, index]))).save(path)


def generated_folder(n: int, seed: int, data_dir: Path) -> Path:
    """The cached folder of ``n`` generated images (made now, in parallel, if not complete)."""
    root = data_dir / f"images{n}-seed{seed}-v{GENERATOR_VERSION}"
    if (root / ".complete").exists():
        return root
    print(f"generating {n:,} images in {root} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    files = plan(n, seed)
    for split in ("train", "val"):
        for label in range(CLASSES):
            (root / split / f"c{label}").mkdir(parents=True, exist_ok=True)
    rows = list(zip(range(n), files["label"].tolist(), files["split"], files["source"].tolist(), files["variant"]))
    jobs = [(str(root), seed, rows[start : start + CHUNK]) for start in range(0, n, CHUNK)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_images, jobs))
    (root / "truth.json").write_text(json.dumps(truth(files, n, seed), indent=1) + "\n")
    (root / ".complete").touch()
    print(f"  done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return root


def truth(files: dict[str, np.ndarray], n: int, seed: int) -> dict:
    """The ground truth of a plan: every planted pair (kind, variant, original, copy ids)."""
    def id_of(i: int) -> str:
        return sample_id(i, int(files["label"][i]), files["split"][i])

    pairs = [{"kind": files["kind"][i], "variant": files["variant"][i], "original": id_of(int(files["source"][i])),
              "copy": id_of(i)} for i in np.flatnonzero(files["source"] >= 0)]
    return {"generator_version": GENERATOR_VERSION, "images": n, "side": SIDE, "classes": CLASSES, "seed": seed,
            "splits": {s: int((files["split"] == s).sum()) for s in ("train", "val")}, "pairs": pairs}


# --------------------------------------------------------------------------- measuring


def image_paths(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.png"))


def read_all(paths: list[str]) -> int:
    """Read every file once (so both measurements find them in the page cache); total bytes."""
    return sum(len(Path(p).read_bytes()) for p in paths)


def _decode(paths: list[str]) -> None:
    from PIL import Image

    for path in paths:
        with Image.open(path) as image:
            np.asarray(image.convert("RGB"))


def decode_seconds(paths: list[str], workers: int, chunk: int = DECODE_CHUNK) -> float:
    """Seconds ``workers`` processes take to decode every file to an RGB array (pool start
    included), ``chunk`` files per task."""
    chunks = [paths[start : start + chunk] for start in range(0, len(paths), chunk)]
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_decode, chunks))
    return time.perf_counter() - started


def run_audit(root: Path, runs: Path, workers: int) -> dict:
    """``datacheck audit`` of ``root`` in a measured subprocess: wall, CPU, peak RSS, the
    per-stage seconds and memory and check counts from ``summary.json``, the flagged ids per check."""
    run_dir = runs / f"audit-{root.name}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a reused run folder would read its image statistics back
    runs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "datacheck", "audit", str(root), "--out", str(run_dir), "--checks", CHECKS,
           "--cache-dir", "off", "--workers", str(workers), "-q", "--json"]
    report = runs / f"{run_dir.name}.measure.json"
    result = {"command": " ".join(["datacheck", *cmd[3:]]), **measured(cmd, report)}
    if result["returncode"] != 0:  # no gates are set: anything else is a failure
        lines = Path(f"{report}.stderr").read_text(errors="replace").strip().splitlines()
        return {**result, "error": " | ".join(lines[-5:]) or "(no output)"}
    summary = json.loads((run_dir / "summary.json").read_text())
    result["timings_s"] = summary["timings_s"]
    result["stage_peak_rss_mb"] = summary["peak_rss_mb"]
    result["flagged_per_check"] = {check: info.get("flagged") for check, info in summary["checks"].items()}
    result["skipped_files"] = summary.get("skipped_files", {})
    result["flags"] = flagged_ids(run_dir / "findings.parquet")
    return result


def flagged_ids(findings: Path) -> dict[str, set[str]]:
    """Sample ids flagged (``is_issue``) per check."""
    import pyarrow.parquet as pq

    frame = pq.read_table(findings, columns=["sample_id", "check"], filters=[("is_issue", "==", True)]).to_pandas()
    return {check: set(ids) for check, ids in frame.groupby("check")["sample_id"]}


# --------------------------------------------------------------------------- scoring


def score(flags: dict[str, set[str]], pairs: list[dict]) -> dict:
    """Recall and precision per planted kind (see the module docstring), with the missed pairs."""
    answers = {"exact_duplicates": [p for p in pairs if p["variant"] == "exact"],
               "near_duplicates": [p for p in pairs if p["variant"] != "exact"],
               "split_leakage": [p for p in pairs if p["kind"] == "train->val leaks"]}
    out = {}
    for kind, check in CHECK_OF.items():
        flagged = flags.get(check, set())
        planted = [p for p in pairs if p["kind"] == kind]
        if kind == "train->val leaks":
            missed = [p for p in planted if p["copy"] not in flagged]
        else:
            missed = [p for p in planted if p["copy"] not in flagged and p["original"] not in flagged]
        members = {p[role] for p in answers[check] for role in ("original", "copy")}
        right = len(flagged & members)
        found = len(planted) - len(missed)
        out[kind] = {"check": check, "planted": len(planted), "found": found, "flagged": len(flagged), "right": right,
                     "recall": found / len(planted) if planted else None,
                     "precision": right / len(flagged) if flagged else None,
                     "missed_by_variant": {v: sum(p["variant"] == v for p in missed) for v in KINDS[kind]},
                     "missed": missed}
    return out


# --------------------------------------------------------------------------- report


def environment(args: argparse.Namespace) -> dict:
    import PIL

    import datacheck

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "images": args.images, "seed": args.seed, "workers": args.workers, "checks": CHECKS,
        "cpu_count": os.cpu_count(), "nproc": len(os.sched_getaffinity(0)), "machine": platform.machine(),
        "versions": {"python": platform.python_version(), "datacheck": datacheck.__version__,
                     "numpy": np.__version__, "pillow": PIL.__version__},
    }


def fmt(value, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"


def print_report(env: dict, data: dict, audit: dict, scores: dict | None) -> None:
    v = env["versions"]
    print(f"{data['images']:,} generated {SIDE}x{SIDE} RGB PNGs ({data['megabytes']:.1f} MB), seed {env['seed']}; "
          f"nproc={env['nproc']}; Python {v['python']}, datacheck {v['datacheck']}, numpy {v['numpy']}, "
          f"Pillow {v['pillow']}")
    print(f"decode: PIL open + convert('RGB') + np.asarray, {env['workers']} processes; "
          f"audit: {audit['command']}\n")
    if "error" in audit:
        print(f"audit FAILED (exit {audit['returncode']}): {audit['error']}")
        return
    ratio = audit["over_decode"]
    print(f"{'images':>9}{'decode s':>10}{'decode img/s':>14}{'audit s':>9}{'audit CPU s':>13}"
          f"{'audit/decode':>14}{'peak RSS MB':>13}")
    print(f"{data['images']:>9,}{data['decode_s']:>10.2f}{data['decode_images_per_s']:>14,.0f}"
          f"{audit['wall_s']:>9.2f}{audit['cpu_s']:>13.1f}{ratio:>14.2f}{audit['peak_rss_mb']:>13.0f}")
    print(f"(target: audit/decode <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'NOT met'}; "
          "audit = process start to exit, imports included)")

    timings = audit["timings_s"]
    print(f"\n{'stage':<20}{'s':>8}{'RSS after MB':>14}")
    for stage, seconds in timings.items():
        print(f"{stage:<20}{seconds:>8.2f}{fmt(audit['stage_peak_rss_mb'].get(stage), '.0f', 14)}")
    print(f"{'outside stages':<20}{audit['wall_s'] - timings.get('total', 0.0):>8.2f}"
          "   (interpreter start, imports, writing the run)")
    if "image_stats" in timings:
        print(f"image_stats: {data['images'] / timings['image_stats']:,.0f} images/s "
              f"({timings['image_stats'] / data['decode_s']:.2f} x the bare decode)")
    print("flags per check: " + ", ".join(f"{c} {n}" for c, n in audit["flagged_per_check"].items() if n is not None))

    print(f"\n{'planted kind':<19}{'check':<18}{'planted':>8}{'found':>7}{'recall':>8}{'flagged':>9}{'right':>7}"
          f"{'precision':>11}  missed by variant")
    for kind, s in scores.items():
        missed = ", ".join(f"{v} {m}" for v, m in s["missed_by_variant"].items() if m) or "-"
        print(f"{kind:<19}{s['check']:<18}{s['planted']:>8}{s['found']:>7}{fmt(s['recall'], '.3f', 8)}"
              f"{s['flagged']:>9}{s['right']:>7}{fmt(s['precision'], '.3f', 11)}  {missed}")
    print("(found: exact/near duplicates, either member of the pair flagged; leaks, the val copy flagged. "
          "right: flags on members of the planted pairs the check should find: exact_duplicates, identical "
          "pixels, exact leaks included; near_duplicates, near copies, near leaks included)")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = generated_folder(args.images, args.seed, args.data_dir)
    pairs = json.loads((root / "truth.json").read_text())["pairs"]
    paths = image_paths(root)
    data = {"root": str(root), "images": len(paths), "megabytes": read_all(paths) / 1e6}
    print(f"decoding {len(paths):,} images with {args.workers} processes ...", file=sys.stderr, flush=True)
    data["decode_s"] = decode_seconds(paths, args.workers)
    data["decode_images_per_s"] = len(paths) / data["decode_s"]
    print("datacheck audit ...", file=sys.stderr, flush=True)
    audit = run_audit(root, args.data_dir / "runs", args.workers)
    if "error" not in audit:
        audit["over_decode"] = audit["wall_s"] / data["decode_s"]
    scores = score(audit.pop("flags"), pairs) if "flags" in audit else None
    env = environment(args)
    print_report(env, data, audit, scores)
    if args.json:
        report = {**env, "target_ratio": TARGET_RATIO, "data": data, "audit": audit, "scores": scores}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if "error" in audit else 0


if __name__ == "__main__":
    sys.exit(main())

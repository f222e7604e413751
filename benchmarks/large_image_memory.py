"""Peak memory and time of measuring one very large image, and of making its model input.

For each of a few large images, made here (seeded, the same every run) under ``--work``
(default: a temporary folder, removed afterwards):

* ``png16``: ``--side`` x ``--side`` 16-bit grey PNG (Pillow mode ``I;16``), a gradient with noise;
* ``rgba``: ``--side`` x ``--side`` RGBA PNG (gradients, noise, an alpha ramp);
* ``jpeg``: ``--side`` x ``--side`` RGB JPEG (quality 90);
* ``float``: a 32-bit float grey TIFF (mode ``F``, values 0-1000, uncompressed) of 3/4 ``--side``,

two operations are run, each in a fresh subprocess of its own (so one peak never hides in
another's): ``analyze`` = ``datacheck.engine.image_stats.analyze_image(path)`` (hash, statistics,
thumbnail, analysis copy) and ``model_input`` = ``datacheck.engine.loader.decode_resize_batch``
of that one file at ``--model-side`` (32) pixels (the model's pixel input made from the file).
Each subprocess imports datacheck, runs the operation once on a 16 x 16 image of the same kind
(lazy imports, first-call allocations), reads its peak resident memory (``ru_maxrss``: the
*baseline*), then runs the operation on the large image and reads the peak again and the wall
time. The table shows the absolute peak, the peak above the baseline, and that growth divided
by the image's decoded size (its pixels in their own mode: 2 bytes a pixel for ``I;16``, 4 for
RGBA and ``F``, 3 for RGB): the ratio to watch. The JPEG is decoded at a reduced scale by both
operations (``draft``), so its ratio is far below 1.

Linux reports a process's ``ru_maxrss`` as at least the resident size of the process that
started it (the peak of the memory it replaced at ``exec``): the images are therefore made in
a subprocess too, and this parent process stays small (it imports no numpy, no Pillow).

``--checkout DIR`` runs the datacheck of another checkout (e.g. a ``git worktree`` of an older
commit) with the same interpreter, for a before/after comparison in one session.

Run from the repository root (about a minute on 2 cores at the default side)::

    python benchmarks/large_image_memory.py [--side 8000] [--kinds png16,rgba,jpeg,float]
        [--model-side 32] [--seed 0] [--work DIR] [--checkout DIR] [--json PATH]

``--side 1500`` is a smoke test of a few seconds (``tests/test_benchmark_large_images.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from _common import int_at_least  # benchmarks/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parents[1]

#: kind -> (file name, Pillow mode, bytes a decoded pixel takes in that mode, bytes in 8 bits,
#: side as a fraction of --side)
KINDS = {
    "png16": ("png16.png", "I;16", 2, 1, 1.0),
    "rgba": ("rgba.png", "RGBA", 4, 4, 1.0),
    "jpeg": ("rgb.jpg", "RGB", 3, 3, 1.0),
    "float": ("float.tif", "F", 4, 1, 0.75),
}
OPERATIONS = ("analyze", "model_input")
WARMUP_SIDE = 16


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int_at_least(64), default=8000,
                        help="side of the large images in pixels (the float TIFF: 3/4 of it; default: 8000)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"comma-separated image kinds among {', '.join(KINDS)} (default: all)")
    parser.add_argument("--model-side", type=int_at_least(8), default=32, help="model input side in pixels (default: 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the images' noise (default: 0)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the images (kept; default: a temporary folder, removed afterwards)")
    parser.add_argument("--checkout", type=Path, default=REPO, help="datacheck checkout to run (default: this one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--make", nargs=4, metavar=("WORK", "SIDE", "SEED", "KINDS"), help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=5, metavar=("CHECKOUT", "OP", "PATH", "WARMUP", "MODEL_SIDE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        parser.error(f"--kinds: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(KINDS)}")
    args.kinds = kinds
    return args


# --------------------------------------------------------------------------- the images


def kind_side(kind: str, side: int) -> int:
    return max(WARMUP_SIDE, int(side * KINDS[kind][4]))


def make_images(work: str, side: str, seed: str, kinds: str) -> None:
    """Subprocess side: write each kind's large image and its 16 x 16 warm-up twin into ``work``."""
    import numpy as np
    from PIL import Image

    work_dir, side, seed = Path(work), int(side), int(seed)
    for kind in kinds.split(","):
        for size, prefix in ((kind_side(kind, side), ""), (WARMUP_SIDE, "warmup-")):
            rng = np.random.default_rng([seed, list(KINDS).index(kind), size])
            image = _draw(kind, size, rng, np, Image)
            path = work_dir / (prefix + KINDS[kind][0])
            if kind == "jpeg":
                image.save(path, quality=90)
            elif kind == "float":
                image.save(path, compression=None)
            else:
                image.save(path, compress_level=1)  # fast; the decoded pixels are what is measured
            del image


def _draw(kind: str, n: int, rng, np, Image):
    y = np.arange(n, dtype=np.uint32)[:, None]
    x = np.arange(n, dtype=np.uint32)[None, :]
    if kind == "png16":
        # A diagonal ramp over the whole 16-bit range, some 12 bits of it in noise-free steps.
        values = ((x * 40000 // n + y * 25000 // n) + rng.integers(0, 512, (n, n), dtype=np.uint32)).astype(np.uint16)
        return Image.fromarray(values)  # uint16 (H, W): mode I;16
    if kind == "float":
        ramp = (x.astype(np.float32) * np.float32(600.0 / n) + y.astype(np.float32) * np.float32(300.0 / n))
        return Image.fromarray(ramp + rng.random((n, n), dtype=np.float32) * np.float32(100.0))  # mode F
    channels = 4 if kind == "rgba" else 3
    pixels = np.empty((n, n, channels), np.uint8)
    pixels[..., 0] = (x * 255 // n).astype(np.uint8)
    pixels[..., 1] = (y * 255 // n).astype(np.uint8)
    pixels[..., 2] = ((x + y) * 127 // n).astype(np.uint8)
    pixels[..., :3] += rng.integers(0, 16, (n, n, 3), dtype=np.uint8)
    if channels == 4:
        pixels[..., 3] = np.maximum(64, 255 - (y * 255 // n)).astype(np.uint8)  # opaque at the top
    return Image.fromarray(pixels)  # (H, W, 3/4) uint8: RGB / RGBA


# --------------------------------------------------------------------------- measuring


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def worker(checkout: str, operation: str, path: str, warmup: str, model_side: str) -> None:
    """Subprocess side: import datacheck from ``checkout``, warm ``operation`` up on ``warmup``,
    then run it on ``path`` and print its peak RSS (absolute and above the baseline) and time."""
    start_mb = _peak_mb()
    sys.path.insert(0, checkout)
    import datacheck
    from datacheck.engine.image_stats import analyze_image
    from datacheck.engine.loader import decode_resize_batch

    assert Path(datacheck.__file__).resolve().is_relative_to(Path(checkout).resolve()), datacheck.__file__
    side = int(model_side)

    def run(file: str) -> str:
        if operation == "analyze":
            return analyze_image(file)["error"]
        result = decode_resize_batch({"path": [file]}, side)
        assert result["pixels"][0].shape == (3, side, side)
        return "" if result["ok"][0] else "not decoded"

    warm_error = run(warmup)
    baseline_mb = _peak_mb()
    started = time.perf_counter()
    error = run(path)
    seconds = time.perf_counter() - started
    peak_mb = _peak_mb()
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb, "baseline_rss_mb": baseline_mb,
                      "above_baseline_mb": peak_mb - baseline_mb, "start_rss_mb": start_mb,
                      "error": error or warm_error}))


def measure(checkout: Path, operation: str, path: Path, warmup: Path, model_side: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", str(checkout), operation, str(path), str(warmup),
                          str(model_side)], capture_output=True, text=True, cwd=checkout)
    if out.returncode != 0:
        raise SystemExit(f"{operation} of {path.name} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _commit(checkout: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def run_all(args: argparse.Namespace, work: Path) -> dict:
    checkout = args.checkout.resolve()
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--make", str(work), str(args.side), str(args.seed), ",".join(args.kinds)],
                   check=True)
    make_s = time.perf_counter() - started
    images = {}
    for kind in args.kinds:
        name, mode, nbytes, nbytes8, _ = KINDS[kind]
        n = kind_side(kind, args.side)
        path = work / name
        images[kind] = {
            "file": name, "mode": mode, "width": n, "height": n, "file_mb": path.stat().st_size / 2**20,
            "decoded_mb": n * n * nbytes / 2**20, "decoded_8bit_mb": n * n * nbytes8 / 2**20,
            "operations": {op: measure(checkout, op, path, work / ("warmup-" + name), args.model_side)
                           for op in OPERATIONS},
        }
    return {
        "checkout": str(checkout), "commit": _commit(checkout), "side": args.side, "model_side": args.model_side,
        "seed": args.seed, "utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(), "nproc": len(os.sched_getaffinity(0)),
        "load_average": os.getloadavg(), "make_images_s": make_s, "total_s": time.perf_counter() - started,
        "images": images,
    }


def print_table(report: dict) -> None:
    print(f"checkout {report['checkout']} ({report['commit'] or 'no git'}); side {report['side']} px, model input "
          f"{report['model_side']} px; {report['utc']}; nproc={report['nproc']}, load average "
          f"{report['load_average'][0]:.1f}; images made in {report['make_images_s']:.1f} s")
    head = (f"{'image':<28}{'operation':<13}{'decoded MB':>11}{'peak MB':>9}{'baseline':>9}{'above':>8}"
            f"{'above/decoded':>15}{'seconds':>9}")
    print(head)
    print("-" * len(head))
    for kind, image in report["images"].items():
        label = f"{kind} {image['width']}x{image['height']} {image['mode']}"
        for op, r in image["operations"].items():
            ratio = r["above_baseline_mb"] / image["decoded_mb"]
            note = f"  ERROR: {r['error']}" if r["error"] else ""
            print(f"{label:<28}{op:<13}{image['decoded_mb']:>11,.0f}{r['peak_rss_mb']:>9,.0f}"
                  f"{r['baseline_rss_mb']:>9,.0f}{r['above_baseline_mb']:>8,.0f}{ratio:>15.2f}{r['seconds']:>9.2f}{note}")
    print(f"total {report['total_s']:.1f} s")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.make:
        make_images(*args.make)
        return
    if args.worker:
        worker(*args.worker)
        return
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        report = run_all(args, args.work.resolve())
    else:
        work = Path(tempfile.mkdtemp(prefix="datacheck-bench-large-"))
        try:
            report = run_all(args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if any(r["error"] for image in report["images"].values() for r in image["operations"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Benchmark datacheck's image checks against CleanVision and the raw decode rate.

On one image folder (default ``../shared/data/roman`` from the repository root), in one run:

1. **raw decode**: ``Image.open(p).load()`` on every file in a ``multiprocessing`` pool:
   the ceiling for any tool that must read every pixel.
2. **datacheck**: ``datacheck.audit(...)`` with the image-property and duplicate checks
   (``image_properties``, ``exact_duplicates``, ``near_duplicates``, ``split_leakage``),
   each repetition into a fresh run directory so no cached image statistics are reused.
   Its decode stage (``summary["timings_s"]["image_stats"]``) is reported on its own too.
3. **CleanVision**: ``Imagelab(filepaths=...).find_issues()`` with its default issue types.

All three read the same files (datacheck's manifest of the folder) with the same number of
worker processes (datacheck's default, or ``--workers``). Each tool is timed ``--repeat``
times, interleaved, and its best wall time is kept, with the CPU time of that run (which a
busy machine inflates much less); nothing is warmed up beyond imports. The script prints
the speed table, datacheck's stage timings and, side by side, how many images each tool
flags per issue type.

Run from the repository root (CleanVision comes with ``pip install -e '.[bench]'``)::

    python benchmarks/image_checks.py [--data PATH] [--workers N] [--repeat N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

# CleanVision draws tqdm progress bars even with verbose=False; tqdm reads this on import.
os.environ.setdefault("TQDM_DISABLE", "1")

import cleanvision  # noqa: E402
import numpy as np  # noqa: E402
import PIL  # noqa: E402
import torch  # noqa: E402
from cleanvision import Imagelab  # noqa: E402
from PIL import Image  # noqa: E402

import datacheck  # noqa: E402
from datacheck.engine.loader import default_workers  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "roman"
CHECKS = ["image_properties", "exact_duplicates", "near_duplicates", "split_leakage"]
# Issue types both tools report, in the order shown.
COMPARED_ISSUES = [
    "dark", "light", "blurry", "low_information", "odd_size", "odd_aspect_ratio", "grayscale",
    "exact_duplicates", "near_duplicates",
]
DUPLICATE_ISSUES = ("exact_duplicates", "near_duplicates")
CHUNK = 32  # files per task in the raw-decode pool (datacheck's default batch size)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"image folder (default: {DEFAULT_DATA})")
    parser.add_argument("--workers", type=_positive_int, default=None,
                        help="worker processes for every tool (default: datacheck's default_workers())")
    parser.add_argument("--repeat", type=_positive_int, default=1, help="timed repetitions per tool; best is kept")
    parser.add_argument("--seed", type=int, default=0, help="seed for datacheck and the global RNGs")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.exit(2, f"error: dataset folder not found: {args.data} (pass --data PATH)\n")
    if args.workers is None:
        args.workers = default_workers()
    return args


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _decode(path: str) -> None:
    with Image.open(path) as im:
        im.load()


def run_raw_decode(paths: list[str], workers: int) -> dict:
    """Decode every file once in a pool of ``workers`` processes."""
    with multiprocessing.Pool(workers) as pool:
        for _ in pool.imap_unordered(_decode, paths, chunksize=CHUNK):
            pass
    return {}


def run_datacheck(data: Path, workers: int, seed: int) -> dict:
    """One audit into a fresh temporary run directory; its summary's timings and flag counts."""
    with tempfile.TemporaryDirectory(prefix="datacheck-bench-") as tmp:
        result = datacheck.audit(data, out=Path(tmp) / "run", checks=CHECKS, workers=workers, seed=seed)
    summary = result.summary
    return {
        "timings_s": summary["timings_s"],
        "flagged": {check: info["flagged"] for check, info in summary["checks"].items()},
    }


def run_cleanvision(paths: list[str], workers: int) -> dict:
    """CleanVision's default issue types; images per issue type, and duplicate sets."""
    imagelab = Imagelab(filepaths=paths, verbose=False)
    imagelab.find_issues(n_jobs=workers, verbose=False)
    summary = imagelab.issue_summary
    return {
        "flagged": {str(t): int(n) for t, n in zip(summary["issue_type"], summary["num_images"], strict=True)},
        "duplicate_sets": {t: len(imagelab.info.get(t, {}).get("sets", [])) for t in DUPLICATE_ISSUES},
    }


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its children that have exited (the workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def best_of(runs: list[tuple[float, float, dict]], n_images: int) -> dict:
    """The fastest of ``(seconds, cpu_seconds, details)`` runs, with its rate and every run's times."""
    seconds, cpu, details = min(runs, key=lambda run: run[0])
    return {"seconds": seconds, "cpu_seconds": cpu, "images_per_s": n_images / seconds,
            "all_seconds": [run[0] for run in runs], "all_cpu_seconds": [run[1] for run in runs], **details}


def benchmark(paths: list[str], data: Path, workers: int, repeat: int, seed: int) -> dict:
    """Time each tool ``repeat`` times, interleaved (raw, datacheck, CleanVision, raw, ...)."""
    tools = {
        "raw decode": lambda: run_raw_decode(paths, workers),
        "datacheck": lambda: run_datacheck(data, workers, seed),
        "CleanVision": lambda: run_cleanvision(paths, workers),
    }
    runs: dict[str, list] = {name: [] for name in tools}
    for _ in range(repeat):
        for name, tool in tools.items():
            seed_everything(seed)
            started, cpu_started = time.perf_counter(), cpu_seconds()
            details = tool()
            runs[name].append((time.perf_counter() - started, cpu_seconds() - cpu_started, details))
    return {name: best_of(r, len(paths)) for name, r in runs.items()}


def compare(results: dict, n_images: int) -> dict:
    """Speed-up over CleanVision, fractions of the raw decode rate, flag counts side by side."""
    raw, dc, cv = results["raw decode"], results["datacheck"], results["CleanVision"]
    decode_s = dc["timings_s"].get("image_stats")
    return {
        "speedup_vs_cleanvision": cv["seconds"] / dc["seconds"],
        "fraction_of_raw_decode": dc["images_per_s"] / raw["images_per_s"],
        "datacheck_decode_stage_s": decode_s,
        "datacheck_decode_stage_images_per_s": n_images / decode_s if decode_s else None,
        "decode_stage_fraction_of_raw_decode": raw["seconds"] / decode_s if decode_s else None,
        "flagged": {
            issue: {"datacheck": dc["flagged"].get(issue), "cleanvision": cv["flagged"].get(issue)}
            for issue in COMPARED_ISSUES
        },
    }


def environment(args: argparse.Namespace, n_images: int) -> dict:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "data": str(args.data.resolve()),
        "images": n_images,
        "workers": args.workers,
        "repeat": args.repeat,
        "seed": args.seed,
        "cpu_count": os.cpu_count(),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": platform.machine(),
        "versions": {
            "python": platform.python_version(),
            "datacheck": datacheck.__version__,
            "cleanvision": cleanvision.__version__,
            "torch": torch.__version__,
            "pillow": PIL.__version__,
            "numpy": np.__version__,
        },
    }


def print_report(env: dict, results: dict, comparison: dict) -> None:
    n = env["images"]
    print(f"{n} images in {env['data']}, {env['workers']} workers, best of {env['repeat']}, "
          f"nproc={env['nproc']}, Python {env['versions']['python']}, torch {env['versions']['torch']}, "
          f"cleanvision {env['versions']['cleanvision']}\n")

    raw_rate = results["raw decode"]["images_per_s"]
    cv_seconds = results["CleanVision"]["seconds"]
    print(f"{'tool':<24}{'seconds':>9}{'CPU s':>8}{'images/s':>10}{'vs CleanVision':>16}{'of raw decode':>15}")
    rows = [(name, r["seconds"], f"{r['cpu_seconds']:.2f}") for name, r in results.items()]
    rows.insert(2, ("datacheck: decode stage", comparison["datacheck_decode_stage_s"], "-"))
    for name, seconds, cpu in rows:
        if seconds:
            print(f"{name:<24}{seconds:>9.2f}{cpu:>8}{n / seconds:>10.0f}{cv_seconds / seconds:>15.2f}x"
                  f"{n / seconds / raw_rate:>15.1%}")
    print("(CPU s: this process and its worker processes; wall seconds inflate on a busy machine, CPU s much less)")

    print("\ndatacheck stages, best run (s; a check's time includes the decode stage when it triggered it):")
    print("  " + ", ".join(f"{stage} {s:.2f}" for stage, s in results["datacheck"]["timings_s"].items()))

    print(f"\n{'images flagged':<20}{'datacheck':>14}{'CleanVision':>16}")
    sets = results["CleanVision"]["duplicate_sets"]
    for issue, counts in comparison["flagged"].items():
        note = f"  (CleanVision: all members of {sets[issue]} sets)" if issue in sets else ""
        print(f"{issue:<20}{_count(counts['datacheck'], n):>14}{_count(counts['cleanvision'], n):>16}{note}")
    print("(datacheck flags all but one image per duplicate group)")


def _count(value: int | None, n: int) -> str:
    return "-" if value is None else f"{value} ({value / n:.1%})"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    paths = datacheck.load_manifest(args.data).abspaths()
    results = benchmark(paths, args.data, args.workers, args.repeat, args.seed)
    comparison = compare(results, len(paths))
    env = environment(args, len(paths))
    print_report(env, results, comparison)
    if args.json:
        args.json.write_text(json.dumps({**env, "results": results, "comparison": comparison}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Peak memory of an audit whose decoded images are large (the model-input pixel array).

Runs ``datacheck audit DATA --checks label_issues`` in a subprocess with a ``[train]``
config of ``--image-size`` pixels (2 folds, 1 epoch: the point is memory, not accuracy),
once with a cold cache and once with the cache it filled, and reports each run's peak
resident memory next to the size of the pixel array (N x 3 x side x side bytes).

``--checkout DIR`` runs the datacheck of another checkout (e.g. a ``git worktree`` of an
older commit) with the same interpreter, for a before/after comparison in one session.

Run from the repository root::

    python benchmarks/pixel_memory.py [--data DIR] [--image-size 128] [--checkout DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import int_at_least  # benchmarks/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "roman"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"dataset folder (default: {DEFAULT_DATA})")
    parser.add_argument("--image-size", type=int_at_least(8), default=128, help="model input side in pixels")
    parser.add_argument("--checkout", type=Path, default=REPO, help="datacheck checkout to run (default: this one)")
    parser.add_argument("--worker", nargs=2, metavar=("CHECKOUT", "ARGS_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None and not args.data.is_dir():
        parser.exit(2, f"error: dataset not found: {args.data} (pass --data DIR)\n")
    return args


def worker(checkout: str, args_json: str) -> None:
    """Subprocess side: import datacheck from ``checkout``, run one audit, print its peak RSS."""
    sys.path.insert(0, checkout)
    import datacheck

    assert Path(datacheck.__file__).resolve().is_relative_to(Path(checkout).resolve()), datacheck.__file__
    started = time.perf_counter()
    options = json.loads(args_json)
    result = datacheck.audit(options.pop("dataset"), **options)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kB
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_rss_mb": peak_kb / 1024,
                      "samples": result.summary["samples"]}))


def run_audit(checkout: Path, audit_args: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", str(checkout), json.dumps(audit_args)],
                         check=True, capture_output=True, text=True, cwd=checkout)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return
    with tempfile.TemporaryDirectory(prefix="datacheck-bench-memory-") as tmp:
        tmp = Path(tmp)
        config = tmp / "config.toml"
        config.write_text(f"[train]\nimage_size = {args.image_size}\nfolds = 2\nepochs = 1\n")
        rows = []
        for label in ("cold cache", "warm cache"):
            audit_args = {"dataset": str(args.data), "out": str(tmp / label.replace(" ", "-")), "config": str(config),
                          "checks": ["label_issues"], "cache_dir": str(tmp / "cache")}
            rows.append((label, run_audit(args.checkout.resolve(), audit_args)))
    n = rows[0][1]["samples"]
    pixels_mb = n * 3 * args.image_size**2 / 2**20
    print(f"checkout {args.checkout.resolve()}; {n:,} images at {args.image_size} px: "
          f"pixel array {pixels_mb:,.0f} MB; nproc={len(os.sched_getaffinity(0))}")
    print(f"{'run':<12}{'seconds':>9}{'peak RSS MB':>13}")
    for label, r in rows:
        print(f"{label:<12}{r['seconds']:>9.1f}{r['peak_rss_mb']:>13,.0f}")


if __name__ == "__main__":
    main()

"""The full default audit of the Roman-numeral dataset, stage by stage.

Runs ``datacheck.audit`` with every default check on ``../shared/data/roman`` (train + val,
2,880 images) with a cold cache, and prints the wall time of each stage (image decoding
and statistics, model input decoding, cross-validated training, each detector), the
out-of-fold accuracy, and how many images each check flags. Target: the whole default
audit in under 5 minutes on 2 CPU cores.

    python benchmarks/roman_audit.py [--data PATH] [--json out.json]

``--data`` may be any dataset ``datacheck audit`` reads (a manifest with ``--root``): how the
default audit grows with N is measured on ``benchmarks/scale_images.py``'s generated folders,
e.g. ``python benchmarks/scale_images.py --images 20000`` and then ``--data
/tmp/datacheck-scale-images/images20000-seed0-v1``.

``aum`` is a default check: its margins come from the same cross-validation.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "roman"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="an image folder or a manifest")
    parser.add_argument("--root", type=Path, help="the folder a manifest's paths are relative to")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)
    if not args.data.exists():
        sys.exit(f"dataset not found at {args.data} (pass --data)")

    import datacheck
    from datacheck.detectors import list_detectors

    checks = list_detectors(default_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = datacheck.audit(args.data, out=Path(tmp) / "run", checks=checks, root=args.root,
                                 cache_dir=str(Path(tmp) / "cache"))
        wall = time.perf_counter() - started
    summary = result.summary
    print(f"datacheck {datacheck.__version__}: default audit of {summary['samples']} images in {wall:.1f} s "
          f"({'under' if wall < 300 else 'OVER'} the 5-minute target)\n")
    print(f"{'stage':<24} {'seconds':>8}")
    for stage, seconds in summary["timings_s"].items():
        print(f"{stage:<24} {seconds:>8.2f}")
    label = summary["checks"].get("label_issues", {}).get("threshold", {})
    print(f"\nout-of-fold accuracy: {label.get('out_of_fold_accuracy')}")
    print(f"\n{'check':<20} {'flagged':>8} {'%':>6}")
    for check, info in summary["checks"].items():
        print(f"{check:<20} {info['flagged']:>8} {info['percent']:>6.2f}")
    if args.json:
        args.json.write_text(json.dumps({"wall_s": wall, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How the coreset's facility location scales with the size of a class: in regions, against undivided.

``coreset`` (CRUST) selects a budget of each class by greedy facility location on the
samples' last-layer gradients. Undivided, stochastic greedy evaluates ``ln(1/epsilon) N^2``
distances whatever the budget (a class of 190,000 did not finish in 10 minutes); above
``datacheck.engine.facility.PART_MAX`` points each candidate's gain is counted within its
region of at most ``PART_MAX`` points (:func:`datacheck.engine.facility.facility_location`).

For each ``--sizes`` N, one class of N gradients (``softmax - one-hot``, 10 classes: softmax
outputs around 50 prototypes, Dirichlet-drawn, plus noise) at ``--budget`` of N:

- **in regions**: ``facility_location(x, budget)`` as the coreset check calls it: seconds
  and microseconds per point (flat when the time is linear in N); JSON ``parts_s``;
- **undivided** (the peer: one set), for N up to ``--undivided-max``: seconds, the speed-up,
  the **coverage ratio**: the points' mean distance to their nearest selected medoid (of all
  medoids), in regions over undivided (1.0 = as good; above 1, worse), and the **assigned
  ratio**: the same for the distance to the medoid each point is assigned (what the check
  reports and weights count: within a region when there are more than ``PART_MAX`` medoids).

Run from the repository root, one process (facility location is single-threaded numpy)::

    python benchmarks/coreset_scale.py [--sizes 16384,32768,131072,262144] [--budget 0.5]
        [--undivided-max 32768] [--seed 0] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # datacheck from this checkout

from datacheck.engine.facility import PART_MAX, _assign, facility_location, selection_method  # noqa: E402

CLASSES = 10
PROTOTYPES = 50
NOISE = 0.02


def gradients(n: int, seed: int) -> np.ndarray:
    """``n`` last-layer gradients of one class (class 0), shape (n, CLASSES), float32."""
    rng = np.random.default_rng([seed, n])
    prototypes = rng.dirichlet(np.full(CLASSES, 0.3), PROTOTYPES)
    softmax = prototypes[rng.integers(0, PROTOTYPES, n)] + rng.normal(0, NOISE, (n, CLASSES))
    grad = softmax.astype(np.float32)
    grad[:, 0] -= 1.0
    return grad


def coverage(x: np.ndarray, selected: np.ndarray) -> float:
    """The points' mean distance to their nearest medoid among all of ``selected``."""
    return float(_assign(x, (x * x).sum(axis=1), selected)[1].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16384,32768,131072,262144")
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--undivided-max", type=int, default=32768)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print(f"one class of N gradients ({CLASSES} classes), budget {args.budget} of N, PART_MAX {PART_MAX}; "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}")
    header = (f"{'N':>8}  {'method':<36} {'regions s':>9} {'us/point':>9} {'undivided s':>12} {'speed-up':>9} "
              f"{'coverage ratio':>15} {'assigned ratio':>15}")
    print(header)
    rows = []
    for n in sizes:
        x = gradients(n, args.seed)
        budget = max(1, int(np.ceil(args.budget * n)))
        t0 = time.perf_counter()
        selected, _, assigned = facility_location(x, budget, seed=args.seed)
        parts_s = time.perf_counter() - t0
        row = {"n": n, "budget": budget, "method": selection_method(n), "parts_s": round(parts_s, 2),
               "us_per_point": round(parts_s / n * 1e6, 1)}
        if n <= args.undivided_max:
            t0 = time.perf_counter()
            undivided, _, undivided_assigned = facility_location(x, budget, part_max=n, seed=args.seed)
            row["undivided_s"] = round(time.perf_counter() - t0, 2)
            row["speedup"] = round(row["undivided_s"] / parts_s, 2)
            row["coverage_ratio"] = round(coverage(x, selected) / coverage(x, undivided), 4)
            row["assigned_ratio"] = round(float(assigned.mean() / undivided_assigned.mean()), 4)
        rows.append(row)
        print(f"{n:>8,}  {row['method']:<36} {parts_s:>9.1f} {row['us_per_point']:>9.1f} "
              f"{row.get('undivided_s', float('nan')):>12.1f} {row.get('speedup', float('nan')):>8.2f}x "
              f"{row.get('coverage_ratio', float('nan')):>15.4f} {row.get('assigned_ratio', float('nan')):>15.4f}",
              flush=True)
    if len(rows) > 1:
        growth = rows[-1]["us_per_point"] / rows[0]["us_per_point"]
        print(f"time per point, {rows[-1]['n']:,} over {rows[0]['n']:,}: {growth:.2f}x "
              f"(1.0 = linear in N; undivided stochastic greedy: x{rows[-1]['n'] / rows[0]['n']:.0f})")
    if args.json:
        args.json.write_text(json.dumps({"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                         "part_max": PART_MAX, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

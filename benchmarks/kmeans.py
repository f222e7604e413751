"""Benchmark datacheck's K-means against scikit-learn's ``KMeans``.

On ``--n`` seeded clustered float32 points of ``--dim`` dimensions (``--clusters`` Gaussian
centres with standard deviation ``CENTRE_SCALE``, unit per-coordinate noise, cluster sizes
drawn unevenly), both tools cluster into ``--k`` groups with k-means++ seeding and
``--n-init`` initialisations, once per seed in ``--seeds`` (a different dataset and
initialisation each time):

* **datacheck**: ``datacheck.engine.kmeans.kmeans(x, k, n_init=..., seed=s, device="cpu")``
  (greedy k-means++ and Hamerly-accelerated Lloyd iterations, warm-started on a 10,000-point
  subsample);
* **scikit-learn**: ``KMeans(k, init="k-means++", n_init=..., random_state=s).fit(x)``
  (default Lloyd algorithm, ``tol=1e-4``, ``max_iter=300``, as ours).

The two tools run alternately in this process; ``--threads`` is applied to torch and,
through threadpoolctl, to scikit-learn's OpenMP and BLAS (datacheck's K-means itself runs
on one CPU thread whatever the setting: its many small operations lose more to thread
start-up than they gain). Wall and CPU seconds are timed around the fit only. Reported per seed: time ratio
(scikit-learn / datacheck) and inertia ratio (datacheck / scikit-learn: below 1 means ours
found a better clustering); then the median time ratio and the mean inertia ratio. Target:
datacheck at least 3x faster at an inertia within 1 % of scikit-learn's.

Run from the repository root::

    python benchmarks/kmeans.py [--n 100000] [--dim 32] [--k 32] [--clusters 32] [--n-init 3] [--seeds 0 1 2] [--threads N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from _common import int_at_least  # benchmarks/ is on sys.path when run as a script

CENTRE_SCALE = 1.5  # centre coordinates' std; the noise std is 1, so clusters touch but are distinct
TARGET_SPEEDUP = 3.0
TARGET_INERTIA = 0.01


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int_at_least(2), default=100_000, help="number of points")
    parser.add_argument("--dim", type=int_at_least(1), default=32, help="dimensions")
    parser.add_argument("--k", type=int_at_least(1), default=32, help="clusters to find")
    parser.add_argument("--clusters", type=int_at_least(1), default=32, help="Gaussian centres the data is drawn from")
    parser.add_argument("--n-init", type=int_at_least(1), default=3, help="k-means++ initialisations (both tools)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one dataset and fit per seed")
    parser.add_argument("--threads", type=int_at_least(1), default=len(os.sched_getaffinity(0)),
                        help="threads for both tools (default: the CPUs this process may use)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.k > args.n:
        parser.exit(2, f"error: --k must be at most --n ({args.n}), got {args.k}\n")
    return args


def make_points(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """``n`` float32 points around ``clusters`` centres, cluster weights from a Dirichlet(2)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32) * CENTRE_SCALE
    weights = rng.dirichlet(np.full(clusters, 2.0))
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x += centres[rng.choice(clusters, size=n, p=weights)]
    return x


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fit) -> tuple[float, float, object]:
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = fit()
    return time.perf_counter() - wall, cpu_seconds() - cpu, result


def fit_datacheck(x: np.ndarray, k: int, n_init: int, seed: int) -> tuple[float, int]:
    from datacheck.engine.kmeans import kmeans

    result = kmeans(x, k, n_init=n_init, seed=seed, device="cpu")
    return result.inertia, result.n_iter


def fit_sklearn(x: np.ndarray, k: int, n_init: int, seed: int) -> tuple[float, int]:
    from sklearn.cluster import KMeans

    model = KMeans(k, init="k-means++", n_init=n_init, random_state=seed).fit(x)
    return float(model.inertia_), int(model.n_iter_)


def benchmark(args: argparse.Namespace) -> list[dict]:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    rows = []
    with threadpool_limits(limits=args.threads):
        fit_datacheck(make_points(2000, args.dim, args.clusters, 0), min(args.k, 2000), 1, 0)  # warm-up: imports, kernels
        for seed in args.seeds:
            x = make_points(args.n, args.dim, args.clusters, seed)
            row = {"seed": seed}
            for tool, fit in (("sklearn", fit_sklearn), ("datacheck", fit_datacheck)):
                wall, cpu, (inertia, n_iter) = timed(lambda: fit(x, args.k, args.n_init, seed))
                row[tool] = {"seconds": wall, "cpu_s": cpu, "inertia": inertia, "n_iter": n_iter}
            row["speedup"] = row["sklearn"]["seconds"] / row["datacheck"]["seconds"]
            row["inertia_ratio"] = row["datacheck"]["inertia"] / row["sklearn"]["inertia"]
            rows.append(row)
    return rows


def environment(args: argparse.Namespace) -> dict:
    import sklearn
    import torch

    import datacheck

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "n": args.n, "dim": args.dim, "k": args.k, "clusters": args.clusters, "n_init": args.n_init,
        "threads": args.threads, "nproc": len(os.sched_getaffinity(0)), "machine": platform.machine(),
        "versions": {"python": platform.python_version(), "datacheck": datacheck.__version__,
                     "numpy": np.__version__, "torch": torch.__version__, "sklearn": sklearn.__version__},
    }


def print_report(env: dict, rows: list[dict]) -> dict:
    v = env["versions"]
    print(f"{env['n']:,} x {env['dim']} float32 points ({env['clusters']} clusters), k={env['k']}, n_init={env['n_init']}, "
          f"{env['threads']} thread(s) of nproc={env['nproc']}; Python {v['python']}, torch {v['torch']}, "
          f"scikit-learn {v['sklearn']}\n")
    print(f"{'seed':>5}{'sklearn s':>11}{'CPU s':>8}{'iter':>6}{'datacheck s':>13}{'CPU s':>8}{'iter':>6}"
          f"{'speed-up':>10}{'inertia ratio':>15}")
    for r in rows:
        s, d = r["sklearn"], r["datacheck"]
        print(f"{r['seed']:>5}{s['seconds']:>11.2f}{s['cpu_s']:>8.2f}{s['n_iter']:>6}{d['seconds']:>13.2f}{d['cpu_s']:>8.2f}"
              f"{d['n_iter']:>6}{r['speedup']:>9.2f}x{r['inertia_ratio']:>15.4f}")
    summary = {
        "median_speedup": statistics.median(r["speedup"] for r in rows),
        "mean_inertia_ratio": statistics.fmean(r["inertia_ratio"] for r in rows),
    }
    met = summary["median_speedup"] >= TARGET_SPEEDUP and summary["mean_inertia_ratio"] <= 1 + TARGET_INERTIA
    print(f"\nmedian speed-up {summary['median_speedup']:.2f}x, mean inertia ratio {summary['mean_inertia_ratio']:.4f}; "
          f"target (>= {TARGET_SPEEDUP:.0f}x at inertia within {TARGET_INERTIA:.0%}): {'met' if met else 'MISSED'}")
    return summary


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = benchmark(args)
    env = environment(args)
    summary = print_report(env, rows)
    if args.json:
        args.json.write_text(json.dumps({**env, **summary, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

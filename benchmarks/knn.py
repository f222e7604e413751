"""Benchmark datacheck's blocked exact kNN against scikit-learn's brute-force search (and faiss).

On ``--n`` seeded "random but clustered" float32 embeddings of ``--dim`` dimensions (200
Gaussian cluster centres plus per-point noise), each tool finds every point's ``--k``
nearest other points by cosine distance:

* **datacheck**: ``datacheck.engine.knn.knn_cosine(x, k, device="cpu")``;
* **scikit-learn**: ``NearestNeighbors(n_neighbors=k + 1, metric="cosine",
  algorithm="brute").fit(x).kneighbors(x)``, the point itself dropped;
* **faiss** (when ``faiss-cpu`` is installed): ``IndexFlatIP`` on L2-normalised rows,
  searched for ``k + 1``, the point itself dropped (normalising is part of its time).

Each tool runs once in its own subprocess, which loads the embeddings from a shared
``.npy`` file and times only the search (wall and CPU seconds), and reports its peak
resident memory (``VmHWM``) next to its memory once the tool is imported and the input
loaded (the baseline). Agreement with scikit-learn is reported as recall@k (mean share of
sklearn's k neighbours that a tool also returns), the fraction of points whose neighbour
sets are identical, and the largest difference between the two tools' sorted distances. Target: datacheck at least 5x faster than scikit-learn.

Run from the repository root (``pip install faiss-cpu`` adds the faiss row)::

    python benchmarks/knn.py [--n 100000] [--dim 512] [--k 10] [--seed 0] [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from _common import int_at_least  # benchmarks/ is on sys.path when run as a script

CLUSTERS = 200
NOISE = 0.5  # per-coordinate noise std; cluster centres are standard normal
TARGET_SPEEDUP = 5.0
REFERENCE = "sklearn"
# What each tool imports, imported in its subprocess before the memory baseline is read.
TOOL_MODULES = {"datacheck": "datacheck.engine.knn", "sklearn": "sklearn.neighbors", "faiss": "faiss"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int_at_least(2), default=100_000, help="number of embeddings")
    parser.add_argument("--dim", type=int_at_least(1), default=512, help="embedding dimension")
    parser.add_argument("--k", type=int_at_least(1), default=10, help="neighbours per point")
    parser.add_argument("--seed", type=int, default=0, help="seed of the embeddings")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--worker", nargs=3, metavar=("TOOL", "EMBEDDINGS", "OUT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None and args.k >= args.n:
        parser.exit(2, f"error: --k must be below --n ({args.n}), got {args.k}\n")
    return args


def make_embeddings(n: int, dim: int, seed: int) -> np.ndarray:
    """``n`` float32 points around ``CLUSTERS`` standard-normal centres, noise std ``NOISE``."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dim), dtype=np.float32)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x *= NOISE
    x += centres[rng.integers(0, CLUSTERS, n)]
    return x


def available_tools() -> list[str]:
    tools = ["datacheck", REFERENCE]
    return tools + ["faiss"] if importlib.util.find_spec("faiss") else tools


# --------------------------------------------------------------------------- the tools


def knn_datacheck(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from datacheck.engine.knn import knn_cosine

    return knn_cosine(x, k, device="cpu")


def knn_sklearn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors

    dists, idx = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x).kneighbors(x)
    return drop_self(dists, idx)


def knn_faiss(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sims, idx = index.search(x, k + 1)
    return drop_self(1.0 - sims, idx)


KNN = {"datacheck": knn_datacheck, "sklearn": knn_sklearn, "faiss": knn_faiss}


def drop_self(dists: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From (N, k+1) results, remove each row's own index (or, if absent, its last column)."""
    is_self = idx == np.arange(len(idx))[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    keep = ~is_self
    k = idx.shape[1] - 1
    return dists[keep].reshape(-1, k), idx[keep].reshape(-1, k)


# --------------------------------------------------------------------------- subprocesses


def run_in_subprocess(tool: str, x_path: Path, k: int, scratch: Path) -> dict:
    """Run this script as ``--worker tool`` and return its JSON report.

    The worker measures its own peak memory: ``ru_maxrss`` seen from this parent would include
    the parent's high-water mark (embeddings and all), which the child inherits until ``exec``.
    """
    subprocess.run([sys.executable, __file__, "--k", str(k), "--worker", tool, str(x_path), str(scratch)], check=True)
    return json.loads((scratch / f"{tool}_report.json").read_text())


def worker(tool: str, x_path: str, out_dir: str, k: int) -> None:
    """Subprocess side: import the tool, load the embeddings, time one search, save the results."""
    out = Path(out_dir)
    importlib.import_module(TOOL_MODULES[tool])
    x = np.load(x_path)
    baseline_rss = status_kb("VmRSS")
    cpu_started, started = cpu_seconds(), time.perf_counter()
    dists, idx = KNN[tool](x, k)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    np.save(out / f"{tool}_dists.npy", dists.astype(np.float32))
    np.save(out / f"{tool}_idx.npy", idx.astype(np.int64))
    report = {"seconds": seconds, "cpu_s": cpu, "baseline_rss_mb": baseline_rss / 1024, "peak_rss_mb": status_kb("VmHWM") / 1024}
    (out / f"{tool}_report.json").write_text(json.dumps(report))


def cpu_seconds() -> float:
    """User + system CPU time of this process, all its threads together."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def status_kb(field: str) -> int:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``: peak) in kB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:"))


# --------------------------------------------------------------------------- comparison


def agreement(idx: np.ndarray, dists: np.ndarray, ref_idx: np.ndarray, ref_dists: np.ndarray) -> dict:
    """Recall@k against the reference, share of identical neighbour sets, max distance gap."""
    k = idx.shape[1]
    shared = (np.sort(idx, axis=1)[:, :, None] == np.sort(ref_idx, axis=1)[:, None, :]).any(axis=2).sum(axis=1)
    return {
        "recall_at_k": float(shared.mean() / k),
        "identical_sets": float((shared == k).mean()),
        "max_abs_distance_diff": float(np.abs(np.sort(dists, axis=1) - np.sort(ref_dists, axis=1)).max()),
    }


def benchmark(args: argparse.Namespace, scratch: Path) -> dict:
    x_path = scratch / "embeddings.npy"
    np.save(x_path, make_embeddings(args.n, args.dim, args.seed))
    results = {}
    for tool in available_tools():
        results[tool] = run_in_subprocess(tool, x_path, args.k, scratch)
    ref_idx, ref_dists = np.load(scratch / f"{REFERENCE}_idx.npy"), np.load(scratch / f"{REFERENCE}_dists.npy")
    for tool, r in results.items():
        r["speedup_vs_sklearn"] = results[REFERENCE]["seconds"] / r["seconds"]
        r.update(agreement(np.load(scratch / f"{tool}_idx.npy"), np.load(scratch / f"{tool}_dists.npy"), ref_idx, ref_dists))
    return results


# --------------------------------------------------------------------------- report


def environment(args: argparse.Namespace) -> dict:
    import sklearn
    import torch

    import datacheck

    versions = {
        "python": platform.python_version(),
        "datacheck": datacheck.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if importlib.util.find_spec("faiss"):
        import faiss

        versions["faiss"] = faiss.__version__
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "n": args.n, "dim": args.dim, "k": args.k, "seed": args.seed, "clusters": CLUSTERS,
        "cpu_count": os.cpu_count(),
        "nproc": len(os.sched_getaffinity(0)),
        "machine": platform.machine(),
        "versions": versions,
    }


def print_report(env: dict, results: dict) -> None:
    v = env["versions"]
    faiss_note = f", faiss {v['faiss']}" if "faiss" in v else ", faiss-cpu not installed"
    print(f"{env['n']:,} x {env['dim']} float32 embeddings ({env['clusters']} clusters), k={env['k']}, "
          f"nproc={env['nproc']}; Python {v['python']}, numpy {v['numpy']}, torch {v['torch']} "
          f"({v['torch_threads']} threads), scikit-learn {v['sklearn']}{faiss_note}\n")
    print(f"{'tool':<11}{'seconds':>9}{'CPU s':>8}{'vs sklearn':>12}{'peak RSS MB':>13}{'RSS baseline MB':>18}"
          f"{'recall@k':>10}{'identical sets':>16}{'max |dDist|':>13}")
    for tool, r in results.items():
        print(f"{tool:<11}{r['seconds']:>9.2f}{r['cpu_s']:>8.1f}{r['speedup_vs_sklearn']:>11.2f}x{r['peak_rss_mb']:>13.0f}"
              f"{r['baseline_rss_mb']:>18.0f}{r['recall_at_k']:>10.4f}{r['identical_sets']:>16.4f}"
              f"{r['max_abs_distance_diff']:>13.2e}")
    speedup = results["datacheck"]["speedup_vs_sklearn"]
    print(f"\ntarget: datacheck >= {TARGET_SPEEDUP:.0f}x faster than scikit-learn: "
          f"{'met' if speedup >= TARGET_SPEEDUP else 'MISSED'} ({speedup:.2f}x)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(*args.worker, k=args.k)
        return
    with tempfile.TemporaryDirectory(prefix="datacheck-bench-knn-") as tmp:
        results = benchmark(args, Path(tmp))
    env = environment(args)
    print_report(env, results)
    if args.json:
        args.json.write_text(json.dumps({**env, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

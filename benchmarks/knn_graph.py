"""Time the audit's kNN graph (``datacheck.features.knn.build_knn_graph``) as N grows.

For each size in ``--sizes``, on seeded clustered embeddings (``benchmarks/knn.py``'s
generator: 200 Gaussian centres plus noise), it builds the graph the audit would build (exact
up to 50,000 samples, faiss IVF above) and prints wall seconds, the method, ``nlist``/``nprobe``
and the recall@k the graph measured on its 1,000 sampled queries. With ``--exact-up-to N`` it
also builds the exact graph for sizes up to N in the same run and prints the approximate
graph's recall over *every* row against it, and the speed-up.

Run from the repository root::

    python benchmarks/knn_graph.py [--sizes 100000,300000,1000000] [--dim 512] [--k 10] [--exact-up-to 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from knn import make_embeddings  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--exact-up-to", type=int, default=100_000)
    args = parser.parse_args()
    from datacheck.features.knn import build_knn_graph

    print(f"{'N':>9} {'method':>6} {'nlist':>6} {'nprobe':>6} {'seconds':>8} {'recall@k (sampled)':>19} "
          f"{'recall@k (all rows)':>20} {'exact s':>8} {'speed-up':>8}")
    for n in (int(s) for s in args.sizes.split(",")):
        x = make_embeddings(n, args.dim, seed=0)
        t0 = time.perf_counter()
        graph = build_knn_graph(x, args.k)
        seconds = time.perf_counter() - t0
        info = graph.info
        all_rows = exact_s = speedup = float("nan")
        if graph.method != "exact" and n <= args.exact_up_to:
            t0 = time.perf_counter()
            exact = build_knn_graph(x, args.k, exact_max=n)
            exact_s = time.perf_counter() - t0
            all_rows = float(np.mean([len(np.intersect1d(a, b)) for a, b in zip(graph.indices, exact.indices)]) / args.k)
            speedup = exact_s / seconds
        print(f"{n:>9} {info['method']:>6} {info.get('nlist', '-'):>6} {info.get('nprobe', '-'):>6} {seconds:>8.1f} "
              f"{info.get('recall_at_k', 1.0):>19.4f} {all_rows:>20.4f} {exact_s:>8.1f} {speedup:>8.2f}", flush=True)


if __name__ == "__main__":
    main()

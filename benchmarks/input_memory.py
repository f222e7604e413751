"""Peak memory of an array audit's inputs by their type: float64 ``.npy`` files (what
scikit-learn's ``predict_proba`` and most featurisers give) and a Parquet manifest holding the
arrays as float64 list columns, against the same values saved as float32 ``.npy`` files (the
type datacheck computes in, memory-mapped), measured in the same run.

The script writes ``--rows`` x ``--dim`` embeddings (clustered, ``--classes`` classes) and their
class probabilities in each form under ``--work`` (the Parquet file in one row group, as pandas
and pyarrow write up to a million rows), then runs, in a fresh process per input: reading and
validating the inputs (``datacheck.features.arrays.load_array_inputs``) and, unless
``--load-only``, the whole ``datacheck audit`` of them. It prints each process's peak RSS
(``resource.getrusage``, file-backed pages included) and wall time, and the ratios to float32
``.npy``, and how each audit's kNN graph was searched (its 10 isotropic Gaussian classes have
little structure for an inverted file: at 1M the graph stops at its scan bound, short of the
recall target, and says so). Target: neither costs more resident memory than the float32 files (ratio ~1.0); an
in-memory conversion (``astype``) added half the float64 file, reading the Parquet columns
whole two to three times their size.

    python benchmarks/input_memory.py [--rows 200000] [--dim 512] [--classes 10]
        [--work DIR] [--load-only] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import int_at_least

#: What each audit's ``summary.json`` says of its kNN graph, printed.
_GRAPH_SHOWN = ("method", "nprobe", "nlist", "recall_at_k", "scanned_per_query", "recall_target_met")
#: Rows generated at a time (64 MB of float64 at 512 values).
_BLOCK = 16_384

#: Reads and validates the inputs given as arguments (a manifest, or three .npy files), as an audit does first.
_LOAD = """
import sys
from datacheck.features.arrays import load_array_inputs
if len(sys.argv) == 2:
    load_array_inputs(sys.argv[1])
else:
    load_array_inputs(None, pred_probs=sys.argv[1], labels=sys.argv[2], embeddings=sys.argv[3])
"""
#: Runs its arguments as a command; prints the command's peak RSS (KB) if it succeeded.
_PEAK_OF_CHILD = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
if done.returncode:
    sys.exit(f"exit status {done.returncode}")
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def write_inputs(work: Path, rows: int, dim: int, classes: int, seed: int = 0) -> dict[str, tuple[Path, Path]]:
    """``{"float64": (embeddings, pred_probs), "float32": (...)}`` and ``labels.npy`` in ``work``:
    the same values in both types (the float64 ones are float32 values widened); also
    ``manifest.parquet``, the labels and the float64 values as list columns."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    labels = rng.integers(0, classes, rows)
    np.save(work / "labels.npy", labels)
    files = {}
    for kind in ("float64", "float32"):
        files[kind] = (work / f"embeddings_{kind}.npy", work / f"pred_probs_{kind}.npy")
    maps = {kind: (np.lib.format.open_memmap(e, mode="w+", dtype=kind, shape=(rows, dim)),
                   np.lib.format.open_memmap(p, mode="w+", dtype=kind, shape=(rows, classes)))
            for kind, (e, p) in files.items()}
    for start in range(0, rows, _BLOCK):
        part = labels[start : start + _BLOCK]
        emb = centres[part] + rng.normal(size=(len(part), dim)).astype(np.float32)
        logits = emb @ centres.T / np.float32(dim ** 0.5)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        for emb_map, probs_map in maps.values():
            emb_map[start : start + len(part)] = emb
            probs_map[start : start + len(part)] = probs.astype(np.float32)
    for emb_map, probs_map in maps.values():
        emb_map.flush()
        probs_map.flush()
    write_parquet_manifest(work / "manifest.parquet", labels, *maps["float64"])
    return files


def write_parquet_manifest(path: Path, labels: np.ndarray, emb: np.ndarray, probs: np.ndarray) -> None:
    """``labels`` and float64 ``emb``/``probs`` as a Parquet manifest's columns, one row group."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def lists(values: np.ndarray) -> pa.Array:
        flat = pa.array(np.ascontiguousarray(values, dtype=np.float64).reshape(-1))
        return pa.ListArray.from_arrays(pa.array(np.arange(0, len(flat) + 1, values.shape[1], dtype=np.int32)), flat)

    schema = pa.schema([("label", pa.int64()), ("embeddings", pa.list_(pa.float64())),
                        ("pred_probs", pa.list_(pa.float64()))])
    with pq.ParquetWriter(path, schema) as writer:  # built a block at a time, written as one row group
        batches = [pa.record_batch([pa.array(labels[s : s + _BLOCK]), lists(emb[s : s + _BLOCK]),
                                    lists(probs[s : s + _BLOCK])], schema=schema)
                   for s in range(0, len(labels), _BLOCK)]
        writer.write_table(pa.Table.from_batches(batches, schema), row_group_size=len(labels))


def peak_of(command: list[str]) -> tuple[float, float]:
    """(peak RSS MB, wall s) of ``command``, run to its end in a process of its own.

    Through an intermediate interpreter that reports its only child's peak
    (``RUSAGE_CHILDREN`` keeps the largest child's peak of a process, so two commands run
    from this one could not be told apart).
    """
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PEAK_OF_CHILD, *command], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} ... failed: {done.stderr.strip()[-500:]}")
    return int(done.stdout.split()[-1]) / 1024, wall


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int_at_least(100), default=200_000)
    parser.add_argument("--dim", type=int_at_least(2), default=512)
    parser.add_argument("--classes", type=int_at_least(2), default=10)
    parser.add_argument("--work", type=Path, default=None, help="folder for the inputs and runs (default: a temporary one)")
    parser.add_argument("--load-only", action="store_true", help="measure reading the inputs only, not the audit")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        files = write_inputs(work, args.rows, args.dim, args.classes)
        labels = work / "labels.npy"
        results = {}
        inputs = {kind: ([str(probs), str(labels), str(emb)], ["--pred-probs", str(probs), "--labels", str(labels),
                                                               "--embeddings", str(emb)])
                  for kind, (emb, probs) in files.items()}
        inputs["parquet"] = ([str(work / "manifest.parquet")], [str(work / "manifest.parquet")])
        for kind, (load_args, audit_args) in inputs.items():
            load_mb, load_s = peak_of([sys.executable, "-c", _LOAD, *load_args])
            results[kind] = {"load_peak_mb": load_mb, "load_s": load_s}
            if not args.load_only:
                audit_mb, audit_s = peak_of([sys.executable, "-m", "datacheck", "audit", *audit_args,
                                             "--out", str(work / f"run_{kind}"), "-q", "--fail-on", ""])
                graph = json.loads((work / f"run_{kind}" / "summary.json").read_text()).get("knn_graph", {})
                results[kind].update(audit_peak_mb=audit_mb, audit_s=audit_s, knn_graph=graph)
    mb = args.rows * args.dim * 8 / 2**20
    print(f"{args.rows:,} x {args.dim} embeddings ({mb:,.0f} MB as float64), {args.classes} classes")
    print(f"{'input type':12s} {'load peak MB':>13s} {'load s':>7s} {'audit peak MB':>14s} {'audit s':>8s}")
    for kind, row in results.items():
        print(f"{kind:12s} {row['load_peak_mb']:13.0f} {row['load_s']:7.1f} {row.get('audit_peak_mb', float('nan')):14.0f} "
              f"{row.get('audit_s', float('nan')):8.1f}")
    for kind, row in results.items():
        if row.get("knn_graph"):  # how the audit's graph was searched (the bound may stop it short of the target)
            print(f"{kind:12s} kNN graph: " + ", ".join(f"{key} {row['knn_graph'][key]}" for key in _GRAPH_SHOWN
                                                         if key in row["knn_graph"]))
    ratio = {kind: {key: results[kind][key] / results["float32"][key] for key in results["float32"] if key != "knn_graph"}
             for kind in ("float64", "parquet")}
    for kind, values in ratio.items():
        print(f"{kind} / float32: " + ", ".join(f"{key} {value:.2f}" for key, value in values.items()))
    summary = {"rows": args.rows, "dim": args.dim, "classes": args.classes, "results": results, "ratio": ratio}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()

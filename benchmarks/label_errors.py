"""Benchmark datacheck's label-issue check against the bare cleanlab call it wraps.

Both tools start from the same ``.npy`` files (out-of-fold predicted probabilities and
given labels) and use cleanlab's default ``filter_by="prune_by_noise_rate"``:

* **cleanlab**: ``np.load`` of the two files, then ``cleanlab.filter.find_label_issues(labels,
  pred_probs)``: what a user would write by hand.
* **datacheck**: ``datacheck.audit(None, out=<fresh run dir>, pred_probs=..., labels=...,
  checks=["label_issues"])``: validation, the cleanlab call, quality scores, the findings
  table, ``findings.parquet``, ``summary.json`` and ``run.json``.

Part 1, the three real test sets in ``--data`` (cifar10, cifar100, mnist; 10,000 rows each):
each tool runs ``--repeat`` times in this process, interleaved, modules imported up front,
and its best time is kept. Part 2, a synthetic set of ``--synthetic-n`` rows by
``--synthetic-k`` classes (seeded softmax of random logits with a boosted true class, 5% of
labels flipped to another class): each tool runs once in its own subprocess, which reports
its peak resident memory (its own high-water mark ``VmHWM`` or, if larger, that of a worker
it waited for, i.e. cleanlab's multiprocessing pool), next to its memory right after imports,
and its CPU seconds (that process and its pool) are reported beside the wall time.
For each case the script reports how many rows each tool flags, their overlap (intersection
and Jaccard), both times and the ratio datacheck / cleanlab (target: below 1.5), plus
datacheck's own stage timings.

Run from the repository root::

    python benchmarks/label_errors.py [--data DIR] [--repeat N] [--synthetic-n N]
        [--synthetic-k K] [--seed S] [--json PATH]

``--synthetic-n 0`` skips part 2.
"""

from __future__ import annotations

import argparse
import importlib
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

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "label-errors"
DATASETS = ("cifar10", "cifar100", "mnist")
CHECK = "label_issues"
TARGET_RATIO = 1.5
NOISE_RATE = 0.05
TOOLS = ("cleanlab", "datacheck")
# What each tool imports when it runs, imported before any timing or memory baseline.
# The bare call needs only cleanlab; datacheck's pipeline brings torch, pandas and pyarrow.
TOOL_MODULES = {
    "cleanlab": ("cleanlab.filter",),
    "datacheck": ("datacheck.pipeline", "cleanlab.filter", "cleanlab.rank"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"folder of <name>_test_pred_probs.npy / <name>_test_labels.npy (default: {DEFAULT_DATA})")
    parser.add_argument("--repeat", type=int_at_least(1), default=3, help="timed runs per tool on each real set; best is kept")
    parser.add_argument("--synthetic-n", type=int_at_least(0), default=1_000_000, help="rows of the synthetic set (0: skip it)")
    parser.add_argument("--synthetic-k", type=int_at_least(2), default=100, help="classes of the synthetic set")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic set")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--worker", nargs=4, metavar=("TOOL", "PRED_PROBS", "LABELS", "OUT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None:
        missing = [path.name for pair in dataset_paths(args.data).values() for path in pair if not path.is_file()]
        if missing:
            parser.exit(2, f"error: label-error data not found in {args.data}: missing {', '.join(missing)} (pass --data DIR)\n")
    return args


def dataset_paths(data: Path) -> dict[str, tuple[Path, Path]]:
    """``{name: (pred_probs.npy, labels.npy)}`` for the real test sets."""
    return {name: (data / f"{name}_test_pred_probs.npy", data / f"{name}_test_labels.npy") for name in DATASETS}


# --------------------------------------------------------------------------- the two tools


def import_tool(tool: str) -> None:
    for module in TOOL_MODULES[tool]:
        importlib.import_module(module)


def run_cleanlab(pred_path: Path, labels_path: Path) -> tuple[np.ndarray, dict]:
    """The bare call on the loaded files; the boolean issue mask."""
    import cleanlab.filter

    labels, pred_probs = np.load(labels_path), np.load(pred_path)
    return cleanlab.filter.find_label_issues(labels, pred_probs), {}


def run_datacheck(pred_path: Path, labels_path: Path, out: Path) -> tuple[np.ndarray, dict]:
    """One audit into run directory ``out``; the issue mask by row and datacheck's stage timings."""
    import datacheck

    result = datacheck.audit(None, out=out, pred_probs=pred_path, labels=labels_path, checks=[CHECK])
    findings = result.findings[result.findings["check"] == CHECK]
    mask = np.zeros(len(findings), dtype=bool)
    mask[findings.loc[findings["is_issue"], "sample_id"].astype(np.int64).to_numpy()] = True
    assert mask.sum() == result.summary["checks"][CHECK]["flagged"]
    return mask, result.summary["timings_s"]


def run_tool(tool: str, pred_path: Path, labels_path: Path, scratch: Path) -> tuple[float, np.ndarray, dict]:
    """Run ``tool`` once (datacheck into a fresh run dir under ``scratch``); seconds, mask, timings."""
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        started = time.perf_counter()
        if tool == "cleanlab":
            mask, timings = run_cleanlab(pred_path, labels_path)
        else:
            mask, timings = run_datacheck(pred_path, labels_path, Path(tmp) / "run")
        return time.perf_counter() - started, mask, timings


# --------------------------------------------------------------------------- part 1: real sets


def bench_real(data: Path, repeat: int, scratch: Path) -> dict:
    """Best-of-``repeat`` time of each tool on each real set, interleaved, and their agreement."""
    out = {}
    for name, (pred_path, labels_path) in dataset_paths(data).items():
        runs: dict[str, list] = {tool: [] for tool in TOOLS}
        for _ in range(repeat):
            for tool in TOOLS:
                runs[tool].append(run_tool(tool, pred_path, labels_path, scratch))
        best = {tool: min(r, key=lambda run: run[0]) for tool, r in runs.items()}
        out[name] = {
            "rows": len(best["cleanlab"][1]),
            "classes": int(np.load(pred_path, mmap_mode="r").shape[1]),
            **{f"{tool}_s": best[tool][0] for tool in TOOLS},
            **{f"{tool}_all_s": [r[0] for r in runs[tool]] for tool in TOOLS},
            "datacheck_timings_s": best["datacheck"][2],
            **agreement(best["cleanlab"][1], best["datacheck"][1]),
        }
        out[name]["ratio"] = out[name]["datacheck_s"] / out[name]["cleanlab_s"]
    return out


def agreement(bare: np.ndarray, ours: np.ndarray) -> dict:
    both = int((bare & ours).sum())
    either = int((bare | ours).sum())
    return {
        "cleanlab_flagged": int(bare.sum()),
        "datacheck_flagged": int(ours.sum()),
        "intersection": both,
        "jaccard": both / either if either else 1.0,
    }


# --------------------------------------------------------------------------- part 2: synthetic


def make_synthetic(n: int, k: int, seed: int, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded float32 probabilities (N, K), given labels with ~5% flipped, and the flip mask.

    Each row is the softmax of standard-normal logits whose true class gets a boost drawn
    from U(0, 6), so the model is confident on some rows and unsure on others.
    """
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    probs = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        logits = rng.standard_normal((stop - start, k), dtype=np.float32)
        logits[np.arange(stop - start), true[start:stop]] += rng.uniform(0, 6, stop - start).astype(np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        probs[start:stop] = logits / logits.sum(axis=1, keepdims=True)
    flipped = rng.random(n) < NOISE_RATE
    labels = true.copy()
    labels[flipped] = (true[flipped] + rng.integers(1, k, int(flipped.sum()))) % k
    return probs, labels, flipped


def bench_synthetic(n: int, k: int, seed: int, scratch: Path) -> dict:
    """Each tool once, in its own subprocess, on the synthetic set saved as .npy files."""
    probs, labels, flipped = make_synthetic(n, k, seed)
    pred_path, labels_path = scratch / "pred_probs.npy", scratch / "labels.npy"
    np.save(pred_path, probs)
    np.save(labels_path, labels)
    del probs, labels
    out = {"rows": n, "classes": k, "injected_flips": int(flipped.sum())}
    masks = {}
    for tool in TOOLS:
        report = run_in_subprocess(tool, pred_path, labels_path, scratch)
        masks[tool] = np.load(scratch / f"{tool}_mask.npy")
        out[f"{tool}_s"] = report["seconds"]
        out[f"{tool}_cpu_s"] = report["cpu_s"]
        out[f"{tool}_peak_rss_mb"] = report["peak_rss_kb"] / 1024
        out[f"{tool}_rss_after_imports_mb"] = report["rss_after_imports_kb"] / 1024
        out[f"{tool}_flips_found"] = int((masks[tool] & flipped).sum())
        if tool == "datacheck":
            out["datacheck_timings_s"] = report["timings_s"]
    out.update(agreement(masks["cleanlab"], masks["datacheck"]))
    out["ratio"] = out["datacheck_s"] / out["cleanlab_s"]
    return out


def run_in_subprocess(tool: str, pred_path: Path, labels_path: Path, scratch: Path) -> dict:
    """Run this script as ``--worker tool`` and return its JSON report.

    The worker measures its own peak memory: ``ru_maxrss`` seen from this (large) parent would
    include this process's high-water mark, which the child inherits until its ``exec``.
    """
    subprocess.run([sys.executable, __file__, "--worker", tool, str(pred_path), str(labels_path), str(scratch)], check=True)
    return json.loads((scratch / f"{tool}_report.json").read_text())


def worker(tool: str, pred_path: str, labels_path: str, out_dir: str) -> None:
    """Subprocess side: run ``tool`` once, save its mask and a JSON report in ``out_dir``."""
    out = Path(out_dir)
    import_tool(tool)
    rss_after_imports = status_kb("VmRSS")
    cpu_started = cpu_seconds()
    seconds, mask, timings = run_tool(tool, Path(pred_path), Path(labels_path), out)
    cpu = cpu_seconds() - cpu_started
    np.save(out / f"{tool}_mask.npy", mask)
    report = {"seconds": seconds, "cpu_s": cpu, "rss_after_imports_kb": rss_after_imports,
              "peak_rss_kb": peak_rss_kb(), "timings_s": timings}
    (out / f"{tool}_report.json").write_text(json.dumps(report))


def cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for children (cleanlab's pool)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_kb() -> int:
    """This process's peak resident memory, or a waited-for child's if larger (kB)."""
    return max(status_kb("VmHWM"), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def status_kb(field: str) -> int:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in kB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:"))


# --------------------------------------------------------------------------- report


def environment(args: argparse.Namespace) -> dict:
    import cleanlab
    import sklearn
    import torch

    import datacheck

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "data": str(args.data.resolve()),
        "repeat": args.repeat,
        "seed": args.seed,
        "cpu_count": os.cpu_count(),
        "nproc": len(os.sched_getaffinity(0)),
        "machine": platform.machine(),
        "versions": {
            "python": platform.python_version(),
            "datacheck": datacheck.__version__,
            "cleanlab": cleanlab.__version__,
            "numpy": np.__version__,
            "torch": torch.__version__,
            "sklearn": sklearn.__version__,
        },
    }


def print_report(env: dict, real: dict, synthetic: dict | None) -> None:
    v = env["versions"]
    print(f"nproc={env['nproc']}, Python {v['python']}, numpy {v['numpy']}, torch {v['torch']}, "
          f"cleanlab {v['cleanlab']}, scikit-learn {v['sklearn']}; real sets best of {env['repeat']}\n")
    cases = dict(real)
    if synthetic:
        cases[f"synthetic {synthetic['rows']:,}x{synthetic['classes']}"] = synthetic
    print(f"{'dataset':<26}{'cleanlab':>10}{'datacheck':>11}{'both':>7}{'Jaccard':>9}"
          f"{'cleanlab s':>12}{'datacheck s':>13}{'ratio':>8}  target <{TARGET_RATIO}x")
    for name, r in cases.items():
        met = "met" if r["ratio"] < TARGET_RATIO else "MISSED"
        print(f"{name:<26}{r['cleanlab_flagged']:>10}{r['datacheck_flagged']:>11}{r['intersection']:>7}"
              f"{r['jaccard']:>9.4f}{r['cleanlab_s']:>12.3f}{r['datacheck_s']:>13.3f}{r['ratio']:>7.2f}x  {met}")
    print("(cleanlab / datacheck / both: rows flagged; times include np.load of the files)")

    print("\ndatacheck's stage timings (s; real sets: from the best run):")
    for name, r in cases.items():
        print(f"  {name:<24}" + ", ".join(f"{stage} {s:.3f}" for stage, s in r["datacheck_timings_s"].items()))

    if synthetic:
        s = synthetic
        print(f"\nsynthetic, one run each in its own process: {s['injected_flips']:,} labels flipped")
        print(f"{'tool':<12}{'seconds':>10}{'CPU s':>8}{'peak RSS MB':>13}{'RSS after imports MB':>22}{'flips found':>13}")
        for tool in TOOLS:
            print(f"{tool:<12}{s[f'{tool}_s']:>10.2f}{s[f'{tool}_cpu_s']:>8.2f}{s[f'{tool}_peak_rss_mb']:>13.0f}"
                  f"{s[f'{tool}_rss_after_imports_mb']:>22.0f}{s[f'{tool}_flips_found']:>13,}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return
    for tool in TOOLS:
        import_tool(tool)
    with tempfile.TemporaryDirectory(prefix="datacheck-bench-labels-") as tmp:
        scratch = Path(tmp)
        real = bench_real(args.data, args.repeat, scratch)
        synthetic = bench_synthetic(args.synthetic_n, args.synthetic_k, args.seed, scratch) if args.synthetic_n else None
    env = environment(args)
    print_report(env, real, synthetic)
    if args.json:
        args.json.write_text(json.dumps({**env, "real": real, "synthetic": synthetic}, indent=2) + "\n")


if __name__ == "__main__":
    main()

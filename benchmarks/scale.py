"""How ``datacheck audit`` on model outputs scales with N, on synthetic data with planted problems.

For each size in ``--sizes`` a seeded dataset is generated (cached under ``--data-dir``) with
:func:`make_dataset`: ``(N, 512)`` float32 embeddings clustered by class (20 superclasses of 5
classes, 2-4 sub-clusters per class, samples = centre + noise, some drawn towards a sibling
class: the hard cases), out-of-fold-like probabilities ``(N, 100)`` (a softmax of the cosine
similarity to the class centres; argmax accuracy about 88 %) and these planted problems, the
ground truth saved in ``truth.npz``:

* label noise: 5 % of the labels flipped to another class (embedding and probabilities
  follow the true class);
* outliers: 0.5 % of the embeddings far from every class, with near-uniform probabilities;
* near duplicates: 0.5 % of the rows a copy of another row's embedding plus tiny noise, with
  its label and split;
* train -> test leaks: ``split.npy`` is 80 % train / 20 % test, and 0.2 % of the test rows
  are near copies of train rows.

Then ``datacheck audit manifest.parquet --pred-probs --embeddings --checks
label_issues,outliers,near_duplicates,split_leakage,clusters,class_imbalance -q --json`` runs
(the issue's checks; ``--checks default`` runs the audit's default set instead, ``off_class``
among them)
in a subprocess (the manifest gives labels and splits, the arrays are memory-mapped): its wall
time, its peak resident memory, the seconds per stage and the kNN index (method, measured
recall) from ``summary.json``, and the recall and precision of ``findings.parquet`` against
each planted kind. With ``--datalab`` cleanlab's ``Datalab.find_issues`` (label, outlier and
near-duplicate issues) runs on the same files in a subprocess, limited to
``--datalab-timeout`` seconds, and is scored the same way (it needs the ``datasets``
package). Last, a growth table: each measure per size and its growth exponent between
consecutive sizes, ``log(t2/t1) / log(n2/n1)`` (about 1 for N log N work, 2 for N²).

Run from the repository root (big sizes take hours and need a quiet machine)::

    python benchmarks/scale.py [--sizes 100000,300000,1000000] [--data-dir /tmp/datacheck-scale]
        [--dim 512] [--classes 100] [--seed 0] [--datalab] [--datalab-timeout 1800]
        [--checks default|LIST] [--regenerate] [--json PATH]

Each dataset folder holds ``manifest.parquet`` (sample_id = row number, label = class name in column order,
split) beside the arrays. The run folders (findings,
``summary.json``, each tool's stdout/stderr) are kept under ``--data-dir``/runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _common import int_at_least  # benchmarks/ is on sys.path when run as a script

DEFAULT_SIZES = "100000,300000,1000000"
DEFAULT_DATA_DIR = Path("/tmp/datacheck-scale")
CHECKS = "label_issues,outliers,near_duplicates,split_leakage,clusters,class_imbalance"
GENERATOR_VERSION = 1  # bump when make_dataset changes: cached datasets are then regenerated

# ---- the synthetic data (see make_dataset)
CLASSES_PER_SUPER = 5  # classes share a superclass direction, as CIFAR-100's 20 x 5
SUPER_WEIGHT = 0.6  # class centre = unit(0.6 superclass + 0.8 own): siblings have cosine ~0.36
SUB_SPREAD = 0.5  # sub-cluster centre = unit(class centre + 0.5 random unit): cosine ~0.89
NOISE_NORM = 1.2  # |noise| relative to the unit centre: same sub-cluster cosine ~0.4, others ~0.1
HARD_SCALE = 0.28  # pull towards a sibling class, |N(0, 0.28)|: past ~0.45 the sample looks like it
TEMPERATURE = 0.07  # softmax(cosine to class centres / T): calibrates the probabilities
LOGIT_NOISE = 0.3  # per-class model noise on the logits
DUPLICATE_NOISE = 0.02  # |noise| of a near copy relative to its source's norm: cosine ~0.9998
LABEL_NOISE_RATE = 0.05
OUTLIER_RATE = 0.005
DUPLICATE_RATE = 0.005
TEST_FRACTION = 0.2
LEAK_RATE = 0.002  # of the test rows
BLOCK = 32_768  # rows generated at a time: 64 MiB of (BLOCK, 512) float32

PLANTED = ("label noise", "outliers", "near duplicates", "train->test leaks")
# The findings check that answers each planted kind, per tool.
DATACHECK_CHECK = {"label noise": "label_issues", "outliers": "outliers",
                   "near duplicates": "near_duplicates", "train->test leaks": "split_leakage"}
DATALAB_ISSUE = {"label noise": "label", "outliers": "outlier", "near duplicates": "near_duplicate"}

# Runs a command and reports its wall time and peak RSS (run as ``python -c MEASURE OUT TIMEOUT
# CMD...``; stdlib only, so it stays ~10 MB). Peak RSS is ``ru_maxrss`` of the rusage that
# wait4 returns for that one child (and the descendants it waited for). Not
# ``getrusage(RUSAGE_CHILDREN)`` in this script: that is a maximum over every child so far,
# and a child started from a large process inherits that process's high-water mark (Linux
# carries it over ``exec``; with vfork, the parent's whole peak: measured, ``python -c pass``
# started by a process that had once touched 2 GiB reports 2 GiB), so the memory map of a
# generated dataset or a loaded findings table would count as the audit's. Started from
# this small measuring process instead, the child's figure is its own, as ``/usr/bin/time -v``
# reports it (GNU time is not always installed). A run past TIMEOUT seconds (0: none) has its
# process group killed.
MEASURE = r"""
import json, os, signal, subprocess, sys, threading, time
out, timeout, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
timed_out = []
def kill():
    timed_out.append(True)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
with open(out + ".stdout", "wb") as so, open(out + ".stderr", "wb") as se:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=so, stderr=se, start_new_session=True)
    timer = threading.Timer(timeout, kill) if timeout > 0 else None
    if timer:
        timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except KeyboardInterrupt:  # Ctrl-C: the child is in its own session and would not see it
        os.killpg(proc.pid, signal.SIGKILL)
        os.wait4(proc.pid, 0)
        raise
    wall = time.perf_counter() - started
    if timer:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
with open(out, "w") as f:
    json.dump({"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
               "returncode": proc.returncode, "timed_out": bool(timed_out)}, f)
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=sizes_list, default=sizes_list(DEFAULT_SIZES),
                        help=f"comma-separated dataset sizes (default: {DEFAULT_SIZES})")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"cache of generated datasets and run folders (default: {DEFAULT_DATA_DIR})")
    parser.add_argument("--dim", type=int_at_least(2), default=512, help="embedding dimension")
    parser.add_argument("--classes", type=int_at_least(2), default=100, help="number of classes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the datasets")
    parser.add_argument("--datalab", action="store_true", help="also run cleanlab's Datalab on each size")
    parser.add_argument("--datalab-timeout", type=int_at_least(1), default=1800,
                        help="seconds Datalab may run per size before it is killed (default: 1800)")
    parser.add_argument("--checks", default=CHECKS,
                        help=f"checks of the datacheck audit, comma-separated, or 'default' for the audit's "
                             f"default set (default: {CHECKS})")
    parser.add_argument("--regenerate", action="store_true", help="generate the datasets again even if cached")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--datalab-worker", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def sizes_list(text: str) -> list[int]:
    try:
        sizes = [int(s.replace("_", "")) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1000:
        raise argparse.ArgumentTypeError(f"sizes must be at least 1000, got {text!r}")
    return sorted(set(sizes))


# --------------------------------------------------------------------------- the data


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_dataset(n: int, d: int = 512, classes: int = 100, seed: int = 0, out_dir: Path | str = ".") -> dict:
    """Write a synthetic labelled dataset with planted problems to ``out_dir``; return its stats.

    Files: ``embeddings.npy`` (n, d) float32, ``pred_probs.npy`` (n, classes) float32,
    ``labels.npy`` (n,) int64 (the given, partly wrong, labels), ``split.npy`` (n,) str
    ("train"/"test"), ``truth.npz`` (``true_labels``; row numbers of ``label_noise``,
    ``outliers``, ``duplicate_copies`` and their ``duplicate_sources``, ``leak_copies`` (test)
    and their ``leak_sources`` (train)), ``manifest.parquet`` (sample_id, label, split) and
    ``meta.json``, written last (its presence marks a complete dataset).

    Geometry: ``classes`` unit class centres, grouped by 5 under superclass directions; each
    class has 2-4 sub-cluster centres around its own. A clean sample is ``sub-centre +
    t·(sibling centre - class centre) + noise`` with ``|noise| ≈ 1.2`` and ``t = |N(0, 0.28)|``
    towards a random class of the same superclass: most samples sit in their sub-cluster
    (nearest neighbours mostly of their class), a tail is ambiguous. The probabilities are
    ``softmax(cos(x, class centres) / T + N(0, 0.3))``, so the hard samples are the ones the
    "model" gets wrong. The arrays are written in blocks of rows through memory maps: no more
    than a block of (n, d) floats is held in memory.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)
    rng = np.random.default_rng(seed)

    # Centres.
    n_super = max(1, math.ceil(classes / CLASSES_PER_SUPER))
    supers = unit(rng.standard_normal((n_super, d)))
    super_of = np.arange(classes) // CLASSES_PER_SUPER
    centres = unit(SUPER_WEIGHT * supers[super_of] + math.sqrt(1 - SUPER_WEIGHT**2) * unit(rng.standard_normal((classes, d))))
    n_sub = rng.integers(2, 5, classes)
    sub_class = np.repeat(np.arange(classes), n_sub)
    sub_first = np.concatenate([[0], np.cumsum(n_sub)[:-1]])
    subs = unit(centres[sub_class] + SUB_SPREAD * unit(rng.standard_normal((len(sub_class), d))))

    # Per-row plan (O(n) integers): class, sub-cluster, sibling, pull, split.
    prior = np.exp(0.25 * rng.standard_normal(classes))  # mildly unequal class sizes
    true = rng.choice(classes, size=n, p=prior / prior.sum()).astype(np.int64)
    sub = sub_first[true] + (rng.random(n) * n_sub[true]).astype(np.int64)
    sib = _sibling(true, super_of, classes, rng)
    pull = np.abs(rng.normal(0.0, HARD_SCALE, n)).astype(np.float32)
    split = np.where(rng.random(n) < TEST_FRACTION, "test", "train")

    # Planted problems, on disjoint rows.
    free = np.ones(n, bool)
    outliers = _take(rng, np.flatnonzero(free), round(OUTLIER_RATE * n), free)
    dup_copies = _take(rng, np.flatnonzero(free), round(DUPLICATE_RATE * n), free)
    test_rows = np.flatnonzero(free & (split == "test"))
    leak_copies = _take(rng, test_rows, round(LEAK_RATE * (split == "test").sum()), free)
    dup_sources = _take(rng, np.flatnonzero(free), len(dup_copies), free)
    split[dup_copies] = split[dup_sources]  # a duplicate within a split; leaks cross it
    leak_sources = _take(rng, np.flatnonzero(free & (split == "train")), len(leak_copies), free)
    label_noise = _take(rng, np.flatnonzero(free), round(LABEL_NOISE_RATE * n), free)
    for copies, sources in ((dup_copies, dup_sources), (leak_copies, leak_sources)):
        true[copies], sub[copies], sib[copies], pull[copies] = true[sources], sub[sources], sib[sources], pull[sources]
    labels = true.copy()
    labels[label_noise] = (true[label_noise] + rng.integers(1, classes, len(label_noise))) % classes
    is_outlier = np.zeros(n, bool)
    is_outlier[outliers] = True

    # Embeddings, block by block; each block from its own seeded stream.
    emb = np.lib.format.open_memmap(out / "embeddings.npy", mode="w+", dtype=np.float32, shape=(n, d))
    noise_std = np.float32(NOISE_NORM / math.sqrt(d))
    subs32, centres32 = subs.astype(np.float32), centres.astype(np.float32)
    for start in range(0, n, BLOCK):
        rows = slice(start, min(start + BLOCK, n))
        brng = np.random.default_rng([seed, 1, start // BLOCK])
        x = brng.standard_normal((rows.stop - start, d), dtype=np.float32)
        x *= noise_std
        x += subs32[sub[rows]]
        towards = centres32[sib[rows]]  # the pull towards the sibling class
        towards -= centres32[true[rows]]
        towards *= pull[rows, None]
        x += towards
        del towards
        off = np.flatnonzero(is_outlier[rows])
        if len(off):  # far from every class: a random direction (cosine ~0 to every centre)
            x[off] = brng.standard_normal((len(off), d), dtype=np.float32) * noise_std
            x[off] += unit(brng.standard_normal((len(off), d))).astype(np.float32)
        emb[rows] = x
        del x
    # Near copies: the source row plus tiny noise.
    crng = np.random.default_rng([seed, 2])
    copies = np.concatenate([dup_copies, leak_copies])
    sources = np.concatenate([dup_sources, leak_sources])
    for start in range(0, len(copies), BLOCK):
        c, s = copies[start : start + BLOCK], sources[start : start + BLOCK]
        src = np.asarray(emb[s])
        scale = (DUPLICATE_NOISE / math.sqrt(d)) * np.linalg.norm(src, axis=1, keepdims=True)
        emb[c] = src + crng.standard_normal(src.shape, dtype=np.float32) * scale.astype(np.float32)
    emb.flush()

    # Probabilities from the final embeddings, block by block.
    probs = np.lib.format.open_memmap(out / "pred_probs.npy", mode="w+", dtype=np.float32, shape=(n, classes))
    correct = 0
    for start in range(0, n, BLOCK):
        rows = slice(start, min(start + BLOCK, n))
        brng = np.random.default_rng([seed, 3, start // BLOCK])
        x = np.asarray(emb[rows])
        logits = unit(x) @ centres32.T / np.float32(TEMPERATURE)
        del x
        logits += brng.normal(0.0, LOGIT_NOISE, logits.shape).astype(np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        probs[rows] = logits
        clean = ~is_outlier[rows]
        correct += int((logits.argmax(axis=1)[clean] == true[rows][clean]).sum())
    probs.flush()
    del emb, probs

    np.save(out / "labels.npy", labels)
    np.save(out / "split.npy", split.astype("U5"))
    np.savez(out / "truth.npz", true_labels=true, label_noise=np.sort(label_noise), outliers=np.sort(outliers),
             duplicate_copies=dup_copies, duplicate_sources=dup_sources, leak_copies=leak_copies,
             leak_sources=leak_sources)
    _write_manifest(out / "manifest.parquet", labels, split, classes)
    meta = {
        "generator_version": GENERATOR_VERSION, "n": n, "d": d, "classes": classes, "seed": seed,
        "accuracy_vs_true": correct / int((~is_outlier).sum()),
        "planted": {"label_noise": len(label_noise), "outliers": len(outliers),
                    "duplicate_pairs": len(dup_copies), "leak_pairs": len(leak_copies)},
        "split": {"train": int((split == "train").sum()), "test": int((split == "test").sum())},
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _sibling(true: np.ndarray, super_of: np.ndarray, classes: int, rng: np.random.Generator) -> np.ndarray:
    """A random other class of each row's superclass (any other class if it has none)."""
    first = super_of[true] * CLASSES_PER_SUPER
    size = np.minimum(first + CLASSES_PER_SUPER, classes) - first
    offset = true - first
    alone = size < 2
    sib = first + (offset + rng.integers(1, np.maximum(size, 2))) % np.maximum(size, 1)
    sib[alone] = (true[alone] + rng.integers(1, classes, int(alone.sum()))) % classes
    return sib.astype(np.int64)


def _take(rng: np.random.Generator, pool: np.ndarray, count: int, free: np.ndarray) -> np.ndarray:
    """``count`` random rows of ``pool`` (fewer if it is smaller), marked as used in ``free``."""
    chosen = rng.choice(pool, size=min(count, len(pool)), replace=False).astype(np.int64)
    free[chosen] = False
    return chosen


def _write_manifest(path: Path, labels: np.ndarray, split: np.ndarray, classes: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = pa.array([f"class_{k:03d}" for k in range(classes)])
    schema = pa.schema([("sample_id", pa.string()), ("label", pa.string()), ("split", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, len(labels), 1 << 20):
            rows = slice(start, start + (1 << 20))
            writer.write_table(pa.table({
                "sample_id": pa.array(np.arange(rows.start, min(rows.stop, len(labels)))).cast(pa.string()),
                "label": names.take(pa.array(labels[rows])),
                "split": pa.array(split[rows]),
            }, schema=schema))


def dataset(n: int, args: argparse.Namespace) -> tuple[Path, dict]:
    """The cached dataset of ``n`` rows (generated now if absent or stale)."""
    folder = args.data_dir / f"n{n}_d{args.dim}_k{args.classes}_seed{args.seed}"
    meta_path = folder / "meta.json"
    if not args.regenerate and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("generator_version") == GENERATOR_VERSION:
            return folder, meta
    print(f"generating {n:,} x {args.dim} ({args.classes} classes) in {folder} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    meta = make_dataset(n, args.dim, args.classes, args.seed, folder)
    print(f"  done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return folder, meta


# --------------------------------------------------------------------------- running the tools


def measured(cmd: list[str], report: Path, timeout: float = 0) -> dict:
    """Run ``cmd`` under the MEASURE shim; its stdout/stderr land in ``report``.stdout/.stderr."""
    report.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-c", MEASURE, str(report), str(timeout), *cmd], check=True)
    return json.loads(report.read_text())


def run_datacheck(data: Path, run_dir: Path, checks: str) -> dict:
    selection = [] if checks == "default" else ["--checks", checks]
    cmd = [sys.executable, "-m", "datacheck", "audit", str(data / "manifest.parquet"),
           "--pred-probs", str(data / "pred_probs.npy"), "--embeddings", str(data / "embeddings.npy"),
           "--out", str(run_dir), *selection, "-q", "--json"]
    result = measured(cmd, run_dir.parent / f"{run_dir.name}.measure.json")
    result["log"] = str(run_dir.parent / f"{run_dir.name}.measure.json.stderr")
    if result["returncode"] not in (0, 1):  # 1: a gate (none is set here)
        return {**result, "error": _tail(result["log"])}
    summary = json.loads((run_dir / "summary.json").read_text())
    result["timings_s"] = summary.get("timings_s", {})
    result["stage_peak_rss_mb"] = summary.get("peak_rss_mb", {})
    result["knn_graph"] = summary.get("knn_graph")
    result["flags"] = datacheck_flags(run_dir / "findings.parquet")
    return result


def datacheck_flags(findings: Path) -> dict[str, np.ndarray]:
    """Rows flagged per check (sample_id is the row number in an array audit)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(findings, columns=["sample_id", "check"], filters=[("is_issue", "==", True)])
    flags = {}
    for check in pc.unique(table["check"]).to_pylist():
        ids = table.filter(pc.equal(table["check"], check))["sample_id"]
        flags[check] = np.sort(pc.cast(ids, "int64").to_numpy())
    return flags


def run_datalab(data: Path, out: Path, timeout: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.npy"):
        old.unlink()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--datalab-worker", str(data), str(out)]
    result = measured(cmd, out / "measure.json", timeout)
    result["log"] = str(out / "measure.json.stderr")
    if result["timed_out"]:
        return result
    if result["returncode"] != 0:
        return {**result, "error": _tail(result["log"])}
    result.update(json.loads((out / "report.json").read_text()))
    result["flags"] = {issue: np.flatnonzero(np.load(out / f"{issue}.npy")) for issue in DATALAB_ISSUE.values()}
    return result


def datalab_worker(data: str, out: str) -> None:
    """Subprocess side: Datalab on the dataset's files; flags saved as ``<issue>.npy``."""
    started = time.perf_counter()
    try:
        import datasets  # noqa: F401  (Datalab's own import of it fails with a longer story)
    except ImportError:
        sys.exit("Datalab needs the 'datasets' package: pip install datasets")
    import cleanlab
    from cleanlab import Datalab

    data, out = Path(data), Path(out)
    labels = np.load(data / "labels.npy")
    pred_probs = np.load(data / "pred_probs.npy")
    embeddings = np.load(data / "embeddings.npy")
    loaded = time.perf_counter()
    lab = Datalab(data={"label": labels}, label_name="label", verbosity=1)
    built = time.perf_counter()
    lab.find_issues(pred_probs=pred_probs, features=embeddings,
                    issue_types={"label": {}, "outlier": {}, "near_duplicate": {}})
    found = time.perf_counter()
    for issue in DATALAB_ISSUE.values():
        np.save(out / f"{issue}.npy", lab.get_issues(issue)[f"is_{issue}_issue"].to_numpy(dtype=bool))
    report = {"find_issues_s": found - built, "construct_s": built - loaded, "load_s": loaded - started,
              "cleanlab": cleanlab.__version__}
    (out / "report.json").write_text(json.dumps(report))


def _tail(path: str, lines: int = 5) -> str:
    try:
        return " | ".join(Path(path).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- scoring


def score(flags: dict[str, np.ndarray], truth: dict, check_of: dict[str, str], datalab: bool = False) -> dict:
    """Recall and precision of each planted kind, or a reason it is not scored.

    ``flags`` maps a check (datacheck) or issue type (Datalab) to its flagged rows;
    ``check_of`` maps each planted kind to the check that answers it.
    """
    out = {}
    for kind in PLANTED:
        check = check_of.get(kind)
        if check is None or check not in flags:
            out[kind] = {"na": "no split-aware check" if datalab else "needs arrays with a manifest"}
            continue
        flagged = flags[check]
        if kind == "near duplicates":
            # Leaks are near duplicates too. A pair is found when either member is flagged
            # (datacheck flags the copies of a group, Datalab every member); a flag is right
            # when it is on a member of a planted pair.
            copies = np.concatenate([truth["duplicate_copies"], truth["leak_copies"]])
            sources = np.concatenate([truth["duplicate_sources"], truth["leak_sources"]])
            hit = np.isin(copies, flagged) | np.isin(sources, flagged)
            members = np.concatenate([copies, sources])
            out[kind] = _rates(int(hit.sum()), len(copies), int(np.isin(flagged, members).sum()), len(flagged))
        else:
            planted = {"label noise": truth["label_noise"], "outliers": truth["outliers"],
                       "train->test leaks": truth["leak_copies"]}[kind]
            hits = int(np.isin(flagged, planted).sum())
            out[kind] = _rates(hits, len(planted), hits, len(flagged))
    return out


def _rates(found: int, planted: int, right: int, flagged: int) -> dict:
    return {"planted": planted, "flagged": flagged, "found": found,
            "recall": found / planted if planted else float("nan"),
            "precision": right / flagged if flagged else float("nan")}


# --------------------------------------------------------------------------- report


def short(n: int) -> str:
    for unit_, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div and n % (div // 10) == 0:
            return f"{n / div:g}{unit_}"
    return f"{n:,}"


def environment(args: argparse.Namespace) -> dict:
    import cleanlab

    import datacheck

    versions = {"python": platform.python_version(), "datacheck": datacheck.__version__, "numpy": np.__version__,
                "cleanlab": cleanlab.__version__}
    for name in ("torch", "faiss", "datasets"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "sizes": args.sizes, "dim": args.dim, "classes": args.classes, "seed": args.seed,
        "checks": args.checks, "cpu_count": os.cpu_count(), "nproc": len(os.sched_getaffinity(0)),
        "machine": platform.machine(), "versions": versions,
        "import_baseline": import_baseline(args.data_dir),
    }


def import_baseline(data_dir: Path) -> dict:
    """Wall time and peak RSS of a process that only imports what the audit imports."""
    modules = "datacheck.pipeline, datacheck.engine.knn, datacheck.engine.kmeans, cleanlab.filter, sklearn.metrics"
    data_dir.mkdir(parents=True, exist_ok=True)
    return measured([sys.executable, "-c", f"import {modules}"], data_dir / "imports.measure.json")


def fmt(value, spec: str = ".2f", width: int = 10) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'-':>{width}}"
    return f"{value:>{width}{spec}}"


def print_report(env: dict, results: list[dict], with_datalab: bool) -> None:
    v = env["versions"]
    print(f"{env['dim']}-d float32 embeddings, {env['classes']} classes, seed {env['seed']}; nproc={env['nproc']}; "
          f"Python {v['python']}, datacheck {v['datacheck']}, numpy {v['numpy']}, torch {v['torch']}, "
          f"faiss {v['faiss']}, cleanlab {v['cleanlab']}" + (f", datasets {v['datasets']}" if with_datalab else ""))
    print(f"datacheck audit --checks {env['checks']}; each run a fresh subprocess, wall and peak RSS of that process "
          f"(imports included: {env['import_baseline']['wall_s']:.1f} s, {env['import_baseline']['peak_rss_mb']:.0f} MB "
          "for the imports alone)\n")

    print(f"{'N':>10}{'accuracy':>10}{'wall s':>10}{'CPU s':>10}{'peak RSS MB':>13}  kNN graph")
    for r in results:
        dc = r["datacheck"]
        if "error" in dc:
            print(f"{r['n']:>10,}{r['meta']['accuracy_vs_true']:>10.3f}  FAILED (exit {dc['returncode']}): {dc['error']}")
            continue
        print(f"{r['n']:>10,}{r['meta']['accuracy_vs_true']:>10.3f}{dc['wall_s']:>10.2f}{dc['cpu_s']:>10.1f}"
              f"{dc['peak_rss_mb']:>13.0f}  {knn_text(dc.get('knn_graph'))}")
    print("(accuracy: argmax of pred_probs vs the true class, outliers left out)")

    print("\ndetection of the planted problems (found: planted rows flagged; near duplicates: pairs with a member "
          "flagged)")
    tools = ["datacheck"] + (["datalab"] if with_datalab else [])
    print(f"{'N':>10}  {'tool':<10}{'planted kind':<19}{'planted':>8}{'flagged':>9}{'found':>7}{'recall':>8}"
          f"{'precision':>11}")
    for r in results:
        for tool in tools:
            res = r.get(tool, {})
            if "scores" not in res:
                continue
            for kind in PLANTED:
                sc = res["scores"][kind]
                head = f"{r['n']:>10,}  {tool:<10}{kind:<19}"
                if "na" in sc:
                    print(f"{head}  n/a ({sc['na']})")
                else:
                    print(f"{head}{sc['planted']:>8}{sc['flagged']:>9}{sc['found']:>7}{fmt(sc['recall'], '.3f', 8)}"
                          f"{fmt(sc['precision'], '.3f', 11)}")

    if with_datalab:
        print("\nDatalab (issue types label, outlier, near_duplicate) vs datacheck; datacheck w/o clusters = its wall "
              "less the clusters and class_imbalance stages, which Datalab does not run")
        print(f"{'N':>10}{'Datalab s':>11}{'find_issues s':>15}{'peak RSS MB':>13}{'datacheck s':>13}"
              f"{'Datalab/datacheck':>19}{'w/o clusters s':>16}{'Datalab/that':>14}")
        for r in results:
            dl, dc = r["datalab"], r["datacheck"]
            if dl.get("timed_out"):
                print(f"{r['n']:>10,}  did not finish in {dl['timeout_s']} s")
            elif "error" in dl:
                print(f"{r['n']:>10,}  FAILED (exit {dl['returncode']}): {dl['error']}")
            else:
                wall = dc.get("wall_s") if "error" not in dc else None
                bare = wall - sum(dc["timings_s"].get(s, 0.0) for s in ("clusters", "class_imbalance")) if wall else None
                print(f"{r['n']:>10,}{dl['wall_s']:>11.2f}{dl['find_issues_s']:>15.2f}{dl['peak_rss_mb']:>13.0f}"
                      f"{fmt(wall, '.2f', 13)}{times(ratio(dl['wall_s'], wall), 19)}"
                      f"{fmt(bare, '.2f', 16)}{times(ratio(dl['wall_s'], bare), 14)}")

    print_growth(results)


def ratio(a, b):
    return a / b if a is not None and b else None


def times(value, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{f'{value:.2f}x':>{width}}"


def knn_text(info: dict | None) -> str:
    if not info:
        return "-"
    parts = [info.get("method", "?")]
    for key in ("k", "nlist", "nprobe"):
        if key in info:
            parts.append(f"{key}={info[key]}")
    if "recall_at_k" in info:
        parts.append(f"recall@k={info['recall_at_k']:.3f}")
    return " ".join(map(str, parts))


def print_growth(results: list[dict]) -> None:
    ok = [r for r in results if "error" not in r["datacheck"]]
    if not ok:
        return
    rows: list[tuple[str, list]] = [("wall s", [r["datacheck"]["wall_s"] for r in ok]),
                                    ("peak RSS MB", [r["datacheck"]["peak_rss_mb"] for r in ok])]
    stages: list[str] = []
    for r in ok:
        stages += [s for s in r["datacheck"]["timings_s"] if s not in stages]
    rows += [(f"{s} s", [r["datacheck"]["timings_s"].get(s) for r in ok]) for s in stages]
    # The audit's own high-water mark after each stage: the first stage that reaches the
    # process's peak is the one that set it.
    mem_stages: list[str] = []
    for r in ok:
        mem_stages += [s for s in r["datacheck"].get("stage_peak_rss_mb", {}) if s not in mem_stages]
    rows += [(f"RSS after {s} MB", [r["datacheck"].get("stage_peak_rss_mb", {}).get(s) for r in ok]) for s in mem_stages]
    if any("datalab" in r and "wall_s" in r["datalab"] and not r["datalab"].get("timed_out") for r in ok):
        rows.append(("Datalab wall s", [r["datalab"].get("wall_s") if not r["datalab"].get("timed_out") and
                                        "error" not in r["datalab"] else None for r in ok]))
    ns = [r["n"] for r in ok]
    steps = [f"exp {short(a)}->{short(b)}" for a, b in itertools.pairwise(ns)]
    print("\ngrowth (datacheck; exponent = log(t2/t1)/log(n2/n1): ~1 for N log N, ~2 for N^2)")
    print(f"{'':<22}" + "".join(f"{short(n):>11}" for n in ns) + "".join(f"{s:>16}" for s in steps))
    for name, values in rows:
        exps = [growth(a, b, n1, n2) for a, b, n1, n2 in zip(values, values[1:], ns, ns[1:])]
        print(f"{name:<22}" + "".join(fmt(v, ".2f" if "s" == name[-1] else ".0f", 11) for v in values)
              + "".join(fmt(e, ".2f", 16) for e in exps))
    print("(stages under ~0.5 s are dominated by fixed costs: their exponents mean little)")


def growth(t1, t2, n1: int, n2: int) -> float | None:
    if t1 is None or t2 is None or t1 <= 0 or t2 <= 0:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


# --------------------------------------------------------------------------- main


def benchmark_size(n: int, args: argparse.Namespace) -> dict:
    data, meta = dataset(n, args)
    truth = dict(np.load(data / "truth.npz"))
    runs = args.data_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    print(f"N={n:,}: datacheck audit ...", file=sys.stderr, flush=True)
    dc = run_datacheck(data, runs / f"datacheck-{data.name}", args.checks)
    if "flags" in dc:
        dc["scores"] = score(dc.pop("flags"), truth, DATACHECK_CHECK)
    result = {"n": n, "data": str(data), "meta": meta, "datacheck": dc}
    if args.datalab:
        print(f"N={n:,}: Datalab ...", file=sys.stderr, flush=True)
        dl = run_datalab(data, runs / f"datalab-{data.name}", args.datalab_timeout)
        dl["timeout_s"] = args.datalab_timeout
        if "flags" in dl:
            dl["scores"] = score(dl.pop("flags"), truth, DATALAB_ISSUE, datalab=True)
        result["datalab"] = dl
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.datalab_worker:
        datalab_worker(*args.datalab_worker)
        return
    results = [benchmark_size(n, args) for n in args.sizes]
    env = environment(args)
    print_report(env, results, args.datalab)
    if args.json:
        args.json.write_text(json.dumps({**env, "results": results}, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()

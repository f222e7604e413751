"""Benchmark datacheck's image checks against CleanVision and the raw decode rate.

On one image folder (default ``../shared/data/roman`` from the repository root), in one run:

1. **raw decode**: ``Image.open(p).load()`` on every file in a ``multiprocessing`` pool:
   the ceiling for any tool that must read every pixel.
2. **datacheck**: ``datacheck.audit(...)`` with the image-property and duplicate checks
   (``image_properties``, ``exact_duplicates``, ``near_duplicates``, ``split_leakage``) and
   the detector settings of the ``quick`` config that comes with datacheck
   (``datacheck/presets/quick.toml``: duplicate candidates from pixels alone, no model is trained), each repetition into a fresh run directory with ``cache_dir="off"``
   so no cached image statistics are reused.
   Its decode stage (``summary["timings_s"]["image_stats"]``) is reported on its own too.
3. **CleanVision**: ``Imagelab(filepaths=...).find_issues()`` with its default issue types.

All three read the same files (datacheck's manifest of the folder) with the same number of
worker processes (datacheck's default, or ``--workers``). Each tool is timed ``--repeat``
times, interleaved, and its best wall time is kept, with the CPU time of that run (which a
busy machine inflates much less); nothing is warmed up beyond imports. The script prints
the speed table, datacheck's stage timings and, side by side, how many images each tool
flags per issue type.

With ``--end-to-end``, each tool runs instead as a user runs it, in a fresh process timed
from its start to its exit (wall clock, ``--repeat`` times, default 3, alternating which
goes first; medians are reported):

- **datacheck**: the ``datacheck`` console script, ``datacheck audit DATA --config
  quick --cache-dir off --out TMP -q --fail-on ''``: a cold quick audit (image
  properties, exact and near duplicates, split leakage, class imbalance; no model);
- **CleanVision**: ``python -c`` importing cleanvision, building ``Imagelab(data_path=DATA)``
  and running ``find_issues()`` with its default issue types (duplicates included).

Both use their default number of workers unless ``--workers`` is given. Both run from
byte-compiled modules, as installed packages do (datacheck's are compiled first, see
:func:`compile_datacheck`). The mode also times
``datacheck --help`` and ``python -c "import datacheck"`` (median of 10 runs each, against
a 0.3 s target) and, in one more untimed run of the same command, lists which heavy modules
(torch, torchvision, cleanlab, sklearn, faiss) the audit's process imported.

Without the dataset folder the script says so and exits 0 (nothing to measure).

Run from the repository root (CleanVision comes with ``pip install -e '.[bench]'``)::

    python benchmarks/image_checks.py [--data PATH] [--workers N] [--repeat N] [--json PATH]
    python benchmarks/image_checks.py --end-to-end [--data PATH] [--workers N] [--repeat N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import datacheck  # light: its names are imported on first use

# Imported by import_in_process_tools(), for the in-process mode only: the end-to-end mode's
# own process stays light (it only starts and times other processes).
cleanvision = np = PIL = torch = Imagelab = Image = default_workers = None


def import_in_process_tools() -> None:
    """The in-process mode's imports: CleanVision, numpy, Pillow, torch, datacheck's loader."""
    global cleanvision, np, PIL, torch, Imagelab, Image, default_workers
    # CleanVision draws tqdm progress bars even with verbose=False; tqdm reads this on import.
    os.environ.setdefault("TQDM_DISABLE", "1")
    import cleanvision
    import numpy as np
    import PIL
    import torch
    from cleanvision import Imagelab
    from PIL import Image

    from datacheck.engine.workers import default_workers


REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "roman"
# No model: without it, near_duplicates and split_leakage would ask for embeddings, and so
# train one by cross-validation (their default embedding_candidates = true).
QUICK_CONFIG = REPO_ROOT / "datacheck" / "presets" / "quick.toml"
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
    parser.add_argument("--end-to-end", action="store_true",
                        help="time each tool as a user runs it: a fresh process, from its start to its exit")
    parser.add_argument("--workers", type=_positive_int, default=None,
                        help="worker processes for every tool (default: datacheck's default_workers() in "
                             "process; each tool's own default end to end)")
    parser.add_argument("--repeat", type=_positive_int, default=None,
                        help="timed repetitions per tool: the best is kept in process (default 1), "
                             "the median end to end (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed for datacheck and the global RNGs")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        # Not an error: a checkout without the shared data has nothing to measure.
        parser.exit(0, f"dataset folder not found: {args.data}; nothing to benchmark, skipped "
                       "(pass --data PATH to use another image folder)\n")
    if args.repeat is None:
        args.repeat = 3 if args.end_to_end else 1
    if args.workers is None and not args.end_to_end:
        import_in_process_tools()
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
        result = datacheck.audit(data, out=Path(tmp) / "run", checks=CHECKS, config=QUICK_CONFIG, cache_dir="off",
                                 workers=workers, seed=seed)
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
    if args.end_to_end:
        end_to_end(args)
        return
    import_in_process_tools()
    paths = datacheck.load_manifest(args.data).abspaths()
    results = benchmark(paths, args.data, args.workers, args.repeat, args.seed)
    comparison = compare(results, len(paths))
    env = environment(args, len(paths))
    print_report(env, results, comparison)
    if args.json:
        args.json.write_text(json.dumps({**env, "results": results, "comparison": comparison}, indent=2) + "\n")


# --- end to end: each tool in a fresh process, as a user runs it ------------------------------

STARTUP_TARGET_S = 0.3  # datacheck --help and import datacheck
SPEEDUP_TARGET = 5.0  # CleanVision wall / datacheck wall
STARTUP_RUNS = 10
HEAVY_MODULES = ("torch", "torchvision", "cleanlab", "sklearn", "scipy", "faiss")

# What a CleanVision user runs: its default issue types, its default progress output.
CLEANVISION_SCRIPT = """\
import sys
from cleanvision import Imagelab
imagelab = Imagelab(data_path=sys.argv[1])
imagelab.find_issues(**({"n_jobs": int(sys.argv[2])} if len(sys.argv) > 2 else {}))
print("images:", len(imagelab.issues))
"""

# The timed datacheck command again, in the same process as a hook that lists, once the
# command has finished, which heavy modules it imported (workers are forked, so the main
# process's modules are theirs too).
MODULES_SCRIPT = f"""\
import atexit, json, sys
atexit.register(lambda: print("heavy modules:", json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules])))
sys.argv = ["datacheck", *sys.argv[1:]]
from datacheck.__main__ import main
main()
"""


def datacheck_executable() -> str:
    """The ``datacheck`` console script next to this interpreter (the venv's), else on PATH."""
    script = Path(sys.executable).parent / "datacheck"
    return str(script) if script.exists() else "datacheck"


def audit_args(data: Path, out: Path, workers: int | None, seed: int) -> list[str]:
    """``datacheck audit`` arguments of the timed run: a cold quick audit, quiet, no gates."""
    args = ["audit", str(data), "--config", "quick", "--cache-dir", "off",
            "--out", str(out), "-q", "--fail-on", "", "--seed", str(seed)]
    return args + (["--workers", str(workers)] if workers else [])


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall seconds from the process's start to its exit, and its stdout; fails on a non-zero exit."""
    started = time.perf_counter()
    proc = subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"command failed (exit {proc.returncode}): {shlex.join(command)}\n"
                         f"{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def tool_env() -> dict[str, str]:
    """This environment, less what a benchmark (not the user) would have set."""
    env = dict(os.environ)
    env.pop("TQDM_DISABLE", None)
    return env


def run_datacheck_e2e(data: Path, workers: int | None, seed: int) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory(prefix="datacheck-e2e-") as tmp:
        out = Path(tmp) / "run"
        cpu_started = cpu_seconds()
        seconds, _ = timed([datacheck_executable(), *audit_args(data, out, workers, seed)], tool_env())
        cpu = cpu_seconds() - cpu_started
        summary = json.loads((out / "summary.json").read_text())
    return seconds, {"cpu_seconds": cpu, "images": summary["samples"], "timings_s": summary["timings_s"]}


def run_cleanvision_e2e(data: Path, workers: int | None) -> tuple[float, dict]:
    command = [sys.executable, "-c", CLEANVISION_SCRIPT, str(data), *([str(workers)] if workers else [])]
    cpu_started = cpu_seconds()
    seconds, stdout = timed(command, tool_env())
    cpu = cpu_seconds() - cpu_started
    images = next(int(line.split()[-1]) for line in stdout.splitlines() if line.startswith("images:"))
    return seconds, {"cpu_seconds": cpu, "images": images}


def startup_times(runs: int) -> dict[str, list[float]]:
    """``datacheck --help`` and ``python -c "import datacheck"``, ``runs`` times each, interleaved."""
    commands = {
        "datacheck --help": [datacheck_executable(), "--help"],
        "import datacheck": [sys.executable, "-c", "import datacheck"],
        "python -c pass": [sys.executable, "-c", "pass"],  # the interpreter's own start, for reference
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(timed(command)[0])
    return times


def audit_heavy_modules(data: Path, workers: int | None, seed: int) -> list[str]:
    """Heavy modules imported by the audit's process (one more, untimed run of the same command)."""
    with tempfile.TemporaryDirectory(prefix="datacheck-e2e-") as tmp:
        args = audit_args(data, Path(tmp) / "run", workers, seed)
        _, stdout = timed([sys.executable, "-c", MODULES_SCRIPT, *args], tool_env())
    line = next(line for line in stdout.splitlines() if line.startswith("heavy modules:"))
    return json.loads(line.split(":", 1)[1])


def compile_datacheck() -> None:
    """Byte-compile the datacheck package (into its ``__pycache__`` folders, git-ignored).

    ``pip install`` compiles an installed package's modules, CleanVision's and pandas' among
    them; an editable checkout's are compiled on first import and cached, unless bytecode is
    not written (this machine sets ``PYTHONDONTWRITEBYTECODE``): then every timed run compiled
    datacheck's 42 modules from source (0.06 s in a profile) and CleanVision's none.
    """
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(datacheck.__file__).parent)], check=True)


def end_to_end(args: argparse.Namespace) -> None:
    try:
        import cleanvision as cv  # only its version here; it runs in its own process
    except ImportError:
        raise SystemExit("CleanVision is not installed: pip install -e '.[bench]'") from None
    started_at = datetime.now(timezone.utc)
    compile_datacheck()

    startup = startup_times(STARTUP_RUNS)
    runs: dict[str, list[float]] = {"datacheck": [], "CleanVision": []}
    cpu_runs: dict[str, list[float]] = {name: [] for name in runs}
    details: dict[str, dict] = {}
    for i in range(args.repeat):  # alternate which tool goes first
        order = ["datacheck", "CleanVision"] if i % 2 == 0 else ["CleanVision", "datacheck"]
        for name in order:
            if name == "datacheck":
                seconds, details[name] = run_datacheck_e2e(args.data, args.workers, args.seed)
            else:
                seconds, details[name] = run_cleanvision_e2e(args.data, args.workers)
            runs[name].append(seconds)
            cpu_runs[name].append(details[name]["cpu_seconds"])
    heavy = audit_heavy_modules(args.data, args.workers, args.seed)

    median = {name: statistics.median(times) for name, times in {**runs, **startup}.items()}
    ratio = median["CleanVision"] / median["datacheck"]
    median_cpu = {name: statistics.median(times) for name, times in cpu_runs.items()}
    dc_stages = details["datacheck"]["timings_s"]
    report = {
        "date": started_at.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "data": str(args.data.resolve()),
        "images": {name: d["images"] for name, d in details.items()},
        "workers": args.workers or "each tool's default",
        "repeat": args.repeat,
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": platform.machine(),
        "versions": {"python": platform.python_version(), "datacheck": datacheck.__version__,
                     "cleanvision": cv.__version__},
        "datacheck_command": shlex.join(["datacheck", *audit_args(args.data, Path("TMP"), args.workers, args.seed)]),
        "seconds": runs,
        "cpu_seconds": cpu_runs,
        "median_cpu_seconds": median_cpu,
        "cpu_ratio": median_cpu["CleanVision"] / median_cpu["datacheck"],
        "startup_seconds": startup,
        "median_seconds": median,
        "speedup_vs_cleanvision": ratio,
        "datacheck_last_run_timings_s": dc_stages,
        "audit_heavy_modules": heavy,
    }

    print(f"end to end, {report['images']['datacheck']} images in {report['data']} "
          f"(CleanVision found {report['images']['CleanVision']}), workers: {report['workers']}, "
          f"median of {args.repeat}, nproc={report['nproc']}, Python {report['versions']['python']}, "
          f"cleanvision {report['versions']['cleanvision']}")
    print(f"datacheck: {report['datacheck_command']}")
    print("CleanVision: python -c 'Imagelab(data_path=DATA).find_issues()'\n")
    print(f"{'tool':<14}{'median s':>10}{'CPU s':>8}  runs: wall s (CPU s)")
    for name, times in runs.items():
        print(f"{name:<14}{median[name]:>10.2f}{median_cpu[name]:>8.2f}  "
              + ", ".join(f"{s:.2f} ({c:.2f})" for s, c in zip(times, cpu_runs[name], strict=True)))
    verdict = "meets" if ratio >= SPEEDUP_TARGET else "MISSES"
    print(f"CleanVision / datacheck: {ratio:.2f}x wall ({verdict} the >= {SPEEDUP_TARGET:g}x target), "
          f"{report['cpu_ratio']:.2f}x CPU")
    print("(CPU s: the process and its workers, user + system; a busy machine inflates wall seconds, CPU s much less)")
    total = dc_stages.get("total")
    if total is not None:
        print(f"datacheck's own stage timings, last run (s; in-process total {total:.2f} of "
              f"{runs['datacheck'][-1]:.2f} wall):")
        print("  " + ", ".join(f"{stage} {s:.2f}" for stage, s in dc_stages.items()))

    print(f"\n{'start-up':<18}{'median s':>10}  (of {STARTUP_RUNS} runs; target < {STARTUP_TARGET_S} s)")
    for name in startup:
        verdict = "" if name == "python -c pass" else ("meets" if median[name] < STARTUP_TARGET_S else "MISSES")
        print(f"{name:<18}{median[name]:>10.3f}  {verdict}")
    print(f"\nheavy modules imported by the audit's process: {', '.join(heavy) or 'none'} "
          f"(of {', '.join(HEAVY_MODULES)})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The Ray engine against the local engine on one machine: same findings, overhead, scaling.

For each dataset (``../shared/data/roman`` when present, and a folder of ``--images`` small
generated PNGs, 100,000 by default, made once under ``--data-dir``), in one process:

1. **local**: ``datacheck.audit(DATA, checks=IMAGE_CHECKS, cache_dir="off", workers=W)``
   (image properties, exact and near duplicates, split leakage, class imbalance: the
   per-image work without training), best wall time of ``--repeat``;
2. **ray**: a local Ray runtime with W CPUs (its start-up timed on its own), then the same
   audit with ``engine="ray"``, best of ``--repeat``; the findings files of both are compared
   byte for byte;
3. **scaling**: the Ray audit's decode stage (``timings_s["image_stats"]``) with a runtime of
   1 and of 2 CPUs, in images/s, and the per-image cost of the batch function alone in one
   process, from which the images/s of a node with ``--node-cpus`` CPUs is projected
   (per-CPU rate × CPUs × the parallel efficiency measured from 1 to 2 CPUs).

Ratios are taken within the run (the machine is shared and noisy). Run from the repository
root with Ray installed (``pip install -e '.[ray]'``)::

    python benchmarks/ray_engine.py [--images 100000] [--data-dir /tmp/datacheck-ray]
        [--workers 2] [--repeat 2] [--node-cpus 32] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROMAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "roman"
IMAGE_CHECKS = ["image_properties", "exact_duplicates", "near_duplicates", "split_leakage", "class_imbalance"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000, help="generated images (0: none)")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "datacheck-ray")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes = Ray CPUs")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--node-cpus", type=int, default=32, help="CPUs of the node the projection is for")
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def _write_images(job: tuple[str, int, int]) -> None:
    """Images ``first .. first+count`` of the generated set: 10 classes of 32x32 patterns (a
    class colour and stripe) under random noise, about 80 % train / 20 % val; every 500th image
    reuses its predecessor's noise over its own class pattern (a look-alike, not a copy)."""
    from PIL import Image

    root, first, count = job
    for i in range(first, first + count):
        rng = np.random.default_rng(i - 1 if i % 500 == 0 and i else i)
        label = i % 10
        split = "val" if (i * 7919) % 5 == 0 else "train"
        base = np.zeros((32, 32, 3), np.uint8)
        base[:, :, label % 3] = 40 + 20 * label
        base[label * 3 : label * 3 + 4, :, :] = 255  # a class-specific stripe
        noise = rng.integers(0, 40, size=(32, 32, 3), dtype=np.uint8)
        path = Path(root) / split / f"c{label}" / f"{i:07d}.png"
        Image.fromarray(base + noise).save(path)


def generated_folder(n: int, data_dir: Path) -> Path:
    root = data_dir / f"images{n}"
    if (root / ".complete").exists():
        return root
    for split in ("train", "val"):
        for label in range(10):
            (root / split / f"c{label}").mkdir(parents=True, exist_ok=True)
    chunk = 2_000
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_images, [(str(root), s, min(chunk, n - s)) for s in range(0, n, chunk)]))
    (root / ".complete").touch()
    return root


def audit_once(data: Path, out: Path, engine: str, workers: int):
    import datacheck

    t0 = time.perf_counter()
    result = datacheck.audit(data, out=out, checks=IMAGE_CHECKS, cache_dir="off", workers=workers, engine=engine)
    return time.perf_counter() - t0, result


def best_of(repeat: int, data: Path, out: Path, engine: str, workers: int) -> tuple[float, object]:
    # A fresh run folder each time (a rerun into the same one reuses its image statistics),
    # always named "audit": the folder's name is the findings' run_id.
    runs = [audit_once(data, out / str(i) / "audit", engine, workers) for i in range(repeat)]
    return min(runs, key=lambda r: r[0])


def start_ray(cpus: int) -> float:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=False)
    return time.perf_counter() - t0


def per_image_seconds(data: Path, limit: int = 2_000) -> float:
    """The batch function alone, in this process: seconds per image."""
    from datacheck.engine.image_stats import analyze_batch

    paths = sorted(str(p) for p in data.rglob("*.png"))[:limit]
    t0 = time.perf_counter()
    for start in range(0, len(paths), 32):
        analyze_batch({"path": paths[start : start + 32]})
    return (time.perf_counter() - t0) / max(1, len(paths))


def measure(name: str, data: Path, args: argparse.Namespace, work: Path) -> dict:
    print(f"{name}: local engine ...", flush=True)
    local_s, local = best_of(args.repeat, data, work / f"{name}-local", "local", args.workers)
    n = local.summary["samples"]
    startup = start_ray(args.workers)
    print(f"{name}: ray engine ({args.workers} CPUs) ...", flush=True)
    ray_s, remote = best_of(args.repeat, data, work / f"{name}-ray", "ray", args.workers)
    same = (local.run_dir / "findings.parquet").read_bytes() == (remote.run_dir / "findings.parquet").read_bytes()
    rates = {args.workers: n / remote.summary["timings_s"]["image_stats"]}
    if args.workers != 1:
        start_ray(1)
        print(f"{name}: ray engine (1 CPU) ...", flush=True)
        _, one = audit_once(data, work / f"{name}-ray1" / "audit", "ray", 1)
        rates[1] = n / one.summary["timings_s"]["image_stats"]
    import ray

    ray.shutdown()
    per_image = per_image_seconds(data)
    efficiency = rates[args.workers] / (args.workers * rates[1]) if args.workers != 1 else 1.0
    return {
        "dataset": name, "images": n, "local_s": round(local_s, 2), "ray_s": round(ray_s, 2),
        "ray_startup_s": round(startup, 2), "overhead": round(ray_s / local_s, 3),
        "overhead_with_startup": round((ray_s + startup) / local_s, 3), "findings_identical": same,
        "local_decode_images_per_s": round(n / local.summary["timings_s"]["image_stats"], 1),
        "ray_decode_images_per_s": {str(k): round(v, 1) for k, v in sorted(rates.items())},
        "parallel_efficiency": round(efficiency, 3),
        "batch_fn_images_per_s_per_cpu": round(1 / per_image, 1),
        f"projected_images_per_s_per_{args.node_cpus}_cpu_node": round(args.node_cpus * efficiency / per_image),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import ray  # noqa: F401
    except ImportError:
        sys.exit("Ray is not installed: pip install -e '.[ray]'")
    datasets = []
    if ROMAN.is_dir():
        datasets.append(("roman", ROMAN))
    if args.images:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        print(f"generating {args.images:,} images under {args.data_dir} (once) ...", flush=True)
        datasets.append((f"generated-{args.images // 1000}k", generated_folder(args.images, args.data_dir)))
    results = []
    with tempfile.TemporaryDirectory(prefix="datacheck-ray-runs-") as work:
        for name, data in datasets:
            results.append(measure(name, data, args, Path(work)))
    import ray as ray_module

    print(f"\nPython {platform.python_version()}, Ray {ray_module.__version__}, nproc={len(os.sched_getaffinity(0))}; "
          f"checks {','.join(IMAGE_CHECKS)}; best of {args.repeat}; cache off")
    header = (f"{'dataset':<16}{'images':>9}{'local s':>9}{'ray s':>8}{'ratio':>7}{'+start':>8}{'same':>6}"
              f"{'1 CPU/s':>9}{'2 CPU/s':>9}{'eff.':>6}{'node/s':>9}")
    print(header)
    for r in results:
        rates = r["ray_decode_images_per_s"]
        print(f"{r['dataset']:<16}{r['images']:>9,}{r['local_s']:>9.1f}{r['ray_s']:>8.1f}{r['overhead']:>7.2f}"
              f"{r['overhead_with_startup']:>8.2f}{'yes' if r['findings_identical'] else 'NO':>6}"
              f"{rates.get('1', float('nan')):>9.0f}{rates.get(str(args.workers), float('nan')):>9.0f}"
              f"{r['parallel_efficiency']:>6.2f}{r[f'projected_images_per_s_per_{args.node_cpus}_cpu_node']:>9,}")
    print(f"(ratio: Ray / local wall time, runtime already started; +start: with Ray's start-up; "
          f"node/s: projected decode+statistics images/s of a {args.node_cpus}-CPU node)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["findings_identical"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

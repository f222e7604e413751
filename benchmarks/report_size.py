"""Size and time of ``datacheck report`` on a synthetic audit run of ``--samples`` samples.

The run has the shape of a real image audit: ``--checks`` checks scoring every sample (so
``samples × checks`` findings rows), ``--flag-rate`` of each check's rows flagged, 1 % of
samples in exact/near duplicate pairs (some crossing train/val), label issues with
suggested labels over 10 classes, and a ``clusters`` check (one row per sample, four
sub-clusters per class, the smallest flagged). Its
images are ``--images`` PNG files shared by the samples (each sample still decodes its
own thumbnail, so sharing only saves disk). ``--image-kind noise`` makes every pixel random,
the worst case for JPEG thumbnails; ``blocks`` makes 8×8-pixel blocks, closer to photos.

The report is written with the default options (or ``--max-thumbnails``, ``--gallery-size``), and its size,
thumbnail count, table rows and wall time are printed, as JSON with ``--json``.

Run from the repository root::

    python benchmarks/report_size.py [--samples 100000] [--image-kind noise] [--max-thumbnails N] [--gallery-size N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import int_at_least  # noqa: E402

CHECKS = ["blurry", "corrupt", "dark", "light", "low_information", "odd_size", "odd_aspect_ratio", "grayscale",
          "exact_duplicates", "near_duplicates", "split_leakage", "label_issues", "outliers"]


def synthetic_run(path: Path, samples: int, images: int = 500, image_kind: str = "noise", checks: int = 13,
                  flag_rate: float = 0.02, classes: int = 10, clusters: bool = True, seed: int = 0) -> Path:
    """Write a complete synthetic run directory (and its image folder) under ``path``.

    Parameters
    ----------
    path : pathlib.Path
        Folder to create: ``path/run`` is the run, ``path/images`` the dataset root.
    samples : int
        Samples audited; the findings have ``samples × checks`` rows (plus ``samples`` for
        ``clusters``).
    images : int
        Distinct 96×96 PNG files; sample ``i`` points at image ``i % images``.
    image_kind : {"noise", "blocks"}
    checks : int
        How many of :data:`CHECKS` score every sample (the first ``checks``).
    flag_rate : float
        Share of each check's rows flagged (the lowest scores).

    Returns
    -------
    pathlib.Path
        The run directory.
    """
    from datacheck.runs import write_json, write_parquet
    from datacheck.schema import findings_table

    rng = np.random.default_rng(seed)
    root, run = path / "images", path / "run"
    root.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        if image_kind == "noise":
            pixels = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
        else:
            pixels = np.kron(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
        Image.fromarray(pixels).save(root / f"{i:05d}.png")
    names = [f"class_{c}" for c in range(classes)]
    label = rng.integers(0, classes, samples)
    split = np.where(rng.random(samples) < 0.8, "train", "val")
    ids = np.array([f"{s}/{names[c]}/{i:07d}.png" for i, (s, c) in enumerate(zip(split, label))])
    files = np.array([f"{i % images:05d}.png" for i in range(samples)])
    n_pairs = samples // 200  # 1 % of samples in pairs: sample 2j and 2j+1 for j < n_pairs
    parts, summary_checks = [], {}
    for check in CHECKS[:checks]:
        score = rng.random(samples)
        flagged = score < np.quantile(score, flag_rate)
        details = np.full(samples, "{}", dtype=object)
        suggested = np.full(samples, None, dtype=object)
        confidence = np.full(samples, np.nan)
        if check in ("exact_duplicates", "near_duplicates", "split_leakage"):
            flagged[:] = False
            for j in range(n_pairs):
                a, b = 2 * j, 2 * j + 1
                if check == "split_leakage" and split[a] == split[b]:
                    continue
                flagged[b], score[b] = True, 0.0
                group = json.dumps({"group": ids[a], "group_size": 2, "representative": ids[a]})
                details[a] = details[b] = group
        if check == "label_issues":
            other = (label + rng.integers(1, classes, samples)) % classes
            suggested = np.array([names[c] for c in other], dtype=object)
            confidence = rng.random(samples)
        parts.append(pd.DataFrame({
            "sample_id": ids, "path": files, "split": split, "label": [names[c] for c in label], "check": check,
            "score": score, "is_issue": flagged, "suggested_label": suggested, "suggested_confidence": confidence,
            "details": details}))
        summary_checks[check] = {"detector": check, "flagged": int(flagged.sum()), "scored": samples,
                                 "percent": round(100.0 * flagged.mean(), 3), "threshold": {"rule": "synthetic"},
                                 "worst": ids[np.argsort(score)[:3]].tolist()}
    if clusters:
        cluster = rng.choice(4, samples, p=[0.45, 0.3, 0.2, 0.05])  # cluster 3 of each class is flagged as small
        parts.append(pd.DataFrame({
            "sample_id": ids, "path": files, "split": split, "label": [names[c] for c in label], "check": "clusters",
            "score": np.where(cluster == 3, 0.2, 1.0), "is_issue": cluster == 3, "suggested_label": None, "suggested_confidence": np.nan,
            "details": [json.dumps({"cluster": int(c), "cluster_size": 0}) for c in cluster]}))
        summary_checks["clusters"] = {"detector": "clusters", "flagged": int((cluster == 3).sum()), "scored": samples,
                                      "percent": round(100.0 * (cluster == 3).mean(), 3),
                                      "threshold": {}, "worst": []}
    findings = pd.concat(parts, ignore_index=True).assign(run_id="synthetic")
    findings = findings.sort_values(["check", "score"], kind="stable").reset_index(drop=True)
    write_parquet(run / "findings.parquet", findings_table(findings))
    write_json(run / "summary.json", {
        "run_id": "synthetic", "dataset": str(root), "samples": samples,
        "splits": {k: int(v) for k, v in pd.Series(split).value_counts().items()}, "classes": classes,
        "skipped_files": {}, "missing_files": [], "checks": summary_checks, "gates": [], "exit_status": 0,
        "timings_s": {}, "findings_schema_version": 1})
    write_json(run / "run.json", {
        "datacheck_version": "synthetic", "created": "2026-01-01T00:00:00+00:00", "command": ["synthetic"],
        "dataset": str(root), "dataset_root": str(root), "manifest_format": "folder", "samples": samples,
        "seed": seed, "config": {}, "versions": {}, "findings_schema_version": 1, "status": "complete",
        "exit_status": 0})
    return run


def main(argv=None) -> None:
    from datacheck.reporting.html import DEFAULT_GALLERY_SIZE, DEFAULT_MAX_THUMBNAILS, write_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int_at_least(1), default=100_000)
    parser.add_argument("--images", type=int_at_least(1), default=2000)
    parser.add_argument("--image-kind", choices=["noise", "blocks"], default="noise")
    parser.add_argument("--checks", type=int_at_least(1), default=len(CHECKS))
    parser.add_argument("--max-thumbnails", type=int_at_least(0), default=DEFAULT_MAX_THUMBNAILS)
    parser.add_argument("--gallery-size", type=int_at_least(0), default=DEFAULT_GALLERY_SIZE)
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="report-size-") as tmp:
        t0 = time.perf_counter()
        run = synthetic_run(Path(tmp), args.samples, args.images, args.image_kind, min(args.checks, len(CHECKS)))
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = write_report(run, Path(tmp) / "report.html", max_thumbnails=args.max_thumbnails,
                              gallery_size=args.gallery_size)
        took = time.perf_counter() - t0
    out = {"samples": args.samples, "findings_rows": result.findings_rows, "image_kind": args.image_kind,
           "max_thumbnails": args.max_thumbnails, "gallery_size": args.gallery_size, "thumbnails": result.thumbnails, "table_rows": result.table_rows,
           "size_mb": round(result.size_bytes / 1e6, 2), "report_s": round(took, 1), "build_run_s": round(built, 1)}
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:>16}: {value}")


if __name__ == "__main__":
    main()

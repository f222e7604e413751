"""The audit pipeline (`datacheck audit`): manifest → features → detectors → run directory.

Plain functions; the CLI only parses options and prints what :func:`audit` returns.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .audit_run import OUTPUTS_ARTIFACT
from .config import default_config, load_config
from .detectors import AuditContext
from .detectors.registry import check_owner, create_detector, expand_checks, get_detector_class
from .engine.device import resolve_device
from .engine.image_stats import STATS_VERSION
from .engine.loader import compute_image_stats, default_workers, load_pixels
from .engine.models import create_model
from .engine.train import TrainConfig
from .errors import ExitStatus, UsageError
from .gates import Gate, parse_gates
from .manifest import Manifest, load_manifest
from .modeling import aum_outputs, cross_validated_outputs, load_outputs_from_files, manifest_for_outputs
from .runs import RunDir, Sources, refuse_run_files, write_json, write_npz, write_parquet
from .schema import FINDINGS_SCHEMA_VERSION, empty_findings, findings_table

Progress = Callable[[str, int, int], None]
_WORST_SHOWN = 3


@dataclass
class AuditResult:
    """What an audit produced.

    Attributes
    ----------
    run_dir : pathlib.Path
    findings : pandas.DataFrame
        The findings table (also in ``run_dir/findings.parquet``).
    summary : dict
        The content of ``summary.json``.
    exit_status : ExitStatus
        ``OK``, or ``GATE_FAILED`` when a ``fail_on`` gate was exceeded.
    """

    run_dir: Path
    findings: pd.DataFrame
    summary: dict
    exit_status: ExitStatus


def audit(
    source: str | Path | None,
    out: str | Path | None = None,
    *,
    config: str | Path | None = None,
    progress: Progress | None = None,
    command: list[str] | None = None,
    pred_probs: str | Path | None = None,
    labels: str | Path | None = None,
    embeddings: str | Path | None = None,
    class_names: str | Path | None = None,
    root: str | Path | None = None,
    junit: str | Path | None = None,
    **options,
) -> AuditResult:
    """Audit a dataset folder or manifest file, or model outputs, and write a run directory.

    Parameters
    ----------
    source : path-like or None
        Dataset folder (``root/<class>/*`` or ``root/<split>/<class>/*``) or manifest file;
        None when auditing ``pred_probs``/``labels`` files alone.
    out : path-like, optional
        Run directory; default ``runs/<dataset>-<UTC timestamp>``.
    config : path-like, optional
        TOML file overriding the defaults (see ``configs/default.toml``).
    progress : callable, optional
        ``progress(stage, done, total)``, called as work advances.
    command : list of str, optional
        The command line, recorded in ``run.json``.
    pred_probs, labels, embeddings, class_names : path-like, optional
        ``.npy`` files of out-of-fold probabilities (N, K), given class ids (N,) and
        embeddings (N, D), and a text file of K class names: audit any modality without images.
    root : path-like, optional
        For a manifest file: the folder its paths are relative to and must stay inside
        (default: the manifest's folder); see :func:`datacheck.load_manifest`.
    junit : path-like, optional
        Also write a JUnit XML report there (one test case per check).
    **options
        Overrides of the ``[audit]`` config section (``checks``, ``seed``, ``fail_on``,
        ``max_missing``, ``workers``, ``batch_size``, ``device``, ``model``, ``weights``,
        ``cache_dir``); ``None`` means "not given".
    """
    started = time.perf_counter()
    cfg = load_config(config, options)
    opts = cfg["audit"]
    if (pred_probs is None) != (labels is None):
        raise UsageError("--pred-probs and --labels go together")
    if (source is None) == (pred_probs is None):
        raise UsageError("give a DATASET, or --pred-probs with --labels (not both)")
    if pred_probs is None and (embeddings is not None or class_names is not None):
        raise UsageError("--embeddings and --class-names go with --pred-probs")
    if root is not None and source is None:
        raise UsageError("--root goes with a DATASET manifest file")
    available = {"pred_probs", "labels"} | ({"embeddings"} if embeddings is not None else set())
    if source is not None:
        available = {"images", "pred_probs", "labels", "embeddings", "aum"}
    explicit = opts["checks"] != default_config()["audit"]["checks"]
    detector_names = _runnable(expand_checks(opts["checks"]), available, explicit)
    gates = parse_gates(opts["fail_on"])
    _check_gates(gates, detector_names)
    device = resolve_device(opts["device"])
    workers = default_workers() if opts["workers"] < 0 else opts["workers"]
    detectors = [create_detector(name, **cfg["detectors"].get(name, {})) for name in detector_names]
    train_config = TrainConfig(model=opts["model"], **cfg["train"])
    cache_dir = _cache_dir(opts["cache_dir"])

    timings = {"setup": round(time.perf_counter() - started, 3)}
    t0 = time.perf_counter()
    if source is not None:
        manifest = load_manifest(source, max_missing=opts["max_missing"], root=root)
    else:
        arrays = load_outputs_from_files(pred_probs, labels, embeddings, class_names)
        manifest = manifest_for_outputs(arrays, str(pred_probs))
    out = out if out is not None else _default_out(Path(source if source is not None else pred_probs))
    sources = Sources.of(manifest)  # no output may land in the audited dataset
    sources.refuse(out, "--out")
    if source is not None and any(d.requires & {"pred_probs", "labels", "embeddings", "aum"} for d in detectors):
        # A bad --model or --weights fails now, before a run folder exists, not after decoding.
        create_model(train_config.model, 2, opts["weights"] or None)
        if cache_dir is not None:
            sources.refuse(cache_dir, "--cache-dir")
    if junit is not None:
        sources.refuse(junit, "--junit")
        refuse_run_files(junit, out, "--junit")
        if Path(junit).is_dir():  # found now, not after the whole audit has run
            raise UsageError(f"--junit {junit} is a folder; give the XML file's path")
    run = RunDir(out)
    run.clear_outputs()  # a reused run folder must not keep the last audit's model outputs or report
    timings["load_manifest"] = round(time.perf_counter() - t0, 3)
    run_info = _run_info(manifest, cfg, device, command)
    if source is None:  # read back by later commands (open_run), instead of copying the arrays
        run_info["inputs"] = {name: str(Path(path).resolve()) for name, path in (
            ("pred_probs", pred_probs), ("labels", labels), ("embeddings", embeddings),
            ("class_names", class_names)) if path is not None}
    write_json(run.file("run.json"), {**run_info, "status": "running"})

    ctx = AuditContext(manifest=manifest, run_id=run.path.name, seed=opts["seed"], device=device)

    def train_args() -> tuple:
        return (manifest, ctx.get("pixels"), train_config, device, opts["seed"], cache_dir, opts["weights"] or None,
                progress)

    def model_outputs():
        return cross_validated_outputs(*train_args()) if source is not None else arrays

    ctx.features["pixels"] = lambda: load_pixels(  # decoded once for every model that trains on them
        manifest.abspaths(), train_config.image_size, workers, cache_dir,
        progress=(lambda done, total: progress("decode for model", done, total)) if progress else None)

    ctx.features["images"] = lambda: _image_stats(manifest, run, workers, opts["batch_size"], progress, timings)
    ctx.features["model"] = _timed(model_outputs, timings, "model")
    ctx.features["pred_probs"] = ctx.features["labels"] = lambda: ctx.get("model")
    ctx.features["embeddings"] = lambda: ctx.get("model").embeddings
    ctx.features["aum"] = _timed(lambda: aum_outputs(*train_args()), timings, "aum training")
    for name in sorted(set().union(*(d.requires for d in detectors))):
        ctx.get(name)  # compute inputs up front, so detector timings are the detectors' own

    parts, thresholds = [], {}
    for i, detector in enumerate(detectors):
        if progress:
            progress(f"check {detector.name}", i, len(detectors))
        t0 = time.perf_counter()
        parts.append(detector.run(ctx))
        timings[detector.name] = round(time.perf_counter() - t0, 3)
        thresholds.update(detector.thresholds_)
    if progress:
        progress("checks", len(detectors), len(detectors))
    findings = pd.concat(parts, ignore_index=True) if parts else empty_findings()
    # Each part is sorted by (check, score) and each check comes from one detector, so a
    # stable sort on the check alone (as integer codes: fast at millions of rows) suffices.
    codes, _ = pd.factorize(findings["check"], sort=True)
    findings = findings.take(np.argsort(codes, kind="stable")).reset_index(drop=True)
    write_parquet(run.file("findings.parquet"), findings_table(findings))
    _write_artifacts(run, manifest, ctx)

    checks = _check_counts(findings, detectors, thresholds)
    gate_results = [_gate_result(g, findings, checks) for g in gates]
    status = ExitStatus.GATE_FAILED if any(g["failed"] for g in gate_results) else ExitStatus.OK
    timings["total"] = round(time.perf_counter() - started, 3)
    summary = {
        "run_id": ctx.run_id,
        "dataset": str(manifest.source),
        "samples": len(manifest),
        "splits": {("(none)" if pd.isna(k) else str(k)): int(v)
                   for k, v in manifest.frame["split"].value_counts(dropna=False).items()},
        "classes": int(manifest.frame["label"].nunique()),
        "skipped_files": manifest.skipped,
        "missing_files": manifest.missing,
        "checks": checks,
        "gates": gate_results,
        "exit_status": int(status),
        "timings_s": timings,
        "findings_schema_version": FINDINGS_SCHEMA_VERSION,
    }
    write_json(run.file("summary.json"), summary)
    write_json(run.file("run.json"), {**run_info, "status": "complete", "exit_status": int(status)})
    if junit is not None:
        from .report.junit import write_junit

        write_junit(summary, junit)
    return AuditResult(run.path, findings, summary, status)


def _write_artifacts(run: RunDir, manifest: Manifest, ctx: AuditContext) -> None:
    """The model's view of the data, which later commands (relabel, balance, augment) read.

    An audit of user-supplied arrays writes none: its inputs are recorded in run.json and read
    again (and checked against the fingerprint), rather than copied (400 MB at 1M x 100).
    """
    if manifest.format == "arrays" or not ctx.computed("model"):
        return
    outputs = ctx.get("model")
    arrays = {"classes": np.asarray(outputs.classes, dtype=str), "labels": outputs.labels,
              "pred_probs": outputs.pred_probs, "source": np.asarray(outputs.source)}
    for name in ("embeddings", "softmax"):
        if getattr(outputs, name) is not None:
            arrays[name] = getattr(outputs, name)
    write_npz(run.artifacts / OUTPUTS_ARTIFACT, arrays)


def _runnable(names: list[str], available: set, explicit: bool) -> list[str]:
    """Detectors whose inputs this audit has; asking for one that cannot run is an error."""
    runnable = [n for n in names if get_detector_class(n).requires <= available]
    if explicit and len(runnable) < len(names):
        missing = next(n for n in names if n not in runnable)
        needs = ", ".join(sorted(get_detector_class(missing).requires - available))
        raise UsageError(f"check {missing!r} needs {needs}, which this audit does not have")
    return runnable


def _cache_dir(setting: str) -> Path | None:
    """'' → the user cache dir (``$XDG_CACHE_HOME/datacheck`` or ``~/.cache/datacheck``); 'off' → None."""
    if setting == "off":
        return None
    if setting:
        return Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "datacheck"


def _timed(compute: Callable, timings: dict, name: str) -> Callable:
    def run():
        t0 = time.perf_counter()
        value = compute()
        timings[name] = round(time.perf_counter() - t0, 3)
        return value

    return run


def _default_out(source: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = source.resolve().name if source.is_dir() else source.stem
    return Path("runs") / f"{name or 'dataset'}-{stamp}"


def _check_gates(gates: list[Gate], detector_names: list[str]) -> None:
    """Every gate must name a check (or detector) that this audit runs; :func:`parse_gates`
    has already refused names that are neither."""
    for gate in gates:
        owner = gate.check if gate.check in detector_names else check_owner(gate.check)
        if owner not in detector_names:
            raise UsageError(f"--fail-on gate {gate} names {gate.check!r}, which this audit does not run (see --checks)")


def _image_stats(manifest: Manifest, run: RunDir, workers: int, batch_size: int, progress, timings) -> pd.DataFrame:
    """Per-image statistics, reused from the run's artifacts when the dataset is unchanged."""
    t0 = time.perf_counter()
    cached = run.artifacts / "image_stats.parquet"
    key = f"{manifest.fingerprint}|{STATS_VERSION}".encode()
    try:
        table = pq.read_table(cached)
    except (OSError, pa.ArrowException):  # not there yet, or damaged: computed again
        table = None
    if table is not None and (table.schema.metadata or {}).get(b"datacheck.manifest_fingerprint") == key:
        timings["image_stats (cached)"] = round(time.perf_counter() - t0, 3)
        return table.to_pandas()
    stats = compute_image_stats(
        manifest.abspaths(), workers=workers, batch_size=batch_size,
        progress=(lambda done, total: progress("decode images", done, total)) if progress else None,
    )
    table = pa.Table.from_pandas(stats, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"datacheck.manifest_fingerprint": key})
    write_parquet(cached, table)
    timings["image_stats"] = round(time.perf_counter() - t0, 3)
    return stats


def _check_counts(findings: pd.DataFrame, detectors, thresholds: dict) -> dict:
    """Per check: flagged and scored counts, percent, threshold and the worst samples."""
    out = {}
    for detector in detectors:
        for check in detector.checks:
            rows = findings[findings["check"] == check]
            flagged = rows[rows["is_issue"]]
            out[check] = {
                "detector": detector.name,
                "flagged": int(len(flagged)),
                "scored": int(len(rows)),
                "percent": round(100.0 * len(flagged) / len(rows), 3) if len(rows) else 0.0,
                "threshold": thresholds.get(check, {}),
                "worst": flagged["sample_id"].head(_WORST_SHOWN).tolist(),
            }
    return out


def _gate_result(gate: Gate, findings: pd.DataFrame, checks: dict) -> dict:
    if gate.check in checks:
        flagged, scored = checks[gate.check]["flagged"], checks[gate.check]["scored"]
    else:  # a detector name: distinct samples flagged by any of its checks
        mine = findings[findings["check"].isin([c for c, v in checks.items() if v["detector"] == gate.check])]
        flagged, scored = mine.loc[mine["is_issue"], "sample_id"].nunique(), mine["sample_id"].nunique()
    return {
        "gate": str(gate),
        "flagged": int(flagged),
        "scored": int(scored),
        "percent": round(100.0 * flagged / scored, 3) if scored else 0.0,
        "failed": gate.exceeded(flagged, scored),
    }


def _run_info(manifest: Manifest, cfg: dict, device: str, command: list[str] | None) -> dict:
    import PIL
    import torch

    return {
        "datacheck_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else sys.argv,
        "dataset": str(manifest.source.resolve()),  # absolute: later commands run from anywhere
        "dataset_root": str(manifest.root),
        "manifest_format": manifest.format,
        "manifest_fingerprint": manifest.fingerprint,
        "samples": len(manifest),
        "seed": cfg["audit"]["seed"],
        "device": device,
        "config": json.loads(json.dumps(cfg)),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "pyarrow": pa.__version__,
            "pillow": PIL.__version__,
            "torch": torch.__version__,
        },
        "findings_schema_version": FINDINGS_SCHEMA_VERSION,
    }

"""The audit pipeline (`datacheck audit`): manifest → features → detectors → run directory.

Plain functions; the CLI only parses options and prints what :func:`audit` returns.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from . import __version__
from .config import default_config, load_config
from .detectors import AuditContext
from .detectors.registry import check_owner, create_detector, expand_checks, is_pattern
from .engine import decode_ahead
from .engine.device import check_device_spec, resolve_device
from .engine.train_config import TrainConfig
from .engine.workers import default_workers
from .errors import ExitStatus, UsageError, as_keywords
from .features import FEATURES, FeatureStore, peak_rss_mb
from .features.images import ARRAY_COLUMNS, image_stats, pixels
from .features.knn import build_knn_graph, recall_notes
from .features.arrays import ArrayInputs, array_columns, is_path, load_array_inputs
from .features.model import Orientation, at_chance_reason, cross_validated_outputs, orientation_outputs
from .files.model_outputs import OUTPUTS_ARTIFACT, write_outputs
from .files.run_info import RunInfo
from .files.summary import SUMMARY_NAME, write_summary
from .fusion import CHECK as FUSED_CHECK, LABEL_CHECK, fused_checks, issue_scores, label_scores
from .gates import Gate, gate_result, is_off, parse_gates, untested_gate_notes
from .manifest import Manifest, layout_notes, load_manifest
from .runs import RUN_MARKER, RunDir, Sources, check_outputs, folder_lock, write_parquet
from .schema import FINDINGS_SCHEMA_VERSION, empty_findings, findings_table
from .validation import paths_checked

Progress = Callable[[str, int, int], None]
_WORST_SHOWN = 3
_REVIEW_SHOWN = 20
#: Features whose provider trains the model on the images (run.json's model settings apply).
_MODEL_FEATURES = frozenset({"model_outputs", "labels", "pred_probs", "softmax", "embeddings", "aum", "knn_graph"})
#: What a user must give for a feature the audit lacks, in their words.
_WHAT_PROVIDES = {"image_stats": "images", "thumbnails": "images", "thumbnail_descriptors": "images",
                  "thumbnail_quarters": "images", "pixels": "images", "aum": "images", "embeddings": "embeddings",
                  "knn_graph": "embeddings"}


@dataclass
class AuditResult:
    """What an audit produced.

    Attributes
    ----------
    run_dir : pathlib.Path or None
        The run directory, or None for an audit kept in memory (``out=None``).
    findings : pandas.DataFrame
        The findings table (also in ``run_dir/findings.parquet``).
    summary : dict
        The content of ``summary.json``.
    exit_status : ExitStatus
        ``OK``, or ``GATE_FAILED`` when a ``fail_on`` gate was exceeded.
    manifest : Manifest
        The audited samples.
    outputs : ModelOutputs or None
        The model's view of the data, when a model-based check ran.
    run_info : RunInfo
        ``run.json``.
    """

    run_dir: Path | None
    findings: pd.DataFrame
    summary: dict
    exit_status: ExitStatus
    manifest: Manifest | None = None
    outputs: object = None
    run_info: RunInfo | None = None
    #: ``run.json`` as this result last wrote or read it in ``run_dir`` (:func:`run_file_identity`):
    #: an audit written into the same folder since replaces that file, and this result's
    #: ``relabel``, ``balance`` and ``report`` must not act on the other audit's findings.
    run_file: tuple | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        # The dataclass's own repr printed every field: the findings table, the manifest, the
        # whole config and the timings, 6 KB for 90 samples as a notebook cell's output.
        # A check that did not judge (its rule "off: ...") reads 'off', not 0: a label check whose
        # model is at chance showed flagged 0, as clean labels would; notes are counted, as the
        # command line prints them.
        checks = self.summary.get("checks", {})
        flagged = {check: "off" if is_off(entry) else entry.get("flagged") for check, entry in checks.items()}
        notes = len(self.summary.get("notes", []))
        return (f"AuditResult(run_dir={str(self.run_dir) if self.run_dir else None!r}, "
                f"samples={self.summary.get('samples')}, flagged={flagged}, exit_status={self.exit_status!r}"
                f"{f', notes={notes}' if notes else ''})")

    def issues(self, check: str | None = None, *, flagged: bool = True) -> pd.DataFrame:
        """Findings rows, worst first within each check (``score`` ascending).

        Parameters
        ----------
        check : str, optional
            One check (``"label_issues"``) or detector (``"image_properties"``), or an fnmatch
            wildcard over both, as ``--checks`` takes (``"label_*"``); default all.
        flagged : bool, default True
            Only the samples the check flagged; False: every scored sample.
        """
        # Checked here: a list was pandas' "unhashable type", and flagged="no" passed for True.
        if check is not None and not isinstance(check, str):
            raise UsageError(f"check must be the name of a check or detector (a str), got {type(check).__name__} {check!r:.60}")
        if not isinstance(flagged, (bool, np.bool_)):
            raise UsageError(f"flagged must be True or False, got {flagged!r:.40}")
        rows = self.findings
        if check is not None:
            ran = self.summary["checks"]
            if is_pattern(check):
                own = [c for c, entry in ran.items()
                       if fnmatch.fnmatchcase(c, check) or fnmatch.fnmatchcase(entry["detector"], check)]
            else:
                own = [c for c, entry in ran.items() if entry["detector"] == check] or [check]
            if not set(own) & set(ran):
                raise UsageError(f"check {check!r} did not run in this audit; ran: {', '.join(self.summary['checks'])}")
            rows = rows[rows["check"].isin(own)]
        if flagged:
            rows = rows[rows["is_issue"]]
        return rows.reset_index(drop=True)

    def issue_summary(self) -> pd.DataFrame:
        """One row per check: detector, flagged, scored, percent (the console summary as a table)."""
        return pd.DataFrame([{"check": c, **{k: e[k] for k in ("detector", "flagged", "scored", "percent")}}
                             for c, e in self.summary["checks"].items()])

    @paths_checked
    def save(self, out: str | os.PathLike) -> Path:
        """Write the run directory (as ``datacheck audit --out`` does); later commands read it."""
        if self.manifest is None:
            raise UsageError("this result was loaded from a run directory; it is saved already")
        try:
            run = RunDir(out)
        except UsageError as exc:  # RunDir speaks of datacheck audit's --out; here it is save's out
            raise UsageError(as_keywords(str(exc), {"--out": "out"})) from None
        check_outputs(Sources.of(self.manifest), folders={"out": out})
        with folder_lock(out, "out"):
            run.clear_outputs()
            info = _saved_manifest(run, self.manifest, self.run_info)
            # The run's name in the findings too, as an audit with out= writes them: their run_id
            # column said "memory" while summary.json named the run, and two saved runs' findings
            # put together could not be told apart. This result then equals datacheck.load(out).
            findings = self.findings.assign(run_id=run.path.name)
            summary = {**self.summary, "run_id": run.path.name}
            write_run(run, AuditResult(run.path, findings, summary, self.exit_status, self.manifest, self.outputs,
                                       info))
        self.run_dir, self.findings, self.summary = run.path, findings, summary
        self.run_file = run_file_identity(run.path)
        return run.path

    def relabel(self, **options):
        """:func:`datacheck.relabel` on this audit (saved first with :meth:`save`)."""
        from .actions.relabel import relabel

        return relabel(self._saved("relabel"), **options)

    def balance(self, out: str | Path, **options):
        """:func:`datacheck.balance` on this audit, writing the plan into ``out``."""
        from .actions.balance import balance

        return balance(self._saved("balance"), out, **options)

    def report(self, out: str | Path | None = None, **options):
        """:func:`datacheck.reporting`: the HTML report of this audit (default ``RUN/report.html``)."""
        from .reporting.html import write_report

        return write_report(self._saved("report"), out, **options)

    def _saved(self, what: str) -> Path:
        if self.run_dir is None:
            raise UsageError(f"{what} reads a run directory: call .save(dir) first (or audit with out=)")
        if self.run_file is not None and run_file_identity(self.run_dir) != self.run_file:
            raise UsageError(f"{self.run_dir} no longer holds this audit (another audit was written there since, "
                             f"or it was removed): save this result again with .save(dir) before {what}")
        return self.run_dir


def run_file_identity(run_dir: Path) -> tuple | None:
    """Which ``run.json`` ``run_dir`` holds: its device, inode, size and time of change (None: none).
    Run files are replaced by a rename, never rewritten in place, so another audit written
    into the folder gives another identity."""
    try:
        st = os.stat(Path(run_dir) / RUN_MARKER)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def audit(
    source,
    out: str | Path | None = None,
    *,
    config: str | Path | None = None,
    progress: Progress | None = None,
    command: list[str] | None = None,
    pred_probs=None,
    labels=None,
    embeddings=None,
    class_names=None,
    root: str | Path | None = None,
    junit: str | Path | None = None,
    **options,
) -> AuditResult:
    """Audit a dataset folder, manifest file or DataFrame, or model outputs alone.

    The engine behind ``datacheck audit`` and :func:`datacheck.audit` (which documents the
    parameters for users); the CLI passes its option values through ``**options``.

    Parameters
    ----------
    source : path-like, pandas.DataFrame or None
        Dataset folder (``root/<class>/*`` or ``root/<split>/<class>/*``), manifest file or
        manifest DataFrame; None when auditing ``pred_probs``/``labels`` alone.
    out : path-like, optional
        Run directory to write; None keeps the audit in memory (nothing is written but the
        cache of decoded images and model outputs).
    config : path-like, optional
        TOML file overriding the defaults (see ``configs/default.toml``), or a preset's name
        (``"quick"``, ``"strict-ci"``: :data:`datacheck.config.PRESETS`).
    progress : callable, optional
        ``progress(stage, done, total)``, called as work advances.
    command : list of str, optional
        The command line, recorded in ``run.json``.
    pred_probs, labels, embeddings : path-like or ndarray, optional
        Out-of-fold probabilities (N, K), given class ids (N,) and embeddings (N, D), as
        ``.npy`` files or arrays: audit any modality without images.
    class_names : path-like or sequence of str, optional
        A text file of K class names (one per line), or the names.
    root : path-like, optional
        For a manifest file: the folder its paths are relative to and must stay inside
        (default: the manifest's folder); for a DataFrame, the folder its paths are relative to.
    junit : path-like, optional
        Also write a JUnit XML report there (one test case per check).
    **options
        Overrides of the ``[audit]`` config section (``checks``, ``seed``, ``fail_on``,
        ``max_missing``, ``workers``, ``batch_size``, ``device``, ``model``, ``weights``,
        ``cache_dir``) and of the ``[engine]`` section (``engine``, ``ray_address``); and
        ``detectors``: configured detector instances; ``None`` means "not given".
    """
    started = time.perf_counter()
    instances = options.pop("detectors", None)
    cfg = load_config(config, options)
    opts = cfg["audit"]
    if root is not None and source is None:
        raise UsageError("--root goes with a DATASET manifest file")
    if source is None:
        if pred_probs is None or labels is None:
            raise UsageError("give a DATASET, or --pred-probs with --labels")
    elif labels is not None:
        raise UsageError("--labels goes without a DATASET: with a manifest, labels come from its label column")
    # A manifest with arrays (given, or as list columns of a Parquet manifest) is audited as
    # arrays: its files, if it lists any, are not read.
    arrays = {name for name, given in (("pred_probs", pred_probs), ("embeddings", embeddings)) if given is not None}
    arrays |= array_columns(source) if source is not None else set()
    if class_names is not None and not arrays:
        raise UsageError("--class-names goes with --pred-probs or --embeddings")
    images = not arrays
    # An array audit reads the model's outputs it is given and trains nothing, so a model named
    # for it (here, not as a config file's default) would be ignored without a word.
    named = [f"--{name}" for name in ("model", "weights") if options.get(name) is not None]
    if named and not images:
        raise UsageError(f"{named[0]} goes with an audit of images, which trains a model; an audit of --pred-probs "
                         f"or --embeddings trains none: leave {named[0]} out")
    if images:
        available = set(FEATURES)
    else:
        available = {"labels"} | ({"model_outputs", "pred_probs", "softmax"} if "pred_probs" in arrays else set()) | (
            {"embeddings", "knn_graph"} if "embeddings" in arrays else set())
    if instances is not None:  # configured in Python: each must run
        detectors = _runnable(_configured(instances, cfg["detectors"]), available, explicit=True, selected_by=instances)
        # run.json's config records the settings given: these detectors and their parameters
        # (it said the defaults, k = 10 for an Outliers(k=20), and every default check).
        opts["checks"] = [d.name for d in detectors]
        cfg["detectors"].update({d.name: d.get_params() for d in detectors})
    else:
        explicit = opts["checks"] != default_config()["audit"]["checks"]
        detectors = [create_detector(name, **cfg["detectors"].get(name, {})) for name in expand_checks(opts["checks"])]
        detectors = _runnable(detectors, available, explicit, selected_by=opts["checks"])
    gates = parse_gates(opts["fail_on"])
    _check_gates(gates, detectors)
    device_spec = check_device_spec(opts["device"])
    # An accelerator asked for by name is checked now; "auto" is resolved (importing torch)
    # only when a check computes on a device.
    device = device_spec if device_spec == "cpu" else resolve_device(device_spec) if device_spec != "auto" else None
    local_workers = default_workers() if opts["workers"] < 0 else opts["workers"]
    workers = _engine(cfg["engine"]) or local_workers  # per-sample work: local processes or Ray
    train_config = TrainConfig(model=opts["model"], **cfg["train"])
    orientation_config = train_config  # convnet-small's, at [train] image_size: not a backbone's input size
    cache_dir = _cache_dir(opts["cache_dir"])
    needs = set().union(*(d.inputs(available)[0] | (d.inputs(available)[1] & available) for d in detectors))
    if not needs & {"image_stats", *(feature for feature, _, _ in ARRAY_COLUMNS.values())}:
        decode_ahead.discard()  # the images' statistics, started by the command line: not read by this audit

    timings = {"setup": round(time.perf_counter() - started, 3)}
    t0 = time.perf_counter()
    if images:
        manifest = load_manifest(source, max_missing=opts["max_missing"], root=root)
    else:
        array_inputs = load_array_inputs(source, pred_probs=pred_probs, labels=labels, embeddings=embeddings,
                                         class_names=class_names, root=root)
        manifest = array_inputs.manifest
    sources = Sources.of(manifest)  # no output may land in the audited dataset
    check_outputs(sources, folders={"--out": out})
    timings["load_manifest"] = round(time.perf_counter() - t0, 3)
    memory = {"load_manifest": peak_rss_mb()}
    t0 = time.perf_counter()  # checking the inputs: the model (importing torch when a check trains), output paths
    trains = images and bool(needs & _MODEL_FEATURES)
    # A bad --model or --weights fails now, before a run folder exists, not after decoding;
    # also when no check trains (a model named for nothing is a mistake, not a default to
    # ignore), though only then if one was named: the check imports torch.
    model_named = opts["model"] != default_config()["audit"]["model"] or bool(opts["weights"])
    if trains or (images and model_named):
        from .engine.models import create_model, with_model_input

        try:
            create_model(train_config.model, 2, opts["weights"] or None)
        except UsageError as exc:
            raise UsageError(_named_in_config(str(exc), options, opts, config)) from None
        if trains:
            train_config = with_model_input(train_config)
    cache_notes = []
    if images and not opts["cache_dir"]:  # the default cache: an aid the user did not ask for
        cache_dir, why = _default_cache_usable(cache_dir)
        if why and trains:  # said where it would have been used
            cache_notes.append(f"{why}: audited without a cache; give --cache-dir DIR for one, or --cache-dir off")
    if trains or (images and opts["cache_dir"]):
        # A --cache-dir given inside the dataset is refused even where no selected check would
        # use it: the same option must not be fine or not depending on the checks.
        check_outputs(sources, folders={"--cache-dir": cache_dir})
    check_outputs(sources, files={"--junit": junit}, run=out)
    if junit is not None and out is not None and os.path.realpath(junit) == os.path.realpath(out):
        raise UsageError(f"--junit {junit} is the run folder (--out); give the XML file's path")
    run = RunDir(out) if out is not None else None
    # Held until the run is written: another audit (or report) writing the folder now is refused.
    with folder_lock(out):
        if run is not None:
            run.clear_outputs()  # a reused run folder must not keep the last audit's model outputs or report
        timings["check_inputs"] = round(time.perf_counter() - t0, 3)
        memory["check_inputs"] = peak_rss_mb()
        run_info = _run_info(manifest, cfg, device_spec, command)
        if not images and all(is_path(p) for p in (source, pred_probs, labels, embeddings, class_names)
                              if p is not None):
            # read back by later commands (open_run), instead of copying the arrays
            run_info.inputs = {name: str(Path(path).resolve()) for name, path in (
                ("manifest", source), ("pred_probs", pred_probs), ("labels", labels), ("embeddings", embeddings),
                ("class_names", class_names)) if path is not None}
        if run is not None:
            run_info = _saved_manifest(run, manifest, run_info)
            run_info.write(run.file(RUN_MARKER))  # status "running" until the last write

        run_id = run.path.name if run is not None else "memory"
        ctx = AuditContext(manifest=manifest, run_id=run_id, seed=opts["seed"],
                           device=device if device is not None else (lambda: resolve_device("auto")),
                           features=FeatureStore(timings, memory), workers=local_workers)
        # One graph for the audit, as deep as its most demanding reader (a reader's parameter ``k``).
        knn_k = max([d.graph_k for d in detectors if "knn_graph" in d.inputs(available)[0] | d.inputs(available)[1]],
                    default=1)
        if images:
            _image_features(ctx, manifest, run, train_config, workers, opts, cache_dir, knn_k, progress, timings,
                            orientation_config)
        else:
            _array_features(ctx, array_inputs, knn_k)
        # Required inputs are computed up front, so detector timings are the detectors' own; an
        # optional one when its detector reads it, which it may not (outliers leaves orientation
        # unread when too few samples were embedded for its k: no networks trained for nothing).
        for name in sorted(set().union(*(d.inputs(available)[0] for d in detectors))):
            ctx.get(name)
        # Memory-mapped inputs are read again by the stages that need them, not held resident between them.
        release_inputs = array_inputs.release_pages if not images else (lambda: None)
        release_inputs()

        parts, thresholds = {}, {}  # check -> its rows as an Arrow table (no Python object per row)
        for i, detector in enumerate(detectors):
            if progress:
                progress(f"check {detector.name}", i, len(detectors))
            t0, computing = time.perf_counter(), ctx.features.seconds_computing
            parts.update(_by_check(findings_table(detector.run(ctx))))
            release_inputs()
            # Its own seconds: an optional input it read (outliers' orientation networks) has its own entry.
            own = time.perf_counter() - t0 - (ctx.features.seconds_computing - computing)
            timings[detector.name] = round(own, 3)
            memory[detector.name] = peak_rss_mb()
            thresholds.update(detector.thresholds_)
        if progress:
            progress("checks", len(detectors), len(detectors))
        fused, label_checks = fused_checks(detectors)
        if len(fused) > 1:  # one ranking to review by (a single check's ranking is its own)
            # Without the details, which the fused rows replace: a third of the bytes of the findings.
            tables = [parts[c] for c in fused if c in parts] or [findings_table(empty_findings())]
            evidence = pa.concat_tables(tables).drop_columns(["details"]).to_pandas()
            parts[FUSED_CHECK] = findings_table(issue_scores(evidence, fused, label_checks))
            del evidence, tables
            thresholds[FUSED_CHECK] = {"rule": "any check flags; ranked by the worst kind (label checks averaged)",
                                       "checks": fused}
        label_ran = [c for c in label_checks if c in parts and parts[c].num_rows]
        if len(label_ran) > 1:  # one label flag from every label check's evidence
            evidence = pa.concat_tables([parts[c] for c in label_ran]).drop_columns(["details"]).to_pandas()
            rows, thresholds[LABEL_CHECK] = label_scores(evidence, label_ran)
            parts[LABEL_CHECK] = findings_table(rows)
            del evidence, rows
        # Ordered by check (each part is already sorted by score): the order every reader of
        # findings.parquet sees, whether or not the run is written. Concatenation copies nothing.
        table = pa.concat_tables([parts[c] for c in sorted(parts)]) if parts else findings_table(empty_findings())
        parts.clear()
        findings = table.to_pandas()
        memory["findings"] = peak_rss_mb()
        outputs = ctx.features.get("model_outputs") if ctx.features.computed("model_outputs") else None

        checks = _check_counts(findings, detectors, thresholds)
        for fused_check in (LABEL_CHECK, FUSED_CHECK):
            if fused_check in thresholds:
                checks[fused_check] = _counts(findings, fused_check, fused_check, thresholds)
        gate_results = [gate_result(g, findings, checks) for g in gates]
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
            "peak_rss_mb": memory,
            "findings_schema_version": FINDINGS_SCHEMA_VERSION,
        }
        notes = cache_notes + layout_notes(manifest)
        if ctx.features.computed("knn_graph"):  # which index ran, and its measured recall
            summary["knn_graph"] = ctx.features.get("knn_graph").info
            notes += recall_notes(summary["knn_graph"])
        notes += _candidate_search_notes(checks) + _label_check_notes(checks) + untested_gate_notes(gate_results)
        if notes:  # what the user may have meant, or should know (also printed by the command line)
            summary["notes"] = notes
        if FUSED_CHECK in checks:  # the head of the review order (the report, review exports and --json follow it)
            fused = findings[(findings["check"] == FUSED_CHECK) & findings["is_issue"]]
            summary["review_first"] = fused["sample_id"].head(_REVIEW_SHOWN).tolist()
        run_info = replace(run_info, device=ctx.device_resolved or "cpu", status="complete", exit_status=int(status))
        result = AuditResult(run.path if run is not None else None, findings, summary, status, manifest,
                             outputs if manifest.format != "arrays" else None, run_info)
        if run is not None:
            write_run(run, result, table)
            result.run_file = run_file_identity(run.path)
        if junit is not None:
            from .reporting.junit import write_junit

            write_junit(summary, junit)
        return result


def _candidate_search_notes(checks: dict) -> list[str]:
    """The note of an image near-duplicate candidate search that its bound stopped short of the
    recall target (``candidate_search`` in the duplicate checks' thresholds; once, though
    ``near_duplicates`` and ``split_leakage`` share one search)."""
    searches = [check["threshold"]["candidate_search"] for check in checks.values()
                if "candidate_search" in check.get("threshold", {})]
    notes = [recall_notes(info, "the near-duplicate candidate search", "the images' descriptors",
                          "some near duplicates and split leaks may be missed") for info in searches]
    return list(dict.fromkeys(note for found in notes for note in found))


def _label_check_notes(checks: dict) -> list[str]:
    """The notes on the label checks' verdicts, which the summary table alone does not carry past
    ``-q``: one naming the checks that did not judge because the model is at chance
    (:func:`~datacheck.features.model.agreement_beyond_chance`; 0 flagged would read as clean
    labels), one on the classes label_issues flags nearly whole with one suggestion
    (``classes_moved``), and one per label check that flags more than half of the samples it
    scored (unless judge_at_chance asked it to judge whatever the model)."""
    idle = [name for name, check in checks.items() if "chance_accuracy" in check.get("threshold", {})]
    notes = [f"{' and '.join(idle)} did not judge the labels: {at_chance_reason(checks[idle[0]]['threshold'])}"
             ] if idle else []
    # Above chance, but most labels called wrong: a weak model (10 classes at out-of-fold accuracy
    # 0.245: 53 % flagged) or mostly wrong labels (55 % random labels, a good model: 55 %); the
    # data cannot tell which, the user can.
    accuracy = checks.get("label_issues", {}).get("threshold", {}).get("out_of_fold_accuracy")
    model = f" (out-of-fold accuracy {accuracy:.3f})" if accuracy is not None else ""
    moved = checks.get("label_issues", {}).get("threshold", {}).get("classes_moved", [])
    if moved:
        each = ", ".join(f"{m['class']!r} as {m['to']!r} ({m['flagged']:,} of {m['samples']:,})" for m in moved[:3])
        more = f" and {len(moved) - 3} more" if len(moved) > 3 else ""
        notes.append(f"label_issues flags nearly whole classes, each with one suggestion: {each}{more}: labelled wrong "
                     f"as a whole, classes the model confuses, or probabilities' columns out of order? Look before "
                     f"relabel --auto moves them")
    for name in ("label_issues", "aum"):
        check = checks.get(name, {})
        if check.get("scored") and check["flagged"] > check["scored"] / 2 and not check["threshold"].get("judge_at_chance"):
            notes.append(f"{name} calls {check['flagged']:,} of {check['scored']:,} labels wrong "
                         f"({100 * check['flagged'] / check['scored']:.1f} %): are most labels wrong, or is the model "
                         f"too weak to judge them{model}? Look at some before relabelling")
    return notes


def _by_check(table: pa.Table) -> dict[str, pa.Table]:
    """A detector's findings (sorted by check, then score) split into one zero-copy slice per check."""
    import pyarrow.compute as pc

    runs = pc.run_end_encode(table["check"].combine_chunks())
    ends = runs.run_ends.to_numpy()
    starts = np.r_[0, ends[:-1]]
    return {str(check): table.slice(start, end - start)
            for check, start, end in zip(runs.values.to_pylist(), starts, ends)}


def write_run(run: RunDir, result: AuditResult, table: pa.Table | None = None) -> None:
    """Write an audit's files into ``run``: findings (``table``, when the caller has the Arrow
    table already), model outputs, summary, and run.json last (its ``complete`` status is what
    marks the run finished)."""
    write_parquet(run.file("findings.parquet"), table if table is not None else findings_table(result.findings))
    if result.outputs is not None:
        # The model's view of the data, which later commands (relabel, balance, augment) read.
        # An audit of user-supplied arrays writes none: its inputs are recorded in run.json
        # and read again (and checked against the fingerprint), rather than copied.
        write_outputs(run.artifacts / OUTPUTS_ARTIFACT, result.outputs)
    write_summary(run.file(SUMMARY_NAME), result.summary)
    result.run_info.write(run.file(RUN_MARKER))


def _saved_manifest(run: RunDir, manifest: Manifest, run_info: RunInfo) -> RunInfo:
    """``run_info`` pointing at a copy of an in-memory (DataFrame) manifest kept in the run, so
    that later commands reload the dataset from it like from a manifest file."""
    if manifest.format != "dataframe":
        return run_info
    from .manifest import write_manifest

    path = write_manifest(manifest.frame, manifest.root, run.artifacts / "manifest.parquet")
    return replace(run_info, dataset=str(path.resolve()), manifest_format="parquet")


def _image_features(ctx: AuditContext, manifest: Manifest, run: RunDir | None, train_config: TrainConfig,
                    workers: int, opts: dict, cache_dir, knn_k: int, progress, timings: dict,
                    orientation_config: TrainConfig) -> None:
    """Offer the features of a folder or manifest of images (computed only when read).
    ``orientation_config`` is the training config before a pretrained model's input size (224
    px) replaced ``[train] image_size``: the orientation networks are convnet-small."""
    store, weights, seed = ctx.features, opts["weights"] or None, opts["seed"]
    decoded = functools.cache(lambda: image_stats(  # one decode of every image gives the statistics and arrays
        manifest, workers, opts["batch_size"], artifacts=run.artifacts if run is not None else None,
        progress=progress, timings=timings))
    store.provide("image_stats", lambda: decoded()[0], timed=False)
    for feature, _, _ in ARRAY_COLUMNS.values():
        store.provide(feature, lambda feature=feature: decoded()[1][feature], timed=False)
    store.provide("pixels", lambda: pixels(manifest, train_config.image_size, workers, cache_dir, progress), timed=False)

    def train_args() -> tuple:
        return manifest, lambda: store.get("pixels"), train_config, ctx.device, seed, cache_dir, weights, progress

    remote = {}
    if not isinstance(workers, int):  # the Ray engine: one task per fold, a frozen backbone on an actor pool
        from .engine.ray_engine import ray_map_folds, ray_map_predict

        remote = {"map_folds": ray_map_folds(workers), "map_predict": ray_map_predict(workers)}
    store.provide("model_outputs", lambda: cross_validated_outputs(*train_args(), **remote))

    def orientation() -> Orientation:
        # It joins the distance in embedding space: where no sample was embedded (no labels to
        # train on) there is nothing to join, and no image is decoded for it.
        if store.get("model_outputs").embeddings is None:
            return Orientation(None, float("nan"), "off: no sample embedded")
        side = orientation_config.image_size
        if side == train_config.image_size:
            return orientation_outputs(lambda: store.get("pixels"), len(manifest), orientation_config, ctx.device,
                                       seed, cache_dir, progress, manifest.in_id_order)
        # A frozen backbone's 224-px inputs are not convnet-small's: the images are decoded again
        # at [train] image_size (a fraction of the backbone's decode), unless that decode found
        # too few readable.
        readable = int(store.get("pixels")[1].sum())
        return orientation_outputs(lambda: pixels(manifest, side, workers, cache_dir, progress), readable,
                                   orientation_config, ctx.device, seed, cache_dir, progress, manifest.in_id_order)

    store.provide("orientation", orientation)
    _model_views(ctx, knn_k)
    # Margins recorded by the same cross-validation (threshold samples in each fold).
    store.provide("aum", lambda: store.get("model_outputs").aum, timed=False)


def _array_features(ctx: AuditContext, arrays: ArrayInputs, knn_k: int) -> None:
    """Offer the features of the arrays the user brought."""
    store = ctx.features
    store.provide("labels", lambda: arrays.labels, timed=False)
    if arrays.outputs is not None:
        store.provide("model_outputs", lambda: arrays.outputs, timed=False)
        store.provide("pred_probs", lambda: arrays.outputs.pred_probs, timed=False)
        store.provide("softmax", lambda: arrays.outputs.softmax, timed=False)
    if arrays.embeddings is not None:
        store.provide("embeddings", lambda: arrays.embeddings, timed=False)
        _graph(ctx, knn_k)


def _model_views(ctx: AuditContext, knn_k: int) -> None:
    """The model outputs split into the features detectors declare."""
    store = ctx.features
    store.provide("labels", lambda: store.get("model_outputs").label_ids, timed=False)
    store.provide("pred_probs", lambda: store.get("model_outputs").pred_probs, timed=False)
    store.provide("softmax", lambda: store.get("model_outputs").softmax, timed=False)
    store.provide("embeddings", lambda: store.get("model_outputs").embeddings, timed=False)
    _graph(ctx, knn_k)


def _graph(ctx: AuditContext, knn_k: int) -> None:
    ctx.features.provide("knn_graph", lambda: build_knn_graph(ctx.features.get("embeddings"), knn_k, ctx.device,
                                                              seed=ctx.seed))


def _configured(instances, settings: dict) -> list:
    """Detectors given as names (wildcards allowed) or configured instances (:func:`datacheck.audit`'s
    ``checks``); a named one takes its ``settings`` (the config's ``[detectors.NAME]``), as with
    names alone. A wildcard leaves out what the list names itself (a configured instance wins)."""
    from .detectors import Detector

    given = {item.name for item in instances if isinstance(item, Detector)}
    given |= {item for item in instances if isinstance(item, str) and not is_pattern(item)}
    detectors = []
    for item in instances:
        if isinstance(item, str):
            names = expand_checks([item])
            if is_pattern(item):  # what the list names itself is not doubled
                names = [name for name in names if name not in given and name not in {d.name for d in detectors}]
            made = [create_detector(name, **settings.get(name, {})) for name in names]
        else:
            made = [item]
        for detector in made:
            if not isinstance(detector, Detector):
                raise UsageError(f"checks must be detector names or Detector instances, got {type(item).__name__}")
            detector.validate_params()
            if any(d.name == detector.name for d in detectors):
                raise UsageError(f"checks names {detector.name!r} twice")
            detectors.append(detector)
    if not detectors:
        raise UsageError("checks names no detector")
    return detectors


def _runnable(detectors: list, available: set, explicit: bool, selected_by=()) -> list:
    """Detectors whose inputs this audit has; asking for one that cannot run is an error.

    ``selected_by`` is what chose them (``--checks`` items: names, wildcards, instances). One
    that only a wildcard chose is left out when it cannot run, as long as each wildcard
    chooses one that can: ``--checks '*'`` ("every one") on model outputs failed every time,
    as ``aum`` needs images.
    """
    import fnmatch

    runnable = [d for d in detectors if d.inputs(available)[0] <= available]
    if not explicit:
        return runnable
    patterns = [item for item in selected_by if isinstance(item, str) and is_pattern(item)]
    named = {item if isinstance(item, str) else item.name for item in selected_by if not isinstance(item, str) or not is_pattern(item)}
    required = [d for d in detectors if d.name in named or not patterns]
    for pattern in patterns:  # a wildcard of which nothing can run is refused for its first match
        matched = [d for d in detectors if fnmatch.fnmatchcase(d.name, pattern)]
        if matched and not any(d in runnable for d in matched):
            required.append(matched[0])
    missing = next((d for d in detectors if d in required and d not in runnable), None)
    if missing is not None:
        needs = ", ".join(sorted({_WHAT_PROVIDES.get(f, f) for f in missing.inputs(available)[0] - available}))
        raise UsageError(f"check {missing.name!r} needs {needs}, which this audit does not have")
    return runnable


def _engine(settings: dict):
    """A :class:`~datacheck.engine.ray_engine.RayEngine` for ``[engine] name = "ray"`` (checked
    installed now, before any work), else None (local worker processes)."""
    if settings["name"] != "ray":
        return None
    from .engine.ray_engine import RayEngine, require_ray

    require_ray()
    engine = RayEngine(settings["ray_address"] or None)
    engine.start()  # now: an unreachable cluster is a usage error before any output exists
    return engine


def _named_in_config(message: str, options: dict, opts: dict, config) -> str:
    """A model or weights error as the user gave the value: when it came from the config
    file, the message names the file and its ``[audit]`` key, not a flag the user never passed."""
    defaults = default_config()["audit"]
    given = {key for key in ("model", "weights") if options.get(key) is None and opts[key] != defaults[key]}
    if config is None or not given:
        return message
    if "weights" in given and message.startswith(f"--weights {opts['weights']}"):
        return f"{config}: [audit] weights = " + message[len("--weights "):]
    if "model" in given and not message.startswith("--weights"):
        return f"{config}: [audit] model: {message}"
    return message


def _cache_dir(setting: str) -> Path | None:
    """'' → the user cache dir (``$XDG_CACHE_HOME/datacheck`` or ``~/.cache/datacheck``; None
    where the user has no home folder); 'off' → None."""
    if setting == "off":
        return None
    if setting:
        return Path(setting)
    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except RuntimeError:  # no $HOME, and a user id without a password entry (a container's --user)
        return None
    return Path(base) / "datacheck"


def _default_cache_usable(cache_dir: Path | None) -> tuple[Path | None, str | None]:
    """The default cache folder, or None and why not where it cannot be written: no home
    folder, a read-only one (``nobody``'s ``/nonexistent``, a container's), a file in the way.

    The cache only saves time, and the user did not choose this folder: an audit that can
    write its run runs without it (pip disables its cache so), where it failed with exit 2
    (no home folder: an internal error) once the first images were decoded. A folder named
    with ``--cache-dir`` is the user's choice, and is checked as every output is."""
    if cache_dir is None:
        return None, "no home folder for the cache ($HOME is not set)"
    from .runs import writable_problem

    why = writable_problem(cache_dir)
    return (None, f"the cache folder {cache_dir} cannot be written ({why})") if why else (cache_dir, None)


def default_out(source: Path) -> Path:
    """``runs/<dataset name>-<UTC time>``: where ``datacheck audit`` writes without ``--out``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = source.resolve().name if source.is_dir() else source.stem
    return Path("runs") / f"{name or 'dataset'}-{stamp}"


def _check_gates(gates: list[Gate], detectors: list) -> None:
    """Every gate must name a check (or detector) that this audit runs (see :func:`gates_not_run`);
    :func:`parse_gates` has already refused names that are neither."""
    for gate in gates_not_run(gates, detectors)[:1]:
        raise UsageError(f"--fail-on gate {gate} names {gate.check!r}, which this audit does not run (see --checks)")


def gates_not_run(gates: list[Gate], detectors: list) -> list[Gate]:
    """The ``gates`` that name neither a check (or detector) of ``detectors`` nor a fused check
    they make (``issue_score`` from two or more fused checks, ``label_fused`` from two or more
    label checks)."""
    names = {d.name for d in detectors}
    fused, label_checks = fused_checks(detectors)
    names |= {name for name, sources in ((FUSED_CHECK, fused), (LABEL_CHECK, label_checks)) if len(sources) > 1}
    return [gate for gate in gates if (gate.check if gate.check in names else check_owner(gate.check)) not in names]


def checks_without_model(checks, detector_params: dict | None = None) -> list[str]:
    """Of ``checks`` (names or groups), those an image audit runs without training a model:
    no model outputs, embeddings, AUM or kNN graph among their inputs, as configured by
    ``detector_params`` (``{name: params}``)."""
    params = detector_params or {}
    available = frozenset(FEATURES)
    kept = []
    for name in expand_checks(checks):
        requires, optional = create_detector(name, **params.get(name, {})).inputs(available)
        if not (requires | optional) & _MODEL_FEATURES:
            kept.append(name)
    return kept


def _check_counts(findings: pd.DataFrame, detectors, thresholds: dict) -> dict:
    """Per check: flagged and scored counts, percent, threshold and the worst samples."""
    return {check: _counts(findings, check, detector.name, thresholds) for detector in detectors for check in detector.checks}


def _counts(findings: pd.DataFrame, check: str, detector: str, thresholds: dict) -> dict:
    rows = findings[findings["check"] == check]
    flagged = rows[rows["is_issue"]]
    return {
        "detector": detector,
        "flagged": int(len(flagged)),
        "scored": int(len(rows)),
        "percent": round(100.0 * len(flagged) / len(rows), 3) if len(rows) else 0.0,
        "threshold": thresholds.get(check, {}),
        "worst": flagged["sample_id"].head(_WORST_SHOWN).tolist(),
    }


def _run_info(manifest: Manifest, cfg: dict, device: str, command: list[str] | None) -> RunInfo:
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str | None:  # without importing it (torch takes seconds)
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    return RunInfo(
        datacheck_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command if command is not None else sys.argv,
        dataset=str(manifest.source.resolve()),  # absolute: later commands run from anywhere
        dataset_root=str(manifest.root),
        manifest_format=manifest.format,
        manifest_fingerprint=manifest.fingerprint,
        samples=len(manifest),
        seed=cfg["audit"]["seed"],
        device=device,
        config=json.loads(json.dumps(cfg)),
        versions={
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "pyarrow": pa.__version__,
            "pillow": installed("pillow"),
            "torch": installed("torch"),
        },
        findings_schema_version=FINDINGS_SCHEMA_VERSION,
    )

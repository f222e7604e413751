"""Read a finished audit back: what ``relabel``, ``balance``, ``augment`` and ``report`` start from.

:func:`open_run` checks that the folder is a complete datacheck run and loads its findings;
:meth:`AuditRun.manifest` reloads the audited dataset and refuses it when it changed since
the audit (the manifest fingerprint in ``run.json`` no longer matches), so a repair is never
computed from stale findings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import BadDataError, UsageError
from .files import RUN_DAMAGED
from .files.findings import FINDINGS_NAME, check_findings, check_sample_ids, check_suggested_labels
from .files.model_outputs import OUTPUTS_ARTIFACT, check_outputs_file, read_classes, read_outputs
from .files.run_info import RunInfo
from .files.summary import SUMMARY_NAME, read_summary
from .manifest import Manifest, load_manifest
from .runs import RUN_MARKER


class DatasetChangedError(BadDataError):
    """The audited dataset is not as the audit saw it (its manifest fingerprint differs).
    ``dataset``: the folder or manifest file, so a caller that audited it itself (``fix``)
    can say what to do instead of "audit it again"."""

    def __init__(self, dataset: Path, message: str):
        super().__init__(message)
        self.dataset = Path(dataset)


@dataclass
class AuditRun:
    """A complete audit run directory.

    Attributes
    ----------
    path : pathlib.Path
    info : RunInfo
        ``run.json`` (command, config, dataset, manifest fingerprint, seed...).
    summary : dict
        Content of ``summary.json``.
    findings : pandas.DataFrame
        ``findings.parquet``, in the findings schema.
    """

    path: Path
    info: RunInfo
    summary: dict
    findings: pd.DataFrame
    _manifest: Manifest | None = field(default=None, repr=False)
    _arrays: tuple | None = field(default=None, repr=False)

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    @property
    def seed(self) -> int:
        return self.info.seed

    def manifest(self, dataset: str | os.PathLike | None = None) -> Manifest:
        """The audited dataset, reloaded and checked to be unchanged since the audit.

        Parameters
        ----------
        dataset : path-like, optional
            Where the dataset is now (default: where it was audited, from ``run.json``).

        Raises
        ------
        BadDataError
            The dataset is gone, or differs from the audited one (files added, removed,
            relabelled or modified since; or another dataset altogether), or the findings
            name samples it does not have.
        """
        if self._manifest is not None and dataset is None:
            return self._manifest  # already loaded and checked against the fingerprint
        fingerprint = self.info.fingerprint(self.path / RUN_MARKER)
        if self.info.manifest_format == "arrays":  # audited from --pred-probs: no files
            manifest = self._array_inputs().manifest
        else:
            source = Path(dataset) if dataset is not None else Path(self.info.dataset)
            # A manifest file audited with --root is read from that root again (unless it moved).
            root = self.info.dataset_root if dataset is None and self.info.manifest_format != "folder" else None
            manifest = load_manifest(source, max_missing=int(self.info.audit_setting("max_missing", 0)), root=root)
            if manifest.fingerprint != fingerprint:
                what = "is not the dataset audited in" if dataset is not None else "changed since the audit in"
                raise DatasetChangedError(source,
                    f"dataset {source} {what} {self.path} (files, labels or splits differ from the audit's "
                    f"manifest fingerprint); run datacheck audit on it again"
                )
        check_sample_ids(self.path / FINDINGS_NAME, self.findings, manifest.frame["sample_id"])
        classes = set(manifest.frame["label"].dropna()) | set(self._model_classes() or ())
        check_suggested_labels(self.path / FINDINGS_NAME, self.findings, classes)
        # The fingerprint matched, so this is the audited dataset wherever it is now: keep it,
        # so later calls (classes()) do not look for it again where it was audited.
        self._manifest = manifest
        return manifest

    def outputs(self):
        """The model's view the audit used (:class:`datacheck.features.model.ModelOutputs`), or None.

        Present when a model-based check ran: out-of-fold ``pred_probs`` (N, C), given
        ``labels`` (N,) as class ids, ``embeddings`` (N, D) or None, row-aligned with the
        manifest.

        Raises
        ------
        BadDataError
            ``model_outputs.npz`` is damaged (see :func:`~datacheck.files.model_outputs.read_outputs`).
        """
        if self.info.manifest_format == "arrays":
            return self._array_inputs().outputs
        path = self.artifacts / OUTPUTS_ARTIFACT
        return read_outputs(path) if path.exists() else None

    def classes(self) -> list:
        """The audit's class names (the columns of ``pred_probs``), without loading the arrays."""
        classes = self._model_classes()
        return classes if classes is not None else sorted(self.manifest().frame["label"].dropna().unique())

    def _model_classes(self) -> list | None:
        """The classes of the model outputs (the user's arrays, or ``model_outputs.npz``), or
        None when the audit trained no model."""
        if self.info.manifest_format == "arrays":
            return list(self._array_inputs().labels.classes)
        path = self.artifacts / OUTPUTS_ARTIFACT
        return read_classes(path) if path.exists() else None

    def _array_inputs(self):
        """The :class:`datacheck.features.arrays.ArrayInputs` of an array audit, read again
        from the files it recorded (checked against the fingerprint)."""
        from .features.arrays import load_array_inputs

        if self._arrays is not None:
            return self._arrays
        fingerprint = self.info.fingerprint(self.path / RUN_MARKER)
        inputs = self.info.inputs
        if "manifest" not in inputs and ("pred_probs" not in inputs or "labels" not in inputs):
            raise BadDataError(f"{self.path / RUN_MARKER} does not record the audit's input files "
                               "(arrays given in memory); audit files to use this run")
        arrays = load_array_inputs(inputs.get("manifest"), pred_probs=inputs.get("pred_probs"), labels=inputs.get("labels"),
                                   embeddings=inputs.get("embeddings"), class_names=inputs.get("class_names"))
        if arrays.manifest.fingerprint != fingerprint:
            changed = " or ".join(path for path in inputs.values())
            raise BadDataError(f"{changed} changed since the audit in {self.path}; run datacheck audit again")
        self._arrays = arrays
        return self._arrays


def open_run(path: str | os.PathLike) -> AuditRun:
    """Open a complete audit run directory.

    Raises
    ------
    UsageError
        ``path`` is not a datacheck run directory, or its audit did not finish.
    BadDataError
        A run file is unreadable or damaged: ``run.json`` lacks a key or has one of the
        wrong type, ``summary.json`` holds a value the report cannot read,
        ``findings.parquet`` lacks a column of the findings schema, or
        ``artifacts/model_outputs.npz`` is unreadable or not row-aligned with the audit
        (each checked by its module in :mod:`datacheck.files`).

    Notes
    -----
    Every command that reads a run (relabel, balance, augment, report) starts here, so a
    damaged run is refused up front with one line naming the file, never half-way through
    a command. The checks are cheap: ``model_outputs.npz`` is checked from its .npy headers,
    without loading the arrays. Findings naming samples the dataset does not have are
    refused when the dataset is reloaded (:meth:`AuditRun.manifest`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not (path / RUN_MARKER).is_file():
        what = "does not exist" if not path.exists() else f"is not a datacheck run directory (no {RUN_MARKER})"
        raise UsageError(f"run {path} {what}")
    info = RunInfo.read(path / RUN_MARKER)
    summary = read_summary(path / SUMMARY_NAME)
    try:
        _require_regular(path / FINDINGS_NAME)
        table = pq.read_table(path / FINDINGS_NAME)
    except (OSError, pa.ArrowException) as exc:
        reason = "missing" if isinstance(exc, FileNotFoundError) else exc
        raise BadDataError(f"cannot read {path / FINDINGS_NAME}: {reason}") from exc
    check_findings(path / FINDINGS_NAME, table)
    _check_rows_per_check(path, summary, table)
    outputs = path / "artifacts" / OUTPUTS_ARTIFACT
    if info.manifest_format != "arrays" and outputs.exists():
        _require_regular(outputs)
        check_outputs_file(outputs, info.samples)
    return AuditRun(path, info, summary, table.to_pandas())


def _check_rows_per_check(path: Path, summary: dict, table) -> None:
    """Refuse findings that are not the ones ``summary.json`` counted: the audit writes one row
    per scored sample of each check, so a truncated ``findings.parquet`` (rows lost, or none)
    or another run's copied over this one is a different count; the report had shown its
    galleries beside the summary's counts, exit 0.

    Raises
    ------
    BadDataError
        Naming both files and the first check whose rows differ.
    """
    import pyarrow.compute as pc

    checks = summary.get("checks")
    if not isinstance(checks, dict):
        return
    counts = pc.value_counts(table.column("check")).to_pylist()
    rows = {entry["values"]: entry["counts"] for entry in counts}
    for check in sorted(set(rows) | set(checks), key=lambda c: (c not in checks, str(c))):
        entry = checks.get(check)
        scored = entry.get("scored") if isinstance(entry, dict) else None
        if check in checks and not isinstance(scored, int):
            continue  # an older or hand-made summary without counts: nothing to compare
        if scored is None or rows.get(check, 0) != scored:
            said = "has no such check" if scored is None else f"counts {scored} scored sample(s)"
            raise BadDataError(f"{path / FINDINGS_NAME} has {rows.get(check, 0)} row(s) for check {check!r:.40}, "
                               f"{path / SUMMARY_NAME} {said} (truncated, or another run's findings); "
                               f"{RUN_DAMAGED}")


def _require_regular(path: Path) -> None:
    """Refuse a run file that is a named pipe, a device or a folder before it is opened:
    reading a pipe blocks for ever, and ``/dev/zero`` never ends (``model_outputs.npz`` read
    from it fills the memory). A missing file raises ``FileNotFoundError`` for the caller.

    Raises
    ------
    BadDataError
        Naming the file and what it is.
    """
    from .engine.image_stats import SpecialFileError, require_regular_file

    try:
        require_regular_file(path)
    except SpecialFileError as exc:
        raise BadDataError(f"{path} is {exc}; {RUN_DAMAGED}") from None

"""Read a finished audit back: what ``relabel``, ``balance``, ``augment`` and ``report`` start from.

:func:`open_run` checks that the folder is a complete datacheck run and loads its findings;
:meth:`AuditRun.manifest` reloads the audited dataset and refuses it when it changed since
the audit (the manifest fingerprint in ``run.json`` no longer matches), so a repair is never
computed from stale findings.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BadDataError, UsageError
from .manifest import Manifest, load_manifest
from .runs import RUN_MARKER
from .schema import FINDINGS_SCHEMA_VERSION
from .validation import check_keys, has_type, type_names

OUTPUTS_ARTIFACT = "model_outputs.npz"

#: Keys of ``run.json`` that later commands rely on, with their JSON types. A run.json that
#: was hand-edited or damaged is refused when the run is opened, naming the file and the key,
#: rather than failing later with a KeyError deep inside a command.
RUN_KEYS = {"dataset": str, "manifest_format": str, "samples": int}
#: Keys that may be absent but must have this type if present. The fingerprint is required
#: only by the commands that reload the dataset (:meth:`AuditRun.manifest`): a report does not.
OPTIONAL_RUN_KEYS = {"manifest_fingerprint": str, "dataset_root": (str, type(None)), "seed": int, "config": dict,
                     "inputs": dict, "findings_schema_version": int}
_NUMBER = (int, float)
#: ``summary.json`` as the report reads it: key → JSON type. Keys may be absent (the report
#: falls back), but a present key of another type is refused when the run is opened.
SUMMARY_KEYS = {"run_id": str, "samples": int, "classes": int, "exit_status": int, "splits": dict,
                "checks": dict, "gates": list, "missing_files": list, "skipped_files": dict}
#: One entry of ``summary.json``'s ``checks`` (keys may be absent) and of its ``gates`` (all required).
SUMMARY_CHECK_KEYS = {"detector": str, "flagged": int, "scored": int, "percent": _NUMBER,
                      "threshold": (dict, type(None)), "worst": list}
SUMMARY_GATE_KEYS = {"gate": str, "failed": bool, "flagged": int, "scored": int, "percent": _NUMBER}
#: Members of ``model_outputs.npz``: name → (required, number of dimensions).
OUTPUT_MEMBERS = {"classes": (True, 1), "labels": (True, 1), "pred_probs": (True, 2), "source": (True, 0),
                  "embeddings": (False, 2), "softmax": (False, 2)}
#: What reading a damaged .npz can raise: a truncated or overwritten archive is a BadZipFile,
#: a corrupt member a BadZipFile (bad CRC) or a zlib/EOF error, a bad .npy header a ValueError.
NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


@dataclass
class AuditRun:
    """A complete audit run directory.

    Attributes
    ----------
    path : pathlib.Path
    info : dict
        Content of ``run.json`` (command, config, dataset, manifest fingerprint, seed...).
    summary : dict
        Content of ``summary.json``.
    findings : pandas.DataFrame
        ``findings.parquet``, in the findings schema.
    """

    path: Path
    info: dict
    summary: dict
    findings: pd.DataFrame
    _manifest: Manifest | None = field(default=None, repr=False)
    _arrays: tuple | None = field(default=None, repr=False)

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    @property
    def seed(self) -> int:
        return int(self.info.get("seed", 0))

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
            relabelled or modified since; or another dataset altogether).
        """
        if self._manifest is not None and dataset is None:
            return self._manifest  # already loaded and checked against the fingerprint
        self._fingerprint()
        if self.info.get("manifest_format") == "arrays":  # audited from --pred-probs: no files
            manifest = self._array_inputs().manifest
        else:
            source = Path(dataset) if dataset is not None else Path(self.info["dataset"])
            max_missing = int(self.info.get("config", {}).get("audit", {}).get("max_missing", 0))
            # A manifest file audited with --root is read from that root again (unless it moved).
            root = self.info.get("dataset_root") if dataset is None and self.info.get("manifest_format") != "folder" else None
            manifest = load_manifest(source, max_missing=max_missing, root=root)
            if manifest.fingerprint != self.info.get("manifest_fingerprint"):
                what = "is not the dataset audited in" if dataset is not None else "changed since the audit in"
                raise BadDataError(
                    f"dataset {source} {what} {self.path} (files, labels or splits differ from the audit's "
                    f"manifest fingerprint); run datacheck audit on it again"
                )
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
            ``model_outputs.npz`` is damaged: unreadable, or its label ids are out of range
            (its members and shapes were checked by :func:`open_run`).
        """
        from .features.model import ModelOutputs

        if self.info.get("manifest_format") == "arrays":
            return self._array_inputs().outputs
        path = self.artifacts / OUTPUTS_ARTIFACT
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except NPZ_ERRORS as exc:
            raise _damaged(path, _reason(exc)) from exc
        labels = arrays["labels"]
        if len(labels) and (labels.min() < -1 or labels.max() >= len(arrays["classes"])):
            # -1 marks an unscored row; anything else outside the classes would index past them.
            raise _damaged(path, f"labels holds class ids outside -1..{len(arrays['classes']) - 1}")
        return ModelOutputs(arrays["classes"].tolist(), labels, arrays["pred_probs"],
                            arrays.get("embeddings"), str(arrays["source"]), arrays.get("softmax"))


    def classes(self) -> list:
        """The audit's class names (the columns of ``pred_probs``), without loading the arrays."""
        if self.info.get("manifest_format") == "arrays":
            return list(self._array_inputs().labels.classes)
        path = self.artifacts / OUTPUTS_ARTIFACT
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:  # reads only this member
                    return data["classes"].tolist()
            except NPZ_ERRORS as exc:
                raise _damaged(path, _reason(exc)) from exc
        return sorted(self.manifest().frame["label"].dropna().unique())

    def _array_inputs(self):
        """The :class:`datacheck.features.arrays.ArrayInputs` of an array audit, read again
        from the files it recorded (checked against the fingerprint)."""
        from .features.arrays import load_array_inputs

        if self._arrays is not None:
            return self._arrays
        self._fingerprint()
        inputs = self.info.get("inputs") or {}
        if "manifest" not in inputs and ("pred_probs" not in inputs or "labels" not in inputs):
            raise BadDataError(f"{self.path / RUN_MARKER} does not record the audit's input files "
                               "(arrays given in memory); audit files to use this run")
        arrays = load_array_inputs(inputs.get("manifest"), pred_probs=inputs.get("pred_probs"), labels=inputs.get("labels"),
                                   embeddings=inputs.get("embeddings"), class_names=inputs.get("class_names"))
        if arrays.manifest.fingerprint != self.info.get("manifest_fingerprint"):
            changed = " or ".join(path for path in inputs.values())
            raise BadDataError(f"{changed} changed since the audit in {self.path}; run datacheck audit again")
        self._arrays = arrays
        return self._arrays

    def _fingerprint(self) -> str:
        """``run.json``'s manifest fingerprint; BadDataError naming the key when it is absent."""
        if "manifest_fingerprint" not in self.info:
            raise BadDataError(f"{self.path / RUN_MARKER} lacks the key 'manifest_fingerprint'; the run is damaged, "
                               "run datacheck audit again")
        return self.info["manifest_fingerprint"]


def open_run(path: str | os.PathLike) -> AuditRun:
    """Open a complete audit run directory.

    Raises
    ------
    UsageError
        ``path`` is not a datacheck run directory, or its audit did not finish.
    BadDataError
        A run file is unreadable or damaged: ``run.json`` lacks a key or has one of the
        wrong type, ``findings.parquet`` lacks a column of the findings schema, or
        ``artifacts/model_outputs.npz`` is unreadable or not row-aligned with the audit.

    Notes
    -----
    Every command that reads a run (relabel, balance, augment, report) starts here, so a
    damaged run is refused up front with one line naming the file, never half-way through
    a command. The checks are cheap: ``model_outputs.npz`` is checked from its .npy headers,
    without loading the arrays.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not (path / RUN_MARKER).is_file():
        what = "does not exist" if not path.exists() else f"is not a datacheck run directory (no {RUN_MARKER})"
        raise UsageError(f"run {path} {what}")
    info = read_json(path / RUN_MARKER)
    if info.get("status") != "complete":
        raise UsageError(f"the audit in {path} did not complete (status {info.get('status')!r}); run it again")
    check_run_info(path / RUN_MARKER, info)
    summary = read_json(path / "summary.json")
    check_summary(path / "summary.json", summary)
    try:
        table = pq.read_table(path / "findings.parquet")
    except (OSError, pa.ArrowException) as exc:
        raise BadDataError(f"cannot read {path / 'findings.parquet'}: {exc}") from exc
    check_findings(path / "findings.parquet", table)
    outputs = path / "artifacts" / OUTPUTS_ARTIFACT
    if info["manifest_format"] != "arrays" and outputs.exists():
        check_outputs_file(outputs, info["samples"])
    return AuditRun(path, info, summary, table.to_pandas())


def check_summary(path: Path, summary: dict) -> None:
    """Refuse a ``summary.json`` whose values the report cannot read (see :data:`SUMMARY_KEYS`).

    Raises
    ------
    BadDataError
        Naming the file and the first bad key.
    """
    def refuse(key, kind):
        raise BadDataError(f"{path}: {key} must be {type_names(kind)}; the run is damaged, run datacheck audit again")

    for key, kind in SUMMARY_KEYS.items():
        if key in summary and not has_type(summary[key], kind):
            refuse(repr(key), kind)
    for key in ("splits", "skipped_files"):  # counts per split / per reason
        for name, count in summary.get(key, {}).items():
            if not has_type(count, int):
                refuse(f"{key}[{name!r}]", int)
    for check, entry in summary.get("checks", {}).items():
        if not isinstance(entry, dict):
            refuse(f"checks[{check!r}]", dict)
        for key, kind in SUMMARY_CHECK_KEYS.items():
            if key in entry and not has_type(entry[key], kind):
                refuse(f"checks[{check!r}][{key!r}]", kind)
    for i, gate in enumerate(summary.get("gates", [])):
        if not isinstance(gate, dict):
            refuse(f"gates[{i}]", dict)
        for key, kind in SUMMARY_GATE_KEYS.items():
            if not has_type(gate.get(key), kind):
                refuse(f"gates[{i}][{key!r}]", kind)


def check_run_info(path: Path, info: dict) -> None:
    """Refuse a ``run.json`` without the keys later commands need, or with one of the wrong type.

    Raises
    ------
    BadDataError
        Naming the file and the first bad key.
    """
    check_keys(path, info, RUN_KEYS, OPTIONAL_RUN_KEYS, "the run is damaged, run datacheck audit again")
    if info["samples"] < 0:
        raise BadDataError(f"{path}: key 'samples' must be >= 0, not {info['samples']}; the run is damaged, "
                           "run datacheck audit again")
    version = info.get("findings_schema_version", FINDINGS_SCHEMA_VERSION)
    if version > FINDINGS_SCHEMA_VERSION:
        raise BadDataError(f"{path}: findings schema version {version} is newer than this datacheck reads "
                           f"({FINDINGS_SCHEMA_VERSION}); upgrade datacheck, or run datacheck audit again")
    for section in ("audit", "train"):  # read with .get() by relabel, balance and boosting
        if not isinstance(info.get("config", {}).get(section, {}), dict):
            raise BadDataError(f"{path}: key 'config.{section}' must be an object; the run is damaged, "
                               "run datacheck audit again")
    max_missing = info.get("config", {}).get("audit", {}).get("max_missing", 0)  # reloading the manifest uses it
    if not has_type(max_missing, int) or max_missing < 0:
        raise BadDataError(f"{path}: key 'config.audit.max_missing' must be an integer >= 0, not {max_missing!r:.40}; "
                           "the run is damaged, run datacheck audit again")


def check_findings(path: Path, table) -> None:
    """Refuse findings that lack a column of the findings schema or hold one of another type.

    Every reader of a run indexes these columns by name, so a findings table written by
    another tool (or edited by hand) is checked once here.

    Parameters
    ----------
    path : pathlib.Path
        ``findings.parquet``, for messages.
    table : pyarrow.Table

    Raises
    ------
    BadDataError
    """
    from .schema import FINDINGS_SCHEMA

    missing = [name for name in FINDINGS_SCHEMA.names if name not in table.column_names]
    if missing:
        raise BadDataError(f"{path} lacks the findings column(s) {', '.join(missing)}; the run is damaged, "
                           "run datacheck audit again")
    for expected in FINDINGS_SCHEMA:
        column = table.column(expected.name)
        if not _same_kind(column.type, expected):
            raise BadDataError(f"{path}: findings column {expected.name!r} has type {column.type}, "
                               f"not {expected.type}; the run is damaged, run datacheck audit again")
        if not expected.nullable and column.null_count:
            raise BadDataError(f"{path}: findings column {expected.name!r} has {column.null_count} missing "
                               "value(s); the run is damaged, run datacheck audit again")


def details_object(text, source) -> dict:
    """The ``details`` of one findings row as a dict.

    ``details`` is not parsed when a run is opened (millions of rows): readers parse the rows
    they need through this, so a damaged value is reported as bad data, not as a crash.

    Parameters
    ----------
    text : str
        The row's ``details``.
    source : path-like
        ``findings.parquet``, for the message.

    Raises
    ------
    BadDataError
        ``text`` is not a JSON object.
    """
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise BadDataError(f"{source}: a details value is not a JSON object ({str(text)!r:.60}); the run is "
                           "damaged, run datacheck audit again")
    return value


def _same_kind(actual, expected) -> bool:
    """Whether a findings column of Arrow type ``actual`` reads like the schema's ``expected`` field.

    The kind matters, not the width: findings rewritten with pandas hold ``large_string``
    and may hold integer scores, which every reader handles like ``string`` and ``float64``.
    """
    import pyarrow as pa

    if pa.types.is_null(actual):  # an all-null column written by pandas: fine where nulls are allowed
        return expected.nullable
    if pa.types.is_string(expected.type):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_floating(expected.type):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual)
    return actual == expected.type


def check_outputs_file(path: Path, samples: int) -> None:
    """Refuse a ``model_outputs.npz`` that is unreadable or not row-aligned with the audit.

    Only the archive's directory and each member's .npy header are read (shapes and dtypes),
    so this is cheap even for a (1M, 100) ``pred_probs``.

    Parameters
    ----------
    path : pathlib.Path
    samples : int
        Rows of the audited manifest (``run.json``'s ``samples``).

    Raises
    ------
    BadDataError
        ``<path> is damaged (<why>); rerun the audit``.
    """
    from numpy.lib import format as npy

    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                with archive.open(member) as stream:
                    version = npy.read_magic(stream)
                    if version not in readers:  # 3.0 is only for non-Latin-1 field names: never written
                        raise ValueError(f"member {member.filename} has .npy format version {version}")
                    shape, _, dtype = readers[version](stream)
                headers[member.filename.removesuffix(".npy")] = shape, dtype
    except NPZ_ERRORS as exc:
        raise _damaged(path, _reason(exc)) from exc
    for name, (required, ndim) in OUTPUT_MEMBERS.items():
        if name not in headers:
            if required:
                raise _damaged(path, f"no {name} array")
            continue
        shape, dtype = headers[name]
        if len(shape) != ndim:
            raise _damaged(path, f"{name} has shape {shape}, expected {ndim} dimension(s)")
        if ndim and name != "classes" and shape[0] != samples:
            raise _damaged(path, f"{name} has {shape[0]} rows, the audited manifest {samples} samples")
    classes = headers["classes"][0][0]
    for name in ("pred_probs", "softmax"):
        if name in headers and headers[name][0][1] != classes:
            raise _damaged(path, f"{name} has {headers[name][0][1]} columns for {classes} classes")
    kinds = {"classes": "U", "labels": "iu", "pred_probs": "f", "softmax": "f", "embeddings": "f"}
    for name, allowed in kinds.items():
        if name in headers and headers[name][1].kind not in allowed:
            raise _damaged(path, f"{name} has dtype {headers[name][1]}")


def _damaged(path: Path, why: str) -> BadDataError:
    return BadDataError(f"{path} is damaged ({why}); rerun the audit")


def _reason(exc: Exception) -> str:
    """``Type: first line of the message`` of an exception (its type alone if it has no message)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_json(path: Path) -> dict:
    """A JSON object written by datacheck (run.json, summary.json, plan.json); BadDataError if damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadDataError(f"{path} is missing; the run directory is incomplete") from None
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise BadDataError(f"cannot read {path}: {str(exc)[:200]}") from exc
    if not isinstance(data, dict):
        raise BadDataError(f"{path} is not a JSON object")
    return data

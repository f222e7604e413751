"""Read a finished audit back: what ``relabel``, ``balance``, ``augment`` and ``report`` start from.

:func:`open_run` checks that the folder is a complete datacheck run and loads its findings;
:meth:`AuditRun.manifest` reloads the audited dataset and refuses it when it changed since
the audit (the manifest fingerprint in ``run.json`` no longer matches), so a repair is never
computed from stale findings.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BadDataError, UsageError
from .manifest import Manifest, load_manifest
from .runs import RUN_MARKER

OUTPUTS_ARTIFACT = "model_outputs.npz"


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
            return self._manifest
        if self.info.get("manifest_format") == "arrays":  # audited from --pred-probs: no files
            manifest = self._array_inputs()[1]
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
        if dataset is None:
            self._manifest = manifest
        return manifest

    def outputs(self):
        """The model's view the audit used (:class:`datacheck.modeling.ModelOutputs`), or None.

        Present when a model-based check ran: out-of-fold ``pred_probs`` (N, C), given
        ``labels`` (N,) as class ids, ``embeddings`` (N, D) or None, row-aligned with the
        manifest.
        """
        from .modeling import ModelOutputs

        if self.info.get("manifest_format") == "arrays":
            return self._array_inputs()[0]
        path = self.artifacts / OUTPUTS_ARTIFACT
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError) as exc:
            raise BadDataError(f"cannot read {path}: {exc}") from exc
        return ModelOutputs(arrays["classes"].tolist(), arrays["labels"], arrays["pred_probs"],
                            arrays.get("embeddings"), str(arrays["source"]), arrays.get("softmax"))


    def classes(self) -> list:
        """The audit's class names (the columns of ``pred_probs``), without loading the arrays."""
        if self.info.get("manifest_format") == "arrays":
            return self._array_inputs()[0].classes
        path = self.artifacts / OUTPUTS_ARTIFACT
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:  # reads only this member
                    return data["classes"].tolist()
            except (OSError, ValueError, EOFError, KeyError) as exc:
                raise BadDataError(f"cannot read {path}: {exc}") from exc
        return sorted(self.manifest().frame["label"].dropna().unique())

    def _array_inputs(self):
        """(ModelOutputs, Manifest) of a ``--pred-probs`` audit, read again from its input files."""
        from .modeling import load_outputs_from_files, manifest_for_outputs

        if self._arrays is not None:
            return self._arrays
        inputs = self.info.get("inputs") or {}
        if "pred_probs" not in inputs or "labels" not in inputs:
            raise BadDataError(f"{self.path / RUN_MARKER} does not record the audit's --pred-probs/--labels files")
        outputs = load_outputs_from_files(inputs["pred_probs"], inputs["labels"], inputs.get("embeddings"),
                                          inputs.get("class_names"))
        manifest = manifest_for_outputs(outputs, self.info["dataset"])
        if manifest.fingerprint != self.info.get("manifest_fingerprint"):
            raise BadDataError(f"{inputs['pred_probs']} or {inputs['labels']} changed since the audit in {self.path}; "
                               "run datacheck audit again")
        self._arrays = outputs, manifest
        return self._arrays


def open_run(path: str | os.PathLike) -> AuditRun:
    """Open a complete audit run directory.

    Raises
    ------
    UsageError
        ``path`` is not a datacheck run directory, or its audit did not finish.
    BadDataError
        A run file is unreadable or damaged.
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
    summary = read_json(path / "summary.json")
    try:
        findings = pq.read_table(path / "findings.parquet").to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise BadDataError(f"cannot read {path / 'findings.parquet'}: {exc}") from exc
    return AuditRun(path, info, summary, findings)


def read_json(path: Path) -> dict:
    """A JSON object written by datacheck (run.json, summary.json, plan.json); BadDataError if damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadDataError(f"{path} is missing; the run directory is incomplete") from None
    except (OSError, ValueError) as exc:
        raise BadDataError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise BadDataError(f"{path} is not a JSON object")
    return data

"""``run.json``: what an audit ran on and how, read back by every later command.

Written twice by an audit: with ``status = "running"`` when the run folder is created, and
with ``"complete"`` last, after the findings, summary and model outputs, so a run is
finished exactly when its run.json says so.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import BadDataError, UsageError
from ..runs import RUN_MARKER, write_json
from ..schema import FINDINGS_SCHEMA_VERSION
from ..validation import SEED_MAX, has_type, type_names
from . import RUN_DAMAGED
from .json_object import check_fields, read_json

#: Settings of ``config["audit"]`` that later commands use again, with their JSON types.
_AUDIT_SETTINGS = {"model": str, "device": str, "weights": str}


@dataclass
class RunInfo:
    """The content of ``run.json``.

    The annotations are the file's JSON types, checked by :meth:`from_dict`: a hand-edited or
    damaged run.json is refused when the run is opened, naming the key, not later with a
    KeyError deep inside a command.

    Attributes
    ----------
    dataset : str
        The audited folder or manifest file (absolute), or the array audit's manifest.
    manifest_format : str
        ``folder``, ``csv``, ``parquet``, ``jsonl``, or ``arrays`` (an audit of user arrays).
    samples : int
        Rows of the audited manifest.
    manifest_fingerprint : str, optional
        Ids, paths, labels, splits and file sizes/times of the audited manifest; the commands
        that reload the dataset refuse it when this no longer matches. A report does not need it.
    dataset_root : str or None
        Where the manifest's relative paths were resolved.
    seed : int
    config : dict
        The full configuration the audit ran with (``config["audit"]``, ``config["train"]``...).
    inputs : dict of str to str
        An array audit's input files (``pred_probs``, ``labels``, ``manifest``...), read again
        by later commands instead of being copied into the run.
    findings_schema_version : int
    status : str
        ``running`` or ``complete``.
    exit_status : int or None
        The audit's exit status, once complete.
    datacheck_version, created, device : str
    command : list of str
    versions : dict of str to str or None
        Python and library versions the audit ran with.
    """

    dataset: str
    manifest_format: str
    samples: int
    manifest_fingerprint: str | None = None
    dataset_root: str | None = None
    seed: int = 0
    config: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    findings_schema_version: int = FINDINGS_SCHEMA_VERSION
    status: str = "running"
    exit_status: int | None = None
    datacheck_version: str = ""
    created: str = ""
    device: str = ""
    command: list = field(default_factory=list)
    versions: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | os.PathLike) -> "RunInfo":
        """Read and check ``run.json``: a run whose audit did not finish is refused (a usage
        error, exit 2: run it again) before its keys are checked.

        Raises
        ------
        UsageError
            The status is not ``complete``.
        BadDataError
            The file is unreadable, or a key is missing or of the wrong type.
        """
        path = Path(path)
        data = read_json(path)
        if data.get("status") != "complete":
            raise UsageError(f"the audit in {path.parent} did not complete (status {data.get('status')!r}); "
                             "run it again")
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: dict, path: str | os.PathLike = RUN_MARKER) -> "RunInfo":
        """A :class:`RunInfo` of a JSON object, checked (``path`` names the file in messages)."""
        info = cls(**check_fields(cls, path, data, ("dataset", "manifest_format", "samples"), RUN_DAMAGED))
        info._check(path)
        return info

    def to_dict(self) -> dict:
        """The JSON object written to run.json (keys without a value left out)."""
        data = asdict(self)
        for key in ("manifest_fingerprint", "exit_status", "inputs"):
            if not data[key] and data[key] != 0:
                del data[key]
        return data

    def write(self, path: str | os.PathLike) -> Path:
        """Write run.json atomically."""
        return write_json(Path(path), self.to_dict())

    def audit_setting(self, key: str, default):
        """``config["audit"][key]`` of the audit, or ``default``."""
        return self.config.get("audit", {}).get(key, default)

    def fingerprint(self, path: str | os.PathLike) -> str:
        """The manifest fingerprint; BadDataError naming ``path`` (run.json) when it is absent."""
        if self.manifest_fingerprint is None:
            raise BadDataError(f"{path} lacks the key 'manifest_fingerprint'; {RUN_DAMAGED}")
        return self.manifest_fingerprint

    def _check(self, path) -> None:
        """The rules beyond the keys' types."""
        if self.samples < 0:
            raise BadDataError(f"{path}: key 'samples' must be >= 0, not {self.samples}; {RUN_DAMAGED}")
        if not 0 <= self.seed <= SEED_MAX:
            raise BadDataError(f"{path}: key 'seed' must be in [0, {SEED_MAX}], not {self.seed}; {RUN_DAMAGED}")
        if self.findings_schema_version > FINDINGS_SCHEMA_VERSION:
            raise BadDataError(f"{path}: findings schema version {self.findings_schema_version} is newer than this "
                               f"datacheck reads ({FINDINGS_SCHEMA_VERSION}); upgrade datacheck, or run datacheck "
                               "audit again")
        for section in ("audit", "train"):  # read with .get() by relabel, balance and boosting
            if not isinstance(self.config.get(section, {}), dict):
                raise BadDataError(f"{path}: key 'config.{section}' must be an object; {RUN_DAMAGED}")
        max_missing = self.audit_setting("max_missing", 0)  # reloading the manifest uses it
        if not has_type(max_missing, int) or max_missing < 0:
            raise BadDataError(f"{path}: key 'config.audit.max_missing' must be an integer >= 0, not "
                               f"{max_missing!r:.40}; {RUN_DAMAGED}")
        for key, kind in _AUDIT_SETTINGS.items():  # read again by boosting (model, device, weights)
            value = self.audit_setting(key, None)
            if value is not None and not has_type(value, kind):
                raise BadDataError(f"{path}: key 'config.audit.{key}' must be {type_names(kind)}, not "
                                   f"{value!r:.40}; {RUN_DAMAGED}")
        if not all(isinstance(value, str) for value in self.inputs.values()):
            raise BadDataError(f"{path}: key 'inputs' must map names to file paths; {RUN_DAMAGED}")

"""``summary.json``: per check the flagged and scored counts, learned thresholds, worst
samples; gates; exit status; timings.

It stays a plain JSON object in memory (``AuditResult.summary``) rather than a dataclass:
it is the document users, CI scripts and ``--json`` read as it is, and detectors add their
own keys to a check's entry (``threshold``). What the report and the console read from it
is declared here and checked when a run is opened.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BadDataError
from ..runs import write_json
from ..validation import has_type, type_names
from . import RUN_DAMAGED
from .json_object import read_json

SUMMARY_NAME = "summary.json"
_NUMBER = (int, float)
#: Top-level keys as the report reads them: key -> JSON type. Keys may be absent (the report
#: falls back), but a present key of another type is refused when the run is opened.
SUMMARY_KEYS = {"run_id": str, "samples": int, "classes": int, "exit_status": int, "splits": dict,
                "checks": dict, "gates": list, "missing_files": list, "skipped_files": dict, "notes": list}
#: One entry of ``checks`` (keys may be absent) and of ``gates`` (all required).
SUMMARY_CHECK_KEYS = {"detector": str, "flagged": int, "scored": int, "percent": _NUMBER,
                      "threshold": (dict, type(None)), "worst": list}
SUMMARY_GATE_KEYS = {"gate": str, "failed": bool, "flagged": int, "scored": int, "percent": _NUMBER}


def read_summary(path: str | os.PathLike) -> dict:
    """Read ``summary.json`` and check it (:func:`check_summary`)."""
    path = Path(path)
    summary = read_json(path)
    check_summary(path, summary)
    return summary


def write_summary(path: str | os.PathLike, summary: dict) -> Path:
    """Write ``summary.json`` atomically."""
    return write_json(Path(path), summary)


def check_summary(path: Path, summary: dict) -> None:
    """Refuse a ``summary.json`` whose values the report cannot read (see :data:`SUMMARY_KEYS`).

    Raises
    ------
    BadDataError
        Naming the file and the first bad key.
    """
    def refuse(key, kind):
        raise BadDataError(f"{path}: {key} must be {type_names(kind)}; {RUN_DAMAGED}")

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
    for i, note in enumerate(summary.get("notes", [])):  # sentences, shown as they are on the report's page
        if not isinstance(note, str):
            refuse(f"notes[{i}]", str)
    for i, gate in enumerate(summary.get("gates", [])):
        if not isinstance(gate, dict):
            refuse(f"gates[{i}]", dict)
        for key, kind in SUMMARY_GATE_KEYS.items():
            if not has_type(gate.get(key), kind):
                refuse(f"gates[{i}][{key!r}]", kind)
    where = _out_of_range(summary)
    if where is not None:
        raise BadDataError(f"{path}: {where} is a number datacheck never writes (beyond 2**63); {RUN_DAMAGED}")


#: Larger integers than a count or a statistic can be: Python reads any JSON integer, but
#: formatting one beyond float range fails (a hand-edited 1e400).
_LARGEST = 2**63


def _out_of_range(value, where: str = "summary") -> str | None:
    """Where in ``value`` (a parsed JSON document) an integer beyond :data:`_LARGEST` is, or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return where if abs(value) >= _LARGEST else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _out_of_range(item, f"{where}[{key!r}]")
        if found is not None:
            return found
    return None

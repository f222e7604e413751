"""The detector protocol and the context detectors run in.

A detector is a small class in the scikit-learn style: ``__init__`` only stores keyword
parameters (with defaults, under the same names), ``run(ctx)`` validates them, does the
work, records what it learned from the data in attributes ending in ``_`` (``thresholds_``),
and returns rows of the findings schema. The base class, not each detector, fills in the
manifest columns and enforces the schema (score in [0, 1], known checks, JSON details).
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..manifest import Manifest
from ..schema import FINDINGS_COLUMNS

Progress = Callable[[str, int, int], None]


@dataclass
class AuditContext:
    """What detectors may read: the manifest, per-sample features, and shared results.

    Attributes
    ----------
    manifest : Manifest
    run_id : str
    seed : int
        Every random choice a detector makes derives from it.
    device : str
        torch device for array work (``"cpu"``, ``"cuda:0"``, ...).
    features : dict of str to callable
        Lazily computed inputs by name (``"images"`` gives the per-image statistics
        DataFrame, row-aligned with ``manifest.frame``); each is computed at most once.
    """

    manifest: Manifest
    run_id: str = "run"
    seed: int = 0
    device: str = "cpu"
    features: dict = field(default_factory=dict)
    _memo: dict = field(default_factory=dict, repr=False)

    def get(self, name: str):
        """The feature ``name``, computed on first use."""
        if name not in self._memo:
            if name not in self.features:
                raise UsageError(f"this audit has no {name!r} input")
            self._memo[name] = self.features[name]()
        return self._memo[name]

    def computed(self, name: str) -> bool:
        """Whether the feature ``name`` has been computed (by a detector that needed it)."""
        return name in self._memo

    def memo(self, key, compute: Callable):
        """Share an intermediate result (e.g. duplicate groups) between detectors."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


class Detector:
    """Base class of all detectors.

    Subclasses set :attr:`name`, :attr:`requires` and :attr:`checks` and implement
    :meth:`find`; they may override :meth:`validate_params`.
    """

    #: Registry key, used by ``--checks`` and in the config file's ``[detectors.<name>]``.
    name: ClassVar[str] = ""
    #: Inputs the detector reads through :meth:`AuditContext.get`.
    requires: ClassVar[frozenset] = frozenset()
    #: Values of the findings ``check`` column this detector produces.
    checks: ClassVar[tuple] = ()
    #: Whether ``datacheck audit`` runs it when ``--checks`` is not given.
    default: ClassVar[bool] = True

    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind == p.KEYWORD_ONLY]

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in self.param_names()}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def validate_params(self) -> None:
        """Raise :class:`UsageError` for an invalid parameter value."""

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        """Return partial findings: ``row`` (manifest row number), ``check``, ``score``,
        ``is_issue``, ``details`` (a dict, or its JSON text when a detector serialises
        millions of rows itself) and optionally ``suggested_label``/``suggested_confidence``."""
        raise NotImplementedError

    def run(self, ctx: AuditContext) -> pd.DataFrame:
        """Validate parameters, find issues, and return rows of the findings schema."""
        self.validate_params()
        self.thresholds_ = {}
        partial = self.find(ctx)
        return self._complete(partial, ctx)

    def _complete(self, partial: pd.DataFrame, ctx: AuditContext) -> pd.DataFrame:
        frame = ctx.manifest.frame
        unknown = set(partial["check"]) - set(self.checks)
        if unknown:
            raise AssertionError(f"detector {self.name} produced undeclared checks {sorted(unknown)}")
        scores = partial["score"].to_numpy(dtype=float)
        if len(scores) and (not np.isfinite(scores).all() or scores.min() < 0 or scores.max() > 1):
            raise AssertionError(f"detector {self.name} produced scores outside [0, 1]")
        rows = partial["row"].to_numpy(dtype=np.int64)
        checks = partial["check"].to_numpy()
        # Sorted by check, then score, ties in manifest order: deterministic. The checks are
        # sorted as integer codes and the rows reordered before any string column is built:
        # a findings table can have millions of rows.
        codes, _ = pd.factorize(checks, sort=True)
        order = np.lexsort((rows, scores, codes))
        rows = rows[order]
        suggested = partial["suggested_label"].to_numpy()[order] if "suggested_label" in partial else None
        confidence = partial["suggested_confidence"].to_numpy(dtype=float)[order] if "suggested_confidence" in partial else np.nan
        details = _serialise(partial["details"].tolist())
        out = pd.DataFrame(
            {
                "run_id": ctx.run_id,
                "sample_id": _take(frame["sample_id"], rows),
                "path": _take(frame["path"], rows),
                "split": _take(frame["split"], rows),
                "label": _take(frame["label"], rows),
                "check": checks[order],
                "score": scores[order],
                "is_issue": partial["is_issue"].to_numpy(dtype=bool)[order],
                "suggested_label": suggested,
                "suggested_confidence": confidence,
                "details": np.asarray(details, dtype=object)[order],
            }
        )
        return out.loc[:, FINDINGS_COLUMNS]


def _take(column: pd.Series, rows: np.ndarray):
    """``column[rows]`` by position, gathered by the column's own array (an Arrow take for
    string columns), not element by element through Python objects."""
    return column.array.take(rows)


def _serialise(details: list) -> list:
    """JSON text per row; a detector passes all dicts, or all ready-made JSON strings (fast path)."""
    if details and isinstance(details[0], str):
        return details
    return [json.dumps(_jsonable(d), sort_keys=True) for d in details]


def partial_findings(rows, check, score, is_issue, details) -> pd.DataFrame:
    """Build the partial frame :meth:`Detector.find` returns (arrays of equal length)."""
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    return pd.DataFrame(
        {
            "row": rows,
            "check": [check] * n if isinstance(check, str) else list(check),
            "score": np.broadcast_to(np.asarray(score, dtype=float), (n,)),
            "is_issue": np.broadcast_to(np.asarray(is_issue, dtype=bool), (n,)),
            "details": list(details) if details is not None else [{}] * n,
        }
    )


def _jsonable(value):
    """Make numpy scalars and NaN safe for strict JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def check_positive(name: str, value, *, integer: bool = False, allow_zero: bool = False) -> None:
    """Raise :class:`UsageError` unless ``value`` is a positive (or non-negative) number."""
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        what = "integer" if integer else "number"
        raise UsageError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} {what}, got {value!r}")

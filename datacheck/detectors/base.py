"""The detector protocol and the context detectors run in.

A detector is a small class in the scikit-learn style: ``__init__`` only stores keyword
parameters (with defaults, under the same names), ``run(ctx)`` validates them, does the
work, records what it learned from the data in attributes ending in ``_`` (``thresholds_``),
and returns rows of the findings schema. It declares the features it reads (``requires``,
``optional``: it sees nothing else), the constraints of its parameters (checked before any
work), and the tags of its checks (how repairs and reports find it). The base class, not each detector, fills in the
manifest columns and enforces the schema (score in [0, 1], known checks, JSON details).
"""

from __future__ import annotations

import inspect
import json
import math
from typing import Callable, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa

from ..features import FeatureStore, FeatureView
from ..manifest import Manifest
from ..schema import FINDINGS_COLUMNS
from ..validation import validate_params

Progress = Callable[[str, int, int], None]

#: Tags a detector's checks carry; repairs, reports and the console select checks by tag
#: (:func:`datacheck.detectors.registry.checks_with_tag`), never by a list of names.
TAGS = {
    "label_evidence": "evidence that the given label is wrong (relabel votes on it; balance --drop-flagged drops it)",
    "drop_candidate": "the sample should leave the training set (relabel --drop)",
    "unreliable_input": "the model's view of the sample is unreliable, so its label suggestion is not trusted",
    "duplicates": "a copy of another sample in the same split (balance keeps one per group)",
    "groups": "findings that group samples; details name the group (the report lists groups)",
    "subgroups": "sub-clusters of a class; details hold the cluster (balance --strategy subclusters)",
    "off_distribution": "the sample does not look like the rest of the data (review before relabeling)",
    "image_quality": "a property of the image file itself",
    "dataset": "a property of the whole dataset or a class, reported on its samples",
    "selection": "a selection of samples rather than a problem (coreset)",
}


class AuditContext:
    """What detectors may read: the manifest, features, and intermediate results they share.

    Parameters
    ----------
    manifest : Manifest
    run_id : str
    seed : int
        Every random choice a detector makes derives from it.
    device : str or callable
        torch device for array work (``"cpu"``, ``"cuda:0"``, ...), or a function giving it
        on first use (resolving ``auto`` imports torch, which an image-only audit never needs).
    features : FeatureStore, optional
        The audit's features (:mod:`datacheck.features`).
    workers : int
        Local processes a detector may spread pairwise work over (0: in this process); its
        findings never depend on it.
    """

    def __init__(self, manifest: Manifest, run_id: str = "run", seed: int = 0, device="cpu",
                 features: FeatureStore | None = None, workers: int = 0):
        self.manifest = manifest
        self.workers = workers
        self.run_id = run_id
        self.seed = seed
        self._device = device
        self.features = features if features is not None else FeatureStore()
        self._inputs: FeatureView | None = None
        self._memo: dict = {}

    @property
    def device(self) -> str:
        if callable(self._device):
            self._device = self._device()
        return self._device

    @property
    def device_resolved(self) -> str | None:
        """The device, if something has asked for it yet."""
        return None if callable(self._device) else self._device

    def for_detector(self, detector: "Detector") -> "AuditContext":
        """The same audit, seen through ``detector``'s declared inputs only."""
        requires, optional = detector.inputs(self.available())
        view = AuditContext.__new__(AuditContext)
        view.__dict__.update(self.__dict__)
        view._device = lambda: self.device  # resolved once, for the whole audit
        view._inputs = self.features.view(requires | optional)
        return view

    def get(self, name: str):
        """The feature ``name`` (computed on first use); a detector may read only what it declared."""
        source = self._inputs if self._inputs is not None else self.features
        return source.get(name)

    def available(self) -> frozenset:
        """Every feature the audit offers (what :meth:`Detector.inputs` chooses from)."""
        return frozenset(self.features.available())

    def has(self, name: str) -> bool:
        """Whether the audit offers feature ``name`` (for a detector's optional inputs)."""
        if self._inputs is not None:
            return self._inputs.has(name)
        return name in self.features.available()

    def memo(self, key, compute: Callable):
        """Share an intermediate result (e.g. duplicate groups) between detectors.

        ``key`` must hold everything the result depends on (the parameters that shape it), so
        that a detector's findings never depend on which other detectors ran first."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


class Detector:
    """Base class of all detectors.

    Subclasses set :attr:`name`, :attr:`requires`, :attr:`checks`, :attr:`tags` and
    :attr:`_parameter_constraints` and implement :meth:`find`; they may override
    :meth:`_check_params` for rules across parameters and :meth:`inputs` when what they
    read depends on a parameter.
    """

    #: Registry key, used by ``--checks`` and in the config file's ``[detectors.<name>]``.
    name: ClassVar[str] = ""
    #: Features (:data:`datacheck.features.FEATURES`) the detector needs; it cannot run without them.
    requires: ClassVar[frozenset] = frozenset()
    #: Features it reads when the audit offers them (:meth:`AuditContext.has`).
    optional: ClassVar[frozenset] = frozenset()
    #: Values of the findings ``check`` column this detector produces.
    checks: ClassVar[tuple] = ()
    #: Tags (:data:`TAGS`) of every check of the detector.
    tags: ClassVar[frozenset] = frozenset()
    #: Extra tags of single checks (``{"corrupt": {"drop_candidate"}}``).
    check_tags: ClassVar[dict] = {}
    #: Whether ``datacheck audit`` runs it when ``--checks`` is not given.
    default: ClassVar[bool] = True
    #: Parameter name -> list of constraints (:mod:`datacheck.validation`), any of which may accept.
    _parameter_constraints: ClassVar[dict] = {}
    #: The typed record in the ``details`` of its findings: field -> type (read by :meth:`read_details`).
    details: ClassVar[dict] = {}

    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind == p.KEYWORD_ONLY]

    @classmethod
    def read_details(cls, findings: pd.DataFrame, check: str | None = None, source="findings.parquet",
                     fields=None) -> pd.DataFrame:
        """The :attr:`details` records of ``check``'s findings rows (default: the detector's
        first check) as typed columns, indexed by ``sample_id``; rows without them are left out.
        ``fields`` reads only those fields (default: all of :attr:`details`).

        Raises
        ------
        BadDataError
            A value that is not JSON, or a field of the wrong type (a damaged run).
        """
        from ..files.findings import details_object
        from ..errors import BadDataError
        from ..validation import has_type, type_names

        check = check or cls.checks[0]
        wanted = {name: cls.details[name] for name in (fields or cls.details)}
        rows = findings[findings["check"] == check]
        records, ids = [], []
        for sample_id, text in zip(rows["sample_id"].tolist(), rows["details"].tolist()):
            record = details_object(text, source)
            if not all(name in record for name in wanted):
                continue
            for name, kind in wanted.items():
                if not has_type(record[name], kind):
                    raise BadDataError(f"{source}: a {check} row has {name} {record[name]!r:.40}, not "
                                       f"{type_names(kind)}; the run is damaged, run datacheck audit again")
            records.append([record[name] for name in wanted])
            ids.append(sample_id)
        return pd.DataFrame(records, index=pd.Index(ids, name="sample_id"), columns=list(wanted))

    @classmethod
    def tags_of(cls, check: str) -> frozenset:
        """The tags of one of this detector's checks."""
        return frozenset(cls.tags) | frozenset(cls.check_tags.get(check, ()))

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in self.param_names()}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def inputs(self, available: frozenset | None = None) -> tuple[frozenset, frozenset]:
        """``(requires, optional)`` features of this configured detector.

        ``available`` is what the audit offers (None: unknown), for a detector that works
        from one kind of input or another (duplicates: pixels for images, else embeddings)."""
        return frozenset(self.requires), frozenset(self.optional)

    @property
    def graph_k(self) -> int:
        """Neighbours per sample this detector reads from the ``knn_graph`` (the audit builds
        the graph as deep as its deepest reader): its ``k`` parameter unless it says otherwise."""
        return int(getattr(self, "k", 1))

    def validate_params(self) -> None:
        """Raise :class:`UsageError` for an invalid parameter value (before any work)."""
        for name, value in self.get_params().items():
            # A numpy number (k=np.int64(20), computed from an array) is the Python number it
            # holds, as in a config dict: it was refused as "must be an integer ..., got
            # np.int64(20)", and a numpy float32 as no finite number.
            if isinstance(value, np.generic) and value.dtype.kind in "biuf":
                setattr(self, name, value.item())
        validate_params(self._parameter_constraints, self.get_params(), self.name)
        self._check_params()

    def _check_params(self) -> None:
        """Rules across parameters, once each parameter is valid on its own."""

    def _off(self, reason: str, **measured) -> pd.DataFrame:
        """The partial findings of a check that cannot run on this data: no rows, and
        ``reason`` recorded as its rule in ``summary.json`` (with ``measured``, the numbers
        behind it)."""
        self.thresholds_[self.name] = {"rule": f"off: {reason}", **measured}
        return partial_findings([], self.name, [], [], [])

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        """Return partial findings (see :func:`partial_findings`): ``row`` (manifest row
        number), ``check``, ``score``, ``is_issue``, ``details`` and optionally
        ``suggested_label``/``suggested_confidence``."""
        raise NotImplementedError

    def run(self, ctx: AuditContext) -> pd.DataFrame:
        """Validate parameters, find issues, and return rows of the findings schema."""
        self.validate_params()
        self.thresholds_ = {}
        partial = self.find(ctx.for_detector(self))
        return self._complete(partial, ctx)

    def _complete(self, partial: pd.DataFrame, ctx: AuditContext) -> pd.DataFrame:
        frame = ctx.manifest.frame
        # What find returned, checked before it is read: a third-party detector's None, or rows
        # of the findings schema, failed here as datacheck's own KeyError or TypeError.
        if not isinstance(partial, pd.DataFrame):
            raise AssertionError(f"detector {self.name}: find must return a DataFrame of partial findings "
                                 f"(datacheck.detectors.base.partial_findings), got {type(partial).__name__}")
        missing = [c for c in _PARTIAL_COLUMNS if c not in partial.columns]
        if missing:
            raise AssertionError(f"detector {self.name}: find returned no {', '.join(map(repr, missing))} column(s); "
                                 f"build its frame with partial_findings(rows, check, score, is_issue, details)")
        codes, checks = pd.factorize(partial["check"], sort=True)
        unknown = set(checks) - set(self.checks)
        if unknown:
            raise AssertionError(f"detector {self.name} produced undeclared checks {sorted(unknown)}")
        scores = partial["score"].to_numpy(dtype=float)
        if len(scores) and (not np.isfinite(scores).all() or scores.min() < 0 or scores.max() > 1):
            raise AssertionError(f"detector {self.name} produced scores outside [0, 1]")
        rows = partial["row"].to_numpy(dtype=np.int64)
        outside = rows[(rows < 0) | (rows >= len(frame))]
        if len(outside):  # a negative row would be taken from the end: another sample's finding
            raise AssertionError(f"detector {self.name} produced row numbers outside 0..{len(frame) - 1} "
                                 f"(the manifest's rows): {outside[0]}")
        # Sorted by check, then score, ties in sample-id order (a folder's manifest order), so a
        # manifest's rows shuffled write the same table. Every column is
        # reordered as an array (strings as Arrow or category codes), never row by row in
        # Python: a findings table can have millions of rows.
        order = np.lexsort((ctx.manifest.id_rank[rows], scores, codes))
        rows = rows[order]
        if "suggested_label" in partial:
            suggested = _take(partial["suggested_label"], order)
            confidence = partial["suggested_confidence"].to_numpy(dtype=float)[order]
        else:
            suggested, confidence = None, np.nan
        out = pd.DataFrame(
            {
                "run_id": ctx.run_id,
                "sample_id": _take(frame["sample_id"], rows),
                "path": _take(frame["path"], rows),
                "split": _take(frame["split"], rows),
                "label": _take(frame["label"], rows),
                "check": _take(pd.Series(pd.Categorical.from_codes(codes, checks)), order),
                "score": scores[order],
                "is_issue": partial["is_issue"].to_numpy(dtype=bool)[order],
                "suggested_label": suggested,
                "suggested_confidence": confidence,
                "details": _take(_serialise(partial["details"]), order),
            }
        )
        return out.loc[:, FINDINGS_COLUMNS]


#: The columns :meth:`Detector.find` returns (:func:`partial_findings`); the suggestions are optional.
_PARTIAL_COLUMNS = ("row", "check", "score", "is_issue", "details")


def _take(column: pd.Series, rows: np.ndarray):
    """``column[rows]`` by position, gathered by the column's own array (an Arrow take for
    string columns, a take of the codes for categories, decoded by Arrow), never element by
    element through Python objects."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()[rows]
        categories = pa.array(column.cat.categories.to_numpy(dtype=object), type=pa.string())
        strings = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), categories).cast(pa.string())
        return pd.array(strings, dtype="str")
    return column.array.take(rows)


def _serialise(details: pd.Series) -> pd.Series:
    """The ``details`` column as JSON text: kept as it is when a detector passed ready-made
    JSON strings (an Arrow string array, the fast path for millions of rows), else one
    JSON encoding per dict."""
    if not pd.api.types.is_object_dtype(details.dtype):
        return details
    return pd.Series([d if isinstance(d, str) else _to_json(d) for d in details], dtype=object)


# One encoder for every row (json.dumps with options builds a new one per call); it refuses
# NaN, so a row holding NaN or numpy scalars is made plain by _jsonable first, and only then.
_ENCODER = json.JSONEncoder(sort_keys=True, allow_nan=False)


def _to_json(details: dict) -> str:
    try:
        return _ENCODER.encode(details)
    except (TypeError, ValueError):
        return _ENCODER.encode(_jsonable(details))


def json_records(columns: dict) -> pa.Array:
    """One JSON object per row, ``{"key": value, ...}`` with sorted keys, built by Arrow.

    The fast path for ``details`` (:func:`partial_findings`): a detector that scores every
    sample of a large dataset writes its details without a Python dict and an encoding per
    row (900,000 of them cost 6.5 s of a 100k-image audit).

    Parameters
    ----------
    columns : dict of str to array-like of shape (n,) or pyarrow.StringArray
        Numbers (written as JSON numbers, NaN and infinities as ``null``), or Arrow strings
        that are JSON values already (such as ``"[32, 32]"``), taken as they are.

    Returns
    -------
    pyarrow.StringArray of shape (n,)
    """
    import pyarrow.compute as pc

    parts = []
    for i, key in enumerate(sorted(columns)):
        value = columns[key]
        if not isinstance(value, (pa.Array, pa.ChunkedArray)):
            numbers = np.asarray(value, dtype=np.float64)
            # Arrow writes the shortest text that reads back to the same double ("0.1234", "32").
            value = pc.if_else(pa.array(np.isfinite(numbers)), pc.cast(pa.array(numbers), pa.string()), "null")
        parts += [("{" if i == 0 else ", ") + json.dumps(key) + ": ", value]
    if not parts:
        raise ValueError("json_records needs at least one column")
    return pc.binary_join_element_wise(*parts, "}", "")


def partial_findings(rows, check, score, is_issue, details, *, suggested_label=None,
                     suggested_confidence=None) -> pd.DataFrame:
    """Build the partial frame :meth:`Detector.find` returns.

    Parameters
    ----------
    rows : array-like of int, shape (n,)
        Manifest row numbers.
    check : str or sequence of str, shape (n,)
        The check of every row, or of each row.
    score, is_issue : array-like, shape (n,) or scalar
        Score in [0, 1] (lower = worse) and whether the row is flagged.
    details : sequence of dict or of JSON str, shape (n,), or pyarrow.StringArray
        Check-specific fields; an Arrow array of JSON objects is used as it is (the fast
        path for detectors that score millions of rows).
    suggested_label : pandas.Categorical or array-like of str, shape (n,), optional
        The label the detector suggests (a Categorical keeps millions of rows cheap).
    suggested_confidence : array-like of float, shape (n,), optional
        Its confidence; given with ``suggested_label``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    if isinstance(check, str):
        check = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), [check])
    if isinstance(details, (pa.Array, pa.ChunkedArray)):
        details = pd.array(details, dtype="str")
    else:
        details = pd.Series(list(details) if details is not None else [{}] * n, dtype=object)
    columns = {
        "row": rows,
        "check": pd.Categorical(check),
        "score": np.broadcast_to(np.asarray(score, dtype=float), (n,)),
        "is_issue": np.broadcast_to(np.asarray(is_issue, dtype=bool), (n,)),
        "details": details,
    }
    if suggested_label is not None:
        columns["suggested_label"] = suggested_label
        columns["suggested_confidence"] = np.asarray(suggested_confidence, dtype=float)
    return pd.DataFrame(columns)


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

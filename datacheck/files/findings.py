"""``findings.parquet``: one row per (sample, check), in the findings schema (:mod:`datacheck.schema`).

Written by the audit; every reader of a run indexes its columns by name, so a findings table
written by another tool or edited by hand is checked once, when the run is opened
(:func:`check_findings`). The ``details`` column (JSON text) is parsed lazily, only for the
rows a command reads (:func:`details_object`): millions of rows are never all parsed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..errors import BadDataError
from . import RUN_DAMAGED
from ..schema import FINDINGS_SCHEMA

FINDINGS_NAME = "findings.parquet"


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
    from ..engine.image_stats import SpecialFileError, require_regular_file

    try:  # pyarrow reads a folder as a dataset of no files: no columns, where the file is the problem
        require_regular_file(path)
    except SpecialFileError as exc:
        raise BadDataError(f"{path} is {exc}; {RUN_DAMAGED}") from None
    except OSError:
        pass  # read already; the table is checked below
    missing = [name for name in FINDINGS_SCHEMA.names if name not in table.column_names]
    if missing:
        raise BadDataError(f"{path} lacks the findings column(s) {', '.join(missing)}; {RUN_DAMAGED}")
    for expected in FINDINGS_SCHEMA:
        column = table.column(expected.name)
        if not _same_kind(column.type, expected):
            raise BadDataError(f"{path}: findings column {expected.name!r} has type {column.type}, "
                               f"not {expected.type}; {RUN_DAMAGED}")
        if not expected.nullable and column.null_count:
            raise BadDataError(f"{path}: findings column {expected.name!r} has {column.null_count} missing "
                               f"value(s); {RUN_DAMAGED}")
    for name in ("score", "suggested_confidence"):  # in [0, 1] (NaN: none), as every reader assumes
        _check_unit_interval(path, name, table.column(name))
    # One row per (sample, check), as the audit writes them: findings appended to themselves
    # (two runs' tables concatenated) failed every repair with an internal error (pandas'
    # "Reindexing only valid with uniquely valued Index objects").
    pairs = table.select(["check", "sample_id"]).group_by(["check", "sample_id"]).aggregate([([], "count_all")])
    if pairs.num_rows < table.num_rows:
        import pyarrow.compute as pc

        twice = pairs.filter(pc.greater(pairs["count_all"], 1))
        raise BadDataError(f"{path}: sample {twice['sample_id'][0].as_py()!r:.60} has {twice['count_all'][0].as_py()} "
                           f"rows for check {twice['check'][0].as_py()!r:.40} ({twice.num_rows} such pair(s)); "
                           f"{RUN_DAMAGED}")


def _check_unit_interval(path: Path, name: str, column) -> None:
    import pyarrow.compute as pc

    if pa.types.is_null(column.type) or len(column) == 0:
        return
    values = pc.cast(column, pa.float64())
    bad = pc.or_(pc.less(values, 0.0), pc.greater(values, 1.0))  # NaN compares false: allowed
    count = pc.sum(pc.cast(bad, pa.int64())).as_py() or 0
    if count:
        first = values.filter(bad)[0].as_py()
        raise BadDataError(f"{path}: findings column {name!r} has {count} value(s) outside [0, 1] (first {first}); "
                           f"{RUN_DAMAGED}")


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
        raise BadDataError(f"{source}: a details value is not a JSON object ({str(text)!r:.60}); "
                           f"{RUN_DAMAGED}")
    return value


def _same_kind(actual, expected) -> bool:
    """Whether a findings column of Arrow type ``actual`` reads like the schema's ``expected`` field.

    The kind matters, not the width: findings rewritten with pandas hold ``large_string``
    and may hold integer scores, which every reader handles like ``string`` and ``float64``.
    """
    if pa.types.is_null(actual):  # an all-null column written by pandas: fine where nulls are allowed
        return expected.nullable
    if pa.types.is_string(expected.type):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_floating(expected.type):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual)
    return actual == expected.type


def check_sample_ids(path: Path, findings: pd.DataFrame, sample_ids: pd.Series) -> None:
    """Refuse findings that name a sample the audited dataset does not have.

    Every row the audit writes names one of its samples; another id means the findings were
    edited, or come from another dataset, and a repair would act on a sample that is not there.

    Raises
    ------
    BadDataError
        Naming the file and the first unknown sample id.
    """
    unknown = _unknown(findings["sample_id"], sample_ids)
    if len(unknown):
        raise BadDataError(f"{path}: sample {unknown.iloc[0]!r:.60} is not in the audited dataset "
                           f"({len(unknown)} such id(s)); {RUN_DAMAGED}")


def check_suggested_labels(path: Path, findings: pd.DataFrame, classes) -> None:
    """Refuse findings that suggest a label that is none of the audit's classes.

    A label check suggests one of the classes it was trained on; any other name would make
    ``relabel --auto`` invent a class.

    Raises
    ------
    BadDataError
        Naming the file and the first unknown label.
    """
    unknown = _unknown(findings["suggested_label"].dropna(), list(classes))
    if len(unknown):
        raise BadDataError(f"{path}: suggested label {unknown.iloc[0]!r:.60} is not a class of the audit; {RUN_DAMAGED}")


def _unknown(values: pd.Series, allowed) -> pd.Series:
    """The distinct ``values`` not in ``allowed`` (each value tested once, not once per row)."""
    named = pd.Series(pd.unique(values.to_numpy(dtype=object)), dtype=object)
    return named[~named.isin(allowed)]

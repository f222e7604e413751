"""``datacheck report --csv``: ``findings.parquet`` as CSV, for spreadsheets and grep; and the
escaping of text cells that every CSV made for a spreadsheet (findings, the review queue) gets."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..runs import atomic_write
from ..schema import FINDINGS_COLUMNS
from ..spreadsheet_csv import csv_line_end

#: First characters that make Excel or LibreOffice read a cell as a formula (OWASP, "CSV
#: Injection"): a sample id, path or class name such as ``=HYPERLINK(...)`` would run when a
#: reviewer opens the file. Such a cell is written with a leading ``'`` (OWASP's remedy: the
#: spreadsheet shows the text as it is); a cell that starts with ``'`` itself gets one more, so
#: that :func:`unescape_formulas` gives every value back exactly.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each text cell that starts with one of :data:`FORMULA_STARTS` prefixed by ``'``.

    Only text is escaped: numeric and boolean columns are left as they are, so a score of
    ``-0.5`` stays a number (a class *named* ``-1`` is text, and escaped).
    """
    out = frame.copy(deep=False)
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            continue
        risky = _text_starting(values, FORMULA_STARTS)
        if risky.any():
            out[column] = values.mask(risky, "'" + values[risky].astype(str))
    return out


def unescape_formulas(table: pd.DataFrame) -> pd.DataFrame:
    """Undo :func:`escape_formulas` on a CSV read back as text (``dtype=str``): a cell that is
    ``'`` followed by one of :data:`FORMULA_STARTS` loses that first ``'``. Other cells, a
    leading ``'`` before anything else included, are as they were written."""
    out = table.copy(deep=False)
    for column in out.columns:
        values = out[column]
        escaped = _text_starting(values, ("'",))
        escaped &= _text_starting(values.str[1:], FORMULA_STARTS) if escaped.any() else escaped
        if escaped.any():
            out[column] = values.mask(escaped, values[escaped].str[1:])
    return out


def _text_starting(values: pd.Series, prefixes: tuple) -> pd.Series:
    """Which cells of ``values`` are text starting with one of ``prefixes`` (vectorised: the
    findings of a large audit have millions of rows)."""
    try:
        return values.str.startswith(prefixes, na=False).astype(bool)
    except AttributeError:  # an object column that holds no text at all (every cell missing)
        return pd.Series(False, index=values.index)


def write_findings_csv(findings: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the findings as CSV with exactly the Parquet file's columns, in its order.

    Parameters
    ----------
    findings : pandas.DataFrame
        Rows in the findings schema (:data:`datacheck.schema.FINDINGS_COLUMNS`), e.g.
        ``open_run(run).findings``; extra columns are left out.
    path : path-like
        Destination, written atomically. Missing values are empty fields; ``details``
        stays a JSON string (quoted as CSV requires); text cells a spreadsheet would run as a
        formula are escaped (:func:`escape_formulas`). Lines end with ``\\n``, or ``\\r\\n`` when
        a cell holds a carriage return (:func:`~datacheck.spreadsheet_csv.csv_line_end`).

    Returns
    -------
    pathlib.Path
    """
    frame = escape_formulas(findings.loc[:, FINDINGS_COLUMNS])
    end = csv_line_end(frame)  # "\r\n" when a file name holds "\r": only then is it quoted
    return atomic_write(Path(path), lambda tmp: frame.to_csv(tmp, index=False, encoding="utf-8", lineterminator=end))

"""``datacheck report --csv``: ``findings.parquet`` as CSV, for spreadsheets and grep."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..runs import atomic_write
from ..schema import FINDINGS_COLUMNS


def write_findings_csv(findings: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the findings as CSV with exactly the Parquet file's columns, in its order.

    Parameters
    ----------
    findings : pandas.DataFrame
        Rows in the findings schema (:data:`datacheck.schema.FINDINGS_COLUMNS`), e.g.
        ``open_run(run).findings``; extra columns are left out.
    path : path-like
        Destination, written atomically. Missing values are empty fields; ``details``
        stays a JSON string (quoted as CSV requires).

    Returns
    -------
    pathlib.Path
    """
    frame = findings.loc[:, FINDINGS_COLUMNS]
    return atomic_write(Path(path), lambda tmp: frame.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n"))

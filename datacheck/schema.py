"""Arrow schemas of datacheck's tables, in one place.

A test pins :data:`FINDINGS_SCHEMA`; changing it means bumping :data:`FINDINGS_SCHEMA_VERSION`.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

FINDINGS_SCHEMA_VERSION = 1

FINDINGS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("split", pa.string()),
        pa.field("label", pa.string()),
        pa.field("check", pa.string(), nullable=False),
        # In [0, 1]; lower = worse (cleanlab's convention).
        pa.field("score", pa.float64(), nullable=False),
        pa.field("is_issue", pa.bool_(), nullable=False),
        pa.field("suggested_label", pa.string()),
        pa.field("suggested_confidence", pa.float64()),
        # JSON object with check-specific fields (duplicate group, measured value, ...).
        pa.field("details", pa.string(), nullable=False),
    ],
    metadata={"datacheck.findings_schema_version": str(FINDINGS_SCHEMA_VERSION)},
)

FINDINGS_COLUMNS = FINDINGS_SCHEMA.names


def findings_table(frame: pd.DataFrame) -> pa.Table:
    """Convert a findings DataFrame to an Arrow table with the exact pinned schema."""
    frame = frame.loc[:, FINDINGS_COLUMNS]
    return pa.Table.from_pandas(frame, schema=FINDINGS_SCHEMA, preserve_index=False)


def empty_findings() -> pd.DataFrame:
    """A findings DataFrame with no rows and the pinned column dtypes."""
    return FINDINGS_SCHEMA.empty_table().to_pandas()


#: ``changes.parquet`` written by ``datacheck relabel``: one row per sample it acts on.
CHANGES_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        # relabel, drop, review (queued for a person, unchanged) or keep (a person kept it).
        pa.field("action", pa.string(), nullable=False),
        pa.field("old_label", pa.string()),
        pa.field("new_label", pa.string()),
        pa.field("reason", pa.string()),
        # Checks that flagged the sample, comma-separated.
        pa.field("checks", pa.string()),
        # Out-of-fold probability of the suggested label; null for human decisions.
        pa.field("confidence", pa.float64()),
    ]
)


def changes_table(frame: pd.DataFrame) -> pa.Table:
    """Convert a changes DataFrame to an Arrow table with :data:`CHANGES_SCHEMA`."""
    return pa.Table.from_pandas(frame.loc[:, CHANGES_SCHEMA.names], schema=CHANGES_SCHEMA, preserve_index=False)

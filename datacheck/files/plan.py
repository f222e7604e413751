"""A balance plan: ``plan.json`` (what it was made from, with which options) and
``plan.parquet`` (one row per audited sample: keep, drop or augment, and how many copies).

Written by ``datacheck balance``, read by ``datacheck augment`` (possibly after a person
edited the rows): :func:`read_plan` checks both before anything is made.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadDataError, UsageError
from ..runs import write_json, write_parquet
from ..validation import SEED_MAX
from .json_object import check_fields, read_json

PLAN_MARKER = "plan.json"
PLAN_FILE = "plan.parquet"
#: What a plan does with a sample.
ACTIONS = ("keep", "drop", "augment")
PLAN_COLUMNS = ["sample_id", "label", "split", "group", "action", "copies", "weight", "transform", "reason"]
#: A bound on a plan's copies, per plan row in all: a hand-edited plan asking for millions
#: of copies is refused instead of filling the disk.
MAX_COPIES_PER_ROW = 1000
_REMEDY = "the plan is damaged, run datacheck balance again"


@dataclass
class PlanInfo:
    """The content of ``plan.json``.

    The annotations are the file's JSON types, checked by :meth:`read`.

    Attributes
    ----------
    run : str
        The audit run the plan was made from (absolute).
    manifest_fingerprint : str
        The audited dataset's fingerprint: augment refuses a dataset changed since.
    seed : int
    transform : dict
        The augmentation spec of the plan's copies (RandAugment and affine settings).
    dataset, dataset_root, manifest_format : str
    options : dict
        The balance options (strategy, target, budget, drop_flagged, max_total).
    counts : dict of str to int
        Samples per action, and copies.
    """

    run: str
    manifest_fingerprint: str
    seed: int = 0
    transform: dict = field(default_factory=dict)
    dataset: str = ""
    dataset_root: str = ""
    manifest_format: str = ""
    options: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | os.PathLike) -> "PlanInfo":
        """Read and check ``plan.json`` (BadDataError naming a missing or mistyped key)."""
        path = Path(path)
        info = cls(**check_fields(cls, path, read_json(path), ("run", "manifest_fingerprint"), _REMEDY))
        if not 0 <= info.seed <= SEED_MAX:
            raise BadDataError(f"{path}: key 'seed' must be in [0, {SEED_MAX}], not {info.seed}; {_REMEDY}")
        return info

    def write(self, path: str | os.PathLike) -> Path:
        """Write plan.json atomically."""
        return write_json(Path(path), asdict(self))


def read_plan(plan_dir: str | os.PathLike) -> tuple[PlanInfo, pd.DataFrame]:
    """``(plan.json, plan.parquet)`` of a plan folder written by ``datacheck balance``, both checked.

    Returns
    -------
    PlanInfo
    pandas.DataFrame
        The rows, :data:`PLAN_COLUMNS`, as :func:`check_plan_rows` returns them.

    Raises
    ------
    UsageError
        ``plan_dir`` is not a plan folder.
    BadDataError
        A file is unreadable, or damaged (see :meth:`PlanInfo.read`, :func:`check_plan_rows`).
    """
    path = Path(plan_dir)
    if not (path / PLAN_MARKER).is_file():
        what = "does not exist" if not path.exists() else f"is not a balance plan (no {PLAN_MARKER})"
        raise UsageError(f"plan {path} {what}")
    info = PlanInfo.read(path / PLAN_MARKER)
    try:
        plan = pd.read_parquet(path / PLAN_FILE)
    except (OSError, ValueError) as exc:
        reason = "missing" if isinstance(exc, FileNotFoundError) else exc
        raise BadDataError(f"cannot read {path / PLAN_FILE}: {reason}") from exc
    missing = set(PLAN_COLUMNS) - set(plan.columns)
    if missing:
        raise BadDataError(f"{path / PLAN_FILE} lacks column(s) {', '.join(sorted(missing))}")
    return info, check_plan_rows(path / PLAN_FILE, plan)


def write_plan_rows(path: str | os.PathLike, plan: pd.DataFrame) -> Path:
    """Write ``plan.parquet`` atomically, with fixed column types."""
    import pyarrow as pa

    schema = pa.schema([
        ("sample_id", pa.string()), ("label", pa.string()), ("split", pa.string()), ("group", pa.string()),
        ("action", pa.string()), ("copies", pa.int64()), ("weight", pa.int64()), ("transform", pa.string()),
        ("reason", pa.string()),
    ])
    return write_parquet(Path(path), pa.Table.from_pandas(plan.loc[:, PLAN_COLUMNS], schema=schema,
                                                          preserve_index=False))


def check_plan_rows(path: Path, plan: pd.DataFrame) -> pd.DataFrame:
    """Check the rows of ``plan.parquet`` (possibly edited by hand) before anything is made.

    Parameters
    ----------
    path : pathlib.Path
        ``plan.parquet``, for messages.
    plan : pandas.DataFrame

    Returns
    -------
    pandas.DataFrame
        ``plan`` with ``copies`` as int64 and a missing ``transform`` as "".

    Raises
    ------
    BadDataError
        A sample_id or transform that is not text, a sample listed twice or without an id, an
        unknown action, copies that are not a non-negative integer or that an action other
        than ``augment`` would make, or more copies in all than :data:`MAX_COPIES_PER_ROW` per
        plan row.
    """
    for column in ("sample_id", "transform"):  # a hand-edited file may hold lists or structs here
        values = plan[column]
        not_text = values.notna() & ~values.map(lambda v: isinstance(v, str))
        if not_text.any():
            value = values[not_text].iloc[0]
            value = value.item() if isinstance(value, np.generic) else value  # 3, not np.int64(3)
            raise BadDataError(f"{path}: {column} {value!r:.60} is not text; "
                               "the plan is damaged, run datacheck balance again")
    ids = plan["sample_id"]
    if ids.isna().any() or ids.duplicated().any():
        what = "a row without a sample_id" if ids.isna().any() else f"sample {ids[ids.duplicated()].iloc[0]!r} twice"
        raise BadDataError(f"{path} lists {what}; the plan is damaged, run datacheck balance again")
    unknown = sorted(set(plan["action"].astype(str)) - set(ACTIONS))
    if unknown:
        raise BadDataError(f"{path} has unknown action(s) {', '.join(map(repr, unknown))}; "
                           f"actions are {', '.join(ACTIONS)}")
    copies = pd.to_numeric(plan["copies"], errors="coerce").astype("float64")
    bad = ~(np.isfinite(copies) & (copies >= 0) & (copies == np.round(copies)))
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        value = plan["copies"].iloc[row]
        value = value.item() if isinstance(value, np.generic) else value  # -3, not np.int64(-3)
        raise BadDataError(f"{path}: copies of sample {ids.iloc[row]!r} is {value!r}, "
                           "not a non-negative integer")
    # Summed as floats: int64 would overflow on a hand-edited 10**18, and the limit is far below 2**53.
    limit = MAX_COPIES_PER_ROW * len(plan)
    if copies.sum() > limit:
        raise BadDataError(f"{path} schedules {copies.sum():.0f} copies of {len(plan)} samples, more than "
                           f"{MAX_COPIES_PER_ROW} per sample in all; the plan is damaged, run datacheck balance again")
    plan = plan.assign(copies=copies.astype(np.int64), transform=plan["transform"].fillna(""))
    stray = (plan["copies"] > 0) & ((plan["action"] != "augment") | (plan["transform"] == ""))
    if stray.any():
        row = plan[stray].iloc[0]
        raise BadDataError(f"{path}: sample {row['sample_id']!r} has {row['copies']} copies with action "
                           f"{row['action']!r} and transform {row['transform']!r:.40}; copies need action 'augment' "
                           "and a transform")
    return plan

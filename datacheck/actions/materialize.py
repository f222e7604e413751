"""Write a manifest out as a ``root/<split>/<class>/`` (or ``root/<class>/``) folder.

Files are hard links to the originals where the file system allows (no extra space, and the
originals are never opened for writing), copies otherwise. The folder is built under a
temporary name beside the destination and renamed into place, so an interruption never
leaves a half-made dataset.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

import pandas as pd

from ..errors import UsageError


def check_target(out: str | os.PathLike) -> Path:
    """``out`` as a Path; refused unless it is new or an empty folder."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--materialize {out} exists and is not an empty folder; choose another")
    return out


def materialize(frame: pd.DataFrame, root: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Link or copy every labeled row of ``frame`` into ``out/<split>/<label>/<file name>``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Manifest rows (``sample_id, path, label, split``); ``path`` relative to ``root``.
    root : path-like
        The dataset root the paths are relative to.
    out : path-like
        Destination folder; must not exist or be empty.

    Returns
    -------
    dict
        ``{"files": n, "linked": n, "copied": n, "skipped_unlabeled": n}``.
    """
    out = check_target(out)
    splits = frame["split"]
    if splits.notna().any() and splits.isna().any():
        raise UsageError("cannot materialize rows without a split next to rows with one (datacheck reads either "
                         "root/<class>/ or root/<split>/<class>/)")
    labeled = frame[frame["label"].notna()]
    for label in labeled["label"].unique():
        if label in ("", ".", "..") or "/" in label or "\\" in label:
            raise UsageError(f"cannot materialize class {label!r} as a folder name")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    counts = {"files": 0, "linked": 0, "copied": 0, "skipped_unlabeled": int(len(frame) - len(labeled))}
    try:
        taken: set[str] = set()
        for sample_id, rel, label, split in labeled[["sample_id", "path", "label", "split"]].itertuples(index=False):
            folder = PurePosixPath(label) if pd.isna(split) else PurePosixPath(split, label)
            target = folder / PurePosixPath(rel).name
            if str(target) in taken:  # same file name from two source folders: keep both
                stem = hashlib.sha256(sample_id.encode()).hexdigest()[:8]
                target = folder / f"{PurePosixPath(rel).stem}-{stem}{PurePosixPath(rel).suffix}"
            taken.add(str(target))
            destination = tmp / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            source = Path(root) / rel
            try:
                os.link(source, destination)
                counts["linked"] += 1
            except OSError:  # another file system, or links not supported
                shutil.copy2(source, destination)
                counts["copied"] += 1
            counts["files"] += 1
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return counts

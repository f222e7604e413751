"""Write a manifest out as a ``root/<split>/<class>/`` (or ``root/<class>/``) folder.

Files are hard links to the originals where the file system allows (no extra space, and the
originals are never opened for writing), copies otherwise. The folder is built under a
temporary name beside the destination and renamed into place, so an interruption never
leaves a half-made dataset.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from ..errors import UsageError
from ..runs import temporary_folder


def check_target(out: str | os.PathLike) -> Path:
    """``out`` as a Path; refused unless it is new or an empty folder (not a mount point)."""
    out = Path(out)
    if out.is_symlink():  # the finished folder is renamed into place, which a link cannot take
        raise UsageError(f"--materialize {out} is a symbolic link; give the folder's own path")
    if os.path.ismount(out):  # nor can a mount point (EBUSY), however empty
        raise UsageError(f"--materialize {out} is a mount point, which the finished folder cannot replace; "
                         "give a new folder inside it")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--materialize {out} exists and is not an empty folder; choose another")
    return out


def folder_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` a folder dataset holds: the labeled ones; or, when no row has a
    label (a folder of photos), every row, its label ``""``, which :func:`materialize` lays out
    directly in ``out/`` or ``out/<split>/``, as the folder scan reads unlabeled images. Beside
    class folders an image has no class, so unlabeled rows beside labeled ones are left out.
    """
    labeled = frame[frame["label"].notna()]
    if len(labeled) or not len(frame):
        return labeled
    return frame.assign(label="")


def materialize(frame: pd.DataFrame, root: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Link or copy every labeled row of ``frame`` into ``out/<split>/<label>/<file name>``
    (every row into ``out/<split>/<file name>`` when none is labeled: :func:`folder_rows`).

    The layout (and the renaming of two files with the same name in one class folder) is
    ``augment``'s, with no copies: :func:`datacheck.actions.augment.layout`.

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
    from .augment import layout, link_or_copy

    out = check_target(out)
    labeled = folder_rows(frame)
    files = layout(labeled.assign(copies=0))
    sources = dict(zip(labeled["sample_id"], labeled["path"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_folder(out)  # others may read the dataset, as a plain mkdir's folder
    counts = {"files": len(files), "linked": 0, "copied": 0, "skipped_unlabeled": int(len(frame) - len(labeled))}
    try:
        for out_path, sample_id in zip(files["out_path"], files["source_id"]):
            counts[link_or_copy(Path(root) / sources[sample_id], tmp / out_path)] += 1
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return counts

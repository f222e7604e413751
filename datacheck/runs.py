"""The run directory: ``findings.parquet``, ``summary.json``, ``run.json``, ``artifacts/``.

Every file is written to a temporary name beside its destination and renamed into place,
so an interrupted run never leaves a half-written file and a rerun picks up the artifacts
that were complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import UsageError

RUN_MARKER = "run.json"
_UMASK = os.umask(0o22)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path`` atomically.

    The temporary file lives in the destination folder, so the rename never crosses
    file systems; on any failure it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, a device such as /dev/stdout, a pipe
        raise UsageError(f"{path} exists and is not a regular file; choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give what a plain open() would
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: Path, data: dict) -> Path:
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_parquet(path: Path, table: pa.Table) -> Path:
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


class RunDir:
    """A run directory, created on demand.

    Parameters
    ----------
    path : path-like
        Where the run lives. An existing folder is reused only if it is empty or an
        earlier datacheck run (it has ``run.json``); anything else is refused so that a
        typo in ``--out`` can never overwrite a user's files.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.exists():
            if not self.path.is_dir():
                raise UsageError(f"--out {self.path} exists and is not a folder")
            if any(self.path.iterdir()) and not (self.path / RUN_MARKER).exists():
                raise UsageError(f"--out {self.path} is a non-empty folder that is not a datacheck run; choose another")

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    def file(self, name: str) -> Path:
        return self.path / name


def output_folder(path: str | os.PathLike, marker: str, what: str) -> Path:
    """An ``--out`` folder that is new, empty, or an earlier ``what`` (it holds ``marker``).

    Anything else is refused, so a typo in ``--out`` never mixes our files into a user's folder.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / marker).exists())):
        raise UsageError(f"--out {path} exists and is not an empty folder or an earlier {what}; choose another")
    return path


def write_npz(path: Path, arrays: dict) -> Path:
    """Write named arrays as an uncompressed ``.npz`` file, atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return atomic_write(path, write)


def cached_arrays(path: Path | None, compute: Callable[[], dict]) -> dict:
    """The arrays ``compute()`` returns, read from the ``.npz`` file at ``path`` when it exists.

    Otherwise they are computed and written there atomically, so an interrupted run leaves
    no half file and the next run resumes from what completed. ``path=None`` disables caching.
    """
    if path is not None and path.exists():
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    arrays = compute()
    if path is not None:
        write_npz(path, arrays)
    return arrays


def cache_file(cache_dir: str | os.PathLike | None, kind: str, *key_parts, suffix: str = ".npz") -> Path | None:
    """``<cache_dir>/<kind>-<hash of key_parts><suffix>``, or None when caching is off."""
    if not cache_dir:
        return None
    digest = hashlib.sha256()
    for part in key_parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode())
        digest.update(b"|")
    return Path(cache_dir) / f"{kind}-{digest.hexdigest()[:32]}{suffix}"

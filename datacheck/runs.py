"""The run directory: ``findings.parquet``, ``summary.json``, ``run.json``, ``artifacts/``.

Every file is written to a temporary name beside its destination and renamed into place,
so an interrupted run never leaves a half-written file and a rerun picks up the artifacts
that were complete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import UsageError

RUN_MARKER = "run.json"
#: The files that make a folder a datacheck run: no output of another command may replace them.
RUN_FILES = (RUN_MARKER, "summary.json", "findings.parquet")
_MANIFESTS = ("manifest.csv", "manifest.parquet", "manifest.jsonl")
#: The marker of each other command's output folder (files/plan.py's PLAN_MARKER, relabel's,
#: augment's and fix's), what it is, and the files of it no report or export may replace.
OUTPUT_FILES = {
    "plan.json": ("balance plan", ("plan.json", "plan.parquet", *_MANIFESTS)),
    "relabel.json": ("relabel output", ("relabel.json", "changes.parquet", *_MANIFESTS)),
    "augment.json": ("augment output", ("augment.json", *_MANIFESTS)),
    "fix.json": ("fix output", ("fix.json", "summary.json", *_MANIFESTS)),
}
#: The lock file a command holds in the folder it writes (:func:`folder_lock`); while it
#: writes, the only file of ours that is not an output, so no folder check counts it.
LOCK_NAME = ".datacheck.lock"
_UMASK = os.umask(0o22)
os.umask(_UMASK)


#: The longest file name most file systems take, in bytes (ext4, XFS, Btrfs, APFS; NTFS's 255 UTF-16 units).
NAME_MAX = 255


def fitted_name(stem: str, tail: str, limit: int = NAME_MAX) -> str:
    """``stem + tail``, the stem cut (at a character) to keep the name within ``limit`` UTF-8
    bytes: a name made from a user's file name near the limit (a copy's, a temporary file's)
    would otherwise fail its write with "File name too long" half-way through an output."""
    room = limit - len(tail.encode("utf-8"))
    encoded = stem.encode("utf-8")
    if len(encoded) > room:
        stem = encoded[:max(room, 1)].decode("utf-8", "ignore") or "x"
    return stem + tail


def _temporary_prefix(name: str, extra: int) -> str:
    """``.<name>.``, ``name`` shortened so that the temporary name (``extra`` bytes more: the
    random part and suffix ``tempfile`` adds) fits the file system, as ``name`` itself does."""
    return "." + fitted_name(name, ".", NAME_MAX - 1 - extra)


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path`` atomically.

    The temporary file lives in the destination folder, so the rename never crosses
    file systems; on any failure it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, a device such as /dev/stdout, a pipe
        raise UsageError(f"{path} exists and is not a regular file; choose another path")
    tmp = None
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path.name, 8 + 4), suffix=".tmp", dir=path.parent)
        except OSError as exc:  # read-only, not a folder, no such device, ...
            # mkdir says "File exists" when a file stands where a folder must be: name it instead.
            reason = _blocked_by(path) or exc.strerror or str(exc)
            raise UsageError(f"cannot write {path}: {reason}") from None
        os.close(fd)
        try:
            write(Path(tmp))
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give what a plain open() would
            os.replace(tmp, path)
        except OSError as exc:
            raise _naming(exc, path, tmp) from exc
    finally:
        # Also reached on Ctrl-C, which can arrive anywhere: no temporary file is left behind.
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def temporary_folder(target: Path) -> Path:
    """A new hidden folder beside ``target`` (same file system: it can be renamed into
    ``target``'s place), with the permissions a plain ``mkdir`` gives (``mkdtemp`` makes 0700,
    as ``mkstemp`` makes files 0600 in :func:`atomic_write`)."""
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target.name, 8), dir=target.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    return tmp


def _naming(exc: OSError, path: Path, tmp: str) -> OSError:
    """``exc`` naming ``path``: a full disk found while writing (a file's ``write`` or
    ``close``, Arrow's writers) says nothing of the file, or names our temporary file, so the
    user would not know which output failed. Its errno is kept (Arrow's is in its message)."""
    if exc.filename not in (None, tmp, str(tmp)):
        return exc
    number = exc.errno
    if number is None:
        found = re.search(r"\[Errno (\d+)\]", str(exc), flags=re.IGNORECASE)
        number = int(found.group(1)) if found else None
    if number is None:
        return exc
    return OSError(number, os.strerror(number), str(path))


#: The name :func:`atomic_write` gives its temporary files (``tempfile.mkstemp``'s 8 random characters).
_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def remove_temporaries(folder: Path) -> int:
    """Remove the temporary files :func:`atomic_write` left under ``folder`` when its process was
    killed (SIGKILL, power loss: no ``finally`` ran). Call it only on a folder of ours whose lock
    this process holds (:func:`folder_lock`: no other process is writing it), a resumed output.
    Returns how many were removed."""
    removed = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            if _TEMPORARY.fullmatch(name):
                Path(parent, name).unlink(missing_ok=True)
                removed += 1
    return removed


def _blocked_by(path: Path) -> str | None:
    """Why ``path`` can never be created, if a path above it is not a folder; else None.

    Only metadata is read: the nearest existing path above ``path`` must be a folder (the
    folders in between are made on demand).
    """
    for above in Path(os.path.abspath(path)).parents:
        try:
            mode = os.stat(above).st_mode  # follows symlinks: a link to a folder is a folder
        except (FileNotFoundError, NotADirectoryError):  # not there yet (or below a file): look higher
            if os.path.islink(above):
                return f"{above} is a broken symlink, not a folder"
            continue
        except OSError as exc:  # a symlink loop, no permission to look, ...
            return f"{above}: {exc.strerror or exc}"
        if stat.S_ISDIR(mode):
            return None
        return f"{above} is {'a file' if stat.S_ISREG(mode) else 'a special file'}, not a folder"
    return None


def writable_problem(path: str | os.PathLike) -> str | None:
    """Why nothing can be written at ``path`` (a file, written beside itself and renamed into
    place; or a folder, made or written into), else None: a path above it is a file, not a
    folder (:func:`_blocked_by`), or the folder where the write would happen (``path`` if it
    is a folder, else the nearest one above it) is not writable by this user or is on a
    read-only file system. Only metadata is read (``access(2)``, which root passes)."""
    reason = _blocked_by(Path(path))
    if reason is not None:
        return reason
    here = Path(os.path.abspath(path))
    for place in (here, *here.parents):
        try:
            mode = os.stat(place).st_mode
        except OSError:  # not there yet: the folder above is where it would be made
            continue
        if place == here and not stat.S_ISDIR(mode):  # a file: replaced from its folder
            continue
        if os.access(place, os.W_OK | os.X_OK):
            return None
        try:
            read_only = bool(os.statvfs(place).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            read_only = False
        return f"{place}: {os.strerror(errno.EROFS if read_only else errno.EACCES)}"
    return None


def refuse_unwritable(path: str | os.PathLike, option: str) -> None:
    """Raise :class:`UsageError` if ``path`` can never be written (:func:`writable_problem`):
    a path above it is a file, not a folder (``--out notes.txt/run``), or its folder is not
    writable (no permission, a read-only file system).

    Called for every output before any work, so such a typo costs no decoding or training
    and leaves the file in the way untouched (a ``--junit`` file in a read-only folder failed
    after the whole audit); other write errors (a full disk) are still found by
    :func:`atomic_write`, also as :class:`UsageError`.
    """
    reason = writable_problem(path)
    if reason is not None:
        raise UsageError(f"{option} {path} cannot be written: {reason}")


def write_json(path: Path, data: dict) -> Path:
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_parquet(path: Path, table: pa.Table, **options) -> Path:
    """Write ``table`` atomically (``options``: of ``pyarrow.parquet.write_table``)."""
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, **options))


class RunDir:
    """A run directory, created on demand.

    Parameters
    ----------
    path : path-like
        Where the run lives. An existing folder is reused only if it is empty or an
        earlier datacheck run (its ``run.json`` is datacheck's, see :func:`is_marker`);
        anything else is refused so that a typo in ``--out`` can never overwrite a user's files.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.exists():
            if not self.path.is_dir():
                raise UsageError(f"--out {self.path} exists and is not a folder")
            if holds_files(self.path) and not is_marker(self.path / RUN_MARKER):
                raise UsageError(f"--out {self.path} is a non-empty folder that is not a datacheck run; choose another")
        else:
            refuse_unwritable(self.path, "--out")

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    def clear_outputs(self) -> None:
        """Remove what an earlier audit in this folder wrote and this one may not rewrite:
        its model outputs (an audit without a model check writes none) and the report made
        from it. The image statistics stay: they are reused when the dataset is unchanged
        (those an earlier datacheck saved as one file, ``image_stats.parquet``, are not read any more)."""
        for name in ("summary.json", "findings.parquet", "report.html", "findings.csv",
                     "artifacts/model_outputs.npz", "artifacts/image_stats.parquet"):
            (self.path / name).unlink(missing_ok=True)

    def file(self, name: str) -> Path:
        return self.path / name


def output_folder(path: str | os.PathLike, marker: str, what: str) -> Path:
    """An ``--out`` folder that is new, empty, or an earlier ``what`` (it holds ``marker``).

    Anything else is refused, so a typo in ``--out`` never mixes our files into a user's folder.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():  # dangling, or a loop: no folder can be made there
        raise UsageError(f"--out {path} is a broken symlink, not a folder; choose another")
    if path.exists() and (not path.is_dir() or (holds_files(path) and not is_marker(path / marker))):
        raise UsageError(f"--out {path} exists and is not an empty folder or an earlier {what}; choose another")
    refuse_unwritable(path, "--out")
    return path


def holds_files(folder: Path) -> bool:
    """Whether ``folder`` holds anything but a lock file (:data:`LOCK_NAME`): one left by a
    command killed before its first output does not make an empty folder someone else's."""
    with os.scandir(folder) as entries:  # closed at once: any() stops at the first file
        return any(entry.name != LOCK_NAME for entry in entries)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike | None, option: str = "--out"):
    """Hold the exclusive lock of the output ``folder`` while a command writes it.

    Two commands writing one folder at once (two CI jobs given the same ``--out``) would mix
    their files, and a resumed command's clean-up (:func:`remove_temporaries`) would delete the
    other's files in progress: the second is refused instead, before it writes anything. Take
    it after the command's checks of its outputs, before its first write. The lock is
    ``fcntl.flock`` on ``folder/.datacheck.lock`` (the folder is made if new), which the system
    releases when the process ends, however it ends: a killed command leaves no stale lock
    (its lock file at most, which :func:`holds_files` ignores); a command that finishes removes
    the file. Where no lock can be taken (no ``fcntl``, as on Windows; a file system without
    locks; a folder that cannot be written, which the command's writes then report) the folder
    is written unlocked. ``folder`` None (a command that writes no folder): nothing is locked.

    Raises
    ------
    UsageError
        Another process holds the lock (exit 2), or no folder can be made at ``folder``.
    """
    fd = _take_lock(Path(folder), option) if folder is not None else None
    try:
        yield
    finally:
        if fd is not None:
            # Removed while still held: a process that opened it meanwhile finds it gone once
            # it has the lock, and takes the path's new file (see _take_lock).
            with contextlib.suppress(OSError):
                os.unlink(Path(folder) / LOCK_NAME)
            os.close(fd)


def _take_lock(folder: Path, option: str) -> int | None:
    """The descriptor of ``folder``'s lock file, locked; None where locks cannot be taken."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = _blocked_by(folder / LOCK_NAME) or exc.strerror or str(exc)
        raise UsageError(f"{option} {folder} cannot be written: {reason}") from None
    path = folder / LOCK_NAME
    while True:
        try:
            # O_NONBLOCK: a pipe of that name must not hang the command
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o666)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise UsageError(f"{option} {folder} is being written by another datacheck process{holder}; wait for it "
                             "to finish, or write elsewhere") from None
        except OSError:  # a file system without locks
            os.close(fd)
            return None
        try:
            current = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            current = False
        if current:
            break
        os.close(fd)  # the file of a holder that finished since it was opened: not the lock any more
    with contextlib.suppress(OSError):  # who holds it, for a message of the next one refused
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _lock_holder(fd: int) -> str:
    """`` (pid N)``: the process that wrote its id into the lock file ``fd``, if it did yet."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {text})" if text.isdecimal() else ""


#: Keys of which a datacheck marker file (run.json, plan.json, ...) has at least one.
_MARKER_KEYS = ("datacheck_version", "manifest_fingerprint", "plan")


def is_marker(path: Path) -> bool:
    """Whether ``path`` is a marker file datacheck wrote (a JSON object with its keys), not
    merely a file of that name: a user's own ``run.json`` never makes a folder ours."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe named run.json would block the read
            return False
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))  # a BOM, as read_json allows
    except (OSError, ValueError, RecursionError):  # unreadable, not UTF-8 or not JSON: not ours
        return False
    return isinstance(data, dict) and any(key in data for key in _MARKER_KEYS)


@dataclass(frozen=True, eq=False)
class Sources:
    """What an audited dataset consists of, so that no output is ever written into it.

    Source datasets are read-only to datacheck. A folder dataset is its whole root (a file
    added anywhere below it would change it); a manifest dataset is its manifest file and
    the files it lists (runs may live beside them, e.g. ``runs/`` next to ``manifest.csv``).

    Attributes
    ----------
    root : pathlib.Path
        The dataset root, resolved.
    manifest : pathlib.Path or None
        The manifest file, resolved; None for a folder dataset.
    files : pandas.Series of str or None
        The listed files' paths relative to ``root`` (manifest datasets), if known. They are
        compared only for an output inside ``root``, as one vectorised pass.
    """

    root: Path
    manifest: Path | None
    files: object = None

    @classmethod
    def of(cls, manifest) -> "Sources":
        """The sources of a :class:`datacheck.manifest.Manifest`."""
        if manifest.format == "folder":
            return cls(Path(os.path.realpath(manifest.root)), None)
        if manifest.format == "dataframe":  # in memory: the dataset is the files it lists, no manifest file
            return cls(Path(os.path.realpath(manifest.root)), None, manifest.frame["path"])
        if manifest.format == "arrays":
            from .manifest import MANIFEST_FORMATS

            source = Path(manifest.source)
            if not source.is_file():  # in-memory arrays: nothing on disk is the dataset
                return cls(Path(os.path.realpath(manifest.root)), None, manifest.frame["sample_id"].iloc[:0])
            if source.suffix.lower() not in MANIFEST_FORMATS:
                return cls(Path(os.path.realpath(source)), Path(os.path.realpath(source)))  # --pred-probs alone
            # A manifest the arrays align with: the files its rows name are protected too,
            # although an array audit never reads them.
        return cls(Path(os.path.realpath(manifest.root)), Path(os.path.realpath(manifest.source)),
                   manifest.frame["path"])

    @classmethod
    def of_run(cls, info) -> "Sources | None":
        """The sources recorded in a run's ``run.json`` (a :class:`~datacheck.files.run_info.RunInfo`;
        without the listed files), if any."""
        root, source = info.dataset_root, info.dataset
        if info.manifest_format == "arrays":  # the manifest the arrays came with, else the arrays
            source = info.inputs.get("manifest") or info.inputs.get("pred_probs") or info.inputs.get("embeddings")
            if source is None:
                return None
            root = root if "manifest" in info.inputs and root is not None else source
        if root is None:
            return None
        folder = info.manifest_format == "folder"
        return cls(Path(os.path.realpath(root)), None if folder else Path(os.path.realpath(source)))

    @classmethod
    def at(cls, dataset: str | os.PathLike) -> "Sources":
        """The sources of the dataset folder or manifest file at ``dataset`` (without listed files)."""
        path = Path(os.path.realpath(dataset))
        return cls(path, None) if path.is_dir() else cls(path.parent, path)

    def refuse(self, path: str | os.PathLike, option: str) -> None:
        """Raise :class:`UsageError` if writing ``path`` (a file, or a folder written into)
        could change the dataset, or could never succeed (see :func:`refuse_unwritable`).

        Every command calls this for each of its outputs before any work, which makes it
        the place for both checks.
        """
        refuse_unwritable(path, option)
        out = Path(os.path.realpath(path))
        if self.manifest is None and self.files is None:  # a dataset folder: all of it
            overlaps = out == self.root or self.root in out.parents
        else:
            # The manifest itself, a folder holding it, a listed file or a folder holding one
            # (every listed file lies inside root: the manifest refuses paths that leave it).
            overlaps = self.manifest is not None and (out == self.manifest or out in self.manifest.parents)
            if not overlaps and self.files is not None and (out == self.root or self.root in out.parents):
                rel = out.relative_to(self.root).as_posix()
                overlaps = len(self.files) > 0 if rel == "." else bool(
                    (self.files == rel).any() or self.files.str.startswith(rel + "/").any())
        if overlaps:
            raise UsageError(f"{option} {path} would write into the audited dataset ({self.manifest or self.root}); "
                             "datacheck never changes a dataset: choose a path outside it")


def refuse_run_files(path: str | os.PathLike, run: str | os.PathLike, option: str) -> None:
    """Raise :class:`UsageError` if ``path`` is one of the audit run's own files, or could
    never be written (see :func:`refuse_unwritable`)."""
    refuse_unwritable(path, option)
    out, run = Path(os.path.realpath(path)), Path(os.path.realpath(run))
    if out in {run / name for name in RUN_FILES} or run / "artifacts" in out.parents:
        raise UsageError(f"{option} {path} is one of the run's own files; choose another path")


def check_outputs(sources: "Sources | None", *, files: dict | None = None, folders: dict | None = None,
                  run: str | os.PathLike | None = None, keep: dict | None = None,
                  own: str | os.PathLike | None = None) -> None:
    """The output gate: a command declares every file and folder it will write, and all are
    checked together, before anything is written.

    Parameters
    ----------
    sources : Sources or None
        The audited dataset, which no output may land in (None: not known).
    files, folders : dict of str to path-like
        Option (as the user wrote it, for the message) -> path; None paths are not given.
        A folder output may not contain another output.
    run : path-like, optional
        An audit run whose own files (run.json, summary.json, findings, artifacts) no output
        may replace.
    keep : dict of str to path-like, optional
        Inputs the command reads that no output may overwrite (``--import-review``).
    own : path-like, optional
        The command's own ``--out`` folder, already checked by :func:`output_folder` (new,
        empty, or an earlier output of the same command): its files may be written again.

    Raises
    ------
    UsageError
        An output in the dataset, on the run's files, on a kept input, overlapping another
        output, below a path that is not a folder, or a file output that is a symbolic link.
    """
    folders = {o: p for o, p in (folders or {}).items() if p is not None}
    for option, path in {**(files or {}), **folders}.items():
        if path is not None and not str(path).strip():
            raise UsageError(f"{option} is empty; give a path")
    for option, path in (files or {}).items():
        # A file output is written beside itself and renamed into place, which would replace
        # the link (and /dev/stdout with it, for root) instead of writing where it points.
        if path is not None and Path(path).is_symlink():
            raise UsageError(f"{option} {path} is a symbolic link, which writing would replace; give the file's own path")
    given = {o: Path(os.path.realpath(p)) for o, p in {**(files or {}), **folders}.items() if p is not None}
    for option, path in given.items():
        refuse_unwritable(path, option)
        if sources is not None:
            sources.refuse(path, option)
        if run is not None:
            refuse_run_files(path, run, option)
        if option not in folders:
            # A command run again into its own earlier output rewrites that output's files; the
            # guard on other outputs' files is for the other commands (relabel --out twice was
            # refused as writing over "a file of the datacheck relabel output").
            ours = own is not None and path.parent == Path(os.path.realpath(own))
            _refuse_file_output(path, option, others_only=ours)
    for what, kept in (keep or {}).items():
        if kept is None:
            continue
        for option, path in given.items():
            if path == Path(os.path.realpath(kept)):
                raise UsageError(f"{option} {path} is {what}; write it elsewhere, or what is in it is lost")
    options = list(given)
    for i, first in enumerate(options):
        for second in options[i + 1:]:
            a, b = given[first], given[second]
            # Two outputs on one file, or a file written into a folder output (which must be new or ours).
            if a == b or (first in folders and a in b.parents) or (second in folders and b in a.parents):
                raise UsageError(f"{first} {a} and {second} {b} overlap; give each output its own place")


def _refuse_file_output(path: Path, option: str, others_only: bool = False) -> None:
    """Refuse, before any work, a file output that could only fail or destroy something when
    written at the end: a folder, device or pipe in its place (``/dev/null``: outputs are
    written to a temporary file and renamed), or a file of any datacheck run (unless
    ``others_only``: a file in the command's own output folder)."""
    if path.exists() and not path.is_file():
        what = "is a folder" if path.is_dir() else "exists and is not a regular file"
        raise UsageError(f"{option} {path} {what}; give a file path")
    folder = path.parent
    if others_only:
        return
    if (path.name in RUN_FILES and is_marker(folder / RUN_MARKER)) or (
            folder.name == "artifacts" and is_marker(folder.parent / RUN_MARKER)):
        raise UsageError(f"{option} {path} is a file of the datacheck run in {folder if path.name in RUN_FILES else folder.parent}; "
                         "choose another path")
    # The other commands' outputs too: a report written over a plan's plan.json left a plan
    # that augment could not read.
    for marker, (what, names) in OUTPUT_FILES.items():
        if path.name in names and is_marker(folder / marker):
            raise UsageError(f"{option} {path} is a file of the datacheck {what} in {folder}; choose another path")


def write_npz(path: Path, arrays: dict) -> Path:
    """Write named arrays as an uncompressed ``.npz`` file, atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return atomic_write(path, write)


def cached_arrays(path: Path | None, compute: Callable[[], dict]) -> dict:
    """The arrays ``compute()`` returns, read from the ``.npz`` file at ``path`` when it exists.

    Otherwise they are computed and written there atomically, so an interrupted run leaves
    no half file and the next run resumes from what completed. Processes that miss the same
    entry at once (two audits of one dataset sharing a cache: CI jobs, notebook kernels) take
    turns on a lock file beside it, so the first computes and the others read its result
    instead of training the same models again. ``path=None`` disables caching.
    """
    if path is None:
        return compute()
    arrays = _read_cached(path)
    if arrays is not None:
        return arrays
    with _entry_lock(path):
        arrays = _read_cached(path)  # written by another process while this one waited
        if arrays is None:
            arrays = compute()
            write_npz(path, arrays)
    return arrays


def _read_cached(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None  # a damaged cache entry (e.g. a disk filled up elsewhere): compute it again


@contextlib.contextmanager
def _entry_lock(path: Path):
    """An exclusive advisory lock on ``<path>.lock`` while the entry is computed (POSIX; the
    system releases it if the process dies). Where it cannot be taken (no ``fcntl``, a cache on
    a file system without locks, a read-only cache, a lock path that is a pipe: opened without
    blocking) the entry is computed unlocked."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK, 0o644)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


def cache_file(cache_dir: str | os.PathLike | None, kind: str, *key_parts, suffix: str = ".npz") -> Path | None:
    """``<cache_dir>/<kind>-<hash of key_parts><suffix>``, or None when caching is off."""
    if not cache_dir:
        return None
    digest = hashlib.sha256()
    for part in key_parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode())
        digest.update(b"|")
    return Path(cache_dir) / f"{kind}-{digest.hexdigest()[:32]}{suffix}"

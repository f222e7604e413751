"""Memory: resident rows of file-backed arrays let go once written or read, and how much is left."""

from __future__ import annotations

import errno
import mmap
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UsageError


def mapped_file(array) -> np.memmap | None:
    """The memory map ``array`` is, or is a view or slice of (a transpose, a column); None for
    an array in memory."""
    while isinstance(array, np.ndarray) and not isinstance(array, np.memmap):
        array = array.base
    return array if isinstance(array, np.memmap) else None


def release_rows(values: np.ndarray, start: int = 0, stop: int | None = None) -> None:
    """Let rows ``start:stop`` (default: all) of a shared memory map leave this process's
    resident memory: they stay in its file (and the page cache) and come back when read.

    A file-backed map's pages count in the resident memory of every process that touched
    them until the kernel needs the memory: a folder of 1,000,000 images peaked at 12.9 GB
    while 12 GB of thumbnails, written once, stayed resident. Only maps whose pages are the
    file's (modes ``r``, ``r+``, ``w+``): in a copy-on-write map (``c``) a released modified
    page would be lost. Anything else (an array in memory, no ``MADV_DONTNEED``) is left as it is.
    """
    values = mapped_file(values)  # a view of the map: release the map itself
    backing = getattr(values, "_mmap", None)
    stop = len(values) if stop is None and backing is not None else stop
    if backing is None or values.mode == "c" or not hasattr(mmap, "MADV_DONTNEED") or stop <= start:
        return
    page = mmap.PAGESIZE
    # bytes from the start of the map (numpy maps from the offset rounded down to the granularity)
    first = start * values.strides[0] + values.offset % mmap.ALLOCATIONGRANULARITY
    aligned = first - first % page
    backing.madvise(mmap.MADV_DONTNEED, aligned, (stop - start) * values.strides[0] + first - aligned)


def temporary_map(shape: tuple, dtype=np.uint8, folder: Path | None = None, what: str = "the arrays") -> np.ndarray:
    """A writable memory map of ``shape`` and ``dtype`` (zeros) backed by a nameless temporary file
    in ``folder`` (default: the system's temporary folder, ``$TMPDIR``): its disk space is given
    back when the map is dropped or the process ends, even by a crash (no file is left behind).

    Raises
    ------
    UsageError
        The folder cannot hold it (a full disk): said now, naming ``what`` and the size, not
        as a crash (SIGBUS) when a page of a sparse file is first written through the map.
    """
    if not np.prod(shape):
        return np.zeros(shape, dtype)
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    place = folder if folder is not None else Path(tempfile.gettempdir())
    try:
        backing = tempfile.TemporaryFile(dir=folder)
    except OSError as exc:
        raise UsageError(f"cannot keep {what} in {place}: {exc.strerror or exc}") from None
    with backing:  # the map keeps its own reference to the file
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(backing.fileno(), 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system that cannot: sparse, as before
                raise UsageError(f"cannot keep {what} in {place}: {exc.strerror} "
                                 f"({size / 2**20:,.0f} MB needed while the audit runs)") from None
        return np.memmap(backing, dtype=dtype, mode="w+", shape=shape)


def available_memory() -> int | None:
    """Bytes this process can still allocate without the system or its container running out,
    on Linux (None elsewhere, or where nothing can be read): the kernel's ``MemAvailable``, or
    less where a cgroup (a container's memory limit) leaves less: its limit less its usage
    net of the file cache it can drop (as ``docker stats`` counts it).

    For checks that would allocate more than the machine holds: Linux does not refuse such an
    allocation (it overcommits) but kills the process once the pages are touched (exit 137, no
    message, a run folder left unfinished)."""
    found = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    # cgroup v2 (memory.max, "max" when unlimited), then v1 (a huge number when unlimited)
    for limit_file, usage_file, stat_file, cache_key in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat", "inactive_file"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
         "/sys/fs/cgroup/memory/memory.stat", "total_inactive_file"),
    ):
        try:
            limit_text = Path(limit_file).read_text().strip()
            if limit_text == "max" or int(limit_text) >= 2**60:
                continue
            used = int(Path(usage_file).read_text()) - _stat(stat_file, cache_key)
            found.append(max(int(limit_text) - used, 0))
        except (OSError, ValueError):
            continue
    return min(found) if found else None


def _stat(path: str, key: str) -> int:
    """The value of ``key`` in a cgroup's ``memory.stat`` at ``path``; 0 where it cannot be read
    (the usage then counts the file cache too: an underestimate of what is left, not a limit
    ignored)."""
    try:
        stats = dict(line.split() for line in Path(path).read_text().splitlines() if line.count(" ") == 1)
        return int(stats.get(key, 0))
    except (OSError, ValueError):
        return 0

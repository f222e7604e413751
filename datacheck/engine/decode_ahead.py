"""Decoding a folder's images while the audit's libraries load.

``datacheck audit FOLDER`` spends about 0.4 s before its first image is decoded: importing
pandas, pyarrow and faiss (0.3 s) and listing the folder into a manifest, on one core while
the other idles. The command line therefore lists the folder itself
(:func:`datacheck.folder_scan.scan_folder`, no pandas) and starts the workers of the image
statistics on its files (:func:`start`) before it imports the audit. The image-statistics
stage takes that running decode over (:func:`take`) when it decodes the very same files in
the same batches on local workers; in any other case (a config that selects Ray or another
batch size, a dataset changed in between, statistics read back from an earlier run) it is
stopped unused (:func:`discard`, also called by the command line when the audit ends, however
it ends). A quick audit of 2,880 scans then ends about 0.2 s sooner (2.60 -> 2.40 s, median of
12 alternated pairs; ``benchmarks/image_checks.py --end-to-end`` in RESULTS.md); the results
are the same batches of the same pure function either way.

The folder is listed twice (the manifest lists it again: handing the listing over would tie
the manifest to the command line): 0.17 s for 100,000 files, about what the decode ahead
saves there; below that, the second listing costs less than it saves.

At most one decode is ahead at a time, held here between the command line and the stage;
only :func:`start` puts one here, and the Python API never calls it.
"""

from __future__ import annotations

import os

from .image_stats import CHECKPOINT_ROWS, analyze_batch
from .workers import PathBatches, StartedWorkers

#: Batches submitted at once when the decode starts (at the default 32 images a batch, 2,048
#: images): enough to keep the workers busy while the libraries load (~600 scans on two cores),
#: and a bounded amount of finished results (~30 MB of thumbnails) waiting to be taken over.
AHEAD_BATCHES = 64

_pending: tuple[list[str], int, StartedWorkers] | None = None


def start(paths: list[str], workers: int, batch_size: int) -> None:
    """Start computing the image statistics of ``paths`` (absolute file paths, in the
    manifest's order; the first :data:`~datacheck.engine.image_stats.CHECKPOINT_ROWS`, the
    stage's first part) in ``workers`` processes, ``batch_size`` files a batch. A decode
    already ahead is stopped first."""
    global _pending
    discard()
    paths = paths[:CHECKPOINT_ROWS]
    batches = PathBatches(paths, batch_size, _stamped_batch)
    workers = min(workers, len(batches))
    if workers > 0:
        # Held here before any worker is forked (the pool forks them on its first submission), so
        # that discard() stops them however the command ends, a Ctrl-C during the forks included.
        started = StartedWorkers(batches, workers)
        _pending = (paths, batch_size, started)
        started.submit(AHEAD_BATCHES)


def take(paths: list[str], batch_size: int) -> "_Checked | None":
    """The decode ahead, if it computes the statistics of exactly ``paths`` in batches of
    ``batch_size`` (it is then no longer held here; a batch of files replaced since it was read is
    decoded again, :class:`_Checked`); else None, and a decode of other files is stopped
    (nothing else will take it)."""
    global _pending
    if _pending is None:
        return None
    ahead_paths, ahead_batch_size, started = _pending
    if ahead_batch_size != batch_size or ahead_paths != paths:
        discard()
        return None
    _pending = None
    return _Checked(started)


class _Checked:
    """The decode ahead's results, each batch given only where its files are still those it
    decoded (:func:`_stamp` then and now); a batch of files replaced since (written over, renamed
    onto, swapped: the same paths) is decoded again here. The manifest fingerprints each file's
    size and time after the ahead decoded it: stale statistics would be saved under the new
    fingerprint, and a rerun read them back."""

    def __init__(self, started: StartedWorkers):
        self.started = started

    def results(self):
        """Each batch's statistics (as :func:`analyze_batch` gives them), in order."""
        inner = self.started.results()
        try:
            for i, result in enumerate(inner):
                batch = self.started.batches.paths_of(i)
                same = [_stamp(p) for p in batch] == result["stamps"]
                yield result["stats"] if same else analyze_batch({"path": batch})
        finally:
            inner.close()  # stops the workers when the caller stops early


def _stamp(path: str) -> tuple | None:
    """What tells a file from one put in its place: device, inode, size, modification and change
    times (ns); None where it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _stamped_batch(batch: dict) -> dict:
    """In a worker: each file's :func:`_stamp` (taken before it is read) and the batch's statistics."""
    stamps = [_stamp(p) for p in batch["path"]]
    return {"stamps": stamps, "stats": analyze_batch(batch)}


def discard() -> None:
    """Stop the decode ahead, if one is held (its workers are ended at once)."""
    global _pending
    if _pending is not None:
        started, _pending = _pending[2], None
        started.stop()

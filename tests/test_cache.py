"""The result cache (`datacheck.runs.cached_arrays`): reads, damaged entries, concurrent misses."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np

from datacheck.runs import cache_file, cached_arrays


def _slow_compute(path, log, started) -> None:
    def compute():
        with open(log, "a") as fh:
            fh.write("computed\n")
        started.set()
        time.sleep(1.5)
        return {"x": np.arange(5)}

    cached_arrays(path, compute)


def test_concurrent_misses_compute_once(tmp_path):
    """Two processes missing one entry at once: the second waits for the first's result
    instead of computing it again (two audits sharing a cache would train twice)."""
    path = cache_file(tmp_path, "cv", "key")
    log = tmp_path / "log"
    context = multiprocessing.get_context("fork")
    started = context.Event()
    first = context.Process(target=_slow_compute, args=(path, log, started))
    first.start()
    assert started.wait(30)
    second = context.Process(target=_slow_compute, args=(path, log, context.Event()))
    second.start()
    first.join(60)
    second.join(60)
    assert first.exitcode == second.exitcode == 0
    assert log.read_text() == "computed\n"
    assert np.array_equal(cached_arrays(path, lambda: {"x": np.zeros(1)})["x"], np.arange(5))


def test_a_new_cache_folder_and_a_pipe_as_lock_file(tmp_path):
    """The first entry of a cache folder not made yet is locked (the folder is made first); a
    lock path that is a pipe is never waited on: the entry is computed unlocked."""
    import os

    path = cache_file(tmp_path / "new" / "cache", "cv", "key")
    assert np.array_equal(cached_arrays(path, lambda: {"x": np.ones(3)})["x"], np.ones(3))
    assert path.exists() and path.with_name(path.name + ".lock").is_file()
    other = cache_file(tmp_path, "cv", "other")
    os.mkfifo(other.with_name(other.name + ".lock"))
    assert np.array_equal(cached_arrays(other, lambda: {"x": np.zeros(2)})["x"], np.zeros(2))


def test_a_damaged_entry_is_computed_again_and_no_cache_computes_each_time(tmp_path):
    path = cache_file(tmp_path, "cv", "key")
    path.write_bytes(b"not an npz")
    assert np.array_equal(cached_arrays(path, lambda: {"x": np.ones(2)})["x"], np.ones(2))
    assert np.array_equal(cached_arrays(path, lambda: {"x": np.zeros(2)})["x"], np.ones(2))  # now a hit
    calls = []
    for _ in range(2):
        cached_arrays(None, lambda: calls.append(1) or {"x": np.ones(1)})
    assert len(calls) == 2 and cache_file(None, "cv", "key") is None

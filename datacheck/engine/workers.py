"""Pure batch functions run over numbered batches in worker processes, in order.

The process pool behind every per-sample stage of the local engine (decoding, image
statistics, pair similarities, augmentation): forked workers inherit the work, at most a few
batches per worker are in flight, and Ctrl-C or a dead parent stops them. Standard library
only, so the command line can start workers before the audit's libraries load
(:mod:`datacheck.engine.decode_ahead`).
"""

from __future__ import annotations

import os
from typing import Callable, Iterator


class PathBatches:
    """The batches of paths a batch function runs over, by index (each item is one whole batch)."""

    def __init__(self, paths: list[str], batch_size: int, fn: Callable[[dict], dict]):
        self.paths = paths
        self.batch_size = batch_size
        self.fn = fn

    def __len__(self) -> int:
        return (len(self.paths) + self.batch_size - 1) // self.batch_size

    def paths_of(self, i: int) -> list[str]:
        """The paths of batch ``i``."""
        return self.paths[i * self.batch_size : (i + 1) * self.batch_size]

    def __getitem__(self, i: int) -> dict:
        return self.fn({"path": self.paths_of(i)})


def default_workers() -> int:
    """Worker processes for decoding: one per CPU this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def run_in_workers(batches, workers: int, started=None) -> Iterator:
    """``batches[0], batches[1], ...`` computed in ``workers`` processes (0: here), in order.

    ``batches`` is any object with ``len()`` and ``[i]`` that computes the i-th result (the
    work is in ``__getitem__``); workers inherit it by fork, never pickling its arrays.
    ``started``: the same work already running (a :class:`StartedWorkers`, or anything with
    its ``results()``, such as the decode ahead's), whose results are given instead.

    A plain process pool, not torch's DataLoader: decoding images must not cost an import
    of torch (seconds) in an audit that trains nothing. At most ``4 x workers`` batches are
    in flight, so results never pile up faster than the caller consumes them.
    """
    if started is None and workers == 0:
        for i in range(len(batches)):
            yield batches[i]
        return
    yield from (started or StartedWorkers(batches, workers)).results()


class StartedWorkers:
    """Worker processes computing ``batches[i]`` for every i: :meth:`submit` hands out the
    first batches (the decode ahead submits many at once), :meth:`results` gives them in
    order with at most ``4 x workers`` in flight, :meth:`stop` ends the work. The workers are
    forked on the first submission. See :func:`run_in_workers`.
    """

    def __init__(self, batches, workers: int):
        import multiprocessing
        from collections import deque
        from concurrent.futures import ProcessPoolExecutor

        # fork where there is one: workers start fast and inherit the batches; elsewhere the
        # initializer ships them once per worker. A worker that dies breaks the pool with an
        # error (BrokenProcessPool) instead of leaving its batch waiting for ever.
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        self.batches, self.window = batches, 4 * workers
        self.pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                       initargs=(batches, os.getpid()))
        self.pending: deque = deque()
        self.submitted = 0

    def submit(self, in_flight: int) -> None:
        """Submit the next batches until ``in_flight`` are pending (the first call forks the workers)."""
        while self.submitted < len(self.batches) and len(self.pending) < in_flight:
            self.pending.append(self.pool.submit(_run_batch, self.submitted))
            self.submitted += 1

    def results(self) -> Iterator:
        """Each batch's result, in order; the workers are stopped when the last is given, or
        when the caller stops early (the generator closed, an error, Ctrl-C)."""
        finished = False
        try:
            while self.submitted < len(self.batches) or self.pending:
                self.submit(self.window)
                yield self.pending.popleft().result()
            finished = True
        finally:
            self.stop(finished)

    def stop(self, finished: bool = False) -> None:
        """End the work: at once, unless ``finished`` (every result was given)."""
        pool = self.pool
        if not finished:
            # Interrupted (Ctrl-C), failed, or abandoned by the caller: stop the workers now.
            # Waiting for them to finish their batches takes as long as a batch, and a Ctrl-C
            # that lands while the pool hands out work can leave shutdown() waiting on a worker
            # that never gets its stop signal. The executor has no public way to stop its
            # workers before Python 3.14 (terminate_workers), hence its process table.
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            # A worker stopped while it wrote a result (a batch's result is hundreds of KB, more
            # than a pipe holds) leaves half a message: the executor's thread would wait for
            # the rest for ever, and shutdown() with it, as this process holds the pipe's
            # write end too. Closing that copy lets the read end at an end of file once the
            # workers are gone: the executor sees a broken pool and stops.
            writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
            if writer is not None:
                writer.close()
        pool.shutdown(wait=True, cancel_futures=True)


_worker_batches = None


def _start_worker(batches, parent: int) -> None:
    """In each worker: keep the batches, and leave Ctrl-C to the main process (which stops
    the pool), so an interrupt gives one message rather than one traceback per worker.

    SIGTERM and SIGHUP get their default action back: the command line's handlers, inherited
    by fork, would let a worker busy in a long C call (a decode) stop only when the call
    returns, and the main process stops its workers with SIGTERM. A worker also leaves when its
    parent is gone: a main process killed outright (``kill -9``, the out-of-memory killer)
    stops no one, and its workers lived on for ever, holding its stdout and stderr open.
    ``parent`` is the main process's id, taken before the fork: a worker asking for its
    parent itself, after a main process killed while it started, got the process that
    adopted it, and watched that one for ever (a CI run's worker outlived its killed parent).
    """
    import signal
    import threading

    global _worker_batches
    _worker_batches = batches
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    threading.Thread(target=_leave_with_parent, args=(parent,), name="datacheck-parent-watch", daemon=True).start()


#: How often a worker checks that the process that started it is still there, in seconds.
_PARENT_CHECK_S = 1.0


def _leave_with_parent(parent: int) -> None:
    """Exit this worker once ``parent`` has died (the worker is then re-parented elsewhere)."""
    import time

    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_S)
    os._exit(1)


def _run_batch(i: int) -> dict:
    return _worker_batches[i]

"""The worker pool of the local engine: ordered results, and a prompt stop when abandoned."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from datacheck.engine.workers import run_in_workers


class SlowBatches:
    """Batch ``i`` is ``i``; every batch after the first takes ``seconds``."""

    def __init__(self, count: int, seconds: float):
        self.count, self.seconds = count, seconds

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        if i:
            time.sleep(self.seconds)
        return i


def test_results_come_in_order():
    assert list(run_in_workers(SlowBatches(12, 0.01), 2)) == list(range(12))


@pytest.mark.parametrize("workers", [1, 2])
def test_an_abandoned_pool_stops_its_workers_instead_of_waiting_for_their_batches(workers):
    results = run_in_workers(SlowBatches(8, 30.0), workers)
    assert next(results) == 0
    t0 = time.perf_counter()
    results.close()  # what a Ctrl-C or an error in the caller does to the generator
    assert time.perf_counter() - t0 < 5.0  # not the 30 s a batch takes


class BigBatches:
    """Every batch is 8 MB: a worker spends its time writing results into the pipe."""

    def __len__(self):
        return 200

    def __getitem__(self, i):
        return b"x" * (8 << 20)


def test_a_pool_stopped_while_a_worker_writes_a_result_does_not_hang():
    """A Ctrl-C while a worker sends a result larger than a pipe holds (a batch of images'
    statistics, descriptors and thumbnails): the stopped worker left half a message, which the
    executor's thread waited on for ever, and the audit hung after its Ctrl-C."""
    script = ("from tests.test_loader import BigBatches; from datacheck.engine.workers import run_in_workers\n"
              "for _ in range(5):\n"
              "    results = run_in_workers(BigBatches(), 2); next(results); results.close()\n")
    try:  # in a process of its own, which the timeout can kill
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                              cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired:
        pytest.fail("the stopped pool hung")
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_a_worker_started_after_its_parent_died_leaves_too():
    """A worker asked for its parent's id itself, once it had started: a main process killed
    while the worker was starting had it adopted first, and the worker then watched its
    adopter for ever (a CI run's worker outlived its killed parent). The parent's id is now
    taken before the fork: given one that is gone, a worker leaves at once."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    script = ("from datacheck.engine.workers import _start_worker\n"
              f"_start_worker([], {gone})\n"
              "import time; time.sleep(30)\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 1 and done.stderr == "" and time.monotonic() - started < 10, done.stderr


def test_workers_leave_when_their_main_process_is_killed_outright():
    """kill -9 (or the out-of-memory killer) of the main process stops no one: its workers,
    busy or idle, lived on for ever, holding the command's stdout and stderr open (so
    'datacheck audit ... | tee log' never ended). Each worker now leaves once its parent is gone."""
    import os
    import signal

    script = ("import os, sys\nfrom tests.test_loader import SlowBatches\n"
              "from datacheck.engine.workers import run_in_workers\n"
              "results = run_in_workers(SlowBatches(8, 60.0), 2); next(results)\n"
              "import multiprocessing; print(' '.join(str(c.pid) for c in multiprocessing.active_children()), flush=True)\n"
              "import time; time.sleep(60)\n")
    main = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    workers: list[int] = []
    try:
        workers = [int(pid) for pid in main.stdout.readline().split()]
        assert len(workers) == 2
        main.send_signal(signal.SIGKILL)
        main.wait(timeout=10)
        deadline = time.monotonic() + 10
        alive = workers
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [pid for pid in workers if _running(pid)]
        assert alive == [], f"workers {alive} outlived their killed parent"
    finally:
        main.kill()
        for pid in workers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False

"""The worker pool of the local engine: ordered results, and a prompt stop when abandoned."""

from __future__ import annotations

import time

import pytest

from datacheck.engine.loader import run_in_workers


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

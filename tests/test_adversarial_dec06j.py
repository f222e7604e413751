"""Adversarial cases of the decode ahead (datacheck.engine.decode_ahead), the image statistics'
LZ4 parts and balance --strategy coreset's carried weights, found by a hostile pass."""

from __future__ import annotations

import multiprocessing

import pytest

from datacheck.engine import decode_ahead
from datacheck.engine.workers import StartedWorkers

from .conftest import invoke, make_tiny_dataset

QUICK = ["--checks", "image_properties,exact_duplicates", "--cache-dir", "off", "-q"]


@pytest.mark.parametrize("where", ["after_start", "while_forking"])
def test_an_interrupt_once_the_decode_started_stops_it(tmp_path, monkeypatch, where):
    """A Ctrl-C (or SIGTERM, raised alike) landing just after the command line started the
    workers, or while the pool forks them: exit 130 and no worker left running. The workers were
    outside the command's clean-up and went on decoding up to 64 batches, which the interpreter
    waited for before it exited."""
    if where == "after_start":
        start = decode_ahead.start

        def interrupted_start(*args):
            start(*args)
            raise KeyboardInterrupt

        monkeypatch.setattr(decode_ahead, "start", interrupted_start)
    else:
        submit = StartedWorkers.submit

        def interrupted_submit(self, in_flight):
            submit(self, in_flight)
            raise KeyboardInterrupt

        monkeypatch.setattr(StartedWorkers, "submit", interrupted_submit)
    dataset = make_tiny_dataset(tmp_path / "tiny")
    result = invoke("audit", dataset, "--out", tmp_path / "run", "--workers", 2, *QUICK)
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == "datacheck: interrupted"
    assert decode_ahead._pending is None
    assert not multiprocessing.active_children()
    assert not (tmp_path / "run").exists()

"""Adversarial cases of the decode ahead (datacheck.engine.decode_ahead), the image statistics'
LZ4 parts and balance --strategy coreset's carried weights, found by a hostile pass."""

from __future__ import annotations

import multiprocessing

import pytest

from datacheck.engine import decode_ahead
from datacheck.engine.workers import StartedWorkers

from .conftest import invoke, make_image, make_tiny_dataset

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


def _rewrite(dataset):
    make_image(dataset / "train" / "cat" / "cat3.png", 123)  # same path, other pixels


def _swap(dataset):
    a, b, spare = (dataset / "train" / "cat" / "cat3.png", dataset / "train" / "dog" / "dog4.png",
                   dataset / "spare.png")
    a.rename(spare)
    b.rename(a)
    spare.rename(b)


@pytest.mark.parametrize("change", [_rewrite, _swap])
def test_files_replaced_after_the_decode_ahead_read_them_are_read_again(tmp_path, monkeypatch, change):
    """A file written over or renamed onto between the decode ahead's read and the manifest
    (the same paths, so the ahead is taken): the findings are those of an audit without the
    ahead, and the saved statistics are the new files' (they are saved under the manifest's
    fingerprint, which a rerun trusts)."""
    from concurrent.futures import wait

    import pandas as pd

    import datacheck

    dataset = make_tiny_dataset(tmp_path / "tiny")
    start = decode_ahead.start

    def start_then_change(*args):
        start(*args)
        wait(decode_ahead._pending[2].pending)  # every batch read as it was
        change(dataset)

    monkeypatch.setattr(decode_ahead, "start", start_then_change)
    checks = "image_properties,exact_duplicates,near_duplicates,split_leakage"
    result = invoke("audit", dataset, "--out", tmp_path / "run", "--workers", 2, "--checks", checks,
                    "--cache-dir", "off", "-q")
    assert result.exit_code == 0, result.output
    ahead = pd.read_parquet(tmp_path / "run" / "findings.parquet").drop(columns="run_id")
    without = datacheck.audit(dataset, checks=checks.split(","), cache_dir="off", workers=0)
    pd.testing.assert_frame_equal(ahead, without.issues(flagged=False).drop(columns="run_id"))
    assert not multiprocessing.active_children()

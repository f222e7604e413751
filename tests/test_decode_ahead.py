"""The command line's decode of a folder's images started before the audit's libraries load
(datacheck.engine.decode_ahead): taken over only for the very same work, stopped otherwise,
and the audit's findings are those of an audit without it."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

import pandas as pd
import pytest

import datacheck
from datacheck.cli import _decode_ahead
from datacheck.engine import decode_ahead
from datacheck.engine.image_stats import analyze_batch

from .conftest import SAMPLE_DATA, assert_one_line_error, invoke, make_tiny_dataset

QUICK = ["--checks", "image_properties,exact_duplicates,near_duplicates,split_leakage", "--cache-dir", "off", "-q"]


@pytest.fixture
def record(monkeypatch):
    """Calls of decode_ahead.start (their batch size and worker count) and what take returned."""
    calls = {"start": [], "take": []}
    start, take = decode_ahead.start, decode_ahead.take

    def recorded_start(paths, workers, batch_size):
        start(paths, workers, batch_size)
        if decode_ahead._pending is not None:  # workers started
            calls["start"].append((len(paths), workers, batch_size))

    def recorded_take(paths, batch_size):
        started = take(paths, batch_size)
        calls["take"].append(started is not None)
        return started

    monkeypatch.setattr(decode_ahead, "start", recorded_start)
    monkeypatch.setattr(decode_ahead, "take", recorded_take)
    yield calls
    assert decode_ahead._pending is None  # never left held once a command ends
    assert not multiprocessing.active_children()


def test_audit_of_a_folder_takes_the_decode_ahead_and_finds_the_same(tmp_path, record):
    result = invoke("audit", SAMPLE_DATA, "--out", tmp_path / "run", "--workers", 2, *QUICK)
    assert result.exit_code == 0, result.output
    assert record["start"] == [(564, 2, 32)]  # sample_data's 564 images, 2 workers, the default batch size
    assert record["take"] == [True]
    ahead = pd.read_parquet(tmp_path / "run" / "findings.parquet").drop(columns="run_id")
    without = datacheck.audit(SAMPLE_DATA, checks=QUICK[1].split(","), cache_dir="off", workers=2)
    assert record["start"] == [(564, 2, 32)]  # the Python API starts none
    pd.testing.assert_frame_equal(ahead, without.issues(flagged=False).drop(columns="run_id"))
    assert len(ahead) > 564 * 10  # the checks scored every image: the frames compared are whole


def test_the_config_sets_the_batches_and_the_engine(tmp_path, record):
    config = tmp_path / "c.toml"
    config.write_text("[audit]\nbatch_size = 7\nworkers = 1\n")
    dataset = make_tiny_dataset(tmp_path / "tiny")
    assert invoke("audit", dataset, "--out", tmp_path / "a", "--config", config, *QUICK).exit_code == 0
    assert record["start"] == [(16, 1, 7)] and record["take"] == [True]
    # Ray decodes, not these workers; a config the audit will refuse: nothing started, nothing raised
    for text, engine in (("[engine]\nname = \"ray\"\n", None), ("", "ray"), ("audit = 3\n", None),
                         ("[audit]\nbatch_size = 0\n", None), ("[audit\n", None)):
        config.write_text(text)
        _decode_ahead(dataset, None, config, None, engine)
    _decode_ahead(dataset, None, tmp_path / "absent.toml", None, None)
    assert record["start"] == [(16, 1, 7)] and decode_ahead._pending is None


def test_nothing_is_started_where_an_earlier_run_may_be_read_back(tmp_path, record):
    dataset = make_tiny_dataset(tmp_path / "tiny")
    assert invoke("audit", dataset, "--out", tmp_path / "run", *QUICK).exit_code == 0
    assert invoke("audit", dataset, "--out", tmp_path / "run", *QUICK).exit_code == 0
    assert len(record["start"]) == 1  # the rerun reads its statistics from the run folder
    assert invoke("audit", dataset, "--out", tmp_path / "other", "--workers", 0, *QUICK).exit_code == 0
    assert len(record["start"]) == 1  # no workers asked for


def test_an_audit_that_fails_stops_the_decode(tmp_path, record):
    dataset = make_tiny_dataset(tmp_path / "tiny")
    result = invoke("audit", dataset, "--out", tmp_path / "run", "--fail-on", "nonsense>1", *QUICK)
    assert_one_line_error(result, 2, "nonsense")
    assert len(record["start"]) == 1 and record["take"] == []  # started, refused before decoding, stopped


def test_an_audit_that_reads_no_image_statistics_stops_it_at_once(tmp_path, record, monkeypatch):
    dataset = make_tiny_dataset(tmp_path / "tiny")
    run_existed = []  # when the decode ahead was stopped: whether the run folder existed yet
    discard = decode_ahead.discard

    def recorded_discard():
        if decode_ahead._pending is not None:
            run_existed.append((tmp_path / "run").exists())
        discard()

    monkeypatch.setattr(decode_ahead, "discard", recorded_discard)
    assert invoke("audit", dataset, "--out", tmp_path / "run", "--checks", "class_imbalance", "-q").exit_code == 0
    assert len(record["start"]) == 1 and record["take"] == []
    assert run_existed == [False]  # stopped by the pipeline before any output, not at the command's end


def test_take_gives_only_the_same_work(tmp_path):
    paths = [str(p) for p in sorted(make_tiny_dataset(tmp_path / "tiny").rglob("*.png"))]
    decode_ahead.start(paths, 2, 4)
    assert decode_ahead.take(paths, 5) is None  # other batches: stopped, not held
    assert decode_ahead._pending is None and not multiprocessing.active_children()
    decode_ahead.start(paths, 2, 4)
    assert decode_ahead.take(paths[1:], 4) is None and decode_ahead._pending is None
    decode_ahead.start(paths, 2, 4)
    started = decode_ahead.take(paths, 4)
    assert started is not None and decode_ahead._pending is None
    results = list(started.results())
    expected = [analyze_batch({"path": paths[i : i + 4]}) for i in range(0, len(paths), 4)]
    assert results == expected
    assert not multiprocessing.active_children()


def test_the_decode_starts_before_pandas_and_pyarrow_load():
    """What the command line imports to list the folder and start the workers: the point of
    starting them early is that these libraries load while the images decode."""
    code = ("import sys, datacheck.cli, datacheck.folder_scan, datacheck.engine.decode_ahead; "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'faiss', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"

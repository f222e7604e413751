"""--engine ray: the per-image work on Ray Data (a real 2-CPU local Ray runtime), same findings."""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pandas as pd
import pytest

from .conftest import SAMPLE_DATA, assert_one_line_error, invoke

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'datacheck[ray]')")

from datacheck.engine.loader import iter_batches, load_pixels  # noqa: E402
from datacheck.engine.ray_engine import RayEngine  # noqa: E402


@pytest.fixture(scope="module")
def ray_runtime():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=False)
    yield RayEngine()
    ray.shutdown()


def _sample_paths() -> list[str]:
    return sorted(str(p) for p in SAMPLE_DATA.rglob("*.png"))[:120]


def test_findings_equal_the_local_engine(ray_runtime, tmp_path):
    import datacheck

    # Each engine from a fresh cache: Ray decodes the statistics and the model's pixels and
    # trains the folds as tasks; the local engine does all of it here. The run folders are
    # named alike (a folder's name is the findings' run_id). Every default check runs; 2 folds
    # of 4 epochs instead of 5 of 20 exercise the same code (each fold's predictions start an
    # actor pool, seconds each, whatever the data's size).
    config = tmp_path / "short.toml"
    config.write_text("[train]\nepochs = 4\nfolds = 2\n")
    local = datacheck.audit(SAMPLE_DATA, out=tmp_path / "local" / "sample", cache_dir=str(tmp_path / "local-cache"),
                            config=config)
    remote = datacheck.audit(SAMPLE_DATA, out=tmp_path / "ray" / "sample", engine="ray",
                             cache_dir=str(tmp_path / "ray-cache"), config=config)
    assert set(local.findings["check"]) >= {"label_issues", "aum", "label_fused", "outliers", "near_duplicates"}
    pd.testing.assert_frame_equal(remote.findings, local.findings)
    assert (remote.run_dir / "findings.parquet").read_bytes() == (local.run_dir / "findings.parquet").read_bytes()
    assert remote.run_info.config["engine"]["name"] == "ray"
    assert sum(1 for _ in (tmp_path / "ray-cache").rglob("*.npy")) >= 1  # the pixels, cached as the local engine's


def test_pixels_equal_the_local_engine(ray_runtime):
    paths = _sample_paths()
    local, local_ok, key = load_pixels(paths, 24, workers=0)
    remote, remote_ok, remote_key = load_pixels(paths, 24, workers=ray_runtime)
    assert key == remote_key and np.array_equal(local, remote) and np.array_equal(local_ok, remote_ok)


def test_folds_as_ray_tasks_give_the_local_probabilities(ray_runtime):
    from datacheck.engine.ray_engine import ray_map_folds, ray_map_predict
    from datacheck.engine.train import TrainConfig, cross_validate

    paths = _sample_paths()
    pixels, ok, _ = load_pixels(paths, 16, workers=0)
    classes = sorted({p.split("/")[-2] for p in paths})
    labels = np.array([classes.index(p.split("/")[-2]) % 3 for p in paths])  # any fixed labels
    config = TrainConfig(image_size=16, epochs=2, folds=3)
    local = cross_validate(pixels, labels, 3, config, "cpu", seed=5)
    remote = cross_validate(pixels, labels, 3, config, "cpu", seed=5, map_folds=ray_map_folds(ray_runtime))
    assert np.array_equal(local.pred_probs, remote.pred_probs) and np.array_equal(local.softmax, remote.softmax)
    assert np.array_equal(local.embeddings, remote.embeddings)
    # and each fold model's predictions on an actor pool (as --engine ray runs them): one pool
    # for all of them (an actor takes seconds to start)
    inferences, on_ray = [], ray_map_predict(ray_runtime)

    def counted(calls, *args):
        inferences.append(len(calls))
        return on_ray(calls, *args)

    pooled = cross_validate(pixels, labels, 3, config, "cpu", seed=5, map_folds=ray_map_folds(ray_runtime),
                            map_predict=counted)
    assert inferences == [6]  # held-out predictions and embeddings of the 3 fold models, in one stage
    assert np.array_equal(local.pred_probs, pooled.pred_probs) and np.array_equal(local.embeddings, pooled.embeddings)
    assert np.array_equal(local.aum, pooled.aum)


def _die_once(batch: dict, marker: str) -> dict:
    """A batch function whose worker dies (SIGKILL, mid-batch) the first time it sees row 40's file."""
    paths = batch["path"]
    if any(p.endswith("#40") for p in paths) and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return {"name": [p.rsplit("#", 1)[1] for p in paths], "value": [np.full(2, int(p.rsplit("#", 1)[1])) for p in paths]}


def test_a_killed_worker_loses_and_repeats_no_row(ray_runtime, tmp_path):
    import functools

    paths = [f"sample#{i}" for i in range(200)]
    marker = str(tmp_path / "killed")
    rows, names, values = [], [], []
    for start, batch in iter_batches(paths, functools.partial(_die_once, marker=marker), ray_runtime, batch_size=16):
        rows.append(start)
        names += batch["name"]
        values += batch["value"]
    assert os.path.exists(marker), "the worker was not killed"
    assert names == [str(i) for i in range(200)]
    assert np.array_equal(np.stack(values)[:, 0], np.arange(200))
    assert rows == sorted(rows) and rows[0] == 0


def test_engine_ray_without_ray_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    result = invoke("audit", SAMPLE_DATA, "--engine", "ray", "--out", tmp_path / "run")
    assert_one_line_error(result, 2, "--engine ray needs Ray", "pip install 'datacheck[ray]'")
    assert not (tmp_path / "run").exists()


def test_unknown_engine_is_a_usage_error(tmp_path):
    result = invoke("audit", SAMPLE_DATA, "--engine", "spark", "--out", tmp_path / "run")
    assert_one_line_error(result, 2, "--engine must be one of local, ray")
    (tmp_path / "c.toml").write_text('[engine]\nname = "dask"\n')
    result = invoke("audit", SAMPLE_DATA, "--config", tmp_path / "c.toml", "--out", tmp_path / "run")
    assert_one_line_error(result, 2, "engine.name in", "must be one of local, ray")


def test_frozen_backbone_on_an_actor_pool_gives_the_local_embeddings(ray_runtime):
    """The pretrained backbone's embeddings as a Ray Data actor-pool stage: bit for bit the
    local engine's (same batches, same threads), for a subset of rows in their order."""
    from datacheck.engine.models import create_model
    from datacheck.engine.ray_engine import ray_map_predict
    from datacheck.engine.train import TrainConfig, frozen_features

    paths = _sample_paths()[:24]  # 224-pixel inputs: a few seconds per dozen images on one core
    network = create_model("efficientnet-lite0", 3)
    config = TrainConfig(model="efficientnet-lite0", image_size=network.input_size, batch_size=4)
    pixels, _, _ = load_pixels(paths, network.input_size, workers=0)
    rows = np.arange(len(paths))[::-1][5:]  # not in file order, not a multiple of the batch
    local, _ = frozen_features(network, pixels, config, "cpu", rows)
    remote, _ = frozen_features(network, pixels, config, "cpu", rows, map_predict=ray_map_predict(ray_runtime))
    assert remote.shape == (19, network.dim) and np.array_equal(local, remote)


def _dying_predictor(marker: str):
    """A _Predictor whose actor process dies (SIGKILL, mid-batch) the first time it sees position 20."""
    from datacheck.engine.ray_engine import _Predictor

    class DyingPredictor(_Predictor):
        def __call__(self, batch: dict) -> dict:
            if 20 in batch["row"] and not os.path.exists(marker):
                open(marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
            return super().__call__(batch)

    return DyingPredictor


def test_a_killed_embedding_actor_is_restarted_and_loses_no_row(ray_runtime, tmp_path):
    from datacheck.engine.models import create_model
    from datacheck.engine.ray_engine import ray_map_predict
    from datacheck.engine.train import TrainConfig, frozen_features

    paths = _sample_paths()[:24]  # the actor dies at position 20
    network = create_model("efficientnet-lite0", 3)
    config = TrainConfig(model="efficientnet-lite0", image_size=network.input_size, batch_size=2)
    pixels, _, _ = load_pixels(paths, network.input_size, workers=0)
    local, _ = frozen_features(network, pixels, config, "cpu")
    marker = str(tmp_path / "killed")
    remote, _ = frozen_features(network, pixels, config, "cpu",
                                map_predict=ray_map_predict(ray_runtime, actor=_dying_predictor(marker)))
    assert os.path.exists(marker), "the actor was not killed"
    assert np.array_equal(local, remote)


def test_inferences_of_several_networks_in_one_stage_equal_the_local_ones(ray_runtime):
    """Inferences of different sizes (none a whole number of batches), networks and tta flags
    share one actor-pool stage; each comes back in its order, bit for bit the local one."""
    import torch

    from datacheck.engine.models import create_model
    from datacheck.engine.ray_engine import ray_map_predict
    from datacheck.engine.train import _predict_here

    torch.manual_seed(0)
    networks = [create_model("convnet-small", 3), create_model("convnet-small", 3)]  # other weights
    pixels = np.random.default_rng(0).integers(0, 256, size=(9, 3, 16, 16), dtype=np.uint8)
    calls = [(networks[0], np.array([8, 1, 4, 0, 2]), True), (networks[1], None, False),
             (networks[0], np.array([3]), False)]
    local = _predict_here(calls, pixels, 2, "cpu")
    remote = ray_map_predict(ray_runtime)(calls, pixels, 2, "cpu")
    assert [p.shape for p, _ in remote] == [(5, 3), (9, 3), (1, 3)]
    assert not np.array_equal(local[1][1][3], local[2][1][0])  # row 3 by the two networks: a mix-up shows
    for (local_probs, local_embeddings), (probs, embeddings) in zip(local, remote):
        assert np.array_equal(local_probs, probs) and np.array_equal(local_embeddings, embeddings)


def test_a_bracketed_ipv6_address_is_checked_as_that_address():
    """``--ray-address [::1]:PORT``: the brackets were taken into the host name, so a listening
    IPv6 head was refused as 'Name or service not known'."""
    import socket

    from datacheck.engine.ray_engine import _check_reachable
    from datacheck.errors import UsageError

    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with server:
        port = server.getsockname()[1]
        _check_reachable(f"[::1]:{port}")
        _check_reachable(f"ray://[::1]:{port}")
    with pytest.raises(UsageError, match=r"cannot reach the Ray cluster at \[::1\]:1: .*refused"):
        _check_reachable("[::1]:1")


# Last in the file: it shuts the module's Ray runtime down (a connected runtime would be
# reused), and a test of the runtime after it started a second one (seconds).
def test_unreachable_cluster_is_a_usage_error_at_once(tmp_path, monkeypatch):
    import time

    if ray.is_initialized():
        ray.shutdown()  # a connected runtime would be reused
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    started = time.perf_counter()
    result = invoke("audit", SAMPLE_DATA, "--engine", "ray", "--ray-address", "127.0.0.1:1", "--out", tmp_path / "run")
    assert_one_line_error(result, 2, "cannot reach the Ray cluster at 127.0.0.1:1")
    assert time.perf_counter() - started < 30 and not (tmp_path / "run").exists()

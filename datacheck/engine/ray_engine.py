"""The Ray engine: the audit's per-sample batch functions as Ray Data ``map_batches`` stages.

``--engine ray`` hands the files' paths to Ray Data, an existing distributed engine: each
pure batch function (decoding + image statistics, decoding + resizing for the models, and
the models' predictions and embeddings, on an actor pool) runs as a ``map_batches`` stage,
so Ray Data partitions the rows into blocks, schedules them on the cluster's CPUs, retries
the task of a worker that dies (Ray Data's default for system failures) and applies
backpressure. The results stream back to the driver in row order (``preserve_order``) and
go into the same arrays and caches as the local engine's, so the findings are identical
and a run can mix engines. The K folds of the cross-validated training run as K Ray tasks
(:func:`ray_map_folds`), each returning its trained model; the rest of the cross-sample
work (the kNN graph, cleanlab, K-means) stays on the driver, over the gathered arrays.

On a cluster every worker must read the paths the manifest lists: a shared file system
mounted at the same place on every node.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ..errors import UsageError

#: The install hint when Ray is missing.
INSTALL_HINT = "pip install 'datacheck[ray]'"
#: Blocks (tasks) per CPU of the cluster, and the most rows in one block.
_BLOCKS_PER_CPU = 4
_MAX_BLOCK_ROWS = 2_048


@dataclass(frozen=True)
class RayEngine:
    """Where batch functions run when the audit's engine is Ray.

    Parameters
    ----------
    address : str, optional
        A Ray cluster to join (``ray://host:10001`` or ``host:6379``); default ``RAY_ADDRESS``,
        else a local Ray runtime with this machine's CPUs (and GPUs).
    num_cpus : int, optional
        CPUs of a local runtime (default: all of this machine's).
    """

    address: str | None = None
    num_cpus: int | None = None

    def start(self) -> None:
        """Connect to (or start) the Ray runtime, once per process."""
        ray = require_ray()
        # Ray's driver-side notices (token authentication, Ray Data's per-execution INFO) go
        # to Python logging, i.e. to stderr, which is for the audit's own lines.
        for name in ("ray", "ray.data"):  # ray.data sets its own level when imported
            logging.getLogger(name).setLevel(logging.ERROR)
        if ray.is_initialized():
            return
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        if address:
            _check_reachable(address)  # ray.init retries an unreachable address for minutes
        local = {} if address else {"num_cpus": self.num_cpus}
        # Workers must import datacheck from the same place as the driver (an editable
        # install, or a checkout on a shared file system), and log nothing to our stderr.
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                     configure_logging=False, **local)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... for a bad address
            where = f"the Ray cluster at {address}" if address else "a local Ray runtime"
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"cannot reach {where}: {reason}") from exc


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A UsageError unless ``host:port`` (optionally ``ray://host:port``) accepts a connection."""
    import socket

    target = address.split("://", 1)[-1]
    if target == "auto" or ":" not in target:  # "auto": Ray finds a cluster started on this machine
        return
    host, _, port = target.rpartition(":")
    if host.startswith("[") and host.endswith("]"):  # an IPv6 address, bracketed to set off its port
        host = host[1:-1]
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def require_ray():
    """The ``ray`` module, or a UsageError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra's Data library, not only Ray core)
    except ImportError:
        raise UsageError(f"--engine ray needs Ray: {INSTALL_HINT}") from None
    return ray


def ray_batches(paths: list[str], fn: Callable[[dict], dict], engine: RayEngine, batch_size: int,
                progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[int, dict]]:
    """``fn`` over batches of ``paths`` on Ray Data; yields ``(first row, fn's result)`` in row order.

    The same contract as :func:`datacheck.engine.loader.iter_batches`: each result is a dict of
    equal-length lists (per-sample arrays stay arrays).
    """
    engine.start()
    import pyarrow as pa
    import ray

    table = pa.table({"row": np.arange(len(paths), dtype=np.int64), "path": pa.array(paths, pa.string())})
    # A block is a task: a few per CPU of the cluster keep every CPU busy (one block would be
    # one task on one CPU), and bounded blocks keep results streaming back.
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    rows = max(batch_size, min(_MAX_BLOCK_ROWS, -(-len(paths) // (_BLOCKS_PER_CPU * cpus))))
    dataset = _ordered_dataset(table, rows).map_batches(
        _Stage(fn), batch_size=batch_size, batch_format="numpy", zero_copy_batch=True)
    for start, stop, batch in _in_row_order(dataset, len(paths)):
        yield start, {name: _as_list(values) for name, values in batch.items()}
        if progress:
            progress(stop, len(paths))


def _ordered_dataset(table, rows_per_block: int):
    """``table`` (with a ``row`` column) as a Ray dataset of blocks of ``rows_per_block``
    rows, whose results come back in row order (``preserve_order``)."""
    import ray

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    blocks = [table.slice(start, rows_per_block) for start in range(0, table.num_rows, rows_per_block)] or [table]
    return ray.data.from_arrow(blocks)


def _in_row_order(dataset, total: int) -> Iterator[tuple[int, int, dict]]:
    """``(first row, end row, the batch's other columns)`` of ``dataset``'s result batches, checked to
    hold rows ``0 .. total - 1`` once each, in order.

    preserve_order keeps the blocks in order; a lost or repeated row would be a Ray bug, and
    must not silently shift every later sample's findings."""
    expected = 0
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        rows = batch.pop("row")
        if len(rows) == 0:
            continue
        if not np.array_equal(rows, np.arange(expected, expected + len(rows))):
            raise RuntimeError(f"Ray returned rows {rows[0]}..{rows[-1]} where row {expected} was next")
        yield expected, expected + len(rows), batch
        expected += len(rows)
    if expected != total:
        raise RuntimeError(f"Ray returned {expected} of {total} rows")


class _Stage:
    """A batch function as a Ray Data UDF: paths in, the function's columns out, with the row numbers."""

    def __init__(self, fn: Callable[[dict], dict]):
        self.fn = fn

    def __call__(self, batch: dict) -> dict:
        result = self.fn({"path": [str(p) for p in batch["path"]]})
        return {"row": batch["row"], **{name: _as_column(values) for name, values in result.items()}}


def _as_column(values: list) -> np.ndarray:
    """A result list as a column Ray can carry: arrays stacked, anything else as Python objects
    (Ray stores bytes, text and numbers as Arrow; fixed-width numpy bytes would strip trailing NULs)."""
    if values and isinstance(values[0], np.ndarray):
        return np.stack(values)
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def _as_list(values: np.ndarray) -> list:
    """A column back as the list the local engine gives: Python scalars, or per-row arrays."""
    return values.tolist() if values.ndim == 1 else list(values)


def ray_map_folds(engine: RayEngine) -> Callable:
    """A ``map_folds`` for :func:`datacheck.engine.train.cross_validate`: each fold's training
    (:func:`~datacheck.engine.train.fit_fold`) one Ray task, returning the trained model.

    The pixels go to Ray's object store once and every task reads them from there (zero-copy
    on its node); a task asks for one CPU, and one GPU when the device is CUDA (Ray then shows
    it the GPU it was given as ``cuda``). Each task trains with as many torch threads as this
    process would, so the folds' numbers are those of the local engine on CPU (same seeds).
    """

    def map_folds(train: Callable, pixels: np.ndarray, folds: list[int], device: str) -> list:
        engine.start()
        import ray
        import torch

        gpu = device.startswith("cuda")
        task = ray.remote(num_cpus=1, num_gpus=1 if gpu else 0, max_retries=3)(_run_fold)
        shared = ray.put(np.asarray(pixels))
        train = functools.partial(train, device="cuda" if gpu else device)
        return ray.get([task.remote(train, shared, k, torch.get_num_threads()) for k in folds])

    return map_folds


def ray_map_predict(engine: RayEngine, actor: type | None = None) -> Callable:
    """A ``map_predict`` for :func:`datacheck.engine.train.predict_folds` and
    :func:`~datacheck.engine.train.frozen_features`: models' predictions and embeddings as one
    Ray Data ``map_batches`` stage on an actor pool.

    One call takes every ``(network, rows, tta)`` inference of its caller (all the fold
    models' held-out predictions and embeddings) through one actor pool: starting an actor
    costs seconds (a process, torch), whatever the data's size. Each actor receives the
    networks and the pixels from Ray's object store once and predicts whole batches of
    ``batch_size`` rows of one inference: each inference's rows are padded to whole batches
    and the blocks are multiples of ``batch_size``, so every batch holds the rows the local
    engine's batch would, and with the same torch threads the outputs are the local
    engine's, bit for bit. An actor asks for one CPU, and one GPU when the device is CUDA.
    An actor that dies is restarted by Ray Data and its batch run again. The pixels go to
    the object store once for all the calls. ``actor`` replaces the actor class
    (:class:`_Predictor`'s interface), e.g. to test that.
    """
    actor = actor or _Predictor
    stored: dict[int, tuple] = {}  # id(pixels) -> (pixels, their object reference)

    def map_predict(calls: list, pixels: np.ndarray, batch_size: int, device: str) -> list:
        engine.start()
        import pyarrow as pa
        import ray
        import torch

        if id(pixels) not in stored:
            stored[id(pixels)] = (pixels, ray.put(np.asarray(pixels)))
        networks = list({id(network): network for network, _, _ in calls}.values())
        if len({(network.head.out_features, network.dim) for network in networks}) > 1:
            raise ValueError("the networks of one predict stage must have the same output sizes")  # one column each
        which = [next(i for i, n in enumerate(networks) if n is network) for network, _, _ in calls]
        rows = [np.arange(len(pixels)) if r is None else np.asarray(r) for _, r, _ in calls]
        sizes = np.array([len(r) for r in rows], dtype=np.int64)
        # One row per position of each inference, padded (position -1) to whole batches.
        padded = -(-sizes // batch_size) * batch_size
        call = np.repeat(np.arange(len(calls)), padded)
        position = np.arange(padded.sum()) - np.repeat(np.cumsum(padded) - padded, padded)
        position[position >= np.repeat(sizes, padded)] = -1
        order = np.full(len(position), -1, np.int64)
        order[position >= 0] = np.arange(sizes.sum())
        gpu = device.startswith("cuda")
        resources = ray.cluster_resources()
        slots = int(resources.get("GPU", 0) if gpu else resources.get("CPU", 1)) or 1
        batches = int(padded.sum()) // batch_size
        actors = max(1, min(slots, batches))
        per_block = batch_size * max(1, -(-batches // (_BLOCKS_PER_CPU * actors)))
        table = pa.table({"row": order, "call": call, "position": position})
        dataset = _ordered_dataset(table, per_block).map_batches(
            actor, batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
            # The large inputs as object references: each actor reads them once. (Ray logs one
            # line that an actor restarted after they are gone could not read them: they live
            # as long as this call, so a restarted actor always can.)
            fn_constructor_args=((ray.put(networks), stored[id(pixels)][1], ray.put(rows)),
                                 [(w, tta) for w, (_, _, tta) in zip(which, calls)],
                                 "cuda" if gpu else device, torch.get_num_threads()),
            num_cpus=1, num_gpus=1 if gpu else 0)
        probs, embeddings = [], []
        for _, _, batch in _in_row_order(dataset, int(sizes.sum())):
            probs.append(batch["probs"])
            embeddings.append(batch["embedding"])
        cuts = np.cumsum(sizes)[:-1]
        if not probs:
            return [(np.zeros((0, networks[w].head.out_features), np.float32),
                     np.zeros((0, networks[w].dim), np.float32)) for w in which]
        return list(zip(np.split(np.concatenate(probs), cuts), np.split(np.concatenate(embeddings), cuts)))

    return map_predict


class _Predictor:
    """An actor of :func:`ray_map_predict`: the networks, predicting batches of row positions."""

    def __init__(self, inputs: tuple, calls: list, device: str, threads: int):
        import ray
        import torch

        torch.set_num_threads(threads)
        self.networks, self.pixels, self.rows = ray.get(list(inputs))  # once per actor
        self.calls, self.device = calls, device  # per inference: (its network, tta)

    def __call__(self, batch: dict) -> dict:
        from .train import predict

        real = batch["position"] >= 0
        call = int(batch["call"][0])
        if (batch["call"] != call).any() or not real.any():  # whole batches of one inference: see ray_map_predict
            raise RuntimeError("Ray Data formed a batch across inferences; their outputs would not be the local engine's")
        network, tta = self.calls[call]
        positions = self.rows[call][batch["position"][real]]
        probs, embeddings = predict(self.networks[network], self.pixels, self.device, len(positions), tta=tta,
                                    rows=positions)
        return {"row": batch["row"][real], "probs": probs, "embedding": embeddings}


def _run_fold(train: Callable, pixels: np.ndarray, k: int, threads: int):
    import torch

    torch.set_num_threads(threads)
    return train(pixels, k)

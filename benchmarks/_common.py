"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import argparse


def int_at_least(low: int):
    """argparse type: an int of at least ``low``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def timed_embedding(network, pixels, device: str, batch_size: int):
    """Embeddings of ``pixels`` and the seconds they took, after one warm-up batch (cuDNN
    autotune, allocation) and with the GPU's queue drained before each clock reading."""
    import time

    import torch

    from datacheck.engine.train import predict

    def drain():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    predict(network, pixels[:batch_size], device, batch_size, tta=False)
    drain()
    t0 = time.perf_counter()
    _, embeddings = predict(network, pixels, device, batch_size, tta=False)
    drain()
    return embeddings, time.perf_counter() - t0

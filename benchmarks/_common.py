"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


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


def contact_sheet(items: list[tuple[str, str]], path: Path, side: int = 96, columns: int = 10) -> Path:
    """Draw ``(image path, caption)`` items on one sheet, each at ``side`` px with its caption
    under it, and write it to ``path`` (PNG, atomically): images to judge by eye."""
    from PIL import Image, ImageDraw, ImageOps

    from datacheck.runs import atomic_write

    caption = 14
    sheet = Image.new("RGB", (columns * side, max(1, math.ceil(len(items) / columns)) * (side + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, text) in enumerate(items):
        left, top = (i % columns) * side, (i // columns) * (side + caption)
        with Image.open(image) as im:
            sheet.paste(ImageOps.pad(im.convert("RGB"), (side - 4, side - 4), color="white"), (left + 2, top + 2))
        draw.rectangle((left, top, left + side - 1, top + side + caption - 1), outline="lightgray")
        draw.text((left + 3, top + side), text, fill="black")
    return atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))

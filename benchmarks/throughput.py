"""Images per second of the inference core embedding images with a torchvision ResNet-50.

Decodes and resizes images to 224 px in DataLoader workers (``datacheck.engine.loader``),
then embeds them with a randomly initialised ResNet-50 (weights do not change the cost) in
batches under ``torch.inference_mode()`` (AMP on CUDA), and reports images/s for decoding
alone and for decode + embed. Runs on the CPU here and on a GPU when one is present.

    python benchmarks/throughput.py [--data PATH] [--device auto] [--limit 512] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _common import timed_embedding

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "roman"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit", type=int, default=512, help="images to embed")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        sys.exit(f"dataset not found at {args.data} (pass --data)")

    import torch

    from datacheck.engine.device import resolve_device
    from datacheck.engine.loader import load_pixels
    from datacheck.engine.workers import default_workers
    from datacheck.engine.models import create_model

    device = resolve_device(args.device)
    paths = sorted(str(p) for p in args.data.rglob("*.png"))[: args.limit]
    workers = default_workers()
    t0 = time.perf_counter()
    pixels, ok, _ = load_pixels(paths, 224, workers, cache_dir=None)
    decode = time.perf_counter() - t0
    model = create_model("resnet50", num_classes=2, weights="random")
    embeddings, embed = timed_embedding(model, pixels, device, args.batch_size)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; {len(paths)} images, 224 px, batch {args.batch_size}, {workers} decode workers")
    print(f"decode + resize:   {len(paths) / decode:8.1f} images/s")
    print(f"resnet50 embed:    {len(paths) / embed:8.1f} images/s  (embeddings {embeddings.shape})")
    print(f"end to end:        {len(paths) / (decode + embed):8.1f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Images per second of a frozen backbone embedding a dataset, at several input sizes.

For each size, decodes and resizes every image with ``datacheck.engine.loader.load_pixels``
(no cache, timed separately), then embeds them with
``datacheck.engine.train.predict(network, pixels, device, batch_size, tta=False)``, the call
the audit makes for a frozen backbone, after one warm-up batch. Pretrained weights cost the
same as random ones; the model's own weights are used when available.

    python benchmarks/backbone_speed.py [--data PATH] [--model efficientnet-lite0] [--sizes 224,160,128]
                                        [--batch-size 64] [--device cpu] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _common import int_at_least, timed_embedding

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "roman"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--sizes", default="224,160,128", help="comma-separated square sides in pixels")
    parser.add_argument("--batch-size", type=int_at_least(1), default=64)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto, ...")
    parser.add_argument("--limit", type=int_at_least(1), default=None, help="embed only the first N images")
    parser.add_argument("--workers", type=int_at_least(0), default=None, help="decode processes (default: one per CPU)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        sys.exit(f"dataset not found at {args.data} (pass --data)")
    sizes = [int(s) for s in args.sizes.split(",")]

    import torch

    from datacheck.engine.device import resolve_device
    from datacheck.engine.loader import load_pixels
    from datacheck.engine.workers import default_workers
    from datacheck.engine.models import create_model
    from datacheck.errors import UsageError

    device = resolve_device(args.device)
    paths = sorted(str(p) for p in args.data.rglob("*.png"))[: args.limit]
    workers = default_workers() if args.workers is None else args.workers
    try:
        network = create_model(args.model, num_classes=2)
    except UsageError:  # no weights on this machine: the cost is the same with random ones
        network = create_model(args.model, num_classes=2, weights="random")
    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"{args.model} on {device} ({where}); {len(paths)} images from {args.data}, batch {args.batch_size}, "
          f"{workers} decode workers, normalization {network.normalization}")
    print(f"{'size':>5} {'decode s':>9} {'decode img/s':>13} {'embed s':>8} {'embed img/s':>12}  embeddings")
    for side in sizes:
        t0 = time.perf_counter()
        pixels, ok, _ = load_pixels(paths, side, workers, cache_dir=None)
        decode = time.perf_counter() - t0
        embeddings, embed = timed_embedding(network, pixels, device, args.batch_size)
        print(f"{side:>5} {decode:>9.1f} {len(paths) / decode:>13.1f} {embed:>8.1f} {len(paths) / embed:>12.1f}  "
              f"{embeddings.shape}, {int((~ok).sum())} unreadable", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

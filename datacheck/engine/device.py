"""Pick the torch device: ``auto|cpu|cuda[:N]|mps``."""

from __future__ import annotations

import contextlib
import re

from ..errors import UsageError

_SPEC = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_spec(spec: str, option: str = "--device", where: str = "") -> str:
    """``spec`` normalised (``auto`` when empty), without importing torch. Errors name
    ``option`` and, for a config file's value, ``where`` it is (" in FILE").

    Raises
    ------
    UsageError
        A spec that is none of ``auto|cpu|cuda[:N]|mps``.
    """
    spec = (spec or "auto").strip().lower()
    if not _SPEC.match(spec):
        raise UsageError(f"bad {option} {spec!r}{where}; expected auto, cpu, cuda, cuda:N or mps")
    return spec


def resolve_device(spec: str) -> str:
    """The device to use for ``spec``; ``auto`` prefers CUDA, then MPS, then the CPU.

    Raises
    ------
    UsageError
        Malformed spec, or an accelerator that this machine does not have.
    """
    spec = check_device_spec(spec)
    if spec == "cpu":
        return spec
    import torch  # heavy; only imported once a device is really needed

    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec}: CUDA is not available on this machine (use --device cpu or auto)")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
    if spec == "mps" and not has_mps:
        raise UsageError("--device mps: MPS is not available on this machine (use --device cpu or auto)")
    return spec


@contextlib.contextmanager
def deterministic_kernels(device: str):
    """Within the block, cuDNN on ``device`` uses only deterministic convolution algorithms.

    By default cuDNN may pick a convolution backward pass that sums with atomics, whose
    order (and so the trained weights) changes from run to run. Training must be a pure
    function of its seed, so the flags are set here and restored after (a library must not
    leave torch's global settings changed). A no-op off CUDA.
    """
    if not device.startswith("cuda"):
        yield
        return
    import torch

    cudnn = torch.backends.cudnn
    before = cudnn.deterministic, cudnn.benchmark
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = before

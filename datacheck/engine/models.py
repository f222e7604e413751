"""Model registry: name → factory of a network with ``features`` (embeddings) and ``head``.

``convnet-small`` is trained from scratch on the dataset; torchvision backbones are used
as frozen feature extractors with weights from a local file (``--weights``) or the torch
hub cache. Nothing is ever downloaded.
"""

from __future__ import annotations

import fnmatch
import pickle
import os
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import UsageError

_MODELS: dict[str, Callable[..., "Network"]] = {}


class Network(nn.Module):
    """``features`` (B, 3, H, W) → (B, D) embeddings, then ``head`` (B, D) → (B, C) logits."""

    def __init__(self, features: nn.Module, dim: int, num_classes: int, trainable: bool):
        super().__init__()
        self.features = features
        self.dim = dim
        self.head = nn.Linear(dim, num_classes)
        #: False for frozen pretrained backbones: only the head is trained, on cached embeddings.
        self.trainable = trainable

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits (B, C), embeddings (B, D))``."""
        embedding = self.features(x)
        return self.head(embedding), embedding


def register_model(name: str):
    def decorator(factory):
        if name in _MODELS:
            raise ValueError(f"a model named {name!r} is already registered")
        _MODELS[name] = factory
        return factory

    return decorator


def list_models(filter: str | None = None) -> list[str]:
    return sorted(n for n in _MODELS if filter is None or fnmatch.fnmatchcase(n, filter))


def create_model(name: str, num_classes: int, weights: str | os.PathLike | None = None) -> Network:
    """Build a registered model; the only construction path.

    Raises
    ------
    UsageError
        Unknown model name, or a pretrained backbone whose weights are not on this machine.
    """
    if name not in _MODELS:
        raise UsageError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _MODELS[name](num_classes=num_classes, weights=weights)


@register_model("convnet-small")
def convnet_small(num_classes: int, weights=None, width: int = 16) -> Network:
    """A compact CNN trained from scratch: four conv-BN-ReLU-pool stages (width, 2x, 4x, 8x
    channels), global average pooling, a linear head; ~0.4 M parameters.

    Sized so that 5-fold cross-validated training on a few thousand 32 px images takes
    a couple of minutes on two CPU cores (about 15 MFLOPs per 32 px image).
    """

    def stage(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)
        )

    w = width
    features = nn.Sequential(
        stage(3, w), stage(w, 2 * w), stage(2 * w, 4 * w), stage(4 * w, 8 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    network = Network(features, 8 * w, num_classes, trainable=True)
    if weights is not None:
        _load_state(network, weights, "convnet-small")
    return network


def _torchvision_backbone(arch: str, checkpoint: str, dim: int):
    def factory(num_classes: int, weights=None) -> Network:
        import torchvision

        backbone = getattr(torchvision.models, arch)(weights=None)
        path = Path(weights) if weights is not None else _hub_checkpoint(checkpoint)
        if path is None:
            hub = Path(torch.hub.get_dir()) / "checkpoints"
            raise UsageError(
                f"no weights for {arch}: put {checkpoint} in {hub} or pass --weights PATH "
                "(datacheck never downloads; use --weights random for an untrained backbone)"
            )
        if str(weights) != "random":
            _load_state(backbone, path, arch)
        backbone.fc = nn.Identity()
        return Network(backbone, dim, num_classes, trainable=False)

    return factory


def _hub_checkpoint(filename: str) -> Path | None:
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return path if path.is_file() else None


def _load_state(module: nn.Module, path, name: str) -> None:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--weights {path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        module.load_state_dict(state)
    except (RuntimeError, OSError, ValueError, KeyError, pickle.UnpicklingError) as exc:  # wrong file or architecture
        raise UsageError(f"--weights {path} cannot be loaded into {name}: {str(exc).splitlines()[0]}") from exc


for _arch, _file, _dim in [
    ("resnet18", "resnet18-f37072fd.pth", 512),
    ("resnet34", "resnet34-b627a593.pth", 512),
    ("resnet50", "resnet50-11ad3fa6.pth", 2048),
]:
    register_model(_arch)(_torchvision_backbone(_arch, _file, _dim))

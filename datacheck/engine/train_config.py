"""The hyper-parameters of cross-validated training, apart from torch.

Reading or validating a config must not import torch (seconds); training does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import UsageError
from ..validation import check_int_range


#: Largest training input side: 1024 px is 3 MB of decoded pixels per image (the pretrained
#: backbones take 224).
MAX_IMAGE_SIZE = 1024


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of cross-validated training (all recorded in run.json)."""

    model: str = "convnet-small"
    image_size: int = 32
    folds: int = 5
    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    #: Random translation (pixels) used as augmentation while training.
    max_shift: int = 2
    #: Label smoothing of the training loss. Off by default: it caps every probability the
    #: model gives, and confident learning's per-class thresholds (mean self-confidence) then
    #: sit inside the bulk of the clean samples, so fewer mislabels clear them.
    label_smoothing: float = 0.0
    #: Neighbours of the k-NN vote averaged with each fold model's softmax (0 = softmax only).
    knn_k: int = 20
    #: Largest share of each fold model's training rows relabelled to a fake class, the
    #: threshold samples of AUM (1/(C+1) where that is smaller; 0 = no AUM).
    threshold_fraction: float = 0.1

    def __post_init__(self):
        # image_size 16: convnet-small halves its input four times; at most MAX_IMAGE_SIZE, as
        # the decoded pixels (N x 3 x side x side bytes) are held for the whole cross-validation.
        # The upper bounds are far past any sensible value: a mistyped or hand-edited 10**29
        # epochs must be refused, not trained for ever.
        rules = {"image_size": (16, MAX_IMAGE_SIZE), "folds": (2, 100), "epochs": (1, 10_000),
                 "batch_size": (2, 65_536), "max_shift": (0, 64), "knn_k": (0, 10_000)}
        for name, (least, most) in rules.items():
            check_int_range(f"train.{name}", getattr(self, name), least, most)
        if not self.lr > 0 or not self.weight_decay >= 0 or not 0 <= self.label_smoothing < 1:
            raise UsageError(f"train needs lr > 0, weight_decay >= 0 and 0 <= label_smoothing < 1, got "
                             f"{self.lr}, {self.weight_decay}, {self.label_smoothing}")
        if not 0 <= self.threshold_fraction <= 0.5:
            raise UsageError(f"train.threshold_fraction must be in [0, 0.5], got {self.threshold_fraction}")

    def key(self) -> str:
        return ",".join(f"{k}={v}" for k, v in asdict(self).items())

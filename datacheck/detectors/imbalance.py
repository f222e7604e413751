"""Classes with far fewer samples than the typical class."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..validation import Interval
from .base import AuditContext, Detector, partial_findings
from .registry import register_detector


@register_detector
class ClassImbalance(Detector):
    """Flag every sample of a class whose size is below ``min_ratio`` x the median class size.

    Class sizes are counted in the ``train`` split when the dataset has one (that is where
    imbalance hurts), else over all labeled samples. A sample's score is its class size
    divided by the median class size, capped at 1. A class with samples in val/test but none
    in ``train`` has size 0: its samples there are flagged with score 0 (a model trained on the
    split never learns it), and the median is that of the classes ``train`` has.

    Parameters
    ----------
    min_ratio : float, default 0.5
        Classes smaller than this fraction of the median class size are flagged.
    """

    name = "class_imbalance"
    requires = frozenset()
    checks = ("class_imbalance",)
    tags = frozenset({"dataset"})
    _parameter_constraints = {"min_ratio": [Interval(float, 0, 1, "neither")]}

    def __init__(self, *, min_ratio: float = 0.5):
        self.min_ratio = min_ratio

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        frame = ctx.manifest.frame
        in_scope = frame["label"].notna()
        scope = "all"
        if (frame["split"] == "train").any():
            in_scope &= (frame["split"] == "train").fillna(False)
            scope = "train"
        counts = frame.loc[in_scope, "label"].value_counts()
        median = float(counts.median()) if len(counts) else 0.0
        self.thresholds_[self.name] = {"scope": scope, "median_class_size": median,
                                       "below": round(self.min_ratio * median, 2), "classes": int(len(counts))}
        if scope == "train":
            # Samples of classes that train lacks: without them here, such a class was not
            # scored at all, the worst imbalance reported as none.
            untrained = frame["label"].notna() & ~frame["label"].isin(counts.index)
            if untrained.any():
                in_scope |= untrained
                self.thresholds_[self.name]["not_in_train"] = sorted(map(str, frame.loc[untrained, "label"].unique()))
        labels = frame.loc[in_scope, "label"]
        if not len(counts) or labels.nunique() < 2:
            self.thresholds_[self.name]["rule"] = "off: fewer than two labeled classes"
            return partial_findings([], self.name, [], [], [])
        size = labels.map(counts).fillna(0).to_numpy(dtype=float)
        ratio = size / median
        details = [{"class_size": int(s), "median_class_size": median} for s in size]
        return partial_findings(np.flatnonzero(in_scope.to_numpy()), self.name, np.minimum(ratio, 1.0),
                                ratio < self.min_ratio, details)

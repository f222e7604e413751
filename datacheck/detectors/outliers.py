"""Outliers: samples far from their nearest neighbours in embedding space."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..robust import robust_z, threshold_score
from ..validation import Interval
from .base import AuditContext, Detector, partial_findings
from .registry import register_detector


@register_detector
class Outliers(Detector):
    """Flag samples whose mean cosine distance to their ``k`` nearest neighbours is unusually large.

    The distance is compared on a log scale with the dataset's own distribution (robust
    z-score, median/MAD), as the image-property checks are; ``score < 0.5`` ⇔ flagged.

    Parameters
    ----------
    k : int, default 10
        Neighbours averaged.
    z_threshold : float, default 3.0
        Lower than the image-property default: distances in a learned embedding space are
        compressed (training pulls every sample towards its class), so off-class samples stand
        out by less.
    """

    name = "outliers"
    requires = frozenset({"knn_graph"})
    checks = ("outliers",)
    tags = frozenset({"drop_candidate", "unreliable_input", "off_distribution"})
    _parameter_constraints = {"k": [Interval(int, 1, None)], "z_threshold": [Interval(float, 0, None, "neither")]}

    def __init__(self, *, k: int = 10, z_threshold: float = 3.0):
        self.k = k
        self.z_threshold = z_threshold

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        graph = ctx.get("knn_graph")
        rows = graph.rows
        if len(rows) <= self.k:
            self.thresholds_[self.name] = {"rule": f"off: needs more than k={self.k} embedded samples"}
            return partial_findings([], self.name, [], [], [])
        distances, _ = graph.first(self.k)
        # An approximate graph may miss a neighbour (inf): count it as the farthest possible.
        mean_distance = np.minimum(distances, 2.0).mean(axis=1)
        z, median, scale = robust_z(np.log(mean_distance + 1e-6), 0.1)
        self.thresholds_[self.name] = {
            "statistic": f"mean cosine distance to {self.k} nearest",
            "median": round(float(np.exp(median)), 4),
            "above": round(float(np.exp(median + self.z_threshold * scale)), 4),
            "z_threshold": self.z_threshold,
        }
        details = [{"knn_distance": round(float(d), 4), "z": round(float(zz), 3)} for d, zz in zip(mean_distance, z)]
        return partial_findings(rows, self.name, threshold_score(z, self.z_threshold), z > self.z_threshold, details)

"""Outliers: samples far from their nearest neighbours in embedding space."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..features.knn import MAX_NEIGHBOURS
from ..robust import expected_beyond, robust_z, tail_cut, threshold_score
from ..validation import Interval
from .base import AuditContext, Detector, partial_findings
from .registry import register_detector

#: Classes with at least this many scored samples can have their own median and spread of the
#: distance; smaller ones (a MAD from a handful is noise) are measured against the whole data's.
MIN_CLASS_SAMPLES = 50
#: A class whose median distance lies further than this many of the whole data's robust
#: standard deviations from the data's median is measured on its own: against the data's
#: scale, its members would stand out as a class, not one by one.
CLASS_SHIFT = 1.0


@register_detector
class Outliers(Detector):
    """Flag samples whose mean cosine distance to their ``k`` nearest neighbours is unusually large.

    The distance is compared on a log scale with the dataset's own distribution (robust
    z-score, median/MAD), as the image-property checks are. A class of at least
    :data:`MIN_CLASS_SAMPLES` scored samples whose median distance lies more than
    :data:`CLASS_SHIFT` robust standard deviations from the data's is measured against its own
    median and MAD instead: classes differ in spread, and against the data's scale every member
    of a diffuse class stood out (a mixture of 10 Gaussian classes, one of them about 3x more
    spread in cosine terms: 2,061 of its clean members flagged; on its own: 95 flagged in all,
    92 of them the 100 planted outliers). Classes within that band keep the data's scale,
    estimated from every sample. The cut adapts to the data: it
    is the lowest z at which the samples beyond it hold at most ``fdr`` expected clean ones
    under the bulk's robust normal fit (Benjamini-Hochberg, :func:`datacheck.robust.tail_cut`),
    between ``min_z`` and ``z_threshold``. ``score < 0.5`` ⇔ flagged.

    Parameters
    ----------
    k : int, default 10
        Neighbours averaged, at most 1000.
    z_threshold : float, default 3.0
        The cut when few samples stand out; a sample beyond it is always flagged.
    min_z : float, default 2.0
        The lowest cut, however many samples stand out.
    fdr : float, default 0.2
        The share of expected clean samples tolerated among the flagged (0 = always ``z_threshold``).
    """

    name = "outliers"
    requires = frozenset({"knn_graph"})
    checks = ("outliers",)
    tags = frozenset({"drop_candidate", "unreliable_input", "off_distribution"})
    _parameter_constraints = {"k": [Interval(int, 1, MAX_NEIGHBOURS)], "z_threshold": [Interval(float, 0, None, "neither")],
                              "min_z": [Interval(float, 0, None, "neither")], "fdr": [Interval(float, 0, 1, "left")]}

    def __init__(self, *, k: int = 10, z_threshold: float = 3.0, min_z: float = 2.0, fdr: float = 0.2):
        self.k = k
        self.z_threshold = z_threshold
        self.min_z = min_z
        self.fdr = fdr

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        graph = ctx.get("knn_graph")
        rows = graph.rows
        if len(rows) <= self.k:
            self.thresholds_[self.name] = {"rule": f"off: needs more than k={self.k} embedded samples"}
            return partial_findings([], self.name, [], [], [])
        mean_distance, z, median, scale, cut = self.outlying_in(ctx)
        groups = self._class_groups(ctx, rows)
        shifted = self.shifted_classes(np.log(mean_distance + 1e-6), groups, median, scale)
        labels = ctx.manifest.frame["label"].iloc[rows]
        own = sorted({str(labels.iloc[int(np.argmax(groups == code))]) for code in shifted})
        self.thresholds_[self.name] = {
            "statistic": f"mean cosine distance to {self.k} nearest",
            "median": round(float(np.exp(median)), 4),
            "above": round(float(np.exp(median + cut * scale)), 4),  # the cut but in classes_on_their_own
            "z_cut": round(cut, 3),
            "classes_on_their_own": own,
            "cut_rule": f"Benjamini-Hochberg at fdr={self.fdr} on the robust normal null, z cut in [{self.min_z}, "
                    f"{self.z_threshold}]",
            "expected_false_positives": round(expected_beyond(cut, len(z)), 1),
        }
        details = [{"knn_distance": round(float(d), 4), "z": round(float(zz), 3)} for d, zz in zip(mean_distance, z)]
        return partial_findings(rows, self.name, threshold_score(z, cut), z > cut, details)

    def outlying_in(self, ctx: AuditContext) -> tuple[np.ndarray, np.ndarray, float, float, float]:
        """:meth:`outlying` on the audit's kNN graph, computed once per audit for these
        parameters (``clusters`` reads it too, for its rare groups)."""
        key = ("outlying", self.k, self.z_threshold, self.min_z, self.fdr)
        graph = ctx.get("knn_graph")
        return ctx.memo(key, lambda: self.outlying(graph, self._class_groups(ctx, graph.rows)))

    @staticmethod
    def _class_groups(ctx: AuditContext, rows: np.ndarray) -> np.ndarray:
        """The class of each of the graph's ``rows`` (M,) as a code, -1 where it is measured
        against the whole data (no label, or a class under :data:`MIN_CLASS_SAMPLES` of them)."""
        codes = pd.factorize(ctx.manifest.frame["label"].iloc[rows])[0].astype(np.int64)  # -1: no label
        counts = np.bincount(codes[codes >= 0], minlength=1)
        return np.where((codes >= 0) & (counts[np.maximum(codes, 0)] >= MIN_CLASS_SAMPLES), codes, -1)

    @staticmethod
    def shifted_classes(log_distance: np.ndarray, groups: np.ndarray | None, median: float, scale: float) -> list:
        """The class codes of ``groups`` (M,) whose median ``log_distance`` (M,) lies more than
        :data:`CLASS_SHIFT` ``scale`` from ``median``: those measured on their own."""
        if groups is None:
            return []
        return [code for code in np.unique(groups[groups >= 0])
                if abs(np.median(log_distance[groups == code]) - median) > CLASS_SHIFT * scale]

    def outlying(self, graph, groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float, float, float]:
        """This check's statistic over the graph's samples (more than ``k`` of them): the mean
        distance to the ``k`` nearest (M,), its robust z (M,), the whole data's log-median and
        scale, and the cut on z (flagged: ``z > cut``). ``groups`` (M,): each sample's class
        code (-1: none); the samples of a class that :meth:`shifted_classes` names get their z
        from their class's median and MAD, every other sample from the whole data's."""
        distances, _ = graph.first(self.k)
        # An approximate graph may miss a neighbour (inf): count it as the farthest possible.
        mean_distance = np.minimum(distances, 2.0).mean(axis=1)
        log_distance = np.log(mean_distance + 1e-6)
        z, median, scale = robust_z(log_distance, 0.1)
        for code in self.shifted_classes(log_distance, groups, median, scale):
            members = groups == code
            z[members] = robust_z(log_distance[members], 0.1)[0]
        cut = tail_cut(z, min(self.min_z, self.z_threshold), self.z_threshold, self.fdr) if self.fdr else self.z_threshold
        return mean_distance, z, median, scale, cut

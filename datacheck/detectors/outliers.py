"""Outliers: samples far from their nearest neighbours in embedding space."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from ..features.knn import MAX_NEIGHBOURS
from ..robust import expected_beyond, robust_z, tail_cut, threshold_score
from ..validation import Interval
from .base import AuditContext, Detector, partial_findings
from .registry import register_detector

#: Classes with at least this many scored samples are measured from their own median distance;
#: the median of fewer is noise, and they (and unlabeled samples) are measured from the data's.
MIN_CLASS_SAMPLES = 50


@register_detector
class Outliers(Detector):
    """Flag samples whose mean cosine distance to their ``k`` nearest neighbours is unusually large.

    The distance is compared on a log scale, as the image-property checks are: a robust
    z-score of each sample's log distance about its class's median. Classes differ in how
    tightly their members lie (a class of plain strokes is tighter than one of varied
    scrawls), mostly by a factor, a shift on the log scale: against the data's median, a
    scrawl or a blank page filed under a tight class did not stand out (roman: 1 flagged of
    2,880; about its class, 6, every one a blank, scrawled or crossed-out scan), and every
    member of a diffuse class did (a mixture of 10 Gaussian classes, one about 3x more spread
    in cosine terms: 2,061 of its clean members flagged among 20,000). The scale is the
    robust standard deviation (MAD) of those differences pooled over the data, or the
    class's own where that is larger: a MAD from one class of a few hundred is noisy, and one
    below the data's flagged look-alike members of a few alike classes. Classes of fewer than
    :data:`MIN_CLASS_SAMPLES` scored samples, and unlabeled samples, are measured about the
    data's median. The cut adapts to the data: it
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
        found = self.outlying_in(ctx)
        self.thresholds_[self.name] = {
            "statistic": f"mean cosine distance to {self.k} nearest",
            "above": round(found.above, 4),  # unlabeled samples and classes of fewer than MIN_CLASS_SAMPLES
            "above_by_class": {name: round(above, 4) for name, above in found.above_by_class.items()},
            "z_cut": round(found.cut, 3),
            "cut_rule": f"Benjamini-Hochberg at fdr={self.fdr} on the robust normal null, z cut in [{self.min_z}, "
                    f"{self.z_threshold}]",
            "expected_false_positives": round(expected_beyond(found.cut, len(found.z)), 1),
        }
        details = [{"knn_distance": round(float(d), 4), "z": round(float(zz), 3)}
                   for d, zz in zip(found.mean_distance, found.z)]
        return partial_findings(rows, self.name, threshold_score(found.z, found.cut), found.z > found.cut, details)

    def outlying_in(self, ctx: AuditContext) -> Outlying:
        """:meth:`outlying` on the audit's kNN graph and given labels, computed once per audit
        for these parameters (``clusters`` reads it too, for its rare groups)."""
        key = ("outlying", self.k, self.z_threshold, self.min_z, self.fdr)
        graph = ctx.get("knn_graph")
        return ctx.memo(key, lambda: self.outlying(graph, ctx.manifest.frame["label"].iloc[graph.rows]))

    def outlying(self, graph, labels: pd.Series | None = None) -> Outlying:
        """This check's statistic over the graph's samples (more than ``k`` of them).

        ``labels`` (M,), the given label of each (NaN: none): a class of at least
        :data:`MIN_CLASS_SAMPLES` of them is measured from its own median log distance,
        every other sample from the whole data's. The scale is the robust standard deviation
        of those differences pooled over all samples, or a class's own where larger.
        """
        distances, _ = graph.first(self.k)
        # An approximate graph may miss a neighbour (inf): count it as the farthest possible.
        mean_distance = np.minimum(distances, 2.0).mean(axis=1)
        log_distance = np.log(mean_distance + 1e-6)
        centre = np.full(len(log_distance), np.median(log_distance))
        scales = np.zeros(len(log_distance))  # the pooled scale, below, where no class has its own
        classes = {}
        if labels is not None:
            codes, names = pd.factorize(labels)  # code -1: no label
            counts = np.bincount(codes[codes >= 0], minlength=len(names))
            for code in np.flatnonzero(counts >= MIN_CLASS_SAMPLES):
                members = codes == code
                _, class_median, class_scale = robust_z(log_distance[members], 0.1)
                centre[members], scales[members] = class_median, class_scale
                classes[str(names[code])] = (class_median, class_scale)
        _, shift, scale = robust_z(log_distance - centre, 0.1)  # the pooled spread (shift: about 0)
        scales = np.maximum(scales, scale)
        z = (log_distance - centre - shift) / scales
        cut = tail_cut(z, min(self.min_z, self.z_threshold), self.z_threshold, self.fdr) if self.fdr else self.z_threshold
        above = {name: float(np.exp(median + shift + cut * max(own, scale))) for name, (median, own) in classes.items()}
        return Outlying(mean_distance, z, float(np.exp(np.median(log_distance) + shift + cut * scale)), cut, above)


class Outlying(NamedTuple):
    """:meth:`Outliers.outlying`: over the graph's M samples."""

    mean_distance: np.ndarray  # (M,) mean cosine distance to the k nearest
    z: np.ndarray  # (M,) robust z of its log, about its class's median
    above: float  # flagged above this mean distance: unlabeled samples and small classes
    cut: float  # flagged: z > cut
    above_by_class: dict  # class name -> the mean distance flagged above, for classes measured on their own

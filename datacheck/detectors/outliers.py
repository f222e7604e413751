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
        found = self.outlying_in(ctx)
        self.thresholds_[self.name] = {
            "statistic": f"mean cosine distance to {self.k} nearest",
            "median": round(float(np.exp(found.median)), 4),
            "above": round(float(np.exp(found.median + found.cut * found.scale)), 4),  # but in classes_on_their_own
            "z_cut": round(found.cut, 3),
            "classes_on_their_own": found.classes_on_their_own,
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
        :data:`MIN_CLASS_SAMPLES` of them whose median log distance lies more than
        :data:`CLASS_SHIFT` of the data's robust standard deviations from the data's median
        gets its z from its own median and MAD; every other sample from the whole data's.
        """
        distances, _ = graph.first(self.k)
        # An approximate graph may miss a neighbour (inf): count it as the farthest possible.
        mean_distance = np.minimum(distances, 2.0).mean(axis=1)
        log_distance = np.log(mean_distance + 1e-6)
        z, median, scale = robust_z(log_distance, 0.1)
        own = []
        if labels is not None:
            codes, names = pd.factorize(labels)  # code -1: no label
            counts = np.bincount(codes[codes >= 0], minlength=len(names))
            for code in np.flatnonzero(counts >= MIN_CLASS_SAMPLES):
                members = codes == code
                if abs(np.median(log_distance[members]) - median) > CLASS_SHIFT * scale:
                    z[members] = robust_z(log_distance[members], 0.1)[0]
                    own.append(str(names[code]))
        cut = tail_cut(z, min(self.min_z, self.z_threshold), self.z_threshold, self.fdr) if self.fdr else self.z_threshold
        return Outlying(mean_distance, z, median, scale, cut, sorted(own))


class Outlying(NamedTuple):
    """:meth:`Outliers.outlying`: over the graph's M samples."""

    mean_distance: np.ndarray  # (M,) mean cosine distance to the k nearest
    z: np.ndarray  # (M,) robust z of its log
    median: float  # the whole data's log-median
    scale: float  # and robust standard deviation
    cut: float  # flagged: z > cut
    classes_on_their_own: list  # the classes measured against their own median and MAD

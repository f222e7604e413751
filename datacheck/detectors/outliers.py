"""Outliers: samples far from their nearest neighbours in embedding space."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from ..features.knn import MAX_NEIGHBOURS
from ..features.model import MIN_ORIENTATION_ACCURACY
from ..robust import expected_beyond, robust_z, tail_cut, threshold_score
from ..validation import Boolean, Interval
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
    data's median; members of classes of at most ``k`` samples (measured over fewer
    neighbours, :meth:`outlying`) about the median of all members of classes of their size,
    where there are :data:`MIN_CLASS_SAMPLES` of them. The cut adapts to the data: it
    is the lowest z at which the samples beyond it hold at most ``fdr`` expected clean ones
    under the bulk's robust normal fit (Benjamini-Hochberg, :func:`datacheck.robust.tail_cut`),
    between ``min_z`` and ``z_threshold``. ``score < 0.5`` ⇔ flagged.

    With ``orientation`` (images, at least 100, ``[train] image_size`` at most 64), a second,
    label-free opinion joins the distance: the orientation surprise of each image
    (:mod:`datacheck.engine.orientation`; how badly a network of the data's upright look,
    trained on the other half of the images, tells which way up it is). Its log1p is measured
    about the class's median as the distance is, over the spread of the bulk's upper half (a
    cross-entropy's bulk is skewed: a long tail of near-certain images), the two z-scores are
    added, and the sum is standardised again (median, upper-half spread) before the same cut.
    The distance alone sees what separates the classes, so a letter among numerals can sit
    near the numeral it most resembles; it still has no upright numeral look. Injected roman
    (86 letters, shapes and turned scans among 2,981): 32 of them among the distance's 150
    most outlying, about 70 with both. The surprise is used when the held-out networks tell
    at least half of the turns right (0.25 is chance); otherwise the data has no upright look
    to learn and ``summary.json`` says so.

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
    orientation : bool, default True
        Add the orientation surprise to the distance where the audit can measure it.
    """

    name = "outliers"
    requires = frozenset({"knn_graph"})
    optional = frozenset({"orientation"})
    checks = ("outliers",)
    tags = frozenset({"drop_candidate", "unreliable_input", "off_distribution"})
    _parameter_constraints = {"k": [Interval(int, 1, MAX_NEIGHBOURS)], "z_threshold": [Interval(float, 0, None, "neither")],
                              "min_z": [Interval(float, 0, None, "neither")], "fdr": [Interval(float, 0, 1, "left")],
                              "orientation": [Boolean()]}

    def __init__(self, *, k: int = 10, z_threshold: float = 3.0, min_z: float = 2.0, fdr: float = 0.2,
                 orientation: bool = True):
        self.k = k
        self.z_threshold = z_threshold
        self.min_z = min_z
        self.fdr = fdr
        self.orientation = orientation

    def inputs(self, available: frozenset | None = None) -> tuple[frozenset, frozenset]:
        return frozenset(self.requires), frozenset(self.optional if self.orientation else ())

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        rows = ctx.get("knn_graph").rows
        if len(rows) <= self.k:
            return self._off(f"needs more than k={self.k} embedded samples")
        measured = self.statistic(ctx)
        found, surprise = measured.distance, measured.surprise
        z = measured.z
        cut = found.cut if surprise is None else self._cut(z)
        rule = {"cut_rule": f"Benjamini-Hochberg at fdr={self.fdr} on the robust normal null, z cut in "
                            f"[{self.min_z}, {self.z_threshold}]"}
        if surprise is None:
            self.thresholds_[self.name] = {
                "statistic": f"mean cosine distance to {self.k} nearest",
                "above": round(found.above, 4),  # unlabeled samples and classes of fewer than MIN_CLASS_SAMPLES
                "above_by_class": {name: round(above, 4) for name, above in found.above_by_class.items()},
                **({"above_by_class_size": {n: round(above, 4) for n, above in found.above_by_class_size.items()}}
                   if found.above_by_class_size else {}),
                **({"orientation": measured.orientation} if measured.orientation else {}),
            }
            details = [{"knn_distance": round(float(d), 4), "z": round(float(zz), 3)}
                       for d, zz in zip(found.mean_distance, z)]
        else:
            self.thresholds_[self.name] = {"statistic": STATISTIC_WITH_ORIENTATION.format(k=self.k),
                                           "orientation": measured.orientation}
            details = [{"knn_distance": round(float(d), 4), "distance_z": round(float(dz), 3),
                        "orientation_surprise": round(float(o), 4), "orientation_z": round(float(oz), 3),
                        "z": round(float(zz), 3)}
                       for d, dz, o, oz, zz in zip(found.mean_distance, found.z, surprise, measured.surprise_z, z)]
        self.thresholds_[self.name].update(z_cut=round(cut, 3), **rule,
                                           expected_false_positives=round(expected_beyond(cut, len(z)), 1))
        return partial_findings(rows, self.name, threshold_score(z, cut), z > cut, details)

    def statistic(self, ctx: AuditContext) -> Statistic:
        """This check's z of each of the kNN graph's samples (more than ``k`` of them), with
        what it is made of; computed once per audit for these parameters (``off_class`` reads it too)."""
        key = ("outlier_statistic", self.k, self.z_threshold, self.min_z, self.fdr, self.orientation)
        return ctx.memo(key, lambda: self._statistic(ctx))

    def _statistic(self, ctx: AuditContext) -> Statistic:
        rows = ctx.get("knn_graph").rows
        found = self.outlying_in(ctx)
        surprise, note = self._orientation_surprise(ctx, rows)
        if surprise is None:
            return Statistic(found.z, found, None, None, note)
        # Surprise is a cross-entropy: most images cost almost nothing, a long tail towards 0
        # on a log scale, hence log1p and the spread of the upper half of the bulk.
        surprise_z = about_classes(np.log1p(surprise), ctx.manifest.frame["label"].iloc[rows], upper=True).z
        # A sample the orientation networks could not score adds nothing to its distance's z.
        z, _, _ = robust_z(found.z + np.nan_to_num(surprise_z, nan=0.0), 0.1, upper=True)
        return Statistic(z, found, surprise, surprise_z, note)

    def _orientation_surprise(self, ctx: AuditContext, rows: np.ndarray) -> tuple[np.ndarray | None, dict | None]:
        """The orientation surprise (M,) of the graph's ``rows`` when it is measured and
        informative (else None), and what ``summary.json`` says of it (None: not offered)."""
        if not self.orientation or not ctx.has("orientation"):
            return None, None
        measured = ctx.get("orientation")
        if measured.surprise is None:
            return None, {"rule": measured.off}
        note = {"held_out_turn_accuracy": round(measured.accuracy, 3),
                "rule": f"used when the held-out turn accuracy is >= {MIN_ORIENTATION_ACCURACY} (chance 0.25)"}
        if measured.accuracy < MIN_ORIENTATION_ACCURACY:
            return None, {**note, "rule": f"off: held-out turn accuracy {measured.accuracy:.3f} < "
                                          f"{MIN_ORIENTATION_ACCURACY}: the images have no upright look to learn, "
                                          "or too few to learn it from"}
        return measured.surprise[rows].astype(np.float64), note

    def _cut(self, z: np.ndarray) -> float:
        return tail_cut(z, min(self.min_z, self.z_threshold), self.z_threshold, self.fdr) if self.fdr else self.z_threshold

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
        of those differences pooled over all samples, or a class's own where larger. A
        member of a class of ``k`` samples or fewer is measured over its nearest ``n - 1``
        (its class's size less itself, at least 1): its ``k`` nearest must reach into other
        classes, and a rare, tight class of 8 was flagged whole at z 12-13. The members of
        all classes of one such size ``n`` are one reference group (measured from its median
        where it holds :data:`MIN_CLASS_SAMPLES`), not the data's.
        """
        distances, _ = graph.first(self.k)
        # An approximate graph may miss a neighbour (inf): count it as the farthest possible.
        distances = np.minimum(distances, 2.0)
        reach = np.full(len(distances), self.k)
        reference = labels
        # k = 1 too: a class of one is measured by its single nearest, of another class, where
        # others' is mostly their own class's (at k = 1, 153 of 390 real one-sample classes
        # were flagged about the data's median).
        if labels is not None:
            sizes = labels.map(labels.value_counts()).to_numpy(dtype=float, na_value=np.nan)  # NaN: unlabeled
            small = np.isfinite(sizes) & (sizes <= self.k)
            reach[small] = np.maximum(sizes[small] - 1, 1).astype(int)
            if small.any():
                # Like with like: a member of a class of n <= k samples is measured by another
                # statistic (its n - 1 nearest; a class of one, its single nearest, of another
                # class), so the members of all classes of n samples form one reference group,
                # about its own median where it holds MIN_CLASS_SAMPLES (a long tail). About the
                # data's median, 120 of 390 real one-sample classes near the common ones were
                # flagged (tests/test_model_checks.py, long_tail).
                # Labels are text, so a class size (an int) names no class.
                keys = labels.to_numpy(dtype=object, na_value=np.nan)
                keys[small] = [int(n) for n in sizes[small]]
                reference = pd.Series(keys, index=labels.index, dtype=object)
        if (reach < self.k).any():
            mean_distance = (np.where(np.arange(self.k) < reach[:, None], distances, 0.0).sum(axis=1) / reach)
        else:
            mean_distance = distances.mean(axis=1)
        log_distance = np.log(mean_distance + 1e-6)
        measured = about_classes(log_distance, reference)
        cut = self._cut(measured.z)
        above, above_by_size = {}, {}
        for name, (median, own) in measured.classes.items():
            distance = float(np.exp(median + measured.shift + cut * max(own, measured.scale)))
            if isinstance(name, (int, np.integer)):  # the pooled members of classes of this size
                above_by_size[str(name)] = distance
            else:
                above[str(name)] = distance
        data_above = float(np.exp(np.median(log_distance) + measured.shift + cut * measured.scale))
        return Outlying(mean_distance, measured.z, data_above, cut, above, above_by_size)


#: The statistic's description in ``summary.json`` when the orientation surprise joins the distance.
STATISTIC_WITH_ORIENTATION = ("robust z (upper-half scale) of (z of log mean cosine distance to {k} nearest + "
                              "z of log1p orientation surprise, upper-half scale), each about its class's median")


class Statistic(NamedTuple):
    """:meth:`Outliers.statistic`: over the kNN graph's M samples."""

    z: np.ndarray  # (M,) the check's z: the distance's, or the distance's and orientation's together
    distance: Outlying  # the distance alone
    surprise: np.ndarray | None  # (M,) orientation surprise, where it joins the distance
    surprise_z: np.ndarray | None  # (M,) its z about the class's median
    orientation: dict | None  # what summary.json says of the orientation surprise (None: not offered)


class Outlying(NamedTuple):
    """:meth:`Outliers.outlying`: over the graph's M samples."""

    mean_distance: np.ndarray  # (M,) mean cosine distance to the k nearest
    z: np.ndarray  # (M,) robust z of its log, about its class's median
    above: float  # flagged above this mean distance: unlabeled samples and small classes
    cut: float  # flagged: z > cut
    above_by_class: dict  # class name -> the mean distance flagged above, for classes measured on their own
    above_by_class_size: dict  # n -> the same for the members of classes of n <= k samples, where pooled


class AboutClasses(NamedTuple):
    """:func:`about_classes` of M values."""

    z: np.ndarray  # (M,)
    classes: dict  # label -> (its median, its own robust SD), for classes measured on their own
    shift: float  # median of the differences from the centres (about 0)
    scale: float  # their robust SD, pooled over the data


def about_classes(values: np.ndarray, labels: pd.Series | None, upper: bool = False) -> AboutClasses:
    """Robust z of each of ``values`` (M,) (a log scale) about its class's median.

    ``labels`` (M,), the given label of each (NaN: none): a class of at least
    :data:`MIN_CLASS_SAMPLES` finite values is measured from its own median, every other
    sample from the whole data's. The scale is the robust SD of those differences pooled over
    all samples, or a class's own where larger; with ``upper``, of the differences above the
    median only (:func:`datacheck.robust.robust_z`). NaN values stay NaN.
    """
    finite = np.isfinite(values)
    centre = np.full(len(values), np.median(values[finite]) if finite.any() else 0.0)
    scales = np.zeros(len(values))  # the pooled scale, below, where no class has its own
    classes = {}
    if labels is not None:
        codes, names = pd.factorize(labels)  # code -1: no label
        counts = np.bincount(codes[(codes >= 0) & finite], minlength=len(names))
        for code in np.flatnonzero(counts >= MIN_CLASS_SAMPLES):
            members = codes == code
            _, class_median, class_scale = robust_z(values[members], 0.1, upper)
            centre[members], scales[members] = class_median, class_scale
            classes[names[code]] = (class_median, class_scale)
    _, shift, scale = robust_z(values - centre, 0.1, upper)  # the pooled spread
    return AboutClasses((values - centre - shift) / np.maximum(scales, scale), classes, shift, scale)

"""Off-class samples: unusual for their class, and not recognised as it by the model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..features.knn import MAX_NEIGHBOURS
from ..features.model import agreement_beyond_chance, at_chance_reason, scored_rows
from ..robust import expected_beyond, threshold_score
from ..validation import Boolean, Interval
from .base import AuditContext, Detector, partial_findings
from .outliers import STATISTIC_WITH_ORIENTATION, Outliers
from .registry import register_detector


@register_detector
class OffClass(Detector):
    """Flag samples that lie unusually far from their class *and* that the out-of-fold model
    assigns to another class: images of no class of the dataset (a letter among numerals, a
    scrawl, a turned crop) filed under one, for a person to review.

    Two pieces of evidence, each weak alone, together: the ``outliers`` check's z (the
    distance to the nearest neighbours, with the orientation surprise where the audit
    measures it; :meth:`Outliers.statistic`, computed once), here cut at ``z_threshold``
    (1.645, a one-sided p of 0.05 under the bulk's robust normal fit, where ``outliers``
    cuts at 2-3 by the false discovery rate), and the model's *dispute* of the given label
    (its out-of-fold probability of another class is higher than the label's; a tie is no
    dispute). One clean sample in twenty lies that far out and an eighth of roman's labels
    are disputed (a fifth in ``benchmarks/detection.py``'s injected copy), but an image both
    unusual for its class and not recognised as it is what a reviewer removes. On that
    injected roman (86 inserted letters, shapes and turned scans among 2,981) this check
    flags 0.860 / 0.826 of the inserted images (seeds 0 / 1), with ``outliers`` 0.907 /
    0.884 (``outliers`` alone 0.698 / 0.640), and most of its other flags are other injected
    problems or roman's own scrawls, letters and crossed-out scans
    (``benchmarks/roman_reviewed.csv``).

    A mislabeled sample is disputed too and lies far from the class it is filed under, so
    some of the label checks' flags are flagged here as well. Hence the tags: a flag here
    queues the sample for review (``relabel``) and withholds an automatic relabel, unless
    every label check rejects the label (then the mislabel explains the distance), and it is
    never dropped by ``relabel --drop``, as an ``outliers`` flag is. ``score`` is
    ``s = threshold_score(z, z_threshold)`` for a flagged sample (``score < 0.5`` ⇔ flagged),
    ``(0.5 + s) / 2`` (0.5-0.75) for the other disputed ones and ``0.75 + s / 4`` (0.75-1)
    for the undisputed, so that these rank after every disputed one, each part in z order
    (``(1 + s) / 2`` for them had ranked a far undisputed sample before most disputed ones).

    Off where the model does not agree with the labels beyond chance (its disputes are then
    noise; the label checks' test, :func:`~datacheck.features.model.agreement_beyond_chance`).

    Parameters
    ----------
    z_threshold : float, default 1.645
        Disputed samples beyond this z are flagged.
    k : int, default 10
        Neighbours of the distance (as ``outliers``' ``k``), at most 1000.
    orientation : bool, default True
        Add the orientation surprise to the distance where the audit measures it (as ``outliers``).
    """

    name = "off_class"
    requires = frozenset({"knn_graph", "labels", "pred_probs"})
    optional = frozenset({"orientation"})
    checks = ("off_class",)
    tags = frozenset({"unreliable_input", "off_distribution"})
    details = {"z": float, "disputed": bool, "predicted": str}
    _parameter_constraints = {"z_threshold": [Interval(float, 0, None, "neither")],
                              "k": [Interval(int, 1, MAX_NEIGHBOURS)], "orientation": [Boolean()]}

    def __init__(self, *, z_threshold: float = 1.645, k: int = 10, orientation: bool = True):
        self.z_threshold = z_threshold
        self.k = k
        self.orientation = orientation

    def inputs(self, available: frozenset | None = None) -> tuple[frozenset, frozenset]:
        return frozenset(self.requires), frozenset(self.optional if self.orientation else ())

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        rows = ctx.get("knn_graph").rows
        if len(rows) <= self.k:
            return self._off(f"needs more than k={self.k} embedded samples")
        given, probs = ctx.get("labels"), ctx.get("pred_probs")
        scored = scored_rows(given, probs)[rows]
        rows = rows[scored]  # embedded, labeled and with out-of-fold probabilities
        labels = given.ids[rows]
        if len(np.unique(labels)) < 2:
            return self._off("the scored labels name fewer than two classes: no class to be outside of")
        # Every row scored, in order (an audit of arrays): the probabilities as they are, no copy
        # of a possibly huge, memory-mapped (N, C) array, as label_issues reads them.
        whole = len(rows) == len(probs) and bool((rows == np.arange(len(probs))).all())
        scored_probs = np.asarray(probs) if whole else np.asarray(probs[rows])
        predicted = scored_probs.argmax(axis=1)
        at_chance = agreement_beyond_chance(labels, predicted, scored_probs, seed=ctx.seed,
                                            trained="aum" in ctx.available())
        if at_chance is not None:  # the reason only: the label checks' own notes name them, not this check
            return self._off(at_chance_reason(at_chance))
        measured = Outliers(k=self.k, orientation=self.orientation).statistic(ctx)
        z = measured.z[scored]
        # Disputed: another class is *more* probable than the label. A label tied with the top
        # probability (a kNN vote of 2 against 2) is not disputed, whichever column argmax takes.
        disputed = scored_probs[np.arange(len(rows)), labels] < scored_probs.max(axis=1)
        predicted = np.where(disputed, predicted, labels)
        own = threshold_score(z, self.z_threshold)
        flagged = disputed & (z > self.z_threshold)
        score = np.where(flagged, own, np.where(disputed, (0.5 + own) / 2.0, 0.75 + own / 4.0))
        self.thresholds_[self.name] = {
            "rule": f"label disputed by the model and outliers z > {self.z_threshold}",
            "z_cut": self.z_threshold,
            # which z: the distance's alone, or with the orientation surprise (and why not)
            "statistic": (f"outliers' z of the mean cosine distance to {self.k} nearest" if measured.surprise is None
                          else "outliers' " + STATISTIC_WITH_ORIENTATION.format(k=self.k)),
            **({"orientation": measured.orientation} if measured.orientation else {}),
            "disputed": int(np.count_nonzero(disputed)),
            # Were a clean sample's dispute unrelated to its distance, this many of the disputed
            # would lie beyond the cut by chance: a rough bound (disputes are likelier far out).
            "expected_false_positives_if_independent": round(expected_beyond(self.z_threshold,
                                                                              int(np.count_nonzero(disputed))), 1),
        }
        names = np.asarray(given.classes, dtype=object)[predicted]
        details = [{"z": round(float(zz), 3), "disputed": bool(d), "predicted": str(p)}
                   for zz, d, p in zip(z, disputed, names)]
        return partial_findings(rows, self.name, score, flagged, details)

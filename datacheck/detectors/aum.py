"""Area Under the Margin with threshold samples (Pleiss et al., NeurIPS 2020)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..features.model import agreement_beyond_chance, at_chance_reason, scored_rows
from ..robust import count_cut
from ..validation import Boolean
from .base import AuditContext, Detector, partial_findings
from .registry import register_detector


@register_detector
class AUM(Detector):
    """Mislabeled samples have a low margin (assigned-class logit minus the largest other)
    throughout training: the network never really learns them.

    The margins are recorded during the cross-validated training that the audit runs
    anyway. The cut comes from *threshold samples*: each fold model relabels a random
    ``min(1/(C+1), 10 %)`` of its training rows to a fake extra class, whose AUM shows what a
    surely-wrong label gets (:func:`datacheck.engine.train.threshold_folds`). From them the
    share of wrong labels is estimated (:func:`noise_rate`), and that share of the samples
    with the lowest AUM (averaged over the fold models that trained on each with its own
    label) is flagged, never a sample above the threshold samples' 99th percentile.
    ``score = sigmoid(AUM - cut)``, so ``score < 0.5`` ⇔ flagged.

    Parameters
    ----------
    judge_at_chance : bool, default False
        Judge the labels even when the same cross-validation's out-of-fold predictions agree
        with them no more than chance would (see :class:`~datacheck.detectors.label_issues.LabelIssues`);
        by default the check is then off, with the reason.
    """

    name = "aum"
    requires = frozenset({"aum"})
    # The same cross-validation's out-of-fold predictions: a network that learned nothing has
    # margins that say nothing of the labels either (see find).
    optional = frozenset({"pred_probs", "labels"})
    checks = ("aum",)
    tags = frozenset({"label_evidence"})

    _parameter_constraints = {"judge_at_chance": [Boolean()]}

    def __init__(self, *, judge_at_chance: bool = False):
        self.judge_at_chance = judge_at_chance

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        out = ctx.get("aum")
        rows = np.flatnonzero(np.isfinite(out.aum))
        if len(rows) == 0 or len(out.threshold_aum) == 0:
            return self._off("no threshold samples (too few labeled images, or train.threshold_fraction = 0)")
        at_chance = None if self.judge_at_chance else self._at_chance(ctx)
        if at_chance is not None:
            return self._off(at_chance_reason(at_chance), **at_chance)
        aum = out.aum[rows].astype(float)
        noise = noise_rate(aum, out.threshold_aum)
        ceiling = float(np.percentile(out.threshold_aum, 99))
        cut = min(ceiling, count_cut(aum, round(noise * len(aum))))
        flagged = aum < cut
        self.thresholds_[self.name] = {
            "rule": "the estimated_noise_rate x N lowest AUM, below the 99th percentile of the threshold samples' AUM",
            "cut": round(cut, 4),
            "threshold_samples": int(len(out.threshold_aum)),
            "estimated_noise_rate": round(noise, 4),
            # Flags that threshold-sample-like (wrong) labels would not explain.
            "estimated_false_positives": round(max(0.0, float(flagged.sum() - noise * len(aum) * np.mean(
                out.threshold_aum < cut))), 1),
        }
        if self.judge_at_chance:  # asked for: judged whatever the model's agreement (no note on many flags)
            self.thresholds_[self.name]["judge_at_chance"] = True
        score = 1.0 / (1.0 + np.exp(-np.clip(aum - cut, -50, 50)))
        details = [{"aum": round(float(a), 4)} for a in aum]
        return partial_findings(rows, self.name, score, flagged, details)

    @staticmethod
    def _at_chance(ctx: AuditContext) -> dict | None:
        """:func:`~datacheck.features.model.agreement_beyond_chance` of the out-of-fold predictions,
        when the audit has them. At chance, every label's margin is low (wrong-looking), and the
        threshold samples, no lower, set the noise estimate near 1: most of the data flagged."""
        if not (ctx.has("pred_probs") and ctx.has("labels")):
            return None
        given, probs = ctx.get("labels"), ctx.get("pred_probs")
        rows = np.flatnonzero(scored_rows(given, probs))
        labels = given.ids[rows]
        if len(np.unique(labels)) < 2:
            return None
        probs = np.asarray(probs[rows])
        return agreement_beyond_chance(labels, probs.argmax(axis=1), probs, seed=ctx.seed, trained=True)


def noise_rate(aum: np.ndarray, threshold_aum: np.ndarray) -> float:
    """The share of wrong labels among the samples, estimated from the threshold samples.

    The samples' AUM is a mixture ``F = noise * F_T + (1 - noise) * F_clean`` where ``F_T``,
    the distribution of wrong labels' AUM, is observed through the threshold samples. As
    ``F_clean >= 0``, ``noise <= F(t) / F_T(t)`` at every ``t``, with equality where correct
    labels no longer reach (the low margins); the estimate is the smallest ratio over the
    threshold samples' quantiles 0.5 ... 0.95 (below the median, too few threshold samples
    make the ratio noisy). It is the mixture-proportion estimator of Blanchard et al. (2010)
    and Scott (2015), with the threshold samples as the known component.

    Parameters
    ----------
    aum : ndarray of shape (N,)
    threshold_aum : ndarray of shape (T,)
    """
    levels = np.arange(0.5, 0.951, 0.05)
    marks = np.quantile(threshold_aum, levels)
    below = np.searchsorted(np.sort(aum), marks) / len(aum)
    return float(min(1.0, (below / levels).min()))

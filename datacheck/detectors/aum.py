"""Area Under the Margin with threshold samples (Pleiss et al., NeurIPS 2020)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..robust import count_cut
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
    """

    name = "aum"
    requires = frozenset({"aum"})
    checks = ("aum",)
    tags = frozenset({"label_evidence"})

    def __init__(self):
        pass

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        out = ctx.get("aum")
        rows = np.flatnonzero(np.isfinite(out.aum))
        if len(rows) == 0 or len(out.threshold_aum) == 0:
            return self._off("no threshold samples (too few labeled images, or train.threshold_fraction = 0)")
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
        score = 1.0 / (1.0 + np.exp(-np.clip(aum - cut, -50, 50)))
        details = [{"aum": round(float(a), 4)} for a in aum]
        return partial_findings(rows, self.name, score, flagged, details)


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

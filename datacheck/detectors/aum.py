"""Area Under the Margin with threshold samples (Pleiss et al., NeurIPS 2020)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import AuditContext, Detector, partial_findings
from .registry import register_detector


@register_detector
class AUM(Detector):
    """Mislabeled samples have a low margin (assigned-class logit minus the largest other)
    throughout training: the network never really learns them.

    The cut comes from *threshold samples*: in each of two training runs a random
    N/(C+1) subset is relabeled to a fake extra class, and the 99th percentile of their
    AUM is the margin a surely-wrong label reaches. A sample is flagged when its AUM (from
    the run where it kept its label) is below that cut. ``score = sigmoid(AUM - cut)``, so
    ``score < 0.5`` ⇔ flagged.

    Opt-in (``--checks aum`` or ``'*'``): it trains two more models on all samples, about
    +50 % on top of the default 5-fold cross-validation.
    """

    name = "aum"
    requires = frozenset({"aum"})
    checks = ("aum",)
    tags = frozenset({"label_evidence"})
    default = False

    def __init__(self):
        pass

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        out = ctx.get("aum")
        rows = np.flatnonzero(np.isfinite(out.aum))
        if len(rows) == 0:
            return self._off("too few labeled images to train")
        aum, cut = out.aum[rows].astype(float), out.threshold[rows].astype(float)
        self.thresholds_[self.name] = {"rule": "AUM < 99th percentile of threshold samples' AUM",
                                       "cuts": sorted({round(float(c), 4) for c in cut})}
        score = 1.0 / (1.0 + np.exp(-np.clip(aum - cut, -50, 50)))
        details = [{"aum": round(float(a), 4), "cut": round(float(c), 4)} for a, c in zip(aum, cut)]
        return partial_findings(rows, self.name, score, aum < cut, details)

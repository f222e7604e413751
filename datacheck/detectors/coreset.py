"""CRUST coresets: a weighted subset per class that stands for the rest in gradient space."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..features.model import scored_rows
from ..validation import Interval
from .base import AuditContext, Detector, partial_findings
from .registry import register_detector

#: Nearest other medoids of its class a medoid's details name (``near``), for ``balance`` to
#: give a medoid it drops to the nearest one it keeps. Sixteen ids a medoid; of the medoids it
#: drops, those with none of their sixteen kept are spread in proportion instead: about
#: (1 - f)^16 when it keeps a fraction f of them. Measured on random gradients (two classes
#: of 300 and 200, the audit's budget 0.5, balance at 0.25 and 0.1): none at a half, 1-10 %
#: at a fifth, where eight ids left 14-30 %; finding them costs 0.54 s for 16,384 medoids
#: (0.51 s for eight).
NEAR = 16


@register_detector
class Coreset(Detector):
    """Select a ``budget`` fraction of each class by facility location on last-layer gradients (CRUST).

    After Mirzasoleiman, Cao & Leskovec, "Coresets for Robust Training of Neural Networks
    against Noisy Labels" (NeurIPS 2020): the gradient of the loss with respect to a
    sample's logits is ``softmax output - one-hot(given label)`` (here the cross-validated
    models' own out-of-fold softmax, or the ``--pred-probs`` a user brings); optionally
    joined with the L2-normalised embedding times ``embedding_weight``. Per class, greedy facility location
    (:func:`datacheck.engine.facility.facility_location`) picks ``ceil(budget x size)``
    medoids; every sample is assigned to its nearest medoid, and a medoid's ``weight`` is the
    number of samples assigned to it (weights sum to the class size). Training on the
    medoids with these weights approximates the full gradient. A medoid's details also name
    its :data:`NEAR` nearest other medoids of the class (``near``, nearest first; among its
    region's above ``PART_MAX`` medoids), where ``balance`` moves the weight of a medoid it
    drops for a smaller budget.

    One deviation from CRUST's reference code: a sample does not count as representing
    itself (the similarity matrix's diagonal is zero). With it, an isolated sample is always
    worth selecting for its own coverage, and at a budget of 0.5 every mislabeled sample of a
    lightly noisy dataset (whose gradients sit alone, far from the class's) was selected:
    measured on ``sample_data``, the coreset held twice the dataset's share of planted
    mislabels; without it, three quarters of it.

    Classes above ``exact_max`` samples use stochastic greedy (memory O(N) per candidate,
    never N x N), and above :data:`~datacheck.engine.facility.PART_MAX` they count each
    candidate's gain within its region of at most that many samples (median cuts along the
    principal axis): time linear in the class size instead of quadratic, the budget still
    going where it gains most; a sample's medoid is then the nearest of its region's when the
    class has more than ``PART_MAX`` medoids. Opt-in (``--checks coreset``): it is a selection, not an issue finder.
    ``is_issue`` = not selected (a candidate to drop); ``score`` is 1 for a medoid, else its
    similarity to its medoid, ``1 - distance / M`` (``M`` bounds the class's distances),
    capped at 0.999.

    Parameters
    ----------
    budget : float, default 0.5
        Fraction of each class to keep, in (0, 1].
    embedding_weight : float, default 0.0
        Weight of the normalised embeddings joined to the gradients (0 = gradients only, as
        CRUST); ignored when the audit has no embeddings.
    exact_max : int, default 4096
        Largest class for the exact lazy greedy (N x N similarities); a class above
        :data:`~datacheck.engine.facility.PART_MAX` (8,192) selects in regions whatever it is,
        so a larger value never builds a matrix above 8,192 x 8,192.
    """

    name = "coreset"
    requires = frozenset({"labels", "pred_probs"})
    optional = frozenset({"softmax", "embeddings"})
    checks = ("coreset",)
    tags = frozenset({"selection"})
    _parameter_constraints = {"budget": [Interval(float, 0, 1, "right")],
                              "embedding_weight": [Interval(float, 0, None)],
                              "exact_max": [Interval(int, 1, None)]}
    default = False

    def __init__(self, *, budget: float = 0.5, embedding_weight: float = 0.0, exact_max: int = 4096):
        self.budget = budget
        self.embedding_weight = embedding_weight
        self.exact_max = exact_max

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        from ..engine.facility import facility_location, nearest_others, selection_method

        given = ctx.get("labels")
        features, scored, joined = self._features(given, ctx)
        if not scored.any():
            # No model trained (one class, too few images, none readable): without this the
            # check read as run, and balance --strategy coreset asked for an audit that had it.
            return self._off("no labeled sample has out-of-fold probabilities")
        ids = ctx.manifest.frame["sample_id"].astype(str).to_numpy()
        parts, sizes = [], {}
        for c in range(len(given.classes)):
            rows = np.flatnonzero(scored & (given.ids == c))
            if len(rows) == 0:
                continue
            rows = ctx.manifest.in_id_order(rows)  # greedy ties by position: shuffled rows chose others
            budget = max(1, int(np.ceil(self.budget * len(rows) - 1e-9)))
            x = features(rows, c)
            selected, medoid, distance = facility_location(x, budget, exact_max=self.exact_max, seed=ctx.seed + c)
            near = {int(m): [ids[rows[selected[j]]] for j in others if j >= 0]
                    for m, others in zip(selected, nearest_others(x, selected, NEAR, seed=ctx.seed + c))}
            is_medoid = np.zeros(len(rows), dtype=bool)
            is_medoid[selected] = True
            weight = np.where(is_medoid, np.bincount(medoid, minlength=len(rows)), 0)
            score = np.where(is_medoid, 1.0, np.minimum(1.0 - distance, 0.999))
            details = [json.dumps({"medoid": ids[rows[m]], "selected": bool(s), "weight": int(w)}
                                  | ({"near": near[i]} if s else {}), sort_keys=True)
                       for i, (m, s, w) in enumerate(zip(medoid, is_medoid, weight))]
            parts.append((rows, score, ~is_medoid, details))
            sizes[given.classes[c]] = {"size": int(len(rows)), "selected": int(budget),
                                         "method": selection_method(len(rows), self.exact_max)}
        self.thresholds_[self.name] = {
            "rule": f"not among the ceil({self.budget} x class size) facility-location medoids of its class",
            "features": "softmax - one-hot" + (f" + {self.embedding_weight} x embedding" if joined else ""),
            "classes": sizes,
        }
        if not parts:
            return partial_findings([], self.name, [], [], [])
        rows, score, issue = (np.concatenate([p[i] for p in parts]) for i in range(3))
        return partial_findings(rows, self.name, score, issue, [d for p in parts for d in p[3]])

    def _features(self, given, ctx: AuditContext):
        """A function giving the gradient approximation of some rows of one class, ``(rows, c) ->
        (len(rows), C[+D])`` float32, the rows that have one (N,), and whether it joins the
        embeddings (D values).

        Built a class at a time from the (memory-mapped) inputs: the whole (N, C) gradient was
        a float32 copy of ``pred_probs`` and another from ``nan_to_num``, 4 GB beside the 1 GB
        input for 50,000 samples of 5,000 classes, where one class's rows are a few.
        """
        pred_probs = ctx.get("pred_probs")
        scored = scored_rows(given, pred_probs)
        # The network's own softmax: CRUST's gradient is that of the model's loss.
        softmax = ctx.get("softmax") if ctx.has("softmax") else None
        probs = pred_probs if softmax is None else softmax
        embeddings = ctx.get("embeddings") if self.embedding_weight != 0 and ctx.has("embeddings") else None
        if embeddings is not None:
            scored = scored & np.isfinite(embeddings).all(axis=1)

        def features(rows: np.ndarray, c: int) -> np.ndarray:
            gradient = np.nan_to_num(np.asarray(probs[rows], dtype=np.float32))
            gradient[:, c] -= 1.0
            if embeddings is None:
                return gradient
            part = np.nan_to_num(np.asarray(embeddings[rows]))
            unit = part / (np.linalg.norm(part, axis=1, keepdims=True) + 1e-12)
            return np.hstack([gradient, self.embedding_weight * unit.astype(np.float32)])

        return features, scored, embeddings is not None

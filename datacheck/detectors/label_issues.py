"""Label errors by confident learning (cleanlab), from out-of-fold predicted probabilities."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from ..features.model import agreement_beyond_chance, at_chance_reason, pair_counts, scored_rows
from ..validation import Boolean, Options
from .base import AuditContext, Detector, partial_findings
from .registry import register_detector

_FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")
_SCORES = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


@register_detector
class LabelIssues(Detector):
    """Samples whose given label is likely wrong, found with ``cleanlab.filter.find_label_issues``.

    The number of issues is cleanlab's estimate of the noise in each class (from the
    confident joint of given labels and out-of-fold probabilities), so the cut adapts to the
    dataset. ``score`` is cleanlab's label quality score; ``suggested_label`` is the class the
    model believes, with its probability as ``suggested_confidence``.

    Parameters
    ----------
    filter_by : str, default "prune_by_noise_rate"
        cleanlab's ``filter_by``.
    score_method : str, default "self_confidence"
        cleanlab's ``get_label_quality_scores`` method.
    judge_at_chance : bool, default False
        Judge the labels even when the model's out-of-fold predictions agree with them no
        more than chance would (:func:`~datacheck.features.model.agreement_beyond_chance`),
        as cleanlab itself does. By default the check is then off, with the reason: confident
        learning flags 50-90 % of the samples of a model that learned nothing.
    """

    name = "label_issues"
    requires = frozenset({"pred_probs", "labels"})
    checks = ("label_issues",)
    tags = frozenset({"label_evidence"})
    _parameter_constraints = {"filter_by": [Options(str, frozenset(_FILTERS))],
                              "score_method": [Options(str, frozenset(_SCORES))],
                              "judge_at_chance": [Boolean()]}

    def __init__(self, *, filter_by: str = "prune_by_noise_rate", score_method: str = "self_confidence",
                 judge_at_chance: bool = False):
        self.filter_by = filter_by
        self.score_method = score_method
        self.judge_at_chance = judge_at_chance

    def find(self, ctx: AuditContext) -> pd.DataFrame:
        given, probs = ctx.get("labels"), ctx.get("pred_probs")
        labels, classes = given.ids, given.classes
        scored = scored_rows(given, probs)
        if scored.all():
            rows = np.arange(len(labels))  # the common case: no copy of a possibly huge (N, C) array
        else:
            rows = np.flatnonzero(scored)
            labels, probs = labels[rows], probs[rows]
        if len(np.unique(labels)) < 2:
            # E.g. too few images to cross-validate (two classes with two samples each are needed).
            # Said of the labels: the probabilities may well have columns for many classes.
            why = (f"the labels of the {len(labels)} scored sample(s) name one class" if len(labels)
                   else "no sample has out-of-fold probabilities")
            return self._off(f"{why}: confident learning needs labels of two classes or more")
        suggested = probs.argmax(axis=1)
        at_chance = None if self.judge_at_chance else agreement_beyond_chance(
            labels, suggested, probs, seed=ctx.seed, trained="aum" in ctx.available())
        if at_chance is not None:
            return self._off(at_chance_reason(at_chance), **at_chance)
        too_large = _exceeds_memory(probs.shape)
        if too_large is not None:
            return self._off(too_large)
        # Imported only when there is something to score: cleanlab costs an audit of unlabeled images a second.
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        # cleanlab needs every class id below C to be a column; it is, by construction.
        with warnings.catch_warnings():
            # "May not flag all label issues in class k: too few examples" is expected for tiny classes.
            warnings.simplefilter("ignore", UserWarning)
            # Below ~100k rows cleanlab's process pool costs more to start than it saves.
            n_jobs = 1 if len(rows) < 100_000 else None
            import cleanlab.filter

            # Its process pool draws a tqdm bar on stderr when C x N > 1e8 (100,000 rows of 1,001
            # classes: "0/1001 [00:06<1:55:18]"), past --quiet and --json: off for the call.
            bar, cleanlab.filter.tqdm_exists = getattr(cleanlab.filter, "tqdm_exists", False), False
            try:
                is_issue = find_label_issues(labels, probs, filter_by=self.filter_by, n_jobs=n_jobs)
            except MemoryError as exc:
                raise UsageError(_out_of_memory(probs.shape, exc)) from exc
            finally:
                cleanlab.filter.tqdm_exists = bar
                _release_cleanlab_globals()
        score = get_label_quality_scores(labels, probs, method=self.score_method)
        self.thresholds_[self.name] = {
            "rule": f"cleanlab find_label_issues(filter_by={self.filter_by!r})",
            "estimated_noise_rate": round(float(is_issue.mean()), 4),
            "out_of_fold_accuracy": round(float((suggested == labels).mean()), 4),
        }
        if self.judge_at_chance:  # asked for: judged whatever the model's agreement (no note on many flags)
            self.thresholds_[self.name]["judge_at_chance"] = True
        moved = classes_moved(labels, suggested, is_issue, classes)
        if moved:  # a note says so (pipeline._label_check_notes): relabel --auto would move the class
            self.thresholds_[self.name]["classes_moved"] = moved
        given = pa.array(np.take_along_axis(probs, labels[:, None], axis=1)[:, 0].astype(np.float64))
        # {"given_probability": p} for every row, built by Arrow: no Python string per row.
        details = pc.binary_join_element_wise('{"given_probability": ', pc.cast(pc.round(given, 4), pa.string()), "}", "")
        return partial_findings(
            rows, self.name, np.clip(score, 0, 1), is_issue, details,
            suggested_label=pd.Categorical.from_codes(suggested, classes),
            suggested_confidence=np.take_along_axis(probs, suggested[:, None], axis=1)[:, 0],
        )


#: A class is "moved" when at least this share of its samples (of :data:`MOVED_MIN` or more)
#: is flagged with one and the same other suggested class.
MOVED_SHARE = 0.9
MOVED_MIN = 10


def classes_moved(labels: np.ndarray, suggested: np.ndarray, is_issue: np.ndarray, classes) -> list[dict]:
    """The classes whose samples are flagged nearly all (:data:`MOVED_SHARE`) with one other
    suggestion: a class labelled wrong as a whole (a folder misnamed), or probabilities whose
    columns are out of order (two lines of --class-names swapped: 0.80 agreement, judged, and
    every sample of both classes flagged with the other's name, which relabel --auto would
    apply). ``[{"class", "to", "flagged", "samples"}]``, the largest share first, at most 10; none
    for more than 2,000 classes."""
    moved = []
    size = max(len(classes), int(labels.max()) + 1, int(suggested.max()) + 1)
    pairs = pair_counts(labels[is_issue], suggested[is_issue], size)
    if pairs is None:
        return moved
    counts = np.bincount(labels, minlength=size)
    np.fill_diagonal(pairs, 0)
    for k in np.flatnonzero(counts >= MOVED_MIN):
        to = int(pairs[k].argmax())
        if pairs[k, to] >= MOVED_SHARE * counts[k]:
            name = [str(classes[c]) if c < len(classes) else str(c) for c in (k, to)]  # a column past the names
            moved.append({"class": name[0], "to": name[1], "flagged": int(pairs[k, to]),
                          "samples": int(counts[k])})
    return sorted(moved, key=lambda m: -m["flagged"] / m["samples"])[:10]


#: Bytes ``find_label_issues`` holds beyond the probabilities, per class squared and per
#: probability: measured with tracemalloc at 10,000 classes (3.4 GB of (C, C) matrices: the
#: confident joint, sklearn's confusion matrix, the calibration, the prune counts) and its
#: copy of the probabilities grouped by class (float32).
CLEANLAB_BYTES_PER_CLASS_PAIR = 34
CLEANLAB_BYTES_PER_PROBABILITY = 4


def _exceeds_memory(shape: tuple[int, int]) -> str | None:
    """Why the check is off, where confident learning on probabilities of ``shape`` (N, C) would
    need more memory than is available (:func:`~datacheck.engine.memory.available_memory`);
    else None. Linux kills a process whose allocations outgrow the machine (exit 137, no
    message) rather than raising MemoryError, and at 50,000 classes (a product catalogue) the
    class matrices alone are 85 GB: the other checks still run, and the summary says why this
    one did not."""
    from ..engine.memory import available_memory

    rows, classes = shape
    need = CLEANLAB_BYTES_PER_CLASS_PAIR * classes * classes + CLEANLAB_BYTES_PER_PROBABILITY * rows * classes
    available = available_memory()
    if available is None or need <= available:
        return None
    return (f"cleanlab's confident learning would need about {_size(need)} for {classes:,} classes "
            f"({classes:,} x {classes:,} class matrices) and {rows:,} rows, and {_size(available)} is "
            f"available: merge rare classes, or audit on a machine with more memory")


def _size(nbytes: int) -> str:
    """``nbytes`` in GiB, or MiB below one GiB (where "0.0 GiB" would say nothing)."""
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _out_of_memory(shape: tuple[int, int], exc: MemoryError) -> str:
    """The error for a MemoryError in ``find_label_issues`` on probabilities of ``shape`` (N, C).

    cleanlab copies the probabilities, grouped by class (N x C float32), and holds several
    (C, C) int64 and float64 matrices at once (the confident joint, its calibration, the prune
    counts): 3.4 GB in all for 20,000 rows of 10,000 classes, whose probabilities are 0.8 GB.
    Both sizes are named, for "use a smaller dataset" does not help when the classes are
    many; and the other checks run without this one.
    """
    rows, classes = shape
    return (f"not enough memory for label_issues ({exc}): cleanlab's confident learning copies the "
            f"{rows:,} x {classes:,} probabilities ({rows * classes * CLEANLAB_BYTES_PER_PROBABILITY / 2**30:.1f} GiB) and holds several "
            f"{classes:,} x {classes:,} class matrices at once ({classes * classes * 8 / 2**30:.1f} GiB each); "
            f"leave the check out (--checks), merge rare classes, or use a machine with more memory")


def _release_cleanlab_globals() -> None:
    """Drop the copy of the probabilities that ``find_label_issues`` leaves in module globals.

    cleanlab shares per-class data with its worker processes through globals of
    ``cleanlab.filter`` (``pred_probs_by_class``: every row of ``pred_probs``, grouped by class;
    ``prune_count_matrix_cols``) and never clears them, so an (N, C) copy stayed resident
    through the audit's later stages and, in Python, after the audit returned: 2 GB for
    50,000 x 10,000 classes.
    """
    import cleanlab.filter

    for name in ("pred_probs_by_class", "prune_count_matrix_cols"):
        if getattr(cleanlab.filter, name, None) is not None:
            setattr(cleanlab.filter, name, None)

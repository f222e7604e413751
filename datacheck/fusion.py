"""One ranking to review by: every sample's ``issue_score``, fused from the checks' evidence.

Each check scores samples in [0, 1], lower = worse, and flags those past its own cut.
The checks that describe a problem with the sample itself (tags ``label_evidence``,
``drop_candidate``, ``unreliable_input``, ``off_distribution``, ``image_quality``) are fused;
those that describe groups or the dataset (``subgroups``, ``selection``, ``dataset``) are not:
a sample in a rare sub-cluster is not a sample to fix.

Each score is first made to agree with its check's flags (:func:`agree_with_flags`: a
flagged sample counts below 0.5, an unflagged one at 0.5 or above, each check's order kept;
most checks' scores already agree, cleanlab's label quality score need not), so that every
score is calibrated to its own cut. Then:

- checks of the same evidence, the label checks (tag ``label_evidence``: ``label_issues``,
  ``aum``), are *averaged*: they judge the same question from different angles, and a label
  both reject is worse than one only one rejects (on roman with injected flips, the mean
  ranks flips with average precision 0.754, the minimum 0.710, AUM alone 0.666 on this scale;
  ``benchmarks/detection.py``);
- different kinds of problem (a wrong label, a blank scan, a leaked copy) are fused by the
  *minimum*: a sample is as bad as its worst problem, and averaging would dilute a decisive
  check with the others' "fine". The calibration makes the minimum compare like with like,
  where a rank-based fusion would rank the darkest image of a dataset without dark images as
  high as the clearest wrong label.

Among equal scores, samples flagged by more checks come first.

Where more than one label check ran, their evidence also makes one label flag,
``label_fused`` (:func:`label_scores`): the samples ranked by the averaged calibrated label
score, and as many flagged as the label checks flag on average. Each check's flag count is
its own estimate of the number of wrong labels (cleanlab's from the confident joint, AUM's
from the threshold samples); averaging the estimates and the evidence keeps a sample that
both doubt above one that only one doubts, without the recall lost by requiring both
(``benchmarks/detection.py``: on sample_data's planted mislabels, three seeds, recall
0.92–0.96 at precision 0.83–0.92, where AUM alone reaches precision 0.77–0.83 and both
checks together recall 0.79–0.88).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

#: Tags of the checks fused into ``issue_score``.
FUSED_TAGS = frozenset({"label_evidence", "drop_candidate", "unreliable_input", "off_distribution", "image_quality"})
CHECK = "issue_score"
#: The one label flag fused from the label checks (:func:`label_scores`).
LABEL_CHECK = "label_fused"


def fused_checks(detectors) -> tuple[list[str], list[str]]:
    """The checks of ``detectors`` that feed :data:`CHECK`, and those of them that are label evidence."""
    fused = [check for d in detectors for check in d.checks if d.tags_of(check) & FUSED_TAGS]
    return fused, [check for d in detectors for check in d.checks if "label_evidence" in d.tags_of(check)]


def agree_with_flags(score: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Scores (N,) moved into [0, 0.5) where flagged and [0.5, 1] where not: ``score / 2``
    and ``(1 + score) / 2``. The order within each part is kept, so a check whose scores
    already agree with its flags (score < 0.5 exactly when flagged) keeps its whole ranking."""
    return np.where(flagged, score / 2, (1 + score) / 2)


def _calibrated(rows: pd.DataFrame) -> tuple[np.ndarray, pd.Index, np.ndarray, np.ndarray]:
    """Per findings row: its sample's code (codes in sample-id order), then the sample ids, and
    per row its flag and its score calibrated to the flag (:func:`agree_with_flags`)."""
    sample, ids = pd.factorize(rows["sample_id"], sort=True)
    flagged = rows["is_issue"].to_numpy(dtype=bool)
    return sample, ids, flagged, agree_with_flags(rows["score"].to_numpy(dtype=float), flagged)


def issue_scores(findings: pd.DataFrame, checks: list[str], label_checks=()) -> pd.DataFrame:
    """Findings rows of the fused check, one per sample scored by any of ``checks``, in review order.

    Parameters
    ----------
    findings : pandas.DataFrame
        The audit's findings (at least the rows of ``checks``; ``details`` is not read).
    checks : list of str
        The checks to fuse (:func:`fused_checks`).
    label_checks : collection of str
        Those of ``checks`` that are label evidence: averaged before the minimum.

    Returns
    -------
    pandas.DataFrame
        Findings rows with ``check = "issue_score"``: ``score`` is the fused score,
        ``is_issue`` whether any fused check flagged the sample, ``suggested_label`` that of a
        flagging label check, and ``details`` the flagging checks (``{"checks": [...]}``,
        worst first) and the review rank (``{"rank": 1}`` = review first).
    """
    rows = findings[findings["check"].isin(checks)]
    if rows.empty:
        return rows.iloc[0:0].assign(check=pd.Series(dtype=object), details=pd.Series(dtype=object))
    # Integer codes and numpy throughout: an audit of a million samples has millions of rows.
    sample, ids, flagged, agreed = _calibrated(rows)
    check, names = pd.factorize(rows["check"], sort=True)
    # One evidence group per check, except the label checks, which form one group (averaged).
    group = np.where(np.isin(names, list(label_checks)), -1, np.arange(len(names)))[check] + 1
    pair, pairs = pd.factorize(sample.astype(np.int64) * (len(names) + 1) + group)
    group_score = np.bincount(pair, weights=agreed) / np.bincount(pair)
    fused = np.full(len(ids), np.inf)
    np.minimum.at(fused, pairs // (len(names) + 1), group_score)
    order = np.lexsort((check, agreed, sample))  # per sample, its worst check first
    first = order[np.r_[0, np.flatnonzero(np.diff(sample[order])) + 1]]  # one row per sample, in code order
    n_flagged = np.bincount(sample, weights=flagged, minlength=len(ids))
    review = np.lexsort((np.arange(len(ids)), -n_flagged, fused))  # score, then more flags, then id
    chosen = first[review]

    out = rows.iloc[chosen].reset_index(drop=True)
    out["check"] = CHECK
    out["score"] = fused[review]
    out["is_issue"] = n_flagged[review] > 0
    # The flagging checks of each flagged sample (worst first), and a label check's suggestion.
    hits = order[flagged[order]]  # grouped by sample, worst first
    starts = np.r_[0, np.flatnonzero(np.diff(sample[hits])) + 1] if len(hits) else np.zeros(0, dtype=int)
    lists = dict(zip(sample[hits][starts], (list(g) for g in np.split(np.asarray(names)[check[hits]], starts[1:]))))
    hit_rows = rows.iloc[hits]
    suggesting = hit_rows["suggested_label"].notna().to_numpy()
    suggested = (hit_rows[suggesting].assign(_sample=sample[hits][suggesting])
                 .drop_duplicates("_sample").set_index("_sample"))
    codes = sample[chosen]
    out["suggested_label"] = suggested["suggested_label"].reindex(codes).to_numpy()
    out["suggested_confidence"] = suggested["suggested_confidence"].reindex(codes).to_numpy(dtype=float)
    flagging = [lists.get(c) for c in codes]
    out["details"] = [json.dumps({"rank": rank, "checks": c}) if isinstance(c, list) else f'{{"rank": {rank}, "checks": []}}'
                      for rank, c in enumerate(flagging, start=1)]
    return out


def label_scores(findings: pd.DataFrame, label_checks) -> tuple[pd.DataFrame, dict]:
    """Findings rows of :data:`LABEL_CHECK`, one per sample scored by any of ``label_checks``,
    and the rule of its cut.

    A sample's evidence is the mean of its label checks' calibrated scores
    (:func:`agree_with_flags`, as in :func:`issue_scores`); the ``n`` samples with the lowest
    are flagged, ``n`` the mean of the label checks' flag counts, rounded (fewer on ties). ``score``
    keeps the evidence's order with 0.5 at the cut, so ``score < 0.5`` ⇔ flagged.

    Parameters
    ----------
    findings : pandas.DataFrame
        The audit's findings (at least the rows of ``label_checks``; ``details`` is not read).
    label_checks : list of str
        Two or more label checks (with one, its own flags are the label flag).

    Returns
    -------
    rows : pandas.DataFrame
        Findings rows sorted by score; ``suggested_label`` is the most confident suggestion of
        a label check that flags the sample (else of any), ``details`` the mean calibrated
        score and the label checks that flag it.
    threshold : dict
        The rule, the count and the cut, for ``summary.json``.
    """
    from .robust import count_cut

    rows = findings[findings["check"].isin(label_checks)]
    sample, ids, flagged, agreed = _calibrated(rows)
    evidence = np.bincount(sample, weights=agreed, minlength=len(ids)) / np.bincount(sample, minlength=len(ids))
    per_check = rows.loc[rows["is_issue"], "check"].value_counts().reindex(label_checks, fill_value=0)
    count = int(np.floor(per_check.mean() + 0.5))  # halves round up
    cut = count_cut(evidence, count) if len(ids) else 0.5
    is_issue = evidence < cut
    # Piecewise linear through (0, 0), (cut, 0.5), (1, 1): the order kept, 0.5 at the cut.
    score = np.where(is_issue, 0.5 * evidence / max(cut, 1e-12), 0.5 + 0.5 * (evidence - cut) / max(1 - cut, 1e-12))
    # Suggestions of flagging checks first, then the most confident.
    ranked = rows.assign(_sample=sample, _flag=flagged).sort_values(
        ["_flag", "suggested_confidence"], ascending=False, kind="stable", na_position="last")
    ranked = ranked[ranked["suggested_label"].notna()].drop_duplicates("_sample").set_index("_sample")
    hits = rows.loc[rows["is_issue"]].assign(_sample=sample[flagged])
    flagging = hits.groupby("_sample")["check"].agg(lambda c: sorted(set(c)))
    codes = np.arange(len(ids))
    first = np.unique(sample, return_index=True)[1]  # a row per sample, in code order: its run, path, split...
    out = rows.iloc[first].reset_index(drop=True)
    out["check"] = LABEL_CHECK
    out["score"] = np.clip(score, 0.0, 1.0)
    out["is_issue"] = is_issue
    out["suggested_label"] = ranked["suggested_label"].reindex(codes).to_numpy()
    out["suggested_confidence"] = ranked["suggested_confidence"].reindex(codes).to_numpy(dtype=float)
    out["details"] = [json.dumps({"evidence": round(float(e), 4), "checks": flagging.get(i, [])})
                      for i, e in enumerate(evidence)]
    out = out.sort_values(["score", "sample_id"], kind="stable").reset_index(drop=True)
    threshold = {
        "rule": f"the {count} lowest of the label checks' mean calibrated score ({count}: their mean flag count)",
        "checks": list(label_checks),
        "flag_counts": {str(c): int(v) for c, v in per_check.items()},
        "n": count,
        "cut": round(float(cut), 4),
    }
    return out, threshold


def review_ranks(findings: pd.DataFrame) -> pd.Series:
    """Each fused sample's place in the review order (1 = first), indexed by ``sample_id``;
    empty when the audit fused nothing. The fused rows are stored in review order."""
    ids = findings.loc[findings["check"] == CHECK, "sample_id"].to_numpy()
    return pd.Series(np.arange(1, len(ids) + 1), index=ids, dtype=np.int64)

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
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

#: Tags of the checks fused into ``issue_score``.
FUSED_TAGS = frozenset({"label_evidence", "drop_candidate", "unreliable_input", "off_distribution", "image_quality"})
CHECK = "issue_score"


def fused_checks(detectors) -> tuple[list[str], list[str]]:
    """The checks of ``detectors`` that feed :data:`CHECK`, and those of them that are label evidence."""
    fused = [check for d in detectors for check in d.checks if d.tags_of(check) & FUSED_TAGS]
    return fused, [check for d in detectors for check in d.checks if "label_evidence" in d.tags_of(check)]


def agree_with_flags(score: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Scores (N,) moved into [0, 0.5) where flagged and [0.5, 1] where not: ``score / 2``
    and ``(1 + score) / 2``. The order within each part is kept, so a check whose scores
    already agree with its flags (score < 0.5 exactly when flagged) keeps its whole ranking."""
    return np.where(flagged, score / 2, (1 + score) / 2)


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
    sample, ids = pd.factorize(rows["sample_id"], sort=True)  # codes in sample-id order
    check, names = pd.factorize(rows["check"], sort=True)
    flagged = rows["is_issue"].to_numpy(dtype=bool)
    agreed = agree_with_flags(rows["score"].to_numpy(dtype=float), flagged)
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


def review_ranks(findings: pd.DataFrame) -> pd.Series:
    """Each fused sample's place in the review order (1 = first), indexed by ``sample_id``;
    empty when the audit fused nothing. The fused rows are stored in review order."""
    ids = findings.loc[findings["check"] == CHECK, "sample_id"].to_numpy()
    return pd.Series(np.arange(1, len(ids) + 1), index=ids, dtype=np.int64)

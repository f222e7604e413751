"""One ranking to review by: every sample's ``issue_score``, fused from the checks' evidence.

Each check scores samples in [0, 1], lower = worse, and flags those past its own cut.
The checks that describe a problem with the sample itself (tags ``label_evidence``,
``drop_candidate``, ``unreliable_input``, ``off_distribution``, ``image_quality``) are fused;
those that describe groups or the dataset (``subgroups``, ``selection``, ``dataset``) are not:
a sample in a rare sub-cluster is not a sample to fix.

The fusion is the *minimum* of the checks' scores, after making each score agree with its
check's flags (:func:`agree_with_flags`: a flagged sample counts below 0.5, an unflagged one at
0.5 or above, each check's order kept; most checks' scores already agree, cleanlab's label
quality score need not). Why the minimum: the
problems are of different kinds (a wrong label, a blank scan, a leaked copy), and a sample
is as bad as its worst problem; averaging would dilute a decisive check with the others'
"fine". Every score is calibrated to its cut (score 0.5 = at the cut, towards 0 = far past
it), so the minimum compares like with like, where a rank-based fusion would rank the
darkest image of a dataset without dark images as high as the clearest wrong label.
Among equal scores, samples flagged by more checks come first.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

#: Tags of the checks fused into ``issue_score``.
FUSED_TAGS = frozenset({"label_evidence", "drop_candidate", "unreliable_input", "off_distribution", "image_quality"})
CHECK = "issue_score"


def fused_checks(detectors) -> list[str]:
    """The checks of ``detectors`` that feed :data:`CHECK`."""
    return [check for d in detectors for check in d.checks if d.tags_of(check) & FUSED_TAGS]


def agree_with_flags(score: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Scores (N,) moved into [0, 0.5) where flagged and [0.5, 1] where not: ``score / 2``
    and ``(1 + score) / 2``. The order within each part is kept, so a check whose scores
    already agree with its flags (score < 0.5 exactly when flagged) keeps its whole ranking."""
    return np.where(flagged, score / 2, (1 + score) / 2)


def issue_scores(findings: pd.DataFrame, checks: list[str]) -> pd.DataFrame:
    """Findings rows of the fused check, one per sample scored by any of ``checks``, in review order.

    Parameters
    ----------
    findings : pandas.DataFrame
        The audit's findings (every check's rows).
    checks : list of str
        The checks to fuse (:func:`fused_checks`).

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
        return rows.iloc[0:0].assign(check=pd.Series(dtype=object))
    score = rows["score"].to_numpy(dtype=float)
    flagged = rows["is_issue"].to_numpy(dtype=bool)
    agreed = agree_with_flags(score, flagged)
    frame = rows.assign(_score=agreed, _flagged=flagged)
    frame = frame.sort_values(["sample_id", "_score", "check"], kind="stable")
    per_sample = frame.groupby("sample_id", sort=False)
    first = per_sample.head(1).set_index("sample_id")  # each sample's worst check
    n_flagged = per_sample["_flagged"].sum()
    flagging = frame[frame["_flagged"]].groupby("sample_id", sort=False)["check"].agg(list)
    suggested = (frame[frame["_flagged"] & frame["suggested_label"].notna()]
                 .groupby("sample_id", sort=False)[["suggested_label", "suggested_confidence"]].first())
    out = pd.DataFrame({
        "sample_id": first.index,
        "score": first["_score"].to_numpy(),
        "n_flagged": n_flagged.reindex(first.index).to_numpy(),
    })
    out = out.sort_values(["score", "n_flagged", "sample_id"], ascending=[True, False, True], kind="stable")
    out = out.reset_index(drop=True)
    ids = out["sample_id"]
    meta = first.reindex(ids)
    out["is_issue"] = out["n_flagged"].to_numpy() > 0
    out["check"] = CHECK
    for column in ("run_id", "path", "split", "label"):
        out[column] = meta[column].to_numpy()
    out["suggested_label"] = suggested["suggested_label"].reindex(ids).to_numpy()
    out["suggested_confidence"] = suggested["suggested_confidence"].reindex(ids).to_numpy(dtype=float)
    lists = flagging.reindex(ids).to_numpy()
    out["details"] = [json.dumps({"rank": rank, "checks": c if isinstance(c, list) else []})
                      for rank, c in enumerate(lists, start=1)]
    return out.drop(columns="n_flagged")


def review_ranks(findings: pd.DataFrame) -> pd.Series:
    """Each fused sample's place in the review order (1 = first), indexed by ``sample_id``;
    empty when the audit fused nothing. The fused rows are stored in review order."""
    ids = findings.loc[findings["check"] == CHECK, "sample_id"].to_numpy()
    return pd.Series(np.arange(1, len(ids) + 1), index=ids, dtype=np.int64)

"""Turn an audit into a balancing plan: which training samples to keep, drop or augment.

:func:`plan_balance` decides, for every sample of the audited manifest, one action:

``keep``
    the sample stays as it is;
``drop``
    it leaves the training set: flagged by the audit (``drop_flagged``), surplus in an
    over-full group, outside the coreset, or over the ``max_total`` cap;
``augment``
    it stays, and ``copies`` augmented versions of it are to be made by ``datacheck augment``.
    With ``drop_flagged``, a group's copies are spread over its images that no image-quality
    check (``dark``, ``blurry``, ``odd_size``, ...) and no label check flags, so junk and
    doubtful labels are kept but not multiplied; a group of only flagged images grows from them.

Only the training split is balanced (rows whose ``split`` is ``train``, or every row when the
dataset has no splits); validation and test rows are kept exactly as they are, so the
evaluation a user compares against never changes.

Strategies
----------
``subclusters``
    The groups are class × sub-cluster (the ``clusters`` check's K-means cluster within each
    class). Every group is brought to ``target`` samples, as the Data-Centric AI competition's
    winning entry did: over-full groups are downsampled, thin ones get augmented copies.
``classes``
    The same with one group per class.
``coreset``
    Keep the CRUST coreset the ``coreset`` check selected (``budget`` of each class, the
    heaviest medoids first when the budget is below the audit's) with weights counted over
    the training split, so that a class's weights sum to its training samples the check scored
    less those dropped as flagged (:func:`_carry_weights`); no copies.

Every choice is deterministic for a seed: samples are ordered by a hash of
``(seed, sample_id)``, which does not depend on the row order of the manifest.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import BadDataError, UsageError, keyword_errors
from ..files.findings import details_object
from ..files.plan import ACTIONS, PLAN_FILE, PLAN_MARKER, PlanInfo, write_plan_rows
from ..validation import check_seed

STRATEGIES = ("subclusters", "classes", "coreset")
#: Where details come from, for the message when one is damaged.
FINDINGS = "the run's findings.parquet"
#: A plan may make the training split at most this many times its size (and at least
#: :data:`MIN_PLAN_LIMIT` rows whatever its size): a larger plan is almost surely a mistyped
#: ``--target``, and ``augment`` would spend days making the copies.
MAX_GROWTH = 100
MIN_PLAN_LIMIT = 10_000
#: ``--strategy coreset``'s default ``--budget``: the fraction of each class kept.
CORESET_BUDGET = 0.5


@dataclass
class BalanceOptions:
    """What ``datacheck balance`` was asked for (validated by :meth:`validate`).

    Attributes
    ----------
    strategy : {"subclusters", "classes", "coreset"}
    target : int, dict of str to int, or None
        Samples per group (class × sub-cluster, or class). None: the size of the largest group
        of the training split after drops, so balancing alone drops nothing. A dict gives
        each group (by name, e.g. ``"circle/2"``) its own size; a group it does not name keeps
        its size (``datacheck fix`` fills a budget this way).
        A plan whose training split would grow past :data:`MAX_GROWTH` × its size (at least
        :data:`MIN_PLAN_LIMIT` rows) is refused; ``max_total`` bounds it.
    budget : float in (0, 1] or None
        ``coreset``: fraction of each class to keep (None: :data:`CORESET_BUDGET`). Refused
        with another strategy, as ``target`` with ``coreset``: a setting that would be ignored.
    drop_flagged : bool
        Drop training samples flagged as label issues or corrupt, and duplicates beyond one
        per group, before balancing.
    max_total : int or None
        Cap on the rows of the resulting dataset, all splits together (augmented copies
        included), as the competition capped train + val at 10,000.
    seed : int in [0, 2**32 - 1] or None
        None: the audit's seed (:func:`balance`; :func:`plan_balance` reads None as 0).
    transform : dict
        The augmentation recorded for ``augment`` rows (see :mod:`datacheck.actions.augment`).
    """

    strategy: str = "subclusters"
    target: int | dict | None = None
    budget: float | None = None
    drop_flagged: bool = False
    max_total: int | None = None
    seed: int | None = 0
    transform: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Refuse a bad setting (UsageError); numpy numbers and booleans become Python's."""
        for name in ("target", "max_total", "seed"):  # a value taken from an array
            value = getattr(self, name)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                setattr(self, name, int(value))
        if not isinstance(self.drop_flagged, (bool, np.bool_)):  # drop_flagged="no" is truthy
            raise UsageError(f"drop_flagged must be True or False, got {self.drop_flagged!r:.40}")
        self.drop_flagged = bool(self.drop_flagged)
        if self.strategy not in STRATEGIES:
            raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if isinstance(self.target, dict):
            bad = [v for v in self.target.values()
                   if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0]
            if bad:
                raise UsageError(f"per-group targets must be non-negative integers, got {bad[0]!r}")
        elif self.target is not None and (isinstance(self.target, bool) or not isinstance(self.target, int)
                                          or self.target < 1):
            raise UsageError(f"--target must be a positive integer, got {self.target!r}")
        if self.target is not None and self.strategy == "coreset":
            raise UsageError("--target does not apply to --strategy coreset (use --budget)")
        if self.budget is not None and self.strategy != "coreset":
            raise UsageError(f"--budget applies only to --strategy coreset, not {self.strategy} (use --target)")
        if self.strategy == "coreset":
            budget = CORESET_BUDGET if self.budget is None else self.budget
            if isinstance(budget, bool) or not isinstance(budget, numbers.Real) or not 0 < budget <= 1:
                raise UsageError(f"--budget must be in (0, 1], got {budget!r:.40}")
            self.budget = float(budget)
        if self.max_total is not None and (isinstance(self.max_total, bool) or not isinstance(self.max_total, int)
                                           or self.max_total < 1):
            raise UsageError(f"--max-total must be a positive integer, got {self.max_total!r:.40}")
        if self.seed is not None:
            check_seed(self.seed)  # the audit's own rule: a seed any random generator accepts


def training_mask(frame: pd.DataFrame) -> np.ndarray:
    """(N,) bool: the rows balancing acts on (``train``, or all rows of an unsplit dataset)."""
    split = frame["split"]
    if split.isna().all():
        return np.ones(len(frame), dtype=bool)
    return (split == "train").fillna(False).to_numpy(dtype=bool)


def require_training_rows(frame: pd.DataFrame, where: str = "the audited dataset", command: str = "balance",
                          uses: tuple[str, str] = ("plans the train split only",
                                                   "plans by the labels of the train split")) -> None:
    """Refuse a manifest with no labeled training row: there is nothing to balance.

    Parameters
    ----------
    frame : pandas.DataFrame
        The audited manifest.
    where : str
        The dataset, as messages name it.
    command, uses : str, (str, str)
        The command refusing it, and what it does with the train split and with its labels,
        as the messages say (``fix`` refuses the same datasets before its audits).

    Raises
    ------
    BadDataError
        No row in the train split (a dataset of val/test only), or none of them labeled. The
        data's fault, not the command line's (no option changes it): exit 3, as for no images.
    """
    train = training_mask(frame)
    if not train.any():
        raise BadDataError(f"{where} has no training rows (every row is val/test, which {command} keeps as they are); "
                           f"{command} {uses[0]}")
    if frame.loc[train, "label"].isna().all():
        raise BadDataError(f"{where} has no labeled training row (every train row's label is empty); {command} {uses[1]}")


def hash_order(ids, seed: int) -> np.ndarray:
    """(N,) uint64 keys: sorting by them is a seeded shuffle that ignores row order."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(f"{seed}|{i}".encode(), digest_size=8).digest(), "little") for i in ids],
        dtype=np.uint64,
    )


def plan_balance(frame: pd.DataFrame, findings: pd.DataFrame, options: BalanceOptions) -> pd.DataFrame:
    """Decide keep / drop / augment for every row of the audited manifest.

    Parameters
    ----------
    frame : pandas.DataFrame
        The audited manifest (``sample_id, path, label, split, ...``), N rows.
    findings : pandas.DataFrame
        The audit's findings (findings schema). ``subclusters`` needs the ``clusters`` check,
        ``coreset`` the ``coreset`` check; ``drop_flagged`` reads the checks tagged
        ``label_evidence`` (label_issues, aum: a sample every one of them flags), unusable files
        (corrupt) and ``duplicates`` (exact and near duplicates) where the audit ran them.
    options : BalanceOptions

    Returns
    -------
    pandas.DataFrame
        N rows in manifest order, columns :data:`PLAN_COLUMNS`: ``group`` names the balanced
        group (``circle/2`` = class circle, sub-cluster 2; null outside the training split),
        ``copies`` the augmented copies to make, ``weight`` the coreset weight (the training samples
        a kept medoid stands for, 0 for a dropped training row, null outside the training split
        and for other strategies), ``transform`` the augmentation as JSON (empty unless ``augment``).
    """
    options.validate()
    require_training_rows(frame)
    n = len(frame)
    ids = frame["sample_id"].to_numpy(dtype=object)
    labels = frame["label"].to_numpy(dtype=object)
    train = training_mask(frame)
    action = np.full(n, "keep", dtype=object)
    reason = np.where(train, "kept", "not in the training split: kept as is").astype(object)
    copies = np.zeros(n, dtype=np.int64)
    weight = np.full(n, np.nan)
    group = np.full(n, None, dtype=object)
    flags = _flags(findings)
    corrupt = np.isin(ids, list(flags.get("corrupt", ())))
    # With drop_flagged, the audit's flags also choose the copy sources: an image an image
    # check flags (dark, blank, odd-sized) or whose label a label check doubts is kept but not
    # copied, so neither junk nor doubt is multiplied.
    doubted = copy_doubts(findings)
    poor = corrupt | (options.drop_flagged & np.isin(ids, list(doubted)))

    if options.drop_flagged:
        for row, why in _flagged_drops(frame, findings, flags, train).items():
            action[row], reason[row] = "drop", why
    seed = options.seed or 0
    order = hash_order(ids, seed)
    labeled = train & pd.notna(frame["label"]).to_numpy() & (action != "drop")
    if options.drop_flagged and not labeled.any() and (train & pd.notna(frame["label"]).to_numpy()).any():
        # The data's fault, not the command line's: every labeled training image is flagged
        # (all unreadable, say), and "no labeled training row" was a usage error (exit 2).
        why = pd.Series(reason[train & (action == "drop")]).str.replace(r"duplicate of .*", "duplicate", regex=True)
        raise BadDataError("every labeled training row is flagged and dropped (" + "; ".join(
            f"{n} {what}" for what, n in why.value_counts().sort_index().items()) + "): nothing is left to balance")

    if options.strategy == "subclusters":
        cluster = _subgroups(findings)
        sub = pd.Series(ids).map(cluster).to_numpy(dtype=object)
        scored = labeled & pd.notna(sub)
        group[scored] = [f"{lab}/{int(c)}" for lab, c in zip(labels[scored], sub[scored])]
        reason[labeled & ~scored] = "not scored by clusters: kept as is"
    else:
        scored = labeled.copy()
        group[scored] = labels[scored]

    rank = order.astype(np.float64)  # lower = kept first when a group is trimmed
    if options.strategy == "coreset":
        desired, rank, near, medoid_of = _coreset(findings, frame, ids, scored, group, weight, action, reason, options)
        scored &= action != "drop"
    else:
        desired = _targets(group, scored, corrupt, options.target)

    fixed = int(((action != "drop") & ~scored).sum())  # val/test, unscored and unlabeled rows stay
    _check_plan_size(desired, fixed, options, int(train.sum()))
    final = desired
    if options.max_total is not None:
        room = options.max_total - fixed
        if room < 0:
            raise UsageError(f"--max-total {options.max_total} is below the {fixed} rows balancing does not touch "
                             "(val/test and unscored rows)")
        # No group can get more than the room: clipping first changes nothing, and keeps a
        # huge --target within the int64 arithmetic of cap_counts.
        final = cap_counts({name: min(want, room) for name, want in desired.items()}, room, seed)

    spec = json.dumps(options.transform, sort_keys=True)
    for name, want in final.items():
        rows = np.flatnonzero(scored & (group == name))
        rows = rows[np.lexsort((order[rows], rank[rows]))]
        if len(rows) >= want:
            action[rows[want:]] = "drop"
            # Beyond the wished size: trimmed by the strategy; between the cap and the wish: by the cap.
            reason[rows[max(want, desired[name]):]] = _surplus_reason(options.strategy, name, desired[name])
            reason[rows[want:desired[name]]] = f"over the --max-total cap ({want} kept in {name})"
            continue
        # A group of only flagged images still grows from them (a corrupt file never: it
        # cannot be augmented).
        sources = rows[~poor[rows]]
        if not len(sources):
            sources = rows[~corrupt[rows]]
        if not len(sources):
            continue
        extra = want - len(rows)
        per = np.full(len(sources), extra // len(sources), dtype=np.int64)
        per[: extra % len(sources)] += 1
        copies[sources] = per
        hit = sources[per > 0]
        action[hit], reason[hit] = "augment", f"{name}: {len(rows)} below the target {want}"
    if options.strategy == "coreset":
        _carry_weights(ids, group, medoid_of, order, action, reason, weight, near)

    plan = pd.DataFrame({
        "sample_id": frame["sample_id"].astype("string").to_numpy(),
        "label": frame["label"].astype("string").to_numpy(),
        "split": frame["split"].astype("string").to_numpy(),
        "group": pd.array(group, dtype="string"),
        "action": action.astype(str),
        "copies": copies,
        "weight": pd.array(np.where(np.isnan(weight), None, weight), dtype="Int64"),
        "transform": np.where(copies > 0, spec, ""),
        "reason": reason.astype(str),
    })
    for column in ("action", "transform", "reason"):
        plan[column] = plan[column].astype("string")
    return plan


def cap_counts(desired: dict, room: int, seed: int) -> dict:
    """Spread a cap of ``room`` rows over groups by water-filling.

    Every group gets ``min(desired, L)`` for the highest level ``L`` whose total fits, and the
    rows left under the cap go one each to the groups still below their wish, in a seeded
    order, so the total is exactly ``min(room, sum(desired))`` and group sizes differ by at
    most one wherever the cap binds: the balance is kept, only the level drops.

    Parameters
    ----------
    desired : dict of str to int
        Wished size per group.
    room : int
        Rows available.
    seed : int

    Returns
    -------
    dict of str to int
    """
    if sum(desired.values()) <= room:
        return dict(desired)
    wants = np.array(list(desired.values()), dtype=np.int64)
    lo, hi = 0, int(wants.max())
    while lo < hi:  # highest level whose total fits
        mid = (lo + hi + 1) // 2
        if np.minimum(wants, mid).sum() <= room:
            lo = mid
        else:
            hi = mid - 1
    final = np.minimum(wants, lo)
    left = room - int(final.sum())
    open_ = np.flatnonzero(wants > lo)
    open_ = open_[np.argsort(hash_order(np.array(list(desired))[open_], seed), kind="stable")]
    final[open_[:left]] += 1
    return dict(zip(desired, final.tolist()))


def apply_plan(frame: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """The manifest after the plan: dropped rows removed; with a coreset, a ``weight`` column.

    Augmented copies are not in it (``datacheck augment`` makes and lists them).
    """
    kept = (plan["action"] != "drop").to_numpy()
    out = frame[kept].copy()
    if plan["weight"].notna().any() and "weight" not in out.columns:
        out["weight"] = plan.loc[kept, "weight"].to_numpy()
    return out.reset_index(drop=True)


def balance_table(frame: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """Per class: training samples before, flagged drops, balancing drops, copies, after; other splits."""
    train = training_mask(frame)
    label = frame["label"].fillna("(unlabeled)").to_numpy()
    action, reason = plan["action"].to_numpy(dtype=str), plan["reason"].to_numpy(dtype=str)
    flagged = (action == "drop") & np.char.startswith(reason.astype(str), "flagged")
    rows = {}
    for name in sorted(set(label)):
        mine = label == name
        t = mine & train
        rows[name] = {
            "train": int(t.sum()),
            "flagged": int((t & flagged).sum()),
            "trimmed": int((t & (action == "drop") & ~flagged).sum()),
            "copies": int(plan["copies"].to_numpy()[t].sum()),
            "after": int((t & (action != "drop")).sum() + plan["copies"].to_numpy()[t].sum()),
            "other splits": int((mine & ~train).sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("class")


def classes_left_without_training_rows(frame: pd.DataFrame, plan: pd.DataFrame) -> list[str]:
    """Classes with training rows in ``frame`` and none after ``plan`` (no row kept, no copy), sorted.

    Dropping flagged samples can empty a class (every image of it an exact copy of another
    class's images), and so can a per-group target of 0 or a tight ``max_total``; a model
    trained on the result then never sees the class, which the plan's table alone hides.
    """
    train = training_mask(frame) & pd.notna(frame["label"]).to_numpy()
    labels = frame["label"].to_numpy(dtype=object)
    kept = (plan["action"] != "drop").to_numpy() | (plan["copies"].to_numpy() > 0)
    before = {str(c) for c in labels[train]}
    return sorted(before - {str(c) for c in labels[train & kept]})


def left_without_training_rows(classes: list[str]) -> str:
    """``"class b left without training rows"`` (``"classes a, b ..."`` for more): the words of
    every note that says so (``balance``, ``fix``)."""
    return f"class{'es' if len(classes) > 1 else ''} {', '.join(classes)} left without training rows"


def group_sizes(plan: pd.DataFrame) -> pd.Series:
    """Rows per balanced group after the plan (kept + copies), by group name."""
    planned = plan[plan["group"].notna() & (plan["action"] != "drop")]
    return (1 + planned["copies"]).groupby(planned["group"]).sum()


# --------------------------------------------------------------------------- pieces


def copy_doubts(findings: pd.DataFrame) -> set:
    """Ids of the samples not to make copies of: flagged by an image-quality check (dark,
    blank, odd-sized, ...) or doubted by a label check, so neither junk nor doubt is multiplied."""
    from ..detectors.registry import checks_with_tag

    flagged = findings[findings["is_issue"] & findings["check"].isin(checks_with_tag("image_quality")
                                                                     + checks_with_tag("label_evidence"))]
    return set(flagged["sample_id"])


def _flags(findings: pd.DataFrame) -> dict[str, set]:
    flagged = findings[findings["is_issue"]]
    return {check: set(rows["sample_id"]) for check, rows in flagged.groupby("check")}


def _subgroups(findings: pd.DataFrame) -> pd.Series:
    """Each sample's sub-cluster of its class (by sample id), from the audit's check tagged
    ``subgroups`` (clusters), read through its detector's details record."""
    from ..detectors.registry import check_owner, checks_with_tag, get_detector_class

    ran = [c for c in checks_with_tag("subgroups") if (findings["check"] == c).any()]
    if not ran:
        raise UsageError("--strategy subclusters needs the clusters check; audit with --checks including clusters")
    return get_detector_class(check_owner(ran[0])).read_details(findings, ran[0], FINDINGS, fields=["cluster"])["cluster"].astype(object)


def _rejected_labels(findings: pd.DataFrame) -> dict[str, str]:
    """Samples whose label every label check that scored them flags (as ``relabel --auto``
    requires), with those checks: on roman with injected flips, label_issues and aum together
    flag flips at precision 0.72, either alone at 0.46-0.55 (benchmarks/detection.py)."""
    from ..detectors.registry import checks_with_tag

    rows = findings[findings["check"].isin(checks_with_tag("label_evidence"))].sort_values("check", kind="stable")
    by_sample = rows.groupby("sample_id", sort=False)
    votes = by_sample["is_issue"].agg(["all", "any"])
    rejected = votes.index[votes["all"] & votes["any"]]
    return by_sample["check"].agg(", ".join).reindex(rejected).to_dict()


def _flagged_drops(frame: pd.DataFrame, findings: pd.DataFrame, flags: dict, train: np.ndarray) -> dict[int, str]:
    """Training rows to drop before balancing, with the reason: flagged label issues and corrupt
    files, and every duplicate but one per group.

    Duplicate groups come from the ``representative`` in the details of exact and near
    duplicate rows, merged (a group of exact copies can sit inside a near-duplicate group).
    The copy kept is the group's representative when it is a training sample that is not
    dropped for another reason, else the first such member by sample id.
    """
    from ..engine.similarity import connected_components

    ids = frame["sample_id"].to_numpy(dtype=object)
    row_of = {s: i for i, s in enumerate(ids)}
    drops = {}
    from ..detectors.registry import checks_with_tag

    # By tag: label evidence (label_issues, aum) and unusable image files (corrupt); outliers
    # and leaked copies are relabel --drop's business, duplicates are thinned below.
    for sample, checks in _rejected_labels(findings).items():
        row = row_of.get(sample)
        if row is not None and train[row]:
            drops[row] = f"flagged: {checks}"
    for check in sorted(set(checks_with_tag("drop_candidate")) & set(checks_with_tag("image_quality"))):
        for sample in flags.get(check, ()):
            row = row_of.get(sample)
            if row is not None and train[row] and row not in drops:
                drops[row] = f"flagged: {check}"
    dup = findings[findings["check"].isin(checks_with_tag("duplicates"))]
    pairs, reps = [], set()
    for sample, check, details in zip(dup["sample_id"], dup["check"], dup["details"]):
        rep = details_object(details, FINDINGS).get("representative")
        if rep is not None and not isinstance(rep, str):
            raise BadDataError(f"{FINDINGS} is damaged: a {check} row's representative is "
                               f"{type(rep).__name__}, not a sample id; rerun the audit")
        if rep is not None and sample in row_of and rep in row_of:
            pairs.append((row_of[sample], row_of[rep]))
            reps.add(row_of[rep])
    if not pairs:
        return drops
    component = connected_components(len(ids), np.array(pairs, dtype=np.int64))
    members = np.unique(np.array(pairs).ravel())
    for comp in np.unique(component[members]):
        rows = members[component[members] == comp]
        candidates = [r for r in rows if train[r] and r not in drops]
        if not candidates:
            continue
        keep = min(candidates, key=lambda r: (r not in reps, str(ids[r])))
        for r in candidates:
            if r != keep:
                drops[r] = f"flagged: duplicate of {ids[keep]}"
    return drops


def _targets(group: np.ndarray, scored: np.ndarray, corrupt: np.ndarray, target: int | None) -> dict:
    """Wished size per group: ``target`` (default: the largest group, so balancing alone drops
    nothing: on roman, where each class is one sub-cluster, a median target dropped 203 images
    and lost the gain of balancing); a group with no decodable source cannot grow past its size."""
    names, sizes = np.unique(group[scored].astype(str), return_counts=True)
    if not len(sizes):
        raise UsageError("there is no labeled training row to balance (balance plans the train split only; "
                         "a dataset without splits counts as train)")
    if target is None:
        target = int(sizes.max())
    if isinstance(target, dict):
        # A group the plan does not have (a typo: "cta") kept every group at its own size, and
        # the plan was written as if no target had been given.
        unknown = sorted(set(map(str, target)) - set(names.tolist()))
        if unknown:
            shown = ", ".join(map(str, names[:20])) + (", ..." if len(names) > 20 else "")
            raise UsageError(f"target names group(s) {', '.join(map(repr, unknown[:3]))} that the plan does not have; "
                             f"its groups: {shown}")
    desired = {}
    for name, size in zip(names, sizes):
        want = int(target.get(str(name), size)) if isinstance(target, dict) else target
        sources = int((scored & (group == name) & ~corrupt).sum())
        desired[str(name)] = want if sources or size >= want else int(size)
    return desired


def _coreset(findings, frame, ids, scored, group, weight, action, reason, options):
    """Mark the coreset's non-selected training rows as dropped and return the wished size per
    class (``budget`` of the class), a keep-first rank (heaviest medoids first, by the audit's
    weights), each medoid's nearest other medoids (sample id -> ids, nearest first; none for a
    run audited before the details had ``near``) and, (N,) object, the medoid id of every
    training row the coreset scored (None elsewhere), which :func:`_carry_weights` counts."""
    rows = findings[findings["check"] == "coreset"]
    if rows.empty:
        raise UsageError("--strategy coreset needs the coreset check; audit with --checks including coreset")
    details = [details_object(d, FINDINGS) for d in rows["details"]]
    selected = pd.Series([bool(d.get("selected")) for d in details], index=rows["sample_id"].to_numpy())
    near = {str(i): [n for n in d["near"] if isinstance(n, str)] for i, d in zip(rows["sample_id"], details)
            if isinstance(d.get("near"), list)}
    weights = pd.Series([d.get("weight") for d in details], index=rows["sample_id"].to_numpy(), dtype=object)
    medoids = pd.Series([d.get("medoid") for d in details], index=rows["sample_id"].to_numpy(), dtype=object)
    in_core = pd.Series(ids).map(selected).to_numpy(dtype=object)
    member = pd.notna(in_core) & training_mask(frame)
    # The detector selects over every split; its budget is the share it selected overall.
    share = float(selected.mean())
    if options.budget > share + 0.01:
        raise UsageError(f"--budget {options.budget} is above the audit's coreset ({share:.2f} of the scored "
                         "samples); audit again with a larger coreset.budget")
    core_rows = scored & pd.notna(in_core)
    medoid_of = np.where(core_rows, pd.Series(ids).map(medoids).to_numpy(dtype=object), None)
    weight[core_rows] = 0  # recounted over the training split by _carry_weights
    # The audit's weights (every split) rank the medoids: the most representative kept first.
    w = pd.Series(ids).map(weights).to_numpy(dtype=object)
    rank = -np.where(core_rows & pd.notna(w), w, 0).astype(float)
    out = scored & pd.notna(in_core) & ~in_core.astype(bool)
    action[out], reason[out] = "drop", "outside the coreset"
    unscored = scored & pd.isna(in_core)
    reason[unscored] = "not scored by coreset: kept as is"
    group[unscored] = None
    desired = {}
    core = scored & ~out & ~unscored
    for name in np.unique(group[core].astype(str)):
        class_size = int((member & (frame["label"].to_numpy(dtype=object) == name)).sum())
        desired[str(name)] = min(int((core & (group == name)).sum()), math.ceil(options.budget * class_size))
    scored[unscored] = False
    return desired, rank, near, medoid_of


def _carry_weights(ids, group, medoid_of, order, action, reason, weight, near):
    """Weigh every coreset medoid the plan keeps by the training samples it stands for, so that
    a class's weights sum to its training samples that the plan stands for, as CRUST's
    cluster sizes do: those the coreset check scored, less those ``drop_flagged`` drops (label
    issues, extra duplicates: they leave the training set, so no weight stands for them;
    corrupt files have no model output and are never scored).

    The audit's weights cannot be kept: it selects over every split, so a training medoid's
    weight counts the val/test samples assigned to it, and training samples assigned to a
    val/test medoid were carried by none. So each such training sample counts 1 for its
    ``medoid`` when the plan keeps it; when it does not (a val/test medoid, one dropped for a
    smaller budget, the ``--max-total`` cap or as flagged), for the first kept medoid among
    that medoid's nearest that the audit recorded (``near``); when none of them is kept, or the
    audit recorded none, those samples are spread over the class's kept medoids in proportion
    to their weights (after the other counts), whole numbers by largest remainders (ties in
    ``order``). A class left no kept medoid (by the cap, or every training medoid of it flagged
    or none in the training split) carries nothing: the plan notes it as left without training
    rows. A medoid not kept gets weight 0 (null outside the training split), and its reason
    says where its samples went.

    Parameters
    ----------
    ids, group : ndarray of shape (N,), object
        Sample ids and the plan's groups (the class).
    medoid_of : ndarray of shape (N,), object
        The medoid id of each training sample the plan stands for (None elsewhere).
    order : ndarray of shape (N,), uint64
        :func:`hash_order` keys.
    action, reason : ndarray of shape (N,), object
        Read, and ``reason`` appended to.
    weight : ndarray of shape (N,), float64
        Set in place for the rows of ``medoid_of``.
    near : dict of str to list of str
        Sample id -> ids of its nearest other medoids of its class, nearest first.
    """
    row_of = {str(s): r for r, s in enumerate(ids)}
    member = pd.notna(medoid_of)
    for name in np.unique(group[member].astype(str)):
        mine = member & (group == name)
        kept = np.flatnonzero(mine & (action != "drop"))  # the kept coreset: medoids only
        if not len(kept):
            continue  # nothing can carry the class: balance notes it as left without training rows
        kept = kept[np.argsort(order[kept], kind="stable")]
        carrier = {str(ids[r]): r for r in kept}
        spread = []
        for m, n in sorted(pd.Series(medoid_of[mine].astype(str)).value_counts().items()):
            if m in carrier:
                weight[carrier[m]] += n
                continue
            to = next((carrier[s] for s in near.get(m, ()) if s in carrier), None)
            if to is None:
                spread.append((m, n))
                continue
            weight[to] += n
            _note(reason, row_of.get(m), mine, n, f"moved to its nearest kept medoid {ids[to]}")
        if not spread:
            continue
        total = sum(n for _, n in spread)
        shares = weight[kept].astype(np.int64)
        if shares.sum() == 0:  # damaged details: no kept medoid named its own medoid
            shares[:] = 1
        add, left = np.divmod(total * shares, shares.sum())
        add[np.argsort(-left, kind="stable")[: total - int(add.sum())]] += 1
        weight[kept] += add
        for m, n in spread:
            why = "none of its nearest medoids is kept" if m in near else "the audit recorded no nearest medoids"
            _note(reason, row_of.get(m), mine, n, f"spread over the {len(kept)} kept medoid{'s' * (len(kept) != 1)} "
                                                   f"of {name} in proportion to their weights ({why})")


def _note(reason, row, mine, n, where):
    """Append to the reason of a medoid not kept where the weight of its training samples went:
    ``its weight n ...`` for a training medoid of the plan, else (val/test, flagged) ``the
    weight of its n training samples ...``."""
    if row is None:  # a medoid id the manifest does not have: damaged details, nowhere to say it
        return
    what = f"its weight {n}" if mine[row] else f"the weight of its {n} training sample{'s' * (n != 1)}"
    reason[row] += f"; {what} {where}"


def _check_plan_size(desired: dict, fixed: int, options: BalanceOptions, n_train: int) -> None:
    """Refuse a plan of more training rows than :data:`MAX_GROWTH` × ``n_train`` (at least
    :data:`MIN_PLAN_LIMIT`), counted after the ``--max-total`` cap, which leaves the training
    split ``max_total - fixed`` rows. Python integers throughout: a mistyped --target may not fit int64."""
    planned = sum(desired.values())
    if options.max_total is not None:
        planned = min(planned, options.max_total - fixed)
    limit = max(MAX_GROWTH * n_train, MIN_PLAN_LIMIT)
    if planned <= limit:
        return
    asked = ("the per-group targets" if isinstance(options.target, dict)
             else f"--target {options.target}" if options.target is not None
             else f"the default target ({max(desired.values()):,}, the largest group)")
    raise UsageError(f"{asked} would make {planned:,} training rows, over the limit of {limit:,} ({MAX_GROWTH} x the "
                     f"{n_train:,} training samples, and at least {MIN_PLAN_LIMIT:,}); choose a smaller --target, or "
                     f"cap the result with --max-total N (N up to {limit + fixed:,}, all splits included)")


def _surplus_reason(strategy: str, name: str, want: int) -> str:
    if strategy == "coreset":
        return f"coreset trimmed to the budget ({want} kept in {name})"
    return f"downsampled: {name} over the target {want}"


# --------------------------------------------------------------------------- the command


@dataclass
class BalanceResult:
    """What :func:`balance` planned and wrote.

    Attributes
    ----------
    plan : pandas.DataFrame
        :data:`PLAN_COLUMNS`, one row per audited sample.
    manifest : pandas.DataFrame
        The manifest after the plan (no augmented copies yet).
    table : pandas.DataFrame
        Per-class counts (:func:`balance_table`).
    written : dict of str to str
    notes : list of str
        What the plan could not do that a user should know, e.g. classes it leaves without
        training rows (``datacheck balance`` prints each as a ``datacheck: note:`` line).
    """

    plan: pd.DataFrame
    manifest: pd.DataFrame
    table: pd.DataFrame
    written: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


@keyword_errors()
def balance(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    options: BalanceOptions | None = None,
    *,
    strategy: str = BalanceOptions.strategy,
    target: int | dict | None = BalanceOptions.target,
    budget: float = BalanceOptions.budget,
    drop_flagged: bool = BalanceOptions.drop_flagged,
    max_total: int | None = BalanceOptions.max_total,
    seed: int | None = None,
    dataset: str | os.PathLike | None = None,
    command: list[str] | None = None,
) -> BalanceResult:
    """``datacheck balance``: plan from an audit run and write ``plan.parquet``, ``plan.json``
    and the resulting manifest into ``out``. Never touches the dataset.

    Parameters
    ----------
    options : BalanceOptions, optional
        Every setting at once (as the CLI and ``datacheck fix`` pass them); when given, the
        keyword settings below are not read. ``options.seed`` None means the audit's seed.
    strategy, target, budget, drop_flagged, max_total, seed
        The settings of :class:`BalanceOptions`, when ``options`` is not given; ``seed``
        None (the default here) is the audit's seed.
    dataset : path-like, optional
        Where the audited dataset is now, if it moved since the audit.
    command : list of str, optional
        The command line; given (by ``datacheck balance``), messages name its options
        (``--max-total``), else this function's keywords (``max_total``).
    """
    from ..audit_run import open_run
    from ..manifest import write_manifest
    from ..runs import Sources, check_outputs, folder_lock, output_folder

    if options is None:
        options = BalanceOptions(strategy=strategy, target=target, budget=budget, drop_flagged=drop_flagged,
                                 max_total=max_total, seed=seed)
    elif not isinstance(options, BalanceOptions):
        raise UsageError(f"options must be a BalanceOptions, got {type(options).__name__}; "
                         "or give its settings as keywords (strategy=..., target=...)")
    else:
        # The keywords are not read with options: one given too was silently ignored
        # (strategy="classes" planned by sub-clusters).
        given = {"strategy": (strategy, BalanceOptions.strategy), "target": (target, BalanceOptions.target),
                 "budget": (budget, BalanceOptions.budget), "drop_flagged": (drop_flagged, BalanceOptions.drop_flagged),
                 "max_total": (max_total, BalanceOptions.max_total), "seed": (seed, None)}
        twice = [f"{name}={value!r:.40}" for name, (value, default) in given.items()
                 if value is not default and value != default]
        if twice:
            raise UsageError("give the settings either as options (a BalanceOptions) or as keywords, not both: "
                             + ", ".join(twice))
    options.validate()
    out = output_folder(out, PLAN_MARKER, "balance plan")
    run = open_run(run_dir)
    manifest = run.manifest(dataset)
    if manifest.format == "arrays":
        raise UsageError(f"the audit in {run.path} read --pred-probs arrays, not image files; there is nothing to balance")
    check_outputs(Sources.of(manifest), folders={"--out": out})
    frame = manifest.frame
    require_training_rows(frame, str(manifest.source))  # before the strategy's needs: no audit gives rows
    if options.seed is None:
        options = replace(options, seed=run.seed)
    needed = {"subclusters": "clusters", "coreset": "coreset"}.get(options.strategy)
    if needed and not (run.findings["check"] == needed).any():
        from .relabel import turned_off

        off = turned_off(run.summary, [needed])
        if off:  # plan_balance would ask for an audit "with --checks including" it, which this one had
            raise UsageError(f"--strategy {options.strategy} needs the {needed} check's findings, and in the audit "
                             f"in {run.path} {off}; plan with --strategy classes")
    plan = plan_balance(frame, run.findings, options)
    new = apply_plan(frame, plan)
    result = BalanceResult(plan, new, balance_table(frame, plan))
    emptied = classes_left_without_training_rows(frame, plan)
    if emptied:
        dropped = plan["label"].isin(emptied) & (plan["action"] == "drop")
        their = "their" if len(emptied) > 1 else "its"
        reasons = plan.loc[dropped, "reason"].astype(str)
        if reasons.str.startswith("flagged: ").all():
            option = "--drop-flagged" if command is not None else "drop_flagged"
            # "flagged: duplicate of a/0.png" names one kept copy each: the kind is enough here.
            kinds = sorted({"duplicates" if r.startswith("flagged: duplicate of ") else r.removeprefix("flagged: ")
                            for r in reasons})
            why = f"{option} dropped all {their} training samples, flagged by the audit ({'; '.join(kinds)})"
        else:
            why = f"the plan drops all {their} training samples"
        result.notes.append(f"{left_without_training_rows(emptied)}: {why}; see the reason column of {PLAN_FILE}")
    suffix = {"parquet": ".parquet", "jsonl": ".jsonl"}.get(manifest.format, ".csv")
    counts = {a: int((plan["action"] == a).sum()) for a in ACTIONS}
    counts["copies"] = int(plan["copies"].sum())
    # plan.json first, and an earlier plan's files gone before it: Ctrl-C between two files
    # then leaves a folder the same command takes again (without plan.json it was refused as
    # not a plan), and never this plan.json beside another plan's rows (augment says the
    # rows are missing instead).
    with folder_lock(out):
        for name in (PLAN_FILE, f"manifest{suffix}"):
            (out / name).unlink(missing_ok=True)
        PlanInfo(run=str(run.path.resolve()), manifest_fingerprint=manifest.fingerprint, seed=options.seed,
                 transform=options.transform, dataset=str(manifest.source.resolve()), dataset_root=str(manifest.root),
                 manifest_format=manifest.format,
                 options={"strategy": options.strategy, "target": options.target, "budget": options.budget,
                          "drop_flagged": options.drop_flagged, "max_total": options.max_total},
                 counts=counts).write(out / PLAN_MARKER)
        result.written["plan"] = str(write_plan_rows(out / PLAN_FILE, plan))
        result.written["manifest"] = str(write_manifest(new, manifest.root, out / f"manifest{suffix}"))
        result.written["plan_json"] = str(out / PLAN_MARKER)
    return result

"""Turn an audit's findings into label fixes, removals and a review queue.

:func:`plan_changes` decides, per sample, one action:

``relabel``
    ``auto``: a label check flagged the sample, the out-of-fold model suggests another class
    with probability ``>= min_confidence``, every other label check that ran agrees the label
    is wrong (``aum``, when the audit ran it, flagged the sample), and no image problem (corrupt,
    off-class outlier, blank, exposure, blur) makes the model's opinion of it unreliable. An
    outlier flag does not count when every label check rejects the label: the embedding was
    learned from that wrong label, which explains the sample's isolation.
``drop``
    ``drop``: corrupt files, off-class outliers, duplicates beyond one representative per
    group, and the val/test copies of images that leak from another split.
``review``
    flagged by a label check or as an outlier, or suggested with confidence but not
    meeting the ``auto`` evidence: left as it is in the new manifest, queued for a person.
``keep``
    a person decided to keep the given label (only from an imported review).

:func:`apply_changes` produces the new manifest; nothing touches the source files.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UsageError, keyword_errors
from ..fusion import CHECK as FUSED_CHECK, LABEL_CHECK, review_ranks
from ..gates import is_off
from ..schema import CHANGES_SCHEMA

ACTIONS = ("relabel", "drop", "review", "keep")
# Which checks mean what is read from the detectors' tags (datacheck.detectors.base.TAGS), so
# a new detector reaches relabel by its tags alone: "label_evidence" (the given label is
# wrong), "drop_candidate" (removed by --drop; duplicates: all but the representative),
# "unreliable_input" (the model's suggestion for the sample is not trusted: never
# auto-relabelled), "off_distribution" (queued for review), "subgroups" (a rare sub-cluster:
# an off-distribution member is queued for review even with --drop).

CHANGES_COLUMNS = CHANGES_SCHEMA.names
#: Marks an ``--out`` folder as relabel's own (it may be written again).
RELABEL_MARKER = "relabel.json"


def plan_changes(
    frame: pd.DataFrame,
    findings: pd.DataFrame,
    *,
    auto: bool = False,
    drop: bool = False,
    min_confidence: float = 0.6,
) -> pd.DataFrame:
    """Decide an action for every sample the audit flagged.

    Parameters
    ----------
    frame : pandas.DataFrame
        The audited manifest (``sample_id, path, label, split, ...``).
    findings : pandas.DataFrame
        The audit's findings (findings schema).
    auto : bool
        Apply suggested labels where the evidence is strong (see the module docstring).
    drop : bool
        Remove corrupt files, off-class outliers, surplus duplicates and leaked copies.
    min_confidence : float in (0, 1]
        Out-of-fold probability of the suggested class that ``auto`` requires.

    Returns
    -------
    pandas.DataFrame
        One row per affected sample, columns :data:`CHANGES_COLUMNS`, in manifest order;
        ``checks`` lists the checks that flagged the sample, comma-separated.
    """
    from ..detectors.registry import checks_with_tag

    if isinstance(min_confidence, bool) or not isinstance(min_confidence, numbers.Real) or not 0 < min_confidence <= 1:
        raise UsageError(f"--min-confidence must be in (0, 1], got {min_confidence!r:.40}")
    label_checks = set(checks_with_tag("label_evidence"))
    drop_checks = set(checks_with_tag("drop_candidate"))
    unreliable_checks = set(checks_with_tag("unreliable_input"))
    review_checks = set(checks_with_tag("off_distribution"))
    subgroup_checks = set(checks_with_tag("subgroups"))
    quality_checks = set(checks_with_tag("image_quality"))
    evidence = findings[findings["check"].isin(label_checks)]
    suggesting = evidence[evidence["suggested_label"].notna()]
    if auto and suggesting.empty:
        raise UsageError("--auto needs label suggestions; audit with the label_issues check")
    flagged = findings[findings["is_issue"] & ~findings["check"].isin([FUSED_CHECK, LABEL_CHECK])]  # the checks' own flags
    checks = flagged.groupby("sample_id", sort=False)["check"].agg(lambda c: ",".join(sorted(set(c))))
    # One suggestion per sample: the most confident of the label checks that make them.
    suggestion = (suggesting.sort_values("suggested_confidence", ascending=False, kind="stable")
                  .drop_duplicates("sample_id"))
    # Plain dicts, looked up once per manifest row: label_issues suggests a class for every
    # scored sample, and a ``.loc`` per row cost 0.35 ms (50,000 rows: 18 s, longer than their audit).
    suggestion = dict(zip(suggestion["sample_id"], zip(suggestion["suggested_label"].astype(object),
                                                       suggestion["suggested_confidence"].astype(object),
                                                       suggestion["check"].astype(object))))
    scored_by = evidence.groupby("sample_id", sort=False)["check"].agg(set).to_dict()
    checks = checks.to_dict()

    rows = []
    for sample_id, label in zip(frame["sample_id"], frame["label"]):
        flags = set(checks.get(sample_id, "").split(",")) - {""}
        new_label, confidence, source = None, None, None
        if sample_id in suggestion:
            new_label, confidence, source = suggestion[sample_id]
        disagrees = new_label is not None and not pd.isna(label) and new_label != label
        drop_reasons = sorted(flags & drop_checks)
        # Far from the data (outliers) but in a rare sub-cluster of its class (clusters), with
        # nothing wrong in the image itself: a style the class holds a few of, which is what
        # balancing grows, or junk that repeats. Only a person can tell: queued for review, not
        # dropped. (An odd-shaped scan in a sub-cluster of its own was grown 18-fold otherwise.)
        rare_style = (bool(flags & subgroup_checks) and set(drop_reasons) <= review_checks
                      and not flags & quality_checks)
        if drop and drop_reasons and not rare_style:
            rows.append((sample_id, "drop", label, None, "flagged: " + ", ".join(drop_reasons), flags, confidence))
            continue
        label_votes = flags & label_checks
        confident = disagrees and confidence is not None and confidence >= min_confidence
        # Every other label check that scored the sample (AUM, when audited) must flag it too.
        others_agree = scored_by.get(sample_id, set()) - {source} <= flags
        unreliable = flags & unreliable_checks
        if label_votes and scored_by.get(sample_id, set()) <= flags:
            # Every label check rejects the label: the sample's isolation in an embedding space
            # learned from that wrong label is explained by it, not a sign of an off-class image.
            unreliable -= review_checks
        # A label check must have flagged it: every scored sample gets a suggestion, and an
        # audit of arrays alone (label_issues the only label check) relabelled every confident
        # disagreement, flagged or not (cifar10's test set: 551 changed, 267 of them unflagged).
        if auto and confident and label_votes and others_agree and not unreliable:
            rows.append((sample_id, "relabel", label, new_label,
                         f"suggested with p={confidence:.2f} ({', '.join(sorted(label_votes))})", flags, confidence))
        elif label_votes or confident or flags & review_checks:
            why = ", ".join(sorted(label_votes | (flags & review_checks))) or f"suggested with p={confidence:.2f}"
            rows.append((sample_id, "review", label, new_label if disagrees else None, why, flags, confidence))
    changes = pd.DataFrame(rows, columns=CHANGES_COLUMNS)
    changes = _keep_every_class(changes, frame, drop_checks, review_checks)
    changes["checks"] = [",".join(sorted(f)) for f in changes["checks"]]
    return _typed(changes)


def _keep_every_class(changes: pd.DataFrame, frame: pd.DataFrame, drop_checks: set, review_checks: set) -> pd.DataFrame:
    """Queue for review instead of dropping the samples of a class that ``--drop`` would leave
    without a training row, where they are dropped only for lying far from the data (the
    ``off_distribution`` checks). A class of 3 scans was measured against the whole data (too
    few for its own median) and dropped whole: its label vanished from the training set on
    the strength of "unusual", which a rare class is by being rare. A class whose files are
    corrupt or duplicates is dropped as before."""
    in_training = frame["split"].eq("train").fillna(False).to_numpy(bool) if "split" in frame else None
    rows = frame[in_training] if in_training is not None and in_training.any() else frame  # no train split: all rows
    dropped = set(changes.loc[changes["action"] == "drop", "sample_id"])
    if not dropped:
        return changes
    emptied = {label for label, ids in rows.groupby("label", dropna=True)["sample_id"] if set(ids) <= dropped}
    if not emptied:
        return changes
    by_id = frame.set_index("sample_id")["label"]
    far_only = np.array([(flags & drop_checks) <= review_checks for flags in changes["checks"]], bool)  # not corrupt, no copy
    spare = (changes["action"] == "drop") & changes["sample_id"].map(by_id).isin(emptied) & far_only
    changes = changes.copy()
    changes.loc[spare, "action"] = "review"
    changes.loc[spare, "reason"] = changes.loc[spare, "reason"].str.replace(
        "flagged: ", "", n=1) + " (dropping them would leave the class without training rows)"
    return changes


#: The start of relabel's note on a run whose label checks did not judge (fix says so itself).
NO_LABEL_DOUBTS = "no label doubts to review or drop"


def turned_off(summary: dict, checks) -> str:
    """Which of ``checks`` the audit ran but turned off, and why, from its ``summary.json``
    (``"label_issues was off: the labels of the 300 scored sample(s) name one class ..."``), or ""
    when each either did not run or ran. A check that is off writes no findings, so only the
    summary tells "not asked for" from "asked for, nothing to work on" (a dataset of one class)."""
    entries = {check: (summary.get("checks") or {}).get(check, {}) for check in checks}
    return "; ".join(f"{check} was {entry['threshold']['rule']}" for check, entry in entries.items() if is_off(entry))


def apply_changes(frame: pd.DataFrame, changes: pd.DataFrame, *, hold_out_review: bool = False) -> pd.DataFrame:
    """The new manifest: ``drop`` rows removed, ``relabel`` rows with their new label.

    Rows under review are unchanged, or left out with ``hold_out_review``; kept rows are
    unchanged; the order of the remaining rows is kept.
    """
    actions = changes.set_index("sample_id")
    out = frame.copy()
    relabel = actions[actions["action"] == "relabel"]["new_label"]
    hit = out["sample_id"].isin(relabel.index)
    out.loc[hit, "label"] = out.loc[hit, "sample_id"].map(relabel).astype("string")
    dropped = actions.index[actions["action"].isin(["drop", "review"] if hold_out_review else ["drop"])]
    return out[~out["sample_id"].isin(dropped)].reset_index(drop=True)


def merge_decisions(changes: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """Human decisions (``sample_id, action, new_label``) override the policy's plan."""
    decided = decisions.set_index("sample_id")
    planned = changes.set_index("sample_id")
    merged = planned.reindex(planned.index.union(decided.index, sort=False))
    merged.loc[decided.index, "action"] = decided["action"]
    merged.loc[decided.index, "new_label"] = decided["new_label"]
    merged.loc[decided.index, "reason"] = "review decision"
    merged.loc[decided.index, "confidence"] = np.nan
    return _typed(merged.rename_axis("sample_id").reset_index())


def fill_old_labels(changes: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Fill ``old_label`` from the manifest (rows that came only from a review file lack it);
    a decision to relabel a sample to the label it has is a ``keep``."""
    labels = frame.set_index("sample_id")["label"]
    changes = changes.copy()
    changes["old_label"] = changes["sample_id"].map(labels).astype("string")
    changes["checks"] = changes["checks"].fillna("")
    unchanged = (changes["action"] == "relabel") & (changes["new_label"] == changes["old_label"]).fillna(False)
    changes.loc[unchanged, "action"] = "keep"
    changes.loc[unchanged, "new_label"] = pd.NA
    return changes


def change_table(frame: pd.DataFrame, changes: pd.DataFrame, *, hold_out_review: bool = False) -> pd.DataFrame:
    """Per class: samples, relabelled away, relabelled in, dropped, queued for review, after
    (less the queued ones with ``hold_out_review``)."""
    counts = frame["label"].fillna("(unlabeled)").value_counts().rename("samples")
    by = {a: changes[changes["action"] == a] for a in ACTIONS}
    table = pd.DataFrame({
        "samples": counts,
        "relabel_out": by["relabel"]["old_label"].value_counts(),
        "relabel_in": by["relabel"]["new_label"].value_counts(),
        "drop": by["drop"]["old_label"].fillna("(unlabeled)").value_counts(),
        "review": by["review"]["old_label"].fillna("(unlabeled)").value_counts(),
    }).fillna(0).astype(int)
    table["after"] = table["samples"] - table["relabel_out"] + table["relabel_in"] - table["drop"]
    if hold_out_review:
        table["after"] -= table["review"]
    return table.sort_index().rename_axis("class")


def _emptied_classes(frame: pd.DataFrame, new_frame: pd.DataFrame) -> list[str]:
    """A note naming the classes with training rows in ``frame`` and none in ``new_frame``
    (a model trained on the result would not know them), or no note."""
    from .balance import left_without_training_rows, training_mask

    before = set(frame.loc[training_mask(frame), "label"].dropna())
    after = set(new_frame.loc[training_mask(new_frame), "label"].dropna())
    gone = sorted(before - after)
    return [f"{left_without_training_rows(gone)}: relabel moved or dropped every one"] if gone else []


def action_counts(changes: pd.DataFrame) -> dict:
    """Samples per action, for ``--json`` and ``relabel.json``."""
    return {a: int((changes["action"] == a).sum()) for a in ACTIONS}


def _typed(changes: pd.DataFrame) -> pd.DataFrame:
    out = changes.loc[:, CHANGES_COLUMNS].copy()
    for column in ("sample_id", "action", "old_label", "new_label", "reason", "checks"):
        out[column] = out[column].astype("string")
    out["confidence"] = pd.to_numeric(out["confidence"], errors="coerce").astype("float64")
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- the command


@dataclass
class RelabelResult:
    """What :func:`relabel` decided and wrote.

    Attributes
    ----------
    changes : pandas.DataFrame
        One row per affected sample (:data:`CHANGES_COLUMNS`).
    manifest : pandas.DataFrame
        The new manifest (paths relative to the dataset root).
    table : pandas.DataFrame
        Per-class counts before and after (:func:`change_table`).
    written : dict of str to str
        Files and folders written, by kind; empty for a dry run.
    notes : list of str
        What the changes did that a person should know: the classes they leave without
        training rows (every sample of them dropped or relabelled away); the unlabeled rows
        that ``materialize_to``'s folder leaves out.
    """

    changes: pd.DataFrame
    manifest: pd.DataFrame
    table: pd.DataFrame
    written: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


@keyword_errors({"--materialize": "materialize_to"})
def relabel(
    run_dir: str | os.PathLike,
    *,
    auto: bool = False,
    drop: bool = False,
    min_confidence: float = 0.6,
    import_review: str | os.PathLike | None = None,
    export_review: str | os.PathLike | None = None,
    export_label_studio: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    materialize_to: str | os.PathLike | None = None,
    dataset: str | os.PathLike | None = None,
    hold_out_review: bool = False,
    command: list[str] | None = None,
) -> RelabelResult:
    """``datacheck relabel``: plan fixes from an audit run, then write what was asked for.

    Without ``out``, ``materialize_to`` or an export it is a dry run. The audited dataset is
    reloaded and must be unchanged since the audit (see :meth:`AuditRun.manifest`). With
    ``hold_out_review`` the samples queued for review are left out of the new manifest (and
    the materialized copy) until a decision for them is imported.

    ``command``: the command line; given (by ``datacheck relabel``), messages name its options
    (``--min-confidence``), else this function's keywords (``min_confidence``).
    """
    from ..audit_run import open_run
    from ..manifest import write_manifest
    from ..runs import Sources, check_outputs, folder_lock, output_folder, write_json, write_parquet
    from ..schema import changes_table
    from .materialize import check_target, materialize
    from .review import (label_config_path, label_studio_choices, read_decisions, review_queue, write_label_studio,
                         write_review_csv)

    flags = {"auto": auto, "drop": drop, "hold_out_review": hold_out_review}
    for name, value in flags.items():  # drop="no" is truthy: it must not pass for True
        if not isinstance(value, (bool, np.bool_)):
            raise UsageError(f"{name} must be True or False, got {value!r:.40}")
    auto, drop, hold_out_review = (bool(v) for v in flags.values())
    run = open_run(run_dir)
    out_dir = output_folder(out, RELABEL_MARKER, "relabel output") if out is not None else None
    if materialize_to is not None:
        check_target(materialize_to)
    manifest = run.manifest(dataset)
    if materialize_to is not None and manifest.format == "arrays":  # refused before any file is written
        raise UsageError("--materialize needs image files; this run was audited from --pred-probs arrays")
    suffix = {"parquet": ".parquet", "jsonl": ".jsonl"}.get(manifest.format, ".csv")
    own = [f"manifest{suffix}", "changes.parquet", RELABEL_MARKER] if out_dir is not None else []
    check_outputs(
        Sources.of(manifest), run=run.path,
        files={"--export-review": export_review, "--export-label-studio": export_label_studio,
               "--export-label-studio's config": label_config_path(Path(export_label_studio)) if export_label_studio else None,
               **{f"--out's {name}": out_dir / name for name in own}},
        folders={"--materialize": materialize_to},
        keep={"the review being imported (--import-review)": import_review}, own=out_dir,
    )
    frame = manifest.frame
    from ..detectors.registry import checks_with_tag

    label_checks = checks_with_tag("label_evidence")
    evidence = run.findings[run.findings["check"].isin(label_checks) & run.findings["suggested_label"].notna()]
    # The label checks the audit ran but turned off (a model at chance, one class), when none suggested a label.
    off = "" if len(evidence) else turned_off(run.summary, label_checks)
    if auto and off:
        # plan_changes would ask for an audit "with the label_issues check", which this one had.
        raise UsageError(f"--auto needs label suggestions, and the audit in {run.path} made none: {off}")
    changes = plan_changes(frame, run.findings, auto=auto, drop=drop, min_confidence=min_confidence)
    classes = list(run.classes())
    if export_label_studio is not None:
        label_studio_choices(classes)  # a class it cannot offer: refused before any file is written
    if import_review is not None:
        suggested = evidence.drop_duplicates("sample_id").set_index("sample_id")["suggested_label"]
        decisions = read_decisions(Path(import_review), frame, suggested, classes)
        changes = fill_old_labels(merge_decisions(changes, decisions), frame)
    new_frame = apply_changes(frame, changes, hold_out_review=hold_out_review)
    result = RelabelResult(changes, new_frame, change_table(frame, changes, hold_out_review=hold_out_review),
                           notes=_emptied_classes(frame, new_frame))
    if off:
        # A review or a drop on a run whose label checks did not judge (a model at chance): the
        # queue holds no label doubt, which an empty queue alone does not tell from clean labels.
        result.notes.append(f"{NO_LABEL_DOUBTS}: {off}")

    if materialize_to is not None and manifest.format != "arrays":
        from .augment import layout
        from .materialize import folder_rows

        held = folder_rows(new_frame)
        layout(held.assign(copies=0))  # a name it refuses: before any file is written
        if len(held) < len(new_frame):
            result.notes.append(f"{len(new_frame) - len(held)} unlabeled row(s) are not in the folder {materialize_to}: "
                                "beside class folders a folder dataset has no place for images without a class")
    queue = review_queue(frame, changes, review_ranks(run.findings))
    with folder_lock(out_dir):  # None: no --out folder to lock (exports are single files)
        if export_review is not None:
            result.written["review"] = str(write_review_csv(queue, Path(export_review)))
        if export_label_studio is not None:
            tasks, config = write_label_studio(queue, classes, Path(export_label_studio), f"datacheck {run.path.name}")
            result.written["label_studio"], result.written["label_studio_config"] = str(tasks), str(config)
        if out_dir is not None:
            # The marker first, and an earlier output's files gone before it: Ctrl-C between two
            # files then leaves a folder the same command takes again (without its marker, the
            # folder was refused as not ours), and never this marker beside another run's files.
            for name in own[:-1]:
                (out_dir / name).unlink(missing_ok=True)
            write_json(out_dir / RELABEL_MARKER, {
                "run": str(run.path.resolve()), "dataset": str(manifest.source.resolve()),
                "dataset_root": str(manifest.root),
                "manifest_fingerprint": manifest.fingerprint, "auto": auto, "drop": drop,
                "min_confidence": float(min_confidence), "hold_out_review": hold_out_review,
                "import_review": str(import_review) if import_review else None,
                "counts": action_counts(changes), "notes": result.notes,
            })
            # an arrays audit carries its paths (if any); none were read
            arrays = run.info.manifest_format == "arrays"
            result.written["manifest"] = str(write_manifest(new_frame, None if arrays else manifest.root,
                                                            out_dir / f"manifest{suffix}"))
            result.written["changes"] = str(write_parquet(out_dir / "changes.parquet", changes_table(changes)))
            result.written["relabel"] = str(out_dir / RELABEL_MARKER)
        if materialize_to is not None:
            materialize(new_frame, manifest.root, materialize_to)
            result.written["materialized"] = str(materialize_to)
    return result


"""``datacheck fix``: one command from a raw dataset to a better training set, under a budget.

The existing commands, chained, each in its own step folder ``OUT/steps/<n>-<name>/``:

1. ``audit``: :func:`datacheck.pipeline.audit` of the dataset (the config's checks, with
   ``clusters`` and ``label_issues`` added when a later step needs them);
2. ``relabel``: :func:`datacheck.actions.relabel.relabel` with ``auto`` and ``drop``: labels
   fixed where the evidence agrees, corrupt files, off-class outliers, surplus duplicates and
   leaked val/test copies removed, the uncertain queued for review; the repaired set is
   materialised as a folder;
3. ``reaudit``: the repaired folder audited again (its sub-clusters and model outputs are what
   balancing and boosting read);
4. ``balance``: :func:`datacheck.actions.balance.balance` with one target per class ×
   sub-cluster, chosen by :func:`datacheck.actions.budget.budget_targets` so that the result has exactly ``budget``
   rows (boosting copies included);
5. ``augment``: :func:`datacheck.actions.augment.augment` makes the planned copies and the
   data-boosting copies near the validation samples the repaired set's model gets wrong;
6. ``output``: ``OUT/dataset/<split>/<class>/`` (hard links), ``OUT/manifest.csv`` with the
   provenance of every row, ``OUT/review.csv``;
7. ``final_audit``: the result audited, for the before/after summary ``OUT/summary.json``: by
   default with the checks that need no model (image properties, duplicates, leakage,
   imbalance), as the model checks' "after" is the re-audit's (``[fix] final_model_checks``
   runs them too); the image properties with the re-audit's learned cuts (``cuts_from``), so
   "after" counts what "repaired" counted, by the same ruler.

A step is complete when its folder holds ``fix-step.json``; a rerun into the same ``OUT``
with the same dataset and settings reuses the complete steps and redoes the rest (Ctrl-C,
then rerun, continues). An audit step missing its run files, and the output step when a file
of the result is missing or ``manifest.csv`` is not the one it wrote, are redone too.
``OUT/fix.json`` records the settings and the dataset's manifest fingerprint: a changed
dataset is refused (exit 3), another dataset or other settings too (exit 2).

Rules for the choices a step would otherwise need a person for (recorded in ``summary.json``):

- **budget**: ``--budget``, else the source dataset's row count (cleaning, then balancing
  back to the same size).
- **targets**: the rows balancing does not touch (val/test, training rows the sub-cluster
  check did not score) count first; the room left for the training split is water-filled,
  first over classes, then within each class over its sub-clusters: every class (sub-cluster)
  ends at ``max(size, T)`` for the highest level ``T`` that fits, the remainder one row each
  in a seeded order. So the smallest groups get copies first, no real sample is dropped while
  the budget exceeds the data, no class outgrows another by having more sub-clusters, and
  when the budget is below the data the largest groups are downsampled first
  (:func:`datacheck.actions.balance.cap_counts`).
- **boosting copies**: ``boost_per_error`` (5, augment's default) per validation sample the
  repaired set's out-of-fold model gets wrong, at most ``boost_max_fraction`` (10 %) of the
  training room; they are reserved from the budget before the targets are set.
- **augmentation operations**: the RandAugment operations whose copies cross the re-audit's
  image-property cuts clearly more often than the originals are left out
  (:mod:`datacheck.actions.augment_screen`; ``[fix] screen_ops``). Each copy is then drawn
  again (at most 8 times) while it crosses a cut its source does not, or is a near duplicate
  of its source by the audit's cut (``[fix] screen_copies``).
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import BadDataError, UsageError, keyword_errors
from ..validation import SEED_MAX, Boolean, Interval, check_int_range, validate_params
from .budget import budget_targets

FIX_MARKER = "fix.json"
STEP_MARKER = "fix-step.json"
SUMMARY_NAME = "summary.json"
MANIFEST_NAME = "manifest.csv"
REVIEW_NAME = "review.csv"
DATASET_DIR = "dataset"
AUDIT_CONFIG = "audit.toml"
#: The final audit's configuration: ``audit.toml`` with only the checks that need no model,
#: unless ``[fix] final_model_checks``.
FINAL_AUDIT_CONFIG = "audit-final.toml"
#: The steps, in order; each writes into ``steps/<n>-<name>``.
STEPS = ("audit", "relabel", "reaudit", "balance", "augment", "output", "final_audit")
#: The ``[fix]`` config section: name → (default, help).
FIX_OPTIONS = {
    "relabel": (True, "relabel where the evidence agrees, drop junk and duplicate/leaked copies, queue the rest"),
    "balance": (True, "balance class x sub-cluster groups (off: every class grows by the same factor)"),
    "augment": (True, "make augmented copies (off: nothing grows, the budget can only trim)"),
    "boost": (True, "add copies near the validation samples the repaired set's model gets wrong"),
    "budget": (0, "rows of the result, all splits and copies; 0 = the source dataset's row count"),
    "min_confidence": (0.6, "relabel --auto: out-of-fold probability the suggested class needs"),
    "hold_out_review": (False, "samples queued for review stay out of the result until a decision is imported"),
    "drop_flagged": (True, "balancing leaves out training samples the repaired set's audit still flags"),
    "boost_per_error": (5, "boosting copies per misclassified validation sample"),
    "boost_max_fraction": (0.1, "boosting copies at most this share of the training rows of the budget"),
    "screen_ops": (True, "leave out the RandAugment operations whose copies the audit's image checks would flag"),
    "screen_copies": (True, "draw a copy again while the audit would flag it but not its source, or pair it with "
                            "its source as a near duplicate"),
    "final_model_checks": (False, "the final audit also runs the checks that train a model (a cross-validation "
                                  "over the whole result: the longest step by far)"),
}
_CONSTRAINTS = {
    "relabel": [Boolean()], "balance": [Boolean()], "augment": [Boolean()], "boost": [Boolean()],
    "budget": [Interval(int, 0, None)], "min_confidence": [Interval(float, 0, 1, closed="right")],
    "drop_flagged": [Boolean()], "hold_out_review": [Boolean()], "boost_per_error": [Interval(int, 0, None)],
    "boost_max_fraction": [Interval(float, 0, 1)], "final_model_checks": [Boolean()], "screen_ops": [Boolean()],
    "screen_copies": [Boolean()],
}
#: Candidate copies per training source that boosting draws at least (augment's --boost-pool default).
MIN_BOOST_POOL = 4
#: The audit sections of a config file; ``[fix]`` and ``[augment]`` are fix's own.
_AUDIT_SECTIONS = ("audit", "engine", "train", "detectors")


# --------------------------------------------------------------------------- settings


def _check_model_and_device(audit: dict, needs_model: bool) -> None:
    """What the first audit would refuse only once it starts: an accelerator this machine lacks,
    and (when a step needs the model) an unknown model or a missing weights file. Checked
    before ``--out`` is made, so that the corrected command can reuse it (a fix folder holds
    its settings, and a rerun with others is refused)."""
    from ..engine.device import resolve_device
    from ..engine.models import create_model

    resolve_device(audit["device"])
    if needs_model:
        create_model(audit["model"], 2, audit["weights"] or None)


def fix_settings(config: str | os.PathLike | None, overrides: dict) -> tuple[dict, dict, dict]:
    """The ``[fix]`` options, the augmentation spec and the audit configuration.

    Parameters
    ----------
    config : path-like, optional
        A TOML file: ``[fix]`` (:data:`FIX_OPTIONS`), ``[augment]`` (``policy``, ``num_ops``,
        ``magnitude``, ``degrees``, ``translate``, ``scale``) and the audit's sections
        (``[audit]``, ``[engine]``, ``[train]``, ``[detectors.<name>]``).
    overrides : dict
        Command-line values: ``budget``, ``seed``, ``workers``, ``device``, ``max_missing``,
        ``relabel``, ``balance``, ``augment``, ``boost`` (False turns a step off); None = not
        given.

    Returns
    -------
    (dict, dict, dict)
        ``[fix]`` options, validated augmentation spec, complete audit configuration.

    Raises
    ------
    UsageError
        An unreadable file, unknown section or key, or a bad value.
    """
    from ..config import _merge, default_config, read_toml  # noqa: PLC2701 (the config module's own validation)
    from .transforms import validate_spec

    user = read_toml(config) if config is not None else {}
    unknown = sorted(set(user) - {"fix", "augment", *_AUDIT_SECTIONS})
    if unknown:
        raise UsageError(f"unknown section [{unknown[0]}] in {config}; expected [fix], [augment], [audit], [engine], "
                         "[train] or [detectors.<name>]")
    for section in ("fix", "augment"):
        if not isinstance(user.get(section, {}), dict):
            raise UsageError(f"{section} in {config} must be a table ([{section}])")
    options = {k: v for k, (v, _) in FIX_OPTIONS.items()}
    given = dict(user.get("fix", {}))
    bad = sorted(set(given) - set(options))
    if bad:
        raise UsageError(f"unknown option fix.{bad[0]} in {config}; known: {', '.join(options)}")
    if isinstance(given.get("min_confidence"), int) and not isinstance(given.get("min_confidence"), bool):
        given["min_confidence"] = float(given["min_confidence"])
    if isinstance(given.get("boost_max_fraction"), int) and not isinstance(given.get("boost_max_fraction"), bool):
        given["boost_max_fraction"] = float(given["boost_max_fraction"])
    try:
        validate_params(_CONSTRAINTS, given, "fix")
    except UsageError as exc:  # name the file, as the audit sections' errors do ("fix.budget must be ...": which file?)
        key, rest = str(exc).split(" must be ", 1)
        raise UsageError(f"{key} in {config} must be {rest}") from None
    options.update(given)
    for key, least, most in (("budget", 1, None), ("max_missing", 0, None), ("seed", 0, SEED_MAX)):
        if isinstance(overrides.get(key), numbers.Integral) and not isinstance(overrides[key], bool):
            overrides[key] = int(overrides[key])  # numpy integers too (a value taken from an array)
        if overrides.get(key) is not None:
            check_int_range("--" + key.replace("_", "-"), overrides[key], least, most)
    if overrides.get("budget") is not None:
        options["budget"] = overrides["budget"]
    for step in ("relabel", "balance", "augment", "boost"):
        if overrides.get(step) is False:
            options[step] = False
    if not options["augment"]:
        options["boost"] = False  # boosting copies are augmented copies
    try:
        spec = validate_spec(dict(user.get("augment", {})))
    except UsageError as exc:
        # The file's keys, not augment's options: "num-ops and --magnitude must be integers"
        # for `magnitude = true` named neither as the file spells it.
        message = re.sub(r"--([a-z]+(?:-[a-z]+)*)", lambda m: m.group(1).replace("-", "_"), str(exc))
        raise UsageError(f"[augment] in {config}: {message}") from None

    audit_cfg = default_config()
    _merge(audit_cfg, {k: v for k, v in user.items() if k in _AUDIT_SECTIONS}, str(config))
    # Not workers: they change where the work runs, not what it finds (a resumed fix may use others).
    cli = {k: overrides.get(k) for k in ("seed", "device", "max_missing") if overrides.get(k) is not None}
    if cli:
        _merge(audit_cfg, {"audit": cli}, "command line")
    checks = list(audit_cfg["audit"]["checks"])
    needed = (["clusters"] if options["balance"] else []) + (["label_issues"] if options["relabel"] or options["boost"] else [])
    audit_cfg["audit"]["checks"] = checks + [c for c in needed if c not in checks]
    return options, spec, audit_cfg


# --------------------------------------------------------------------------- result


@dataclass
class FixResult:
    """What :func:`fix` made.

    Attributes
    ----------
    out : pathlib.Path
        The fix folder.
    manifest : pandas.DataFrame
        ``OUT/manifest.csv``: every row of the result with its provenance (``source_id``,
        ``source_label``, ``action``: keep / relabel / copy / boost, ``group``, ``transform``,
        ``reason``); ``path`` relative to ``OUT``.
    summary : dict
        ``OUT/summary.json``: counts per check, class and sub-cluster before and after, the
        changes and the choices made, with their rules.
    steps : dict of str to str
        Per step: ``done`` (ran now), ``reused`` (complete from an earlier run) or ``skipped``.
    table : pandas.DataFrame
        Per class: before, relabelled out/in, removed, copies, boosting copies, after.
    written : dict of str to str
    """

    out: Path
    manifest: pd.DataFrame
    summary: dict
    steps: dict
    table: pd.DataFrame
    written: dict = field(default_factory=dict)

    @property
    def audit(self):
        """The final audit of the result (:class:`datacheck.AuditResult`)."""
        from ..api import load

        return load(self.out / self.summary["outputs"]["final_audit"])

    @property
    def before(self):
        """The audit of the source dataset (:class:`datacheck.AuditResult`)."""
        from ..api import load

        return load(self.out / self.summary["outputs"]["first_audit"])

    @property
    def notes(self) -> list:
        """What the user should know about choices the fix made (a step that could not do all its work)."""
        return list(self.summary.get("notes", []))

    @property
    def exit_status(self):
        """The final audit's exit status: ``GATE_FAILED`` when it exceeds a ``fail_on`` gate of the config."""
        from ..errors import ExitStatus

        return ExitStatus(int(self.summary["final_exit_status"]))


# --------------------------------------------------------------------------- the command


@keyword_errors()
def fix(
    dataset: str | os.PathLike,
    out: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    budget: int | None = None,
    config: str | os.PathLike | None = None,
    seed: int | None = None,
    relabel: bool = True,
    balance: bool = True,
    augment: bool = True,
    boost: bool = True,
    workers: int | None = None,
    device: str | None = None,
    max_missing: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    command: list[str] | None = None,
) -> FixResult:
    """``datacheck fix``: audit, repair, re-audit, balance to a budget, augment, boost, audit again.

    Parameters
    ----------
    dataset : path-like
        A dataset folder or manifest file (as ``datacheck audit`` reads). Only read.
    out : path-like
        The fix folder: new, empty, or an earlier fix of the same dataset and settings
        (its complete steps are reused).
    root : path-like, optional
        For a manifest file: the folder its paths are relative to (as ``datacheck audit --root``).
    budget : int, optional
        Rows of the result, all splits and copies (default: ``[fix] budget``, else the source
        dataset's row count).
    config : path-like, optional
        TOML with ``[fix]``, ``[augment]`` and the audit's sections, or a preset's name
        (``"quick"``, ``"strict-ci"``: their audit settings).
    seed : int, optional
        Seed of the audits, the plan and the copies (default: the config's, 0).
    relabel, balance, augment, boost : bool
        False turns a step off (so does ``false`` in ``[fix]``).
    workers : int, optional
        Worker processes for decoding and augmenting (default: one per CPU, at most 8).
    device : str, optional
        As ``datacheck audit --device``.
    max_missing : int, optional
        Listed files that may be missing (they are left out; more is bad data), as
        ``datacheck audit --max-missing`` (default: the config's ``[audit] max_missing``, 0).
    progress : callable, optional
        ``progress(stage, done, total)``.
    command : list of str, optional
        The command line, recorded in the audits' ``run.json``; given (by ``datacheck fix``),
        messages name the command line's options (``--budget``), else this function's
        keywords (``budget``).

    Returns
    -------
    FixResult

    Raises
    ------
    UsageError
        A bad option or config, an output folder that is not a fix of the same settings, a
        budget below the rows that are not balanced.
    BadDataError
        Unreadable data, or a dataset that changed since the fix in ``out`` began.
    """
    from .. import __version__
    from ..engine.workers import default_workers
    from ..features.arrays import array_columns
    from ..manifest import load_manifest
    from ..runs import RUN_FILES, Sources, folder_lock, output_folder, remove_temporaries, write_json
    from ..validation import check_callable

    flags = {"relabel": relabel, "balance": balance, "augment": augment, "boost": boost}
    for name, value in flags.items():  # relabel="no" is truthy: it must not pass for True
        if not isinstance(value, (bool, np.bool_)):
            raise UsageError(f"{name} must be True or False, got {value!r:.40}")
    relabel, balance, augment, boost = (bool(v) for v in flags.values())
    check_callable("progress", progress, "progress(stage, done, total)")
    options, spec, audit_cfg = fix_settings(config, {
        "budget": budget, "seed": seed, "workers": workers, "device": device, "max_missing": max_missing,
        "relabel": relabel, "balance": balance, "augment": augment, "boost": boost})
    if array_columns(dataset):
        raise UsageError(f"{dataset} holds model outputs as arrays; fix needs image files")
    _check_model_and_device(audit_cfg["audit"], needs_model=any(options[s] for s in ("relabel", "balance", "boost")))
    max_missing = audit_cfg["audit"]["max_missing"]
    manifest = load_manifest(dataset, max_missing=max_missing, root=root)
    out = output_folder(out, FIX_MARKER, "fix output")
    Sources.of(manifest).refuse(out, "--out")
    resolved = Path(os.path.realpath(out))
    if resolved == Path(os.path.realpath(manifest.root)) or resolved in Path(os.path.realpath(manifest.root)).parents:
        raise UsageError(f"--out {out} holds the dataset {dataset}; fix writes and replaces folders there, choose "
                         "another --out")
    frame = manifest.frame
    # A budget from the config is named as such: "--budget 1000000 would make ..." named an
    # option the command line did not have.
    from_config = budget is None and bool(options["budget"])
    if not options["budget"]:
        options["budget"] = len(frame)
    named = f"[fix] budget {options['budget']} of {config}" if from_config else f"--budget {options['budget']}"
    from .balance import require_training_rows, training_mask

    # Before the audits: balancing would refuse it after them; nothing to learn or balance.
    require_training_rows(frame, str(dataset), "fix", ("balances and augments the train split",
                                                        "audits, relabels and balances by the labels"))
    untouched = int((~training_mask(frame)).sum())
    if options["budget"] < untouched:
        raise UsageError(f"{named} is below the {untouched} val/test rows of {dataset}, "
                         "which fix keeps as they are; give at least that")
    if options["budget"] == untouched < len(frame):  # every training row would go: nothing left to train on
        raise UsageError(f"{named} equals the {untouched} val/test rows of {dataset}, which "
                         "fix keeps as they are, and would leave no training rows; give more than that")
    # Before any training: the balance step's limit, with every training sample still there
    # (the repairs only remove some, so a budget past it now is past it then).
    _refuse_over_limit(named, options["budget"] - untouched, len(frame) - untouched)
    seed = audit_cfg["audit"]["seed"]
    settings = {"dataset": str(Path(manifest.source).resolve()), "root": str(manifest.root),
                "budget": options["budget"], "seed": seed, "fix": options, "augment": spec, "audit_config": audit_cfg}
    marker = out / FIX_MARKER
    resumed = marker.is_file()
    if resumed:
        _check_resume(marker, manifest, settings, out)
    from ..config import render_toml
    from ..runs import atomic_write

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a place where no folder can be made (/proc/...); broken links are refused above
        raise UsageError(f"--out {out} cannot be made a folder: {exc.strerror or exc}") from exc
    with folder_lock(out):
        if resumed:
            remove_temporaries(out)  # half-written files of a killed run (a Ctrl-C leaves none)
        write_json(marker, {"datacheck_version": __version__, "manifest_fingerprint": manifest.fingerprint,
                            "status": "running", **settings})
        text = render_toml(audit_cfg)
        atomic_write(out / AUDIT_CONFIG, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        final_text = render_toml(_final_audit_config(audit_cfg, options["final_model_checks"]))
        atomic_write(out / FINAL_AUDIT_CONFIG, lambda tmp: tmp.write_text(final_text, encoding="utf-8"))

        ctx = _Context(out=out, source=Path(dataset), root=root, manifest=manifest, options=options, spec=spec,
                       seed=seed, workers=default_workers() if workers is None else workers, audit_workers=workers,
                       progress=progress, command=command or ["python-api"], budget_name=named)
        runner = _Steps(out, progress)

        def audited(name: str) -> Callable[[], bool]:  # an audit step's run files all there
            return lambda: all((ctx.step(name) / file).is_file() for file in RUN_FILES)

        from ..audit_run import DatasetChangedError

        try:
            runner.run("audit", True, ctx.audit_source, intact=audited("audit"))
            runner.run("relabel", options["relabel"], ctx.relabel)
            runner.run("reaudit", options["relabel"], ctx.reaudit, intact=audited("reaudit"))
            runner.run("balance", True, ctx.balance)
            runner.run("augment", True, ctx.augment)
            queued = options["relabel"] and (ctx.step("relabel") / REVIEW_NAME).is_file()  # copied out by the output step
            runner.run("output", True, ctx.output,
                       intact=lambda: _result_intact(out, queued, ctx.step("output") / STEP_MARKER))
            runner.run("final_audit", True, ctx.final_audit, intact=audited("final_audit"))
        except DatasetChangedError as exc:
            if exc.dataset.resolve() != Path(manifest.source).resolve():
                raise  # one of the fix's own folders: its message names it
            # The steps' audit is the fix's own: "audit it again" is not the user's remedy.
            raise BadDataError(f"dataset {manifest.source} changed while the fix in {out} ran (files, labels or "
                               "splits differ from its first audit's); fix it into a new --out") from None

        summary, table = _summary(ctx, runner)
        write_json(out / SUMMARY_NAME, summary)
        write_json(marker, {"datacheck_version": __version__, "manifest_fingerprint": manifest.fingerprint,
                            "status": "complete", **settings})
        result_manifest = pd.read_csv(out / MANIFEST_NAME, dtype=str, keep_default_na=False, na_values=[""])
        result_manifest["transform"] = result_manifest["transform"].fillna("")
        written = {"dataset": str(out / DATASET_DIR), "manifest": str(out / MANIFEST_NAME),
                   "summary": str(out / SUMMARY_NAME), "final_audit": str(out / summary["outputs"]["final_audit"])}
        if (out / REVIEW_NAME).exists():
            written["review"] = str(out / REVIEW_NAME)
    return FixResult(out, result_manifest, summary, dict(runner.status), table, written)


def _result_intact(out: Path, queued: bool, marker: Path) -> bool:
    """Whether the output step's results are all still there as it wrote them: the manifest
    (its SHA-256 as recorded in the step's ``marker``), the review queue when there is one,
    and every file the manifest lists (a rerun makes what is missing or edited again)."""
    from ..files.json_object import read_json

    if not (out / MANIFEST_NAME).is_file() or (queued and not (out / REVIEW_NAME).is_file()):
        return False
    try:
        recorded = read_json(marker).get("manifest_sha256") if marker.is_file() else None
        if hashlib.sha256((out / MANIFEST_NAME).read_bytes()).hexdigest() != recorded:
            return False
        paths = pd.read_csv(out / MANIFEST_NAME, usecols=["path"], dtype=str, keep_default_na=False)["path"]
    except (OSError, ValueError, BadDataError):  # unreadable: made again
        return False
    return all(os.path.isfile(os.path.join(out, path)) for path in paths)


def _final_audit_config(audit_cfg: dict, model_checks: bool) -> dict:
    """The final audit's configuration: the checks of ``audit_cfg`` that train no model, unless
    ``model_checks``. A copy shares its source's label and the model's evidence about it, so
    the model checks' numbers after the repairs are the re-audit's (``repaired`` in the
    summary); what the copies themselves can add (dark or blank images, duplicates, leaks) the
    image checks see, in seconds rather than a cross-validation over the whole budget."""
    import copy

    from ..detectors.registry import create_detector
    from ..gates import parse_gates
    from ..pipeline import checks_without_model, gates_not_run

    cfg = copy.deepcopy(audit_cfg)
    if not model_checks:
        kept = checks_without_model(cfg["audit"]["checks"], cfg["detectors"])
        cfg["audit"]["checks"] = kept
        # A gate on a check left out cannot be applied here (the re-audit reports that check).
        gates = parse_gates(cfg["audit"]["fail_on"])
        left_out = gates_not_run(gates, [create_detector(name, **cfg["detectors"].get(name, {})) for name in kept])
        cfg["audit"]["fail_on"] = ",".join(str(g) for g in gates if g not in left_out)
    return cfg


def _check_resume(marker: Path, manifest, settings: dict, out: Path) -> None:
    """Refuse to continue a fix of another dataset or other settings (exit 2), or of another
    version of the same dataset (exit 3). The caller removes a killed run's temporary files
    once it holds the folder's lock."""
    from ..files.json_object import read_json

    before = read_json(marker)
    # Another dataset is a choice of --out, not a change in the data: asked to fix B into
    # the folder of a fix of A, say so rather than "B changed".
    if before.get("dataset") != settings["dataset"]:
        raise UsageError(f"{out} is a fix of another dataset ({before.get('dataset')}), not of {settings['dataset']}; "
                         "fix this one into a new --out, or rerun with that dataset to continue it")
    if before.get("root") != settings["root"]:
        raise UsageError(f"{out} is a fix of {settings['dataset']} with another dataset root ({before.get('root')}, "
                         f"now {settings['root']}); rerun with the same --root to continue it, or choose a new --out")
    if before.get("manifest_fingerprint") != manifest.fingerprint:
        raise BadDataError(f"dataset {manifest.source} changed since the fix in {out} began (its manifest fingerprint "
                           "differs: files, labels or splits); fix it into a new --out")
    import json

    now = json.loads(json.dumps(settings, default=str))  # as fix.json holds them
    differ = _first_difference({k: before.get(k, _UNSET) for k in now}, now)
    if differ is not None:
        key, was, is_ = differ
        raise UsageError(f"{out} is a fix made with other settings ({key} {_shown(was)}, now {_shown(is_)}); rerun "
                         "with the same ones to continue it, or choose a new --out")


#: A setting an earlier fix did not record.
_UNSET = object()


def _first_difference(before, now, path: tuple = ()) -> tuple[str, object, object] | None:
    """The first setting (in ``now``'s order) whose value differs, as ``(name, before, now)``:
    ``budget``, ``[fix] relabel``, ``[augment] magnitude``, ``[audit] checks``,
    ``[detectors.outliers] k``; None when they are equal."""
    if isinstance(before, dict) and isinstance(now, dict):
        for key in [*now, *(k for k in before if k not in now)]:
            found = _first_difference(before.get(key, _UNSET), now.get(key, _UNSET), (*path, str(key)))
            if found is not None:
                return found
        return None
    if before == now:
        return None
    # The audit's sections are named as in the config file ([audit] seed), but the whole
    # section, absent from a hand-edited fix.json, by its own key.
    parts = path[1:] if path[:1] == ("audit_config",) and len(path) > 1 else path
    name = parts[0] if len(parts) == 1 else f"[{'.'.join(parts[:-1])}] {parts[-1]}"
    return name, before, now


def _shown(value) -> str:
    """A setting's value in a message: as JSON (``true``, ``"cpu"``, ``["a", "b"]``), cut short."""
    import json

    if value is _UNSET:
        return "(not set)"
    text = json.dumps(value, default=str)
    return text if len(text) <= 100 else text[:97] + "..."


class _Steps:
    """Runs the steps in order; a step whose folder holds a complete marker is reused, unless
    an earlier step ran again (then everything after it runs again too)."""

    def __init__(self, out: Path, progress):
        self.out = out
        self.progress = progress
        self.redo = False
        self.status: dict[str, str] = {}
        self.records: dict[str, dict] = {}

    def folder(self, name: str) -> Path:
        return self.out / "steps" / f"{STEPS.index(name) + 1}-{name}"

    def run(self, name: str, enabled: bool, work: Callable[[Path], dict], intact: Callable[[], bool] = lambda: True,
            ) -> None:
        """Run step ``name`` (or reuse it: complete, nothing before it redone, and ``intact()``:
        its outputs outside its folder still there)."""
        from ..files.json_object import read_json
        from ..runs import write_json

        folder = self.folder(name)
        if self.progress:
            self.progress(f"fix {name}", STEPS.index(name), len(STEPS))
        if not enabled:
            self.status[name] = "skipped"
            return
        marker = folder / STEP_MARKER
        if not self.redo and marker.is_file() and intact():
            record = read_json(marker)
            # The files the step wrote beside its marker, which later steps and the summary
            # read: one deleted by hand makes the step run again, as a deleted result file
            # does (a marker of an earlier datacheck lists none).
            files = record.get("files", [])
            kept = isinstance(files, list) and all(isinstance(f, str) and (folder / f).is_file() for f in files)
            if record.get("status") == "complete" and kept:
                self.status[name], self.records[name] = "reused", record
                return
        earlier_redone, self.redo = self.redo, True
        # An unfinished step starts over in a clean folder. Augment keeps its finished files
        # after an interruption (it resumes itself: same plan, seed and settings, checked by
        # its own marker), but not when the plan was made again, nor without that marker
        # (deleted: augment would refuse to resume a folder it cannot recognise).
        from .augment import AUGMENT_MARKER

        if folder.exists() and (name != "augment" or earlier_redone or not (folder / AUGMENT_MARKER).is_file()):
            shutil.rmtree(folder)
        started = time.perf_counter()
        record = work(folder)
        files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != STEP_MARKER) \
            if folder.is_dir() else []
        record = {"step": name, "status": "complete", "seconds": round(time.perf_counter() - started, 3), **record,
                  "files": files}
        write_json(marker, record)
        self.status[name], self.records[name] = "done", record


@dataclass
class _Context:
    """The state the steps share; each step reads what earlier steps wrote to disk, so a
    reused step needs nothing from memory."""

    out: Path
    source: Path
    root: object
    manifest: object
    options: dict
    spec: dict
    seed: int
    workers: int
    audit_workers: int | None
    progress: object
    command: list
    #: The budget as its errors name it: ``--budget N``, or ``[fix] budget N of FILE``.
    budget_name: str

    def step(self, name: str) -> Path:
        return self.out / "steps" / f"{STEPS.index(name) + 1}-{name}"

    @property
    def balanced_run(self) -> Path:
        """The audit that balancing and boosting read: of the repaired set, or of the source."""
        return self.step("reaudit") if self.options["relabel"] else self.step("audit")

    def _audit(self, source, folder: Path, root=None, config: str | dict = AUDIT_CONFIG) -> dict:
        """Audit ``source`` into ``folder`` with the configuration file ``config`` in ``OUT``
        (or that configuration's tables, as a dict)."""
        from ..pipeline import audit

        config = self.out / config if isinstance(config, str) else config
        result = audit(source, folder, root=root, config=config, progress=self.progress,
                       command=self.command, workers=self.audit_workers)
        return {"run": folder.relative_to(self.out).as_posix(), "samples": int(result.summary["samples"]),
                "flagged": {c: int(e["flagged"]) for c, e in result.summary["checks"].items()},
                "exit_status": int(result.exit_status)}

    # ----------------------------------------------------------------- steps

    def audit_source(self, folder: Path) -> dict:
        return self._audit(self.source, folder, self.root)

    def relabel(self, folder: Path) -> dict:
        from ..runs import write_parquet
        from .augment import layout
        from .balance import training_mask
        from .relabel import NO_LABEL_DOUBTS, action_counts, relabel

        run = self.step("audit")
        note = self._no_suggestions(run)
        # Without label suggestions (a one-class dataset) there is nothing to relabel to: the
        # other repairs (drops, the review queue) still run, and the summary says why.
        result = relabel(run, auto=note is None, drop=True, min_confidence=self.options["min_confidence"],
                         out=folder, materialize_to=folder / DATASET_DIR,
                         hold_out_review=self.options["hold_out_review"], command=self.command)
        queued = self._review_queue(run, result.changes, folder / REVIEW_NAME)
        new = result.manifest
        labeled = new[new["label"].notna()]
        if not training_mask(labeled).any():
            # Every image unreadable, say: the re-audit of an empty folder said "no images found
            # in OUT/steps/2-relabel/dataset", or balancing the val rows left "no labeled
            # training row to balance", a usage error, of a dataset that has them.
            dropped = result.changes[result.changes["action"] == "drop"]["reason"].value_counts()
            why = ", ".join(f"{int(n)} {reason}" for reason, n in dropped.sort_index().items()) or "none dropped"
            raise BadDataError(f"nothing left to fix in {self.source}: the relabel step removed every labeled training "
                               f"row ({why}; see {folder / 'changes.parquet'})")
        files = layout(labeled.assign(copies=0))  # materialize's layout: repaired sample id → source id
        changes = result.changes.set_index("sample_id")
        source_label = self.manifest.frame.set_index("sample_id")["label"]
        ids = files["source_id"]
        mapping = pd.DataFrame({
            "sample_id": files["out_path"].astype(str),
            "source_id": ids.astype(str),
            "source_label": ids.map(source_label).astype("string"),
            # object first: with no changes at all, the mapped column is float NaN
            "action": ids.map(changes["action"]).astype(object).fillna("keep").astype(str),
            "reason": ids.map(changes["reason"]).astype(object).fillna("").astype(str),
        })
        import pyarrow as pa

        write_parquet(folder / "fix-map.parquet", pa.Table.from_pandas(mapping, preserve_index=False))
        drops = result.changes[result.changes["action"] == "drop"]
        return {"counts": action_counts(result.changes),
                "drop_reasons": {str(k): int(v) for k, v in drops["reason"].value_counts().sort_index().items()},
                "review_queue": queued, "auto": note is None, "note": note,
                # relabel's own notes (classes it left without training rows, e.g. every sample
                # of a 2-image class dropped as an outlier): the result lacks those classes. Its
                # note on label checks that did not judge is the note above, said for fix.
                "notes": [n for n in result.notes if not (note and n.startswith(NO_LABEL_DOUBTS))],
                "dataset": (folder / DATASET_DIR).relative_to(self.out).as_posix()}

    @staticmethod
    def _no_suggestions(run_dir: Path) -> str | None:
        """Why the audit in ``run_dir`` suggests no label (so ``relabel --auto`` has nothing to
        apply), or None when it suggests some."""
        from ..audit_run import open_run
        from ..detectors.registry import checks_with_tag

        audit = open_run(run_dir)
        findings = audit.findings
        evidence = findings["check"].isin(set(checks_with_tag("label_evidence"))) & findings["suggested_label"].notna()
        if evidence.any():
            return None
        classes = int(audit.summary.get("classes", 0))
        # A label check off because its model is at chance says why itself (model.at_chance_reason).
        at_chance = [check["threshold"]["rule"].removeprefix("off: ") for check in audit.summary.get("checks", {}).values()
                     if "chance_accuracy" in check.get("threshold", {})]
        why = (f"a dataset with {classes} class{'es' if classes != 1 else ''} has no label suggestions"
               if classes < 2 else at_chance[0] if at_chance else "the audit made no label suggestions")
        return f"labels not changed: {why}; the relabel step only removed junk and duplicates and queued doubts"

    @staticmethod
    def _review_queue(run_dir: Path, changes: pd.DataFrame, path: Path) -> dict:
        """Write relabel's review queue, plus the samples it dropped as off-distribution that a
        label check doubted too: for those the label, not the image, may be what is wrong
        (on sample_data, 4 planted mislabels are dropped as outliers), so a person sees them.
        They stay out of the result until a decision is imported
        (``datacheck relabel RUN --import-review review.csv``)."""
        from ..audit_run import open_run
        from ..detectors.registry import checks_with_tag
        from ..fusion import review_ranks
        from .review import review_queue, write_review_csv

        audit = open_run(run_dir)
        label_checks, off = set(checks_with_tag("label_evidence")), set(checks_with_tag("off_distribution"))
        flags = changes["checks"].fillna("").str.split(",").map(set)
        # numpy, not pandas: with no changes at all the mapped Series is an empty object column.
        doubted = ((changes["action"] == "drop").to_numpy(dtype=bool)
                   & np.array([bool(f & off) and bool(f & label_checks) for f in flags], dtype=bool))
        evidence = audit.findings[audit.findings["check"].isin(label_checks) & audit.findings["suggested_label"].notna()]
        suggestion = (evidence.sort_values("suggested_confidence", ascending=False, kind="stable")
                      .drop_duplicates("sample_id").set_index("sample_id")["suggested_label"])
        queue = changes.copy()
        old = queue.loc[doubted, "old_label"]
        suggested = queue.loc[doubted, "sample_id"].map(suggestion)
        queue.loc[doubted, "new_label"] = suggested.where(suggested != old).astype("string")
        queue.loc[doubted, "reason"] = [
            f"dropped ({why}); label checks flagged it too ({', '.join(sorted(f & label_checks))})"
            for why, f in zip(queue.loc[doubted, "reason"], flags[doubted])]
        queue.loc[doubted, "action"] = "review"
        write_review_csv(review_queue(audit.manifest().frame, queue, review_ranks(audit.findings)), path)
        return {"relabel": int((changes["action"] == "review").sum()), "dropped_doubted": int(doubted.sum())}

    def reaudit(self, folder: Path) -> dict:
        return self._audit(self.step("relabel") / DATASET_DIR, folder)

    def balance(self, folder: Path) -> dict:
        from ..audit_run import open_run
        from ..detectors.registry import checks_with_tag
        from .balance import (BalanceOptions, balance, classes_left_without_training_rows, left_without_training_rows,
                              plan_balance, training_mask)
        from .boost import copy_sources, validation_errors

        opts = self.options
        run = open_run(self.balanced_run)
        manifest = run.manifest()
        frame = manifest.frame
        # Sub-clusters where the clusters check scored samples; a set too small for it (no
        # class large enough to split) is balanced by class, and the summary says so.
        subgroups = [c for c in checks_with_tag("subgroups") if (run.findings["check"] == c).any()]
        strategy = "subclusters" if opts["balance"] and subgroups else "classes"
        # The groups as balance forms them (a plan with target 1 assigns every group, trims all).
        dry = plan_balance(frame, run.findings, BalanceOptions(strategy=strategy, target=1,
                                                               drop_flagged=opts["drop_flagged"], seed=self.seed))
        member = dry["group"].notna().to_numpy()
        fixed = int((~member & (dry["action"] != "drop").to_numpy()).sum())
        flagged = run.findings[(run.findings["check"] == "corrupt") & run.findings["is_issue"]]["sample_id"]
        grouped = dry[member]
        groups = (grouped.groupby("group", sort=True).agg(label=("label", "first"), size=("sample_id", "size"))
                  .reset_index())
        growable = set(grouped.loc[~grouped["sample_id"].isin(set(flagged)), "group"])
        budget = opts["budget"]
        room = budget - fixed
        if room < 0:
            raise UsageError(f"{self.budget_name} is below the {fixed} rows fix does not balance (val/test rows and "
                             "training rows the sub-cluster check did not score); give at least that")
        _refuse_over_limit(self.budget_name, room, int(training_mask(frame).sum()))

        boost = {"copies": 0, "val_errors": [], "pool": MIN_BOOST_POOL, "rule": "off"}
        if opts["boost"]:
            has_val = bool((frame["split"] == "val").any())
            outputs = run.outputs() if has_val else None
            if outputs is None:
                boost["rule"] = "no val split: nothing to boost toward" if not has_val else "the audit trained no model"
            else:
                wrong = validation_errors(frame, outputs)
                cap = math.floor(opts["boost_max_fraction"] * room)
                boost = {
                    "copies": int(min(opts["boost_per_error"] * len(wrong), cap)),
                    "val_errors": [str(s) for s in frame["sample_id"].to_numpy()[wrong]],
                    "classes": sorted(set(np.asarray(outputs.classes, dtype=object)[outputs.labels[wrong]].tolist())),
                    "pool": MIN_BOOST_POOL,
                    "rule": f"{opts['boost_per_error']} per misclassified validation sample ({len(wrong)}), "
                            f"at most {opts['boost_max_fraction']:g} of the {room} training rows ({cap})",
                }
        room -= boost["copies"]
        screen = self._screen_augmentation(run.summary, manifest)
        class_targets, targets = budget_targets(groups, room, self.seed, growable, by_subcluster=opts["balance"],
                                                grow=opts["augment"])
        emptied = sorted(str(c) for c, t in class_targets.items() if t == 0)
        note = (f"the budget leaves {room} training row{'s' if room != 1 else ''} for {len(class_targets)} classes: "
                f"{left_without_training_rows(emptied)}; give a larger budget" if emptied else None)
        result = balance(self.balanced_run, folder, BalanceOptions(
            strategy=strategy, target={g: int(t) for g, t in targets.items()}, drop_flagged=opts["drop_flagged"],
            max_total=budget - boost["copies"], seed=self.seed, transform=dict(screen["spec"])), command=self.command)
        plan = result.plan
        notes = [note] if note else []
        # A class whose every training sample drop_flagged leaves out (all exact copies of
        # another class's images, say) forms no group, so it is not in class_targets and the
        # budget's note cannot name it; the plan can.
        flagged_out = [c for c in classes_left_without_training_rows(frame, plan) if c not in emptied]
        if flagged_out:
            their = "their" if len(flagged_out) > 1 else "its"
            notes.append(f"{left_without_training_rows(flagged_out)}: [fix] drop_flagged left out all {their} "
                         f"training samples, flagged by the repaired set's audit; see the reason column of "
                         f"{result.written['plan']}")
        planned = int((plan["action"] != "drop").sum() + plan["copies"].sum())
        if boost["copies"]:
            # Enough candidates that the boosting copies are all made: each source boosting
            # draws from (boost.copy_sources of the kept training rows) draws `pool` of them.
            kept = plan[(plan["split"] == "train") & (plan["action"] != "drop") & plan["label"].isin(boost["classes"])]
            sources = int(copy_sources(kept, run.findings).sum())
            boost["pool"] = max(MIN_BOOST_POOL, math.ceil(boost["copies"] / max(sources, 1)))
        return {
            "strategy": strategy,
            "strategy_rule": ("sub-clusters of the clusters check" if strategy == "subclusters" else
                              "classes: the clusters check scored no sample (no class large enough to split)"
                              if opts["balance"] else "classes: sub-cluster balancing is off"),
            "fixed_rows": fixed,
            "training_room": room,
            "planned_rows": planned,
            "class_targets": {str(k): int(v) for k, v in class_targets.items()},
            "group_sizes": {str(g): int(s) for g, s in zip(groups["group"], groups["size"])},
            "group_targets": {str(k): int(v) for k, v in targets.items()},
            "boost": boost,
            "augment_screen": screen,
            "notes": notes,
        }

    def _screen_augmentation(self, summary: dict, manifest) -> dict:
        """The augmentation spec, less the RandAugment operations whose copies the audit's
        image checks would flag (:mod:`datacheck.actions.augment_screen`), with the evidence."""
        from .augment_screen import audit_cuts, screen_operations
        from .balance import training_mask

        if not (self.options["augment"] and self.options["screen_ops"]):
            return {"spec": dict(self.spec), "rule": "not screened: " + (
                "augmentation is off" if not self.options["augment"] else "[fix] screen_ops = false")}
        train = manifest.frame[training_mask(manifest.frame)]
        paths = [os.path.join(manifest.root, p) for p in train["path"]]
        record = screen_operations(train["sample_id"].astype(str).tolist(), paths, self.spec,
                                   audit_cuts(summary.get("checks", {})), self.seed)
        return {"spec": {**self.spec, "exclude_ops": record["exclude_ops"]}, **record}

    def augment(self, folder: Path) -> dict:
        from ..files.json_object import read_json
        from .augment import augment

        boost = read_json(self.step("balance") / STEP_MARKER)["boost"]
        progress = (lambda done, total: self.progress("augment", done, total)) if self.progress else None
        boosting = bool(boost["copies"])
        result = augment(self.step("balance"), folder, seed=self.seed, resume=True, workers=self.workers,
                         boost_from=self.balanced_run if boosting else None,
                         boost_budget=boost["copies"] if boosting else None,
                         boost_pool=boost["pool"] if boosting else None, screen=self.options["screen_copies"],
                         progress=progress, command=self.command)
        return {"counts": {k: int(v) for k, v in result.counts.items()}}

    def output(self, folder: Path) -> dict:
        import json

        from ..audit_run import open_run
        from ..manifest import CONTRACT_COLUMNS, write_manifest
        from ..runs import atomic_write
        from .augment import layout
        from .materialize import materialize

        made = pd.read_csv(self.step("augment") / MANIFEST_NAME, dtype=str, keep_default_na=False, na_values=[""])
        made = made[["sample_id", "path", "label", "split", "source_id", "transform"]].copy()
        made["transform"] = made["transform"].fillna("")
        target = self.out / DATASET_DIR
        if target.exists():  # an earlier, unfinished output step of this fix
            shutil.rmtree(target)
        materialize(made, self.step("augment"), target)
        files = layout(made.assign(copies=0))

        if self.options["relabel"]:
            mapping = pd.read_parquet(self.step("relabel") / "fix-map.parquet").set_index("sample_id")
        else:
            first = open_run(self.step("audit")).manifest().frame
            ids = first["sample_id"].astype(str).to_numpy()
            mapping = pd.DataFrame({"source_id": ids, "source_label": first["label"].to_numpy(), "action": "keep",
                                    "reason": ""}, index=ids)
        plan = pd.read_parquet(self.step("balance") / "plan.parquet").set_index("sample_id")
        mid = made["source_id"]
        boost_of = [json.loads(t).get("boost") if t else None for t in made["transform"]]
        copy = (made["transform"] != "").to_numpy()
        relabelled = mid.map(mapping["action"]).eq("relabel").to_numpy()
        action = np.where(copy, np.where([b is not None for b in boost_of], "boost", "copy"),
                          np.where(relabelled, "relabel", "keep"))
        plan_reason = mid.map(plan["reason"]).fillna("").astype(str).to_numpy()
        source_label = mid.map(mapping["source_label"]).astype("string")
        reasons = []
        for kind, why, b, old, new, first_reason, queued in zip(
                action, plan_reason, boost_of, source_label, made["label"], mid.map(mapping["reason"]).fillna(""),
                mid.map(mapping["action"]).eq("review")):
            if kind == "boost":
                val = b["val_id"]
                val = mapping["source_id"].get(val, val)
                reasons.append(f"boosting: near {val}, which the model gets wrong (cosine {b['cosine']:.2f})")
            elif kind == "relabel":
                reasons.append(f"relabelled {old} -> {new}: {first_reason}")
            elif kind == "keep" and queued:
                reasons.append(f"in the review queue: {first_reason}")
            else:
                reasons.append(why)
        result = pd.DataFrame({
            "sample_id": files["out_path"].to_numpy(),
            "path": files["out_path"].to_numpy(),
            "label": made["label"].to_numpy(),
            "split": made["split"].to_numpy(),
            "source_id": mid.map(mapping["source_id"]).to_numpy(),
            "source_label": source_label.to_numpy(),
            "action": action,
            "group": mid.map(plan["group"]).to_numpy(),
            "transform": made["transform"].to_numpy(),
            "reason": reasons,
        })
        source = self.manifest.frame.set_index("sample_id")
        taken = set(result.columns)
        for column in [c for c in source.columns if c not in CONTRACT_COLUMNS]:  # the user's own columns
            name = column
            while name in taken:
                name = f"user_{name}"
            taken.add(name)
            result[name] = result["source_id"].map(source[column]).to_numpy()
        write_manifest(result, target, self.out / MANIFEST_NAME)
        review = self.step("relabel") / REVIEW_NAME
        if self.options["relabel"] and review.is_file():
            data = review.read_bytes()
            atomic_write(self.out / REVIEW_NAME, lambda tmp: tmp.write_bytes(data))
        else:
            (self.out / REVIEW_NAME).unlink(missing_ok=True)
        digest = hashlib.sha256((self.out / MANIFEST_NAME).read_bytes()).hexdigest()
        return {"rows": len(result), "actions": {str(k): int(v) for k, v in pd.Series(action).value_counts()
                                                  .sort_index().items()}, "manifest_sha256": digest}

    def final_audit(self, folder: Path) -> dict:
        """The result audited with the balanced audit's image-property cuts (``cuts_from``):
        cuts learned again on the result would move with its copies (on roman the median
        entropy rose 0.41 -> 0.51, and the low-information cut with it: 29 flagged, 25 of them
        kept originals, against the re-audit's 16), so its counts would not compare with the
        repaired set's."""
        from ..config import read_toml
        from ..detectors.image_properties import learned_cuts

        config = read_toml(self.out / FINAL_AUDIT_CONFIG)
        try:
            learned_cuts(str(self.balanced_run))
        except UsageError:
            pass  # that audit did not run the image-property checks: the result's own cuts
        else:
            config.setdefault("detectors", {}).setdefault("image_properties", {})["cuts_from"] = str(self.balanced_run)
        return self._audit(self.out / DATASET_DIR, folder, config=config)


# --------------------------------------------------------------------------- the summary


def _summary(ctx: _Context, runner: _Steps) -> tuple[dict, pd.DataFrame]:
    """``summary.json`` and the per-class table, from what the steps wrote."""
    from ..files.json_object import read_json

    out, opts = ctx.out, ctx.options
    rec = runner.records
    result = pd.read_csv(out / MANIFEST_NAME, dtype=str, keep_default_na=False, na_values=[""])
    source = ctx.manifest.frame

    checks = {}
    audits = [("before", "audit"), ("repaired", "reaudit"), ("after", "final_audit")]
    for key, step in audits:
        for check, n in rec.get(step, {}).get("flagged", {}).items():
            checks.setdefault(check, {k: None for k, s in audits if s in rec})[key] = n

    if opts["relabel"]:
        import pyarrow.parquet as pq

        changes = pq.read_table(ctx.step("relabel") / "changes.parquet").to_pandas()
    else:
        changes = pd.DataFrame(columns=["sample_id", "action", "old_label", "new_label", "reason", "confidence"])
    moved = changes[changes["action"] == "relabel"]
    before = source["label"].fillna("(unlabeled)").value_counts()
    after = result["label"].value_counts()
    table = pd.DataFrame({
        "before": before,
        "relabel_out": moved["old_label"].value_counts(),
        "relabel_in": moved["new_label"].value_counts(),
        "copies": result.loc[result["action"] == "copy", "label"].value_counts(),
        "boost": result.loc[result["action"] == "boost", "label"].value_counts(),
        "after": after,
    }).fillna(0).astype(int)
    table.insert(3, "removed", table["before"] - table["relabel_out"] + table["relabel_in"]
                 - (table["after"] - table["copies"] - table["boost"]))
    table = table.sort_index().rename_axis("class")
    train_after = result[result["split"].fillna("") == "train"] if result["split"].notna().any() else result
    classes = {str(c): {k: int(v) for k, v in row.items()} for c, row in table.iterrows()}
    for c in classes:
        classes[c]["train_before"] = int(((source["label"] == c) & _train(source)).sum())
        classes[c]["train_after"] = int((train_after["label"] == c).sum())

    balance = rec["balance"]
    group_after = result[result["group"].notna()].groupby("group").size()
    subclusters = {}
    for group, size in balance["group_sizes"].items():
        n = int(group_after.get(group, 0))
        subclusters[group] = {"before": size, "target": balance["group_targets"].get(group), "after": n,
                              "growth": round(n / size, 3) if size else None}
    plan = pd.read_parquet(ctx.step("balance") / "plan.parquet")
    dropped = plan[plan["action"] == "drop"]
    flagged = dropped["reason"].str.startswith("flagged")

    relabelled = [{"sample_id": r.sample_id, "from": r.old_label, "to": r.new_label, "reason": r.reason}
                  for r in moved.itertuples(index=False)]
    augment_counts = rec["augment"]["counts"]
    n_rows = len(result)
    summary = {
        "dataset": str(Path(ctx.manifest.source).resolve()),
        "budget": opts["budget"],
        "rows": n_rows,
        "filled": n_rows == opts["budget"],
        "seed": ctx.seed,
        "steps": {name: {"status": runner.status.get(name, "skipped"),
                         "seconds": rec.get(name, {}).get("seconds"),
                         "folder": runner.folder(name).relative_to(out).as_posix() if name in rec else None}
                  for name in STEPS},
        "checks": checks,
        "classes": classes,
        "subclusters": subclusters,
        "changes": {
            "relabel": rec.get("relabel", {}).get("counts", {}),
            "relabel_drop_reasons": rec.get("relabel", {}).get("drop_reasons", {}),
            "relabelled": relabelled,
            "balance": {"dropped_flagged": int(flagged.sum()), "trimmed": int((~flagged).sum()),
                        "dropped_reasons": {str(k): int(v) for k, v in
                                            dropped["reason"].str.split(":").str[0].value_counts().sort_index().items()},
                        "copies": int(plan["copies"].sum())},
            "augment": augment_counts,
            "actions": {str(k): int(v) for k, v in result["action"].value_counts().sort_index().items()},
        },
        "choices": {
            "budget": {"value": opts["budget"], "rule": "--budget / [fix] budget; default: the source dataset's rows"},
            "relabel": {"auto": rec.get("relabel", {}).get("auto", True), "drop": True, "min_confidence": opts["min_confidence"],
                        "hold_out_review": opts["hold_out_review"],
                        "rule": "relabel --auto --drop: relabel where every label check agrees and the suggestion has "
                                "p >= min_confidence; drop corrupt, off-class outliers, surplus duplicates, leaked copies"
                                + ("; the samples queued for review stay out" if opts["hold_out_review"] else "")},
            "targets": {"strategy": balance["strategy"], "strategy_rule": balance["strategy_rule"],
                        "fixed_rows": balance["fixed_rows"],
                        "training_room": balance["training_room"], "class_targets": balance["class_targets"],
                        "rule": ("water-filling over classes, then over each class's sub-clusters: every group ends "
                                 "at max(size, T), T the highest level that fits the room; below the data, the "
                                 "largest groups are trimmed first") if opts["balance"] else
                                "every class grows (or shrinks) by the same factor"},
            "boost": balance["boost"],
            "augmentation": {"spec": balance["augment_screen"]["spec"],
                             "rule": "[augment] of the config, else augment's defaults, less the RandAugment "
                                     "operations the screen left out (screen: its rule and evidence)",
                             "screen": balance["augment_screen"]},
            "drop_flagged": opts["drop_flagged"],
        },
        "outputs": {"dataset": DATASET_DIR, "manifest": MANIFEST_NAME,
                    "review": REVIEW_NAME if (out / REVIEW_NAME).exists() else None,
                    "first_audit": runner.folder("audit").relative_to(out).as_posix(),
                    "final_audit": runner.folder("final_audit").relative_to(out).as_posix()},
        "final_exit_status": rec["final_audit"]["exit_status"],
        "manifest_sha256": rec["output"]["manifest_sha256"],
    }
    if (out / REVIEW_NAME).exists():
        summary["changes"]["review_queue"] = int(len(pd.read_csv(out / REVIEW_NAME)))
        summary["changes"]["review_queue_parts"] = rec["relabel"]["review_queue"]
    final = read_json(out / rec["final_audit"]["run"] / "summary.json")
    summary["final_gates"] = final.get("gates", [])
    # "note": the balance record of a fix begun before it could hold more than one
    balance_notes = rec["balance"].get("notes", [rec["balance"].get("note")])
    relabel_rec = rec.get("relabel", {})
    summary["notes"] = [n for n in (relabel_rec.get("note"), *relabel_rec.get("notes", []), *balance_notes) if n]
    short = opts["budget"] - n_rows
    if short > 0:  # the copies reserved for boosting had too few candidates (unreadable, or screened out)
        made, reserved = summary["changes"]["actions"].get("boost", 0), balance["boost"]["copies"]
        why = f": boosting made {made} of the {reserved} copies reserved for it" if made < reserved else ""
        summary["notes"].append(f"the result has {n_rows} rows, {short} short of the budget of {opts['budget']}{why}")
    return summary, table


def _train(frame: pd.DataFrame) -> np.ndarray:
    from .balance import training_mask

    return training_mask(frame)


def _refuse_over_limit(named: str, training_rows: int, n_train: int) -> None:
    """Refuse a budget (``named`` as the message names it: ``--budget N`` or ``[fix] budget N
    of FILE``) that leaves balancing ``training_rows`` rows to fill, past balance's limit for
    ``n_train`` training samples (:data:`~datacheck.actions.balance.MAX_GROWTH` × ``n_train``,
    at least :data:`~datacheck.actions.balance.MIN_PLAN_LIMIT`)."""
    from .balance import MAX_GROWTH, MIN_PLAN_LIMIT

    limit = max(MAX_GROWTH * n_train, MIN_PLAN_LIMIT)
    if training_rows > limit:
        raise UsageError(f"{named} would make {training_rows:,} training rows, over the limit of {limit:,} "
                         f"({MAX_GROWTH} x the {n_train:,} training samples, and at least {MIN_PLAN_LIMIT:,})")

"""Execute a balance plan: make the augmented copies it schedules, as new image files.

Each copy is made with ``torchvision.transforms.v2``: a random affine transform (rotation,
translation, scale within the configured ranges) and/or RandAugment, chosen by ``policy``.
The random stream of a copy is seeded from ``(seed, source sample id, copy index)`` alone,
so a copy does not depend on which worker made it or on what else is in the plan, and a
rerun writes byte-identical PNG files (fixed encoder settings, no timestamps).

The output folder is a complete dataset, ``DIR/<split>/<class>/`` (``DIR/<class>/`` for an
unsplit dataset): the kept originals are hard-linked into it (copied where the file system
cannot link), next to the copies, so ``datacheck audit DIR`` audits the result. Its
``manifest.csv`` lists every file with its provenance: ``source_id`` (the original's sample
id) and ``transform`` (JSON: policy, seed and the parameters drawn; empty for originals).
The audited manifest's extra columns are kept; one named like a provenance column is kept as
``user_<name>`` (see :func:`user_columns`).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ..errors import BadDataError, UsageError, keyword_errors
from ..folder_scan import IMAGE_EXTENSIONS
from ..runs import fitted_name
from .augment_screen import CopyScreen, LastSource, screened_copy
from .transforms import DEFAULT_SPEC, copy_seed, validate_spec

AUGMENT_MARKER = "augment.json"
MANIFEST_NAME = "manifest.csv"
#: zlib level of every PNG written: fixed, so reruns are byte-identical.
PNG_COMPRESS_LEVEL = 6
#: Boosting candidates drawn per kept training source when ``boost_pool`` is not given.
DEFAULT_BOOST_POOL = 4
#: A copy is screened against the earlier copies of its source whose index falls in its run
#: of this many (copies 0-31, 32-63, ...), not only against the source: two mild draws can
#: make two copies that are near duplicates of each other.
SIBLING_RUN = 32
#: Columns of the output manifest.csv that augment fills itself, besides the contract columns.
PROVENANCE_COLUMNS = ("source_id", "transform")


def augment_batch(batch: dict, jobs: dict, out_dir: str, screen: CopyScreen | None = None) -> dict:
    """Make the copies named in ``batch`` (pure over the batch; runs in DataLoader workers).

    Parameters
    ----------
    batch : dict
        ``{"path": list of str}``: output paths relative to ``out_dir`` (keys of ``jobs``).
    jobs : dict
        Output path → ``(source file, seed, spec, extra provenance dict, earlier)``, where
        ``earlier`` are the output paths of the copies of the same source the copy must not
        be a near duplicate of (:data:`SIBLING_RUN`), in the order they are made.
    out_dir : str
    screen : CopyScreen, optional
        Copies it rejects are drawn again (:func:`.augment_screen.screened_copy`).

    Returns
    -------
    dict
        ``"path"``, ``"transform"`` (JSON of the spec, the seed used, the number of draws,
        the drawn parameters and extra provenance), ``"written"`` (bool: False for a file a
        resumed run already had) and ``"error"`` (empty or the decode error), one per path.
    """
    from ..engine.image_stats import DECODE_ERRORS
    from ..runs import atomic_write

    out = {"path": [], "transform": [], "written": [], "error": []}
    sources = LastSource(screen)
    made: dict = {}  # output path -> (copy, params, its measurement), this batch's and the siblings they need

    def draw(rel: str):
        # A sibling made in an earlier batch is drawn again here (the same draws: the same copy).
        if rel not in made:
            source, seed, spec, _, earlier = jobs[rel]
            image, measured = sources.open(source)  # the current one: siblings share their source
            if screen is not None:
                for sibling in earlier:
                    draw(sibling)
            made[rel] = screened_copy(image, spec, seed, screen, measured,
                                      [made[e][2] for e in earlier] if screen is not None else [], measure=True)
        return made[rel]

    for rel in batch["path"]:
        source, _, spec, extra, _ = jobs[rel]
        target = Path(out_dir) / rel
        try:
            sources.open(source)
        except DECODE_ERRORS as exc:
            for key, value in (("path", rel), ("transform", ""), ("written", False), ("error", f"{source}: {exc}")):
                out[key].append(value)
            continue
        # A resumed run still draws the parameters (for the manifest) but never rewrites a file.
        result, drawn, _ = draw(rel)
        fresh = not target.exists()
        if fresh:
            atomic_write(target, lambda tmp: result.save(tmp, format="PNG", optimize=False,
                                                         compress_level=PNG_COMPRESS_LEVEL))
        transform = json.dumps({**spec, **drawn, **extra}, sort_keys=True)
        for key, value in (("path", rel), ("transform", transform), ("written", fresh), ("error", "")):
            out[key].append(value)
    return out


# --------------------------------------------------------------------------- layout


def layout(rows: pd.DataFrame) -> pd.DataFrame:
    """Output paths for kept originals and planned copies.

    Parameters
    ----------
    rows : pandas.DataFrame
        Kept, labeled plan rows joined with the manifest: ``sample_id, path, label, split,
        copies``.

    Returns
    -------
    pandas.DataFrame
        One row per output file, originals each followed by their copies: ``out_path``
        (relative to the output folder), ``source_id``, ``copy`` (-1 for the original).
    """
    splits = rows["split"]
    if splits.notna().any() and splits.isna().any():
        raise UsageError("cannot lay out rows without a split next to rows with one (the output is "
                         "root/<class>/ or root/<split>/<class>/)")
    for label in rows["label"].unique():
        # A folder per class: a name the file system refuses, or a hidden one (".x", which
        # datacheck audit skips when it scans the output again), would lose the class.
        if (label.startswith(".") or "/" in label or "\\" in label or "\x00" in label
                or len(label.encode("utf-8")) > 255):
            raise BadDataError(f"cannot write class {label[:60]!r} as a folder name (hidden, too long or "
                               "with a path separator or NUL); rename the class in the manifest")
    # A manifest may list files by any name (Pillow reads them by content), but the folder scan
    # takes images by extension: an original named "ab12" or "x.jfif" would be missing from the
    # folder when it is audited again (fix's re-audit found "no images").
    unread = next((p for p in rows["path"] if PurePosixPath(p).suffix.lower() not in IMAGE_EXTENSIONS), None)
    if unread is not None:
        raise BadDataError(f"cannot write {unread[:80]!r} into a folder dataset: a folder is scanned for image "
                           f"extensions ({' '.join(sorted(IMAGE_EXTENSIONS))}), so it would be left out when the "
                           "folder is audited again; give the file one in the dataset and its manifest")
    taken: set[str] = set()
    out = []
    columns = ["sample_id", "path", "label", "split", "copies"]
    for sample_id, rel, label, split, copies in rows[columns].itertuples(index=False):
        folder = PurePosixPath(label) if pd.isna(split) else PurePosixPath(split, label)
        name = PurePosixPath(rel)
        tag = hashlib.blake2b(sample_id.encode(), digest_size=4).hexdigest()
        original = str(folder / name.name)
        if original in taken:  # the same file name from two source folders: keep both
            original = str(folder / fitted_name(name.stem, f"-{tag}{name.suffix}"))
        names = [original] + [copy_name(folder, rel, sample_id, k) for k in range(int(copies))]
        clash = taken.intersection(names)
        if clash:
            raise BadDataError(f"two outputs would be written as {sorted(clash)[0]}; rename the source file")
        taken.update(names)
        out += [(n, sample_id, k - 1) for k, n in enumerate(names)]
    return pd.DataFrame(out, columns=["out_path", "source_id", "copy"])


def copy_name(folder: PurePosixPath, rel: str, sample_id: str, copy: int) -> str:
    """Output path of copy ``copy`` of the source at ``rel``: ``<folder>/<stem>-<8 hex of the id>-aug<copy>.png``
    (the stem shortened where the name would pass the file system's 255 bytes, :func:`~datacheck.runs.fitted_name`)."""
    tag = hashlib.blake2b(sample_id.encode(), digest_size=4).hexdigest()
    return str(folder / fitted_name(PurePosixPath(rel).stem, f"-{tag}-aug{copy}.png"))


def link_or_copy(source: Path, target: Path) -> str:
    """Hard-link ``source`` at ``target`` ("linked"), or copy it atomically ("copied")."""
    from ..runs import atomic_write

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
        return "linked"
    except OSError:  # another file system, links not supported, or a file of another user's
        pass

    def copy(tmp: Path) -> None:
        # A source this user cannot read (the audit reported it corrupt) is bad data, named as
        # the input it is: it was exit 2, "SOURCE: Permission denied", as if an output had failed.
        try:
            shutil.copyfile(source, tmp)
        except OSError as exc:
            if exc.filename != str(source) or exc.errno not in (errno.EACCES, errno.EPERM):
                raise
            raise BadDataError(f"cannot read {source} to copy it: {exc.strerror}; make it readable, or leave out "
                               "the files the audit found corrupt (balance --drop-flagged, relabel --drop)") from None

    atomic_write(target, copy)
    return "copied"


# --------------------------------------------------------------------------- the command


@dataclass
class AugmentResult:
    """What :func:`augment` wrote.

    Attributes
    ----------
    manifest : pandas.DataFrame
        The output manifest (paths relative to the output folder).
    counts : dict
        ``originals``, ``linked``, ``copied``, ``augmented`` (copies in the manifest),
        ``boosted`` (of which data-boosting copies), ``written`` (copies made by this call),
        ``skipped_existing``, ``skipped_unlabeled``.
    written : dict of str to str
    renamed_columns : dict of str to str
        Columns of the audited manifest written under another name (:func:`user_columns`).
    """

    manifest: pd.DataFrame
    counts: dict
    written: dict = field(default_factory=dict)
    renamed_columns: dict = field(default_factory=dict)


#: The options of ``datacheck augment`` that Python gives in ``spec`` (and balance's, named in a hint).
_SPELT = {**{"--" + key.replace("_", "-"): f"spec[{key!r}]" for key in DEFAULT_SPEC}, "--drop-flagged": "drop_flagged"}


@keyword_errors(_SPELT)
def augment(
    plan_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int | None = None,
    spec: dict | None = None,
    resume: bool = False,
    workers: int = 0,
    progress=None,
    dataset: str | os.PathLike | None = None,
    boost_from: str | os.PathLike | None = None,
    boost_budget: int | None = None,
    boost_pool: int | None = None,
    screen: bool = True,
    command: list[str] | None = None,
) -> AugmentResult:
    """``datacheck augment``: make a plan's copies and write ``out`` as a complete dataset.

    Parameters
    ----------
    plan_dir : path-like
        A folder written by ``datacheck balance``.
    out : path-like
        New or empty folder; or, with ``resume``, an earlier augment output of the same plan
        and settings, whose finished files are kept.
    seed : int, optional
        Default: the plan's seed.
    spec : dict, optional
        Overrides of the plan's augmentation (``policy``, ``num_ops``, ``magnitude``,
        ``degrees``, ``translate``, ``scale``); None values are ignored.
    workers : int
        DataLoader worker processes for decoding, augmenting and encoding (0: this process).
    progress : callable, optional
        ``progress(done, total)`` as copies are made.
    dataset : path-like, optional
        Where the audited dataset is now, if it moved.
    boost_from : path-like, optional
        An audit run of the same dataset: add data-boosting copies (:mod:`.boost`) to the
        training split, ``boost_budget`` of them (default 5 per misclassified validation
        sample) chosen from ``boost_pool`` candidates per training source (default 4).
        ``boost_budget`` and ``boost_pool`` need ``boost_from``.
    screen : bool, default True
        Draw a copy again (at most :data:`.augment_screen.MAX_DRAWS` times) while it crosses
        an image-property cut of the plan's audit that its source does not, or is a near
        duplicate of its source or of an earlier copy of it (:data:`SIBLING_RUN`) by that
        audit's cut (:class:`.augment_screen.CopyScreen`).
    command : list of str, optional
        The command line; given (by ``datacheck augment``), messages name its options
        (``--resume``, ``--magnitude``), else this function's keywords (``resume``, ``spec['magnitude']``).
    """
    from ..audit_run import open_run
    from ..validation import check_seed
    from ..engine.loader import map_batches
    from ..manifest import CONTRACT_COLUMNS, write_manifest
    from ..runs import Sources, check_outputs, folder_lock, remove_temporaries, write_json
    from ..files.plan import PLAN_FILE, PLAN_MARKER, read_plan
    from ..validation import check_callable, check_int_range

    given = [name for name, value in (("boost_budget", boost_budget), ("boost_pool", boost_pool)) if value is not None]
    if boost_from is None and given:  # else silently no boosting, which the caller did not ask for
        raise UsageError(f"{given[0]} needs boost_from (the audit run whose model's validation errors the copies "
                         "are chosen for); without it no boosting copies are made")
    for name, value in (("resume", resume), ("screen", screen)):
        if not isinstance(value, (bool, np.bool_)):  # resume="no" is truthy
            raise UsageError(f"{name} must be True or False, got {value!r:.40}")
    check_callable("progress", progress, "progress(done, total)")
    if spec is not None and not isinstance(spec, dict):
        raise UsageError(f"spec must be a dict of augmentation settings ({', '.join(DEFAULT_SPEC)}), "
                         f"got a {type(spec).__name__}")
    # numpy numbers (a value taken from an array) as Python's
    seed, workers, boost_budget, boost_pool = (v.item() if isinstance(v, np.generic) else v
                                               for v in (seed, workers, boost_budget, boost_pool))
    if seed is not None:
        check_seed(seed)
    check_int_range("--workers", workers, 0)
    for name, value in (("--boost-budget", boost_budget), ("--boost-pool", boost_pool)):
        if value is not None:
            check_int_range(name, value, 1)
    if boost_pool is None:
        boost_pool = DEFAULT_BOOST_POOL
    info, plan = read_plan(plan_dir)
    overrides = {k: v.item() if isinstance(v, np.generic) else v for k, v in (spec or {}).items() if v is not None}
    validate_spec(overrides)
    seed = info.seed if seed is None else seed
    boost = None if boost_from is None else {"from": str(Path(boost_from).resolve()), "budget": boost_budget,
                                             "pool": boost_pool}
    # The plan's content, not only its folder: a plan made again in the same place is another plan.
    plan_digest = hashlib.sha256((Path(plan_dir) / PLAN_FILE).read_bytes()).hexdigest()
    settings = {"plan": str(Path(plan_dir).resolve()), "plan_sha256": plan_digest, "seed": seed, "overrides": overrides,
                "boost": boost, "screen": bool(screen)}
    plan_spec = plan_transform(info.transform, f"{Path(plan_dir) / PLAN_MARKER}: transform")
    out, before = _check_out(Path(out), bool(resume), settings, plan_spec)

    audited = open_run(info.run)
    manifest = audited.manifest(dataset)  # refuses a dataset changed since the audit
    copy_screen = CopyScreen.from_summary(audited.summary.get("checks", {})) if screen else None
    check_outputs(Sources.of(manifest), folders={"--out": out})  # e.g. DATASET/train/augmented would grow the dataset
    if manifest.fingerprint != info.manifest_fingerprint:
        raise BadDataError(f"the plan in {plan_dir} was made from another version of {manifest.source}; "
                           "run datacheck balance again")
    frame = manifest.frame
    if set(plan["sample_id"]) != set(frame["sample_id"]):
        raise BadDataError(f"the plan in {plan_dir} does not list the audited samples; run datacheck balance again")
    # Only the contract columns take part in the plan logic: a user column named like a plan
    # column (action, copies, transform) must not shadow it. User columns come back at the end.
    rows = frame[CONTRACT_COLUMNS].merge(plan[["sample_id", "action", "copies", "transform"]], on="sample_id",
                                         how="left", validate="1:1")
    rows = rows[rows["action"] != "drop"]
    unlabeled = int(rows["label"].isna().sum())
    rows = rows[rows["label"].notna()].reset_index(drop=True)
    plan_file = Path(plan_dir) / PLAN_FILE
    parsed = {t: plan_transform(t, f"{plan_file}: transform {t!r:.60}") for t in set(rows["transform"]) if t}
    specs = {s: validate_spec({**parsed[t], **overrides}) for s, t in zip(rows["sample_id"], rows["transform"]) if t}
    files = layout(rows)
    extra: dict[str, dict] = {}  # boosting copies: output path → provenance
    boost_spec = validate_spec({**plan_spec, **overrides})
    boost_choice = {}  # kept in the marker: a resumed run reuses it instead of training the embedding model again
    if boost_from is not None:
        files, extra, boost_choice = _add_boost(files, rows, manifest, open_run(boost_from), seed, boost_spec,
                                                boost_budget, boost_pool, workers, progress,
                                                (before or {}).get("boost_choice"), copy_screen)

    with folder_lock(out):  # after every check: a refused augment leaves no folder behind
        if before is not None:
            remove_temporaries(out)  # half-written copies of a killed run (a Ctrl-C leaves none)
        write_json(out / AUGMENT_MARKER, {**settings, "status": "running", **boost_choice})
        path_of = dict(zip(rows["sample_id"], rows["path"]))
        counts = {"originals": 0, "linked": 0, "copied": 0, "augmented": 0, "boosted": 0, "written": 0,
                  "skipped_existing": 0, "skipped_unlabeled": unlabeled}
        for rel, source_id in files.loc[files["copy"] < 0, ["out_path", "source_id"]].itertuples(index=False):
            counts["originals"] += 1
            if (out / rel).exists():
                counts["skipped_existing"] += 1
            else:
                counts[link_or_copy(manifest.root / path_of[source_id], out / rel)] += 1

        made = files[files["copy"] >= 0]
        jobs = {rel: (str(manifest.root / path_of[s]), copy_seed(seed, s, int(k)),
                      boost_spec if rel in extra else specs[s], extra.get(rel, {}), earlier)
                for rel, s, k, earlier in zip(made["out_path"], made["source_id"], made["copy"],
                                              _earlier_siblings(made, extra))}
        work = functools.partial(augment_batch, jobs=jobs, out_dir=str(out), screen=copy_screen)
        result = map_batches(list(jobs), work, workers, batch_size=16, progress=progress)
        errors = [e for e in result.get("error", []) if e]
        if errors:
            raise BadDataError(f"{len(errors)} source image(s) could not be decoded (first: {errors[0]}); "
                               "balance with --drop-flagged leaves out the files the audit found corrupt, "
                               "and a file damaged since the audit needs the audit run again")
        transform = dict(zip(result.get("path", []), result.get("transform", [])))
        counts["augmented"], counts["boosted"] = len(jobs), len(extra)
        counts["written"] = int(sum(result.get("written", [])))
        counts["skipped_existing"] += len(jobs) - counts["written"]

        source = rows.set_index("sample_id")
        new = pd.DataFrame({
            "sample_id": files["out_path"].to_numpy(),
            "path": files["out_path"].to_numpy(),
            "label": source.loc[files["source_id"], "label"].to_numpy(),
            "split": source.loc[files["source_id"], "split"].to_numpy(),
            "source_id": files["source_id"].to_numpy(),
            "transform": [transform.get(p, "") for p in files["out_path"]],
        })
        names = user_columns(frame)
        user = frame.set_index("sample_id")
        for column, name in names.items():
            new[name] = user.loc[files["source_id"], column].to_numpy()
        renamed = {column: name for column, name in names.items() if column != name}
        written = {"manifest": str(write_manifest(new, out, out / MANIFEST_NAME)), "folder": str(out)}
        write_json(out / AUGMENT_MARKER, {**settings, "status": "complete", "counts": counts,
                                          "renamed_columns": renamed, **boost_choice})
    return AugmentResult(new, counts, written, renamed)


# --------------------------------------------------------------------------- checks of a plan


def _earlier_siblings(made: pd.DataFrame, boosting: dict) -> list[tuple]:
    """Per planned copy (rows of ``made``: ``out_path, source_id, copy``), the output paths of
    the copies it is screened against besides its source: the boosting copies of its source,
    then the earlier copies of its source in its run of :data:`SIBLING_RUN` copy indices.
    Runs are fixed by the copy index, so what a copy is compared with does not depend on
    batches or workers, and a copy is never compared with more than ``SIBLING_RUN - 1``
    planned others. Boosting copies (``boosting``'s keys) are chosen as candidates drawn alone
    (:mod:`.boost`): they are compared with their source only, and the planned copies of that
    source with them (on roman, two boosting copies had been near duplicates of planned ones)."""
    is_boost = made["out_path"].isin(list(boosting)).to_numpy()
    boosts: dict = {}
    for rel, source in zip(made["out_path"][is_boost], made["source_id"][is_boost]):
        boosts.setdefault(source, []).append(rel)
    planned = made[~is_boost]
    runs: dict = {}
    for rel, source, k in zip(planned["out_path"], planned["source_id"], planned["copy"]):
        runs.setdefault((source, int(k) // SIBLING_RUN), []).append((int(k), rel))
    before = {}
    for (source, _), members in runs.items():
        members.sort()
        for i, (_, rel) in enumerate(members):
            before[rel] = tuple(boosts.get(source, ())) + tuple(r for _, r in members[:i])
    return [before.get(rel, ()) for rel in made["out_path"]]


def plan_transform(value, where: str) -> dict:
    """An augmentation spec recorded in a plan (a JSON object, or its text), checked.

    The spec is bad data (exit 3), not a usage error: it comes from a file, not an option.

    Raises
    ------
    BadDataError
        ``value`` is not a JSON object, or :func:`validate_spec` refuses it.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            value = None
    if not isinstance(value, dict):
        raise BadDataError(f"{where} is not a JSON object; the plan is damaged, run datacheck balance again")
    try:
        validate_spec(value)
    except UsageError as exc:
        # validate_spec speaks of options (--degrees); here the value comes from the file.
        raise BadDataError(f"{where}: {str(exc).removeprefix('--')}") from None
    return value


def user_columns(frame: pd.DataFrame) -> dict:
    """The audited manifest's extra columns → their name in augment's ``manifest.csv``.

    ``source_id`` and ``transform`` are augment's provenance columns, documented as such and
    read by scripts; a re-audited augment output even carries them from the round before.
    So augment's own columns keep those names, and a user column of the same name is kept,
    not dropped or refused, as ``user_<name>`` (``user_user_<name>`` if that is taken too).
    Every other extra column, ``action`` and ``copies`` included, keeps its name.
    """
    from ..manifest import CONTRACT_COLUMNS

    extras = [c for c in frame.columns if c not in CONTRACT_COLUMNS]
    taken = set(CONTRACT_COLUMNS) | set(PROVENANCE_COLUMNS) | set(extras)
    names = {}
    for column in extras:
        name = column
        if column in PROVENANCE_COLUMNS:
            while name in taken:
                name = f"user_{name}"
            taken.add(name)
        names[column] = name
    return names


def _add_boost(files, rows, manifest, run, seed, spec, budget, pool, workers, progress, saved=None, screen=None):
    """``files`` with the boosting copies appended, per boosting file its provenance
    (``{"boost": {"val_id", "cosine"}}``), and the choice to keep in the marker
    (``{"boost_choice": {"run_sha256", "rows"}}``).

    ``saved`` is the choice an interrupted run of the same settings kept: reused when the
    audit run it was made from is unchanged (its ``run.json`` and model outputs), so a resume
    does not train the embedding model again (on roman, most of the step's time).
    """
    from .boost import CHOICE_DTYPES, select_boost

    digest = _run_digest(run)
    originals = files[files["copy"] < 0]
    folder_of = {s: PurePosixPath(p).parent for p, s in zip(originals["out_path"], originals["source_id"])}
    chosen = _saved_choice(saved, digest, set(folder_of))
    if chosen is None:
        first_copy = dict(zip(rows["sample_id"], rows["copies"].astype(int)))
        chosen = select_boost(run, manifest, rows, first_copy, seed=seed, spec=spec, pool=pool, budget=budget,
                              workers=workers, progress=progress, screen=screen)
    path_of = dict(zip(rows["sample_id"], rows["path"]))
    names = [copy_name(folder_of[s], path_of[s], s, int(k)) for s, k in zip(chosen["source_id"], chosen["copy"])]
    if set(names) & set(files["out_path"]):
        raise BadDataError("a boosting copy would overwrite another output file; rename the source file")
    extra = {n: {"boost": {"val_id": v, "cosine": c}} for n, v, c in zip(names, chosen["val_id"], chosen["cosine"])}
    boosted = pd.DataFrame({"out_path": names, "source_id": chosen["source_id"].to_numpy(),
                            "copy": chosen["copy"].to_numpy()})
    kept = {"boost_choice": {"run_sha256": digest, "rows": {c: chosen[c].tolist() for c in CHOICE_DTYPES}}}
    return pd.concat([files, boosted], ignore_index=True), extra, kept


def _saved_choice(saved, digest: str, sources: set) -> pd.DataFrame | None:
    """The boosting choice a marker kept (``saved``), if made from the audit run whose
    :func:`_run_digest` is ``digest`` and naming only kept ``sources``; else None (choose again:
    the run was audited again since, or the marker was edited by hand)."""
    from .boost import CHOICE_DTYPES

    rows = saved.get("rows") if isinstance(saved, dict) and saved.get("run_sha256") == digest else None
    if not isinstance(rows, dict) or set(rows) != set(CHOICE_DTYPES):
        return None
    try:
        chosen = pd.DataFrame(rows).astype(CHOICE_DTYPES)
    except (TypeError, ValueError):
        return None
    return chosen[list(CHOICE_DTYPES)] if set(chosen["source_id"]) <= sources else None


def _run_digest(run) -> str:
    """SHA-256 of what a boosting choice is made from in an audit run: ``run.json`` (settings,
    dataset fingerprint) and the model outputs (which validation samples are wrong)."""
    from ..engine.image_stats import require_regular_file
    from ..files.model_outputs import OUTPUTS_ARTIFACT
    from ..runs import RUN_MARKER

    digest = hashlib.sha256()
    for path in (run.path / RUN_MARKER, run.artifacts / OUTPUTS_ARTIFACT):
        try:
            require_regular_file(path)  # a pipe would block: the audit run's own reader reports it
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<absent>")
    return digest.hexdigest()


def _check_out(out: Path, resume: bool, settings: dict, plan_spec: dict) -> tuple[Path, dict | None]:
    """Refuse a non-empty ``out`` unless resuming an earlier augment of the same plan and settings
    (``plan_spec``: the plan's augmentation, what a setting not given means). Returns ``out``
    and the resumed run's marker (None for a new folder), whose temporary files the caller
    removes once it holds the folder's lock."""
    from ..runs import holds_files

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    if not out.exists() or not holds_files(out):
        return out, None
    if not resume:
        raise UsageError(f"--out {out} is not empty; choose another folder, or --resume an interrupted augment")
    marker = out / AUGMENT_MARKER
    if not marker.is_file():
        raise UsageError(f"--resume: {out} is not an augment output (no {AUGMENT_MARKER})")
    from ..files.json_object import read_json

    before = read_json(marker)
    if _in_effect({k: before.get(k) for k in settings}, plan_spec) != _in_effect(settings, plan_spec):
        key, was, now = _first_setting_that_differs(before, settings, plan_spec)
        raise UsageError(f"--resume: {out} was made with other settings ({key} {was}, now {now}); rerun with the "
                         "same ones to continue it, or use a new folder")
    return out, before


def _in_effect(settings: dict, plan_spec: dict) -> dict:
    """``settings`` as they act: the augmentation overrides laid over the plan's own (a setting
    given with the plan's value is the plan's), in JSON's types (a tuple is a list)."""
    overrides = settings.get("overrides")
    spec = {**plan_spec, **overrides} if isinstance(overrides, dict) else overrides
    return json.loads(json.dumps({**settings, "overrides": spec}))


def _first_setting_that_differs(before: dict, settings: dict, plan_spec: dict) -> tuple[str, str, str]:
    """The first setting of an augment output's marker (``before``) that ``settings`` change,
    as ``(name, before, now)`` shown for a message: ``("magnitude", "9", "12")``, ``("seed", "0",
    "5")``, ``("plan", ...)``. A setting left to the plan is shown with the plan's value."""
    from .fix import _UNSET, _first_difference, _shown  # fix's --out check words it alike

    def view(values: dict) -> dict:
        overrides = values.get("overrides")
        boost = values.get("boost")
        spec = {**plan_spec, **overrides} if isinstance(overrides, dict) else {"settings": overrides}
        boost = boost if isinstance(boost, dict) else {}
        return {"plan": values.get("plan", _UNSET), "plan contents (SHA-256)": values.get("plan_sha256", _UNSET),
                "seed": values.get("seed", _UNSET), **spec, "boost_from": boost.get("from"),
                "boost_budget": boost.get("budget"), "boost_pool": boost.get("pool"),
                "screen": values.get("screen", _UNSET)}

    # Compared as augment.json holds them (JSON: a tuple is a list).
    now = json.loads(json.dumps(settings, default=str))
    found = _first_difference(view(before), view(now)) or _first_difference(before, now)
    key, was, is_ = found if found is not None else ("settings", _UNSET, _UNSET)
    return key, _shown(was), _shown(is_)

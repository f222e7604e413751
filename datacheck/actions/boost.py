"""Data boosting: add the augmented training copies that look most like the validation samples
the model gets wrong.

A pool of candidate copies is drawn from the kept training samples of the classes that have
misclassified validation samples (``pool`` per source, seeded like every other copy). The
audit's model is not saved in the run, so the embedding space is rebuilt: a network of the
run's architecture, training configuration and seed is trained once on the kept training
rows (a frozen pretrained backbone is used as it is). Every misclassified validation sample
(out-of-fold prediction of the audit ≠ given label) and every candidate of its class are
embedded, and the candidates nearest by cosine are chosen round-robin over the misclassified
samples (each one's nearest first, then each one's second, ...) up to ``budget``.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ..errors import BadDataError, UsageError


#: Most boosting candidates drawn per training sample (each is augmented and embedded).
MAX_BOOST_POOL = 64
#: The columns of a boosting choice (what :func:`select_boost` returns) and their types.
CHOICE_DTYPES = {"source_id": str, "copy": np.int64, "val_id": str, "cosine": float}

def candidate_batch(batch: dict, jobs: dict, side: int, screen=None) -> dict:
    """Make candidate copies in memory, resized for the model (pure over the batch).

    Parameters
    ----------
    batch : dict
        ``{"path": list of str}``: candidate keys of ``jobs``.
    jobs : dict
        Key → ``(source file, seed, spec)``.
    side : int
        Model input side in pixels.
    screen : datacheck.actions.augment_screen.CopyScreen, optional
        As augment draws the copies, so that a chosen candidate is the copy augment writes.

    Returns
    -------
    dict
        ``"pixels"``: list of ndarray (3, side, side) uint8; ``"ok"``: list of bool.
    """
    from ..engine.image_stats import DECODE_ERRORS
    from ..engine.loader import model_input
    from .augment_screen import LastSource, screened_copy

    sources = LastSource(screen)
    pixels, ok = [], []
    for key in batch["path"]:
        source, seed, spec = jobs[key]
        try:
            image, measured = sources.open(source)
            image, _ = screened_copy(image, spec, seed, screen, measured)
        except DECODE_ERRORS:
            pixels.append(np.zeros((3, side, side), np.uint8))
            ok.append(False)
            continue
        pixels.append(model_input(image, side))
        ok.append(True)
    return {"pixels": pixels, "ok": ok}


def validation_errors(frame: pd.DataFrame, outputs) -> np.ndarray:
    """Rows of the ``val`` split whose out-of-fold prediction differs from the given label.

    Parameters
    ----------
    frame : pandas.DataFrame
        The audited manifest, N rows.
    outputs : datacheck.features.model.ModelOutputs
        The audit's model outputs, row-aligned with ``frame``.

    Returns
    -------
    numpy.ndarray of int, shape (V,)
        Row indices, in manifest order.

    Raises
    ------
    UsageError
        The dataset has no ``val`` split.
    """
    val = (frame["split"] == "val").fillna(False).to_numpy(dtype=bool)
    if not val.any():
        raise UsageError("--boost-from needs a val split (the samples the model gets wrong)")
    return np.flatnonzero(val & outputs.scored & (np.nan_to_num(outputs.pred_probs).argmax(axis=1) != outputs.labels))


def copy_sources(rows: pd.DataFrame, findings: pd.DataFrame) -> pd.Series:
    """Which of ``rows`` (``sample_id``, ``label``) boosting draws candidates from, bool by row:
    as balance's copies, none the audit (``findings``) flags as junk or whose label it doubts
    (:func:`datacheck.actions.balance.copy_doubts`), unless its class has no other source (the
    class then grows from what it has)."""
    from .balance import copy_doubts

    clean = ~rows["sample_id"].isin(copy_doubts(findings))
    return clean | ~clean.groupby(rows["label"]).transform("any")


def select_boost(run, manifest, kept: pd.DataFrame, first_copy: dict, *, seed: int, spec: dict, pool: int,
                 budget: int | None, workers: int, progress=None, screen=None) -> pd.DataFrame:
    """Choose boosting copies.

    Parameters
    ----------
    run : datacheck.audit_run.AuditRun
        An audit of the same dataset that trained a model (its out-of-fold predictions say
        which validation samples are wrong; its configuration rebuilds the embedding model).
    manifest : datacheck.manifest.Manifest
        The audited dataset.
    kept : pandas.DataFrame
        Kept rows of the plan joined with the manifest (``sample_id, path, label, split``).
    first_copy : dict of str to int
        Per source id, the first copy index not used by the plan.
    seed : int
    spec : dict
        Validated augmentation spec of the candidates.
    pool : int
        Candidates per training source.
    budget : int or None
        Copies to add; None: 5 per misclassified validation sample.
    screen : datacheck.actions.augment_screen.CopyScreen, optional
        The screen augment draws the copies with (:func:`candidate_batch`).

    Returns
    -------
    pandas.DataFrame
        ``source_id, copy, val_id, cosine``, one row per chosen copy.
    """
    import torch

    from ..engine.device import resolve_device
    from ..engine.loader import load_pixels, map_batches
    from ..engine.models import create_model, with_model_input
    from ..engine.train import TrainConfig, fit, predict
    from .transforms import copy_seed

    if pool < 1 or (budget is not None and budget < 1):
        raise UsageError("--boost-pool and --boost-budget must be positive integers")
    if pool > MAX_BOOST_POOL:  # every candidate is an image made and embedded: pool x the training rows
        raise UsageError(f"--boost-pool must be at most {MAX_BOOST_POOL}, got {pool}")
    if run.info.manifest_fingerprint != manifest.fingerprint:
        raise UsageError(f"--boost-from {run.path} audited another dataset (or another version) than the plan's")
    outputs = run.outputs()
    if outputs is None:
        raise UsageError(f"--boost-from {run.path}: the audit trained no model (run it with label_issues)")
    frame = manifest.frame
    wrong = validation_errors(frame, outputs)
    empty = pd.DataFrame({column: pd.Series(dtype=kind) for column, kind in CHOICE_DTYPES.items()})
    if not len(wrong):
        return empty
    budget = 5 * len(wrong) if budget is None else budget
    classes = list(outputs.classes)
    index = {c: i for i, c in enumerate(classes)}

    try:
        config = with_model_input(TrainConfig(model=run.info.audit_setting("model", "convnet-small"),
                                              **run.info.config.get("train", {})))
    except (TypeError, UsageError) as exc:  # an unknown or bad [train] key in a hand-edited run.json
        raise BadDataError(f"{run.path / 'run.json'}: its config.train cannot be used ({exc}); rerun the audit") from None
    # The device the audit was told to use (fix's --device reaches boosting so), where this machine
    # has it; where it does not (an audit on a GPU machine, say), the best device here.
    try:
        device = resolve_device(run.info.audit_setting("device", "auto"))
    except UsageError:
        device = resolve_device("auto")
    train = kept[(kept["split"] == "train") & kept["label"].notna()]
    root = manifest.root
    pixels, ok, _ = load_pixels([str(root / p) for p in train["path"]], config.image_size, workers)
    target = train["label"].map(index).to_numpy(dtype=np.int64)
    val_label = outputs.labels[wrong]
    sources = train[ok & np.isin(target, val_label)]
    sources = sources[copy_sources(sources, run.findings)]
    if not len(sources):  # the plan kept no readable training sample of those classes: no candidate to draw
        return empty
    torch.manual_seed(seed)
    try:
        network = create_model(config.model, len(classes), run.info.audit_setting("weights", None) or None)
    except UsageError as exc:  # e.g. the audit's --weights file is on another machine
        raise UsageError(f"--boost-from {run.path}: the audit's model cannot be built here ({exc}); "
                         "audit again on this machine") from None
    if network.trainable:
        fit(network, pixels, target[ok], config, device, seed, rows=np.flatnonzero(ok))

    def embed(px: np.ndarray) -> np.ndarray:
        _, features = predict(network, px, device, config.batch_size * 4, tta=False)
        return features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-12)

    val_ids = frame["sample_id"].to_numpy(dtype=object)[wrong]
    val_px, _, _ = load_pixels([str(root / p) for p in frame["path"].to_numpy()[wrong]], config.image_size, workers)
    val_emb = embed(val_px)

    jobs, meta = {}, []
    for sample_id, rel, label in sources[["sample_id", "path", "label"]].itertuples(index=False):
        for j in range(pool):
            copy = first_copy.get(sample_id, 0) + j
            jobs[f"{sample_id}#{copy}"] = (str(root / rel), copy_seed(seed, sample_id, copy), spec)
            meta.append((sample_id, copy, index[label]))
    made = map_batches(list(jobs), functools.partial(candidate_batch, jobs=jobs, side=config.image_size, screen=screen), workers,
                       progress=progress)
    cand_ok = np.asarray(made["ok"], dtype=bool)
    cand_emb = embed(np.stack(made["pixels"]))
    cand_label = np.array([m[2] for m in meta], dtype=np.int64)

    ranked = []  # per misclassified sample: candidate indices, nearest first
    sims = val_emb @ cand_emb.T  # (V, P): V misclassified samples, P candidates; both small next to N
    for v in range(len(wrong)):
        mine = np.flatnonzero((cand_label == val_label[v]) & cand_ok)
        ranked.append(mine[np.argsort(-sims[v, mine], kind="stable")])
    chosen, rows = set(), []
    order = np.argsort(val_ids.astype(str), kind="stable")
    for depth in range(max((len(r) for r in ranked), default=0)):
        for v in order:
            if len(rows) >= budget:
                break
            if depth < len(ranked[v]) and ranked[v][depth] not in chosen:
                c = ranked[v][depth]
                chosen.add(c)
                rows.append((meta[c][0], meta[c][1], val_ids[v], round(float(sims[v, c]), 4)))
    return pd.DataFrame(rows, columns=list(empty.columns)) if rows else empty

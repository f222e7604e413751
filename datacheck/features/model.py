"""Model outputs as features: labels as class ids, out-of-fold probabilities, embeddings, margins.

Either computed by cross-validated training on the images, or read from ``.npy`` files the
user brings (``--pred-probs``/``--labels``/``--embeddings``), for any modality.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import BadDataError
from ..runs import cache_file, cached_arrays
from ..manifest import Manifest

#: Rows of ``pred_probs`` may deviate this much from summing to 1 (float16 rounding) and are
#: renormalised; larger deviations are an error (logits or garbage, not probabilities).
SUM_TOLERANCE = 1e-2


@dataclass
class ModelOutputs:
    """Per-sample model outputs, row-aligned with the manifest.

    Attributes
    ----------
    classes : list of str, length C
    labels : ndarray of shape (N,), int
        Given label as a class id; -1 where unlabeled or not scored (unreadable image).
    pred_probs : ndarray of shape (N, C), float32
        Out-of-fold probabilities; rows are NaN where ``labels == -1``.
    embeddings : ndarray of shape (N, D), float32, or None
    source : str
        ``"cross-validation"`` or ``"files"``.
    softmax : ndarray of shape (N, C), float32, or None
        The trained models' own out-of-fold softmax, where ``pred_probs`` mixes in neighbour
        votes (cross-validation); None when they are the same thing (``pred_probs``).
    """

    classes: list
    labels: np.ndarray
    pred_probs: np.ndarray
    embeddings: np.ndarray | None
    source: str
    softmax: np.ndarray | None = None

    @property
    def scored(self) -> np.ndarray:
        """Rows with a label and probabilities, shape (N,) bool."""
        return scored_rows(self.label_ids, self.pred_probs)

    @property
    def label_ids(self) -> Labels:
        return Labels(list(self.classes), self.labels)


@dataclass(frozen=True)
class Labels:
    """The given labels as class ids.

    Attributes
    ----------
    classes : list of str, length C
    ids : ndarray of shape (N,), int64
        Class id of each manifest row; -1 where unlabeled or not scored (unreadable image).
    """

    classes: list
    ids: np.ndarray


def scored_rows(labels: Labels, pred_probs: np.ndarray) -> np.ndarray:
    """Rows with a label and probabilities, shape (N,) bool."""
    # A row sum is finite exactly when every probability in it is (NaN and inf propagate;
    # values in [0, 1] cannot overflow), without an (N, C) boolean temporary.
    return (labels.ids >= 0) & np.isfinite(pred_probs.sum(axis=1))


def label_ids(manifest: Manifest, classes: list | None = None) -> tuple[list, np.ndarray]:
    """Class names (sorted, unless given) and each row's class id (-1 for unlabeled)."""
    labels = manifest.frame["label"]
    if classes is None:
        classes = sorted(labels.dropna().unique().tolist())
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(labels.dropna()) - set(index))
    if unknown:
        raise BadDataError(f"label(s) {', '.join(map(repr, unknown[:3]))} are not among the {len(classes)} class names")
    return list(classes), labels.map(index).fillna(-1).astype(np.int64).to_numpy()


def cross_validated_outputs(manifest: Manifest, inputs: tuple, config, device: str, seed: int,
                            cache_dir: str | None, weights=None, progress=None) -> ModelOutputs:
    """Train K fold models on the labeled, readable images and collect out-of-fold outputs.

    ``inputs`` is :func:`datacheck.engine.loader.load_pixels`' ``(pixels, ok, key)``.
    Results are cached in ``cache_dir`` by file contents, labels, training config, seed and
    device type, so auditing the same data again skips training.
    """
    from ..engine.train import cross_validate

    classes, labels = label_ids(manifest)
    pixels, ok, key = inputs
    use = ok & (labels >= 0)
    labels = np.where(use, labels, -1)
    n, c = len(manifest), len(classes)
    pred_probs = np.full((n, c), np.nan, dtype=np.float32)
    softmax = pred_probs.copy()
    embeddings = None
    counts = np.bincount(labels[use], minlength=c)
    if (counts >= 2).sum() >= 2:  # cross-validation needs two classes with two samples each
        def train() -> dict:
            result = cross_validate(pixels, labels, c, config, device, seed, weights, progress, rows=np.flatnonzero(use))
            return {"pred_probs": result.pred_probs, "softmax": result.softmax, "embeddings": result.embeddings}

        path = cache_file(cache_dir, "cv-v3", key, config.key(), seed, device.split(":")[0], weights, labels.tobytes())
        arrays = cached_arrays(path, train)
        pred_probs[use], softmax[use] = arrays["pred_probs"], arrays["softmax"]
        embeddings = np.full((n, arrays["embeddings"].shape[1]), np.nan, dtype=np.float32)
        embeddings[use] = arrays["embeddings"]
    return ModelOutputs(classes, labels, pred_probs, embeddings, "cross-validation", softmax)


# --------------------------------------------------------------------------- user files


def load_outputs_from_files(pred_probs_path, labels_path, embeddings_path=None, class_names_path=None) -> ModelOutputs:
    """Read and validate model outputs brought by the user: ``.npy`` paths or in-memory arrays
    (mixed freely; an array is never modified), class names as a text file or a sequence.

    Raises
    ------
    BadDataError
        Unreadable files, wrong shapes, NaN/inf, negative probabilities, rows that do not
        sum to 1 (beyond :data:`SUM_TOLERANCE`), label ids out of range.
    """
    probs = _load_array(pred_probs_path, "--pred-probs")
    _check_real(probs, "--pred-probs")
    # float32 throughout: a 1,000,000 x 100 array is 400 MB, and float64 would double it.
    probs = probs.astype(np.float32, copy=False)
    if probs.ndim != 2 or probs.shape[1] < 2 or probs.shape[0] == 0:
        raise BadDataError(f"--pred-probs must be a 2-D array of shape (N, K) with K >= 2, got shape {probs.shape}")
    # Two passes over the array and no N x K temporaries (at 1M x 100 each pass is 400 MB):
    # a NaN or infinity makes its row's sum non-finite.
    sums = probs.sum(axis=1, dtype=np.float64)
    if not np.isfinite(sums).all():
        _check_finite(probs, "--pred-probs")
    if probs.min() < 0:
        row = int(np.argmax((probs < 0).any(axis=1)))
        raise BadDataError(f"--pred-probs has negative values (first in row {row}); pass probabilities, not logits")
    bad = np.abs(sums - 1) > SUM_TOLERANCE
    if bad.any():
        row = int(np.argmax(bad))
        raise BadDataError(f"--pred-probs rows must sum to 1 (row {row} sums to {sums[row]:.4g}); pass softmax probabilities")
    if (sums != 1).any():
        if isinstance(pred_probs_path, (str, os.PathLike)):  # our own copy, read from the file: in place
            probs /= sums[:, None].astype(np.float32)
        else:  # the caller's array is never modified
            probs = probs / sums[:, None].astype(np.float32)

    raw = _load_array(labels_path, "--labels")
    if raw.ndim != 1 or len(raw) != len(probs):
        raise BadDataError(f"--labels must be a 1-D array of {len(probs)} class ids (one per --pred-probs row), got shape {raw.shape}")
    # Whole floats (1.0) are accepted as ids; complex, boolean and text arrays are not.
    whole = np.issubdtype(raw.dtype, np.floating) and np.all(np.isfinite(raw) & (raw == np.round(raw)))
    if not (np.issubdtype(raw.dtype, np.integer) or whole):
        raise BadDataError("--labels must hold integer class ids")
    labels = raw.astype(np.int64)
    out_of_range = (labels < 0) | (labels >= probs.shape[1])
    if out_of_range.any():
        row = int(np.argmax(out_of_range))
        raise BadDataError(f"--labels has id {labels[row]} at row {row}, outside 0..{probs.shape[1] - 1} (the --pred-probs columns)")

    embeddings = None
    if embeddings_path is not None:
        embeddings = _load_array(embeddings_path, "--embeddings")
        _check_real(embeddings, "--embeddings")
        embeddings = embeddings.astype(np.float32)
        if embeddings.ndim != 2 or len(embeddings) != len(probs):
            raise BadDataError(f"--embeddings must have shape ({len(probs)}, D), got {embeddings.shape}")
        _check_finite(embeddings, "--embeddings")

    classes = [str(i) for i in range(probs.shape[1])]
    if class_names_path is not None and not isinstance(class_names_path, (str, os.PathLike)):
        classes = [str(name) for name in class_names_path]
        if len(classes) != probs.shape[1] or len(set(classes)) != len(classes):
            raise BadDataError(f"class_names must be {probs.shape[1]} distinct names (got {len(classes)})")
    elif class_names_path is not None:
        try:
            classes = [line.strip() for line in Path(class_names_path).read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise BadDataError(f"cannot read --class-names {class_names_path}: {exc}") from exc
        if len(classes) != probs.shape[1] or len(set(classes)) != len(classes):
            raise BadDataError(f"--class-names must list {probs.shape[1]} distinct names, one per line (found {len(classes)})")
    return ModelOutputs(classes, labels, probs, embeddings, "files")


def manifest_for_outputs(outputs: ModelOutputs, source: str) -> Manifest:
    """A manifest for data that exists only as model outputs: sample ids are row numbers."""
    n = len(outputs.labels)
    # Built as Arrow arrays: a million Python strings would cost seconds.
    ids = pd.array(pa.array(np.arange(n)).cast(pa.string()), dtype="string")
    names = pa.array(list(outputs.classes), type=pa.string())
    frame = pd.DataFrame({
        "sample_id": ids,
        "path": ids,
        "label": pd.array(names.take(pa.array(outputs.labels)), dtype="string"),
        "split": pd.array(pa.nulls(n, pa.string()), dtype="string"),
    })
    digest = hashlib.sha256(np.ascontiguousarray(outputs.pred_probs).data)  # no copy of a large array
    digest.update(np.ascontiguousarray(outputs.labels).data)
    return Manifest(frame, Path(os.getcwd()), Path(source), "arrays", fingerprint=digest.hexdigest())


def _load_array(path, option: str) -> np.ndarray:
    """A ``.npy`` file's array (memory-mapped by nothing: read once), or an in-memory array as it is."""
    if not isinstance(path, (str, os.PathLike)):
        array = np.asarray(path)
        if array.dtype == object:
            raise BadDataError(f"{option} must be a numeric array, got {type(path).__name__} of objects")
        return array
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise BadDataError(f"{option} {path}: file not found") from None
    except (OSError, ValueError, EOFError) as exc:
        raise BadDataError(f"{option} {path} is not a readable .npy array: {str(exc).splitlines()[0]}") from exc
    if not isinstance(array, np.ndarray):
        raise BadDataError(f"{option} {path} must be a single .npy array, not an .npz archive")
    return array


def _check_real(array: np.ndarray, option: str) -> None:
    """Refuse arrays that are not real numbers: casting complex values to float drops the
    imaginary part (with a ComplexWarning on stderr), and strings or booleans are not data."""
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise BadDataError(f"{option} must hold real numbers (integer or float), got dtype {array.dtype}")


def _check_finite(array: np.ndarray, option: str) -> None:
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0, 0])
        raise BadDataError(f"{option} has NaN or infinite values (first in row {row})")



@dataclass
class AumOutputs:
    """Area Under the Margin per sample (Pleiss et al., 2020), row-aligned with the manifest.

    Attributes
    ----------
    aum : ndarray of shape (N,), float32
        Mean over training epochs of (assigned-class logit - largest other logit); NaN where
        not scored.
    threshold : ndarray of shape (N,), float32
        The cut that applies to each sample: the 99th percentile of the AUM of the threshold
        samples of the run that scored it.
    """

    aum: np.ndarray
    threshold: np.ndarray


def aum_outputs(manifest: Manifest, inputs: tuple, config, device: str, seed: int, cache_dir, weights=None,
                progress=None) -> AumOutputs:
    """Two training runs with disjoint threshold-sample subsets, so every sample gets an AUM.

    In each run a random N/(C+1) of the samples is relabeled to a fake extra class; their
    AUM shows what a surely-wrong label looks like, and the 99th percentile of it is the cut.
    A sample is scored by the run in which it kept its own label. Cost: two trainings on
    all samples, about half the cost of 5-fold cross-validation again; with a frozen
    backbone, one embedding pass and two linear heads. ``inputs`` as for
    :func:`cross_validated_outputs`.
    """
    import torch

    from ..engine.models import create_model
    from ..engine.train import fit, fit_head, frozen_features

    classes, labels = label_ids(manifest)
    pixels, ok, key = inputs
    use = np.flatnonzero(ok & (labels >= 0))
    n, c = len(manifest), len(classes)
    aum = np.full(n, np.nan, dtype=np.float32)
    threshold = np.full(n, np.nan, dtype=np.float32)
    if c < 2 or len(use) < 2 * (c + 1):
        return AumOutputs(aum, threshold)
    y = labels[use]

    def train() -> dict:
        order = np.random.default_rng(seed).permutation(len(use))
        size = len(use) // (c + 1)
        subsets = [order[:size], order[size : 2 * size]]  # local indices into `use`, disjoint
        torch.manual_seed(seed * 7919)
        network = create_model(config.model, c + 1, weights)
        # A frozen backbone embeds once; only a linear head is trained on the features.
        features = None if network.trainable else frozen_features(network, pixels, config, device, rows=use)[1]
        for run, subset in enumerate(subsets):
            fake = y.copy()
            fake[subset] = c  # the extra, fake class
            if features is not None:
                target = torch.as_tensor(fake, device=features.device)
                _, margins = fit_head(features, target, c + 1, config, seed * 7919 + run, record_margins=True)
            else:
                torch.manual_seed(seed * 7919 + run)
                network = create_model(config.model, c + 1, weights)
                margins = fit(network, pixels, fake, config, device, seed * 7919 + run, record_margins=True, rows=use,
                              progress=(lambda e, t, run=run: progress(f"AUM run {run + 1}/2", e, t))
                              if progress else None)
            mean_margin = margins.mean(axis=0)
            cut = float(np.percentile(mean_margin[subset], 99))
            scored = np.setdiff1d(np.arange(len(use)), subset) if run == 0 else subsets[0]
            aum[use[scored]] = mean_margin[scored]
            threshold[use[scored]] = cut
        return {"aum": aum, "threshold": threshold}

    path = cache_file(cache_dir, "aum-v2", key, config.key(), seed, device.split(":")[0], weights, labels.tobytes())
    arrays = cached_arrays(path, train)
    return AumOutputs(arrays["aum"], arrays["threshold"])

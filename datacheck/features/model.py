"""Model outputs as features: labels as class ids, out-of-fold probabilities, embeddings, margins.

Computed by cross-validated training on the images; arrays the user brings are read by
:mod:`datacheck.features.arrays`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import BadDataError
from ..runs import cache_file, cached_arrays
from ..manifest import Manifest


@dataclass
class AumOutputs:
    """Area Under the Margin per sample (Pleiss et al., 2020), row-aligned with the manifest.

    Attributes
    ----------
    aum : ndarray of shape (N,), float32
        Mean over training epochs (and the fold models that trained on the sample with its
        own label) of (assigned-class logit - largest other logit); NaN where not scored.
    threshold_aum : ndarray of shape (T,), float32
        The AUM of the threshold samples: samples relabelled to a fake class, whose margins
        show what a surely-wrong label gets (see :func:`datacheck.engine.train.threshold_folds`).
        Empty when there were none.
    """

    aum: np.ndarray
    threshold_aum: np.ndarray


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
    aum : AumOutputs or None
        Training margins recorded during the cross-validation; None for user files.
    """

    classes: list
    labels: np.ndarray
    pred_probs: np.ndarray
    embeddings: np.ndarray | None
    source: str
    softmax: np.ndarray | None = None
    aum: AumOutputs | None = None

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


#: Below this one-sided p-value the out-of-fold predictions agree with the given labels more
#: often than chance (:func:`agreement_beyond_chance`): 0.001, about 3 standard errors.
CHANCE_P = 1e-3
#: Label permutations of :func:`_probabilities_beyond_chance`'s Monte Carlo test: with none of
#: them reaching the given labels' statistic, p = 1 / 2,000 < :data:`CHANCE_P`.
_PERMUTATIONS = 1999
#: Rows the permutation test draws at most: a model that learned anything shows it in 10,000.
_PERMUTED_ROWS = 10_000


def agreement_beyond_chance(labels: np.ndarray, predicted: np.ndarray, pred_probs: np.ndarray | None = None, *,
                            seed: int = 0, trained: bool | None = None) -> dict | None:
    """None when predictions agree with the given labels clearly more often than chance; else
    what was measured, for the reason a label check gives for not judging.

    Chance is Cohen's: predictions unrelated to the labels, in the proportions the model
    predicts each class, agree with them at ``pe = sum_k P(label = k) P(predicted = k)`` (a
    model that always predicts the largest class: its share). A model at chance (too few
    samples per class to learn anything, probabilities with their columns in another order
    than the classes) disagrees with half or more of the labels, and confident learning
    then flagged 50-90 % of the samples as mislabelled: its disagreements are no evidence.
    The test is one-sided binomial, the agreements counted against ``n`` draws at ``pe``.

    With ``pred_probs``, the model is also above chance when the probabilities rank the
    labels beyond chance, though their most probable class does not: the mean probability of
    the given label against that of the labels permuted (:func:`_probabilities_beyond_chance`).
    On imbalanced classes a real but weak model predicts the majority nearly always (95/5,
    a minority ranked at AUC 0.7: accuracy 0.943 against 0.936 by chance, gated), and
    confident learning, whose thresholds are per class, still judges its labels.

    Parameters
    ----------
    labels, predicted : ndarray of shape (N,), int
        Given class ids and the model's most probable class, both >= 0.
    pred_probs : ndarray of shape (N, K), optional
        The probabilities ``predicted`` was taken from.
    seed : int
        Of the permutations.
    trained : bool, optional
        Whether datacheck trained the model (True) or the probabilities were given (False),
        for the reason's hint (:func:`at_chance_reason`).

    Returns
    -------
    dict or None
        ``{"out_of_fold_accuracy", "chance_accuracy", "samples"}`` when the agreement is not
        beyond chance (p >= :data:`CHANCE_P`); ``below_chance`` (true) when the agreement is
        below chance at p < :data:`CHANCE_P`; ``reordered_accuracy`` when the columns in
        another order would agree with most labels (:func:`_reordered_accuracy`);
        ``samples_per_class`` for a model datacheck trained; ``too_few`` (true) when even every
        sample right would not be beyond chance.
    """
    from scipy.stats import binom  # with cleanlab's and scikit-learn's imports: nothing new

    n = len(labels)
    size = int(max(labels.max(), predicted.max())) + 1
    chance = float(np.bincount(labels, minlength=size) @ np.bincount(predicted, minlength=size)) / n / n
    agreed = int(np.count_nonzero(labels == predicted))
    if chance < 1.0 and binom.sf(agreed - 1, n, chance) < CHANCE_P:
        return None
    if pred_probs is not None and _probabilities_beyond_chance(labels, pred_probs, seed):
        return None
    measured = {"out_of_fold_accuracy": round(agreed / n, 4), "chance_accuracy": round(chance, 4), "samples": n}
    if chance > 0.0 and binom.cdf(agreed, n, chance) < CHANCE_P:
        measured["below_chance"] = True
    if chance ** n >= CHANCE_P:  # all n right would not be beyond chance either
        measured["too_few"] = True
    reordered = _reordered_accuracy(labels, predicted, chance)
    if reordered is not None:
        measured["reordered_accuracy"] = reordered
    if trained:
        measured["samples_per_class"] = round(n / len(np.unique(labels)), 1)
    elif trained is not None:
        measured["model"] = "given"
    return measured


def _probabilities_beyond_chance(labels: np.ndarray, pred_probs: np.ndarray, seed: int) -> bool:
    """Whether the probability of the given label, summed over the samples, is above every one
    of :data:`_PERMUTATIONS` random permutations of the labels (Monte Carlo permutation test,
    p < :data:`CHANCE_P`), on at most :data:`_PERMUTED_ROWS` rows (:func:`_balanced_rows`). Exact for any class
    sizes, where a normal approximation is not: one minority sample among 50 ranked first
    has z = 7 but p = 1/50."""
    rng = np.random.default_rng(seed)
    rows = _balanced_rows(labels, _PERMUTED_ROWS, rng)
    given = labels[rows]
    observed = float(np.asarray(pred_probs[rows, given], dtype=np.float64).sum())
    batch = max(1, min(_PERMUTATIONS, 2_000_000 // len(rows)))
    done = 0
    while done < _PERMUTATIONS:
        count = min(batch, _PERMUTATIONS - done)
        shuffled = rng.permuted(np.broadcast_to(given, (count, len(rows))), axis=1)
        sums = np.asarray(pred_probs[rows[None, :], shuffled], dtype=np.float64).sum(axis=1)
        # Ties (probabilities that do not depend on the label: constant rows) count against.
        if (sums >= observed - 1e-9 * max(1.0, abs(observed))).any():
            return False
        done += count
    return True


def _balanced_rows(labels: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` rows, sorted: every row when there are no more, else as even a share
    of each class as its size allows (a class smaller than its share gives every row, the rest
    go to the others), drawn at random. A minority of 0.1 % of a million rows keeps 1,000 rows
    where a uniform draw kept 10, too few to show a weak model's ranking; which rows are drawn
    depends on the labels alone, so the permutation test stays exact."""
    n = len(labels)
    if n <= limit:
        return np.arange(n)
    order = np.argsort(labels, kind="stable")
    classes, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    take = np.zeros(len(classes), dtype=np.int64)
    left = limit
    for rank, k in enumerate(np.argsort(counts, kind="stable")):  # smallest first: water-filling
        take[k] = min(counts[k], left // (len(classes) - rank))
        left -= take[k]
    chosen = [order[start + rng.choice(count, size, replace=False)]
              for start, count, size in zip(starts, counts, take) if size]
    return np.sort(np.concatenate(chosen))


#: Classes above which no (C, C) table of counts is made (:func:`pair_counts`: 32 MB of int64 at 2,000).
MAX_PAIR_TABLE_CLASSES = 2000


def pair_counts(given: np.ndarray, other: np.ndarray, size: int) -> np.ndarray | None:
    """Counts of each (given class, other class) pair of ``given`` and ``other`` (N,) class ids
    below ``size``, shape (size, size) int64; None above :data:`MAX_PAIR_TABLE_CLASSES` classes."""
    if size > MAX_PAIR_TABLE_CLASSES:
        return None
    return np.bincount(given * size + other, minlength=size * size).reshape(size, size)


def _reordered_accuracy(labels: np.ndarray, predicted: np.ndarray, chance: float) -> float | None:
    """The accuracy of the most probable class with the columns in their best order (a
    one-to-one assignment of columns to classes maximising agreement), when it says the columns
    are probably out of order: at least 0.5, twice the accuracy and chance, and 10 samples per
    class (fewer let any order fit some), of at most 2,000 classes. Else None."""
    from scipy.optimize import linear_sum_assignment

    n = len(labels)
    confusion = pair_counts(labels, predicted, int(max(labels.max(), predicted.max())) + 1)
    if n < 10 * len(np.unique(labels)) or confusion is None:
        return None
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    best = float(confusion[rows, cols].sum()) / n
    accuracy = float(np.count_nonzero(labels == predicted)) / n
    return round(best, 4) if best >= max(0.5, 2 * accuracy, 2 * chance) else None


def at_chance_reason(measured: dict) -> str:
    """The "off" reason of a label check whose model is at chance (:func:`agreement_beyond_chance`),
    one sentence from what was measured."""
    numbers = (f"out-of-fold accuracy {measured['out_of_fold_accuracy']:.3f}, {measured['chance_accuracy']:.3f} "
               f"by chance, {measured['samples']:,} samples")
    if measured.get("below_chance"):
        head = (f"the model is below chance ({numbers}): its disagreements with the labels are systematic, no "
                f"evidence of wrong ones")
    else:
        head = (f"the model is not clearly above chance ({numbers}): its disagreements with the labels are no "
                f"evidence of wrong ones")
    if measured.get("too_few"):
        hint = f"too few samples to tell: all {measured['samples']:,} right would not be beyond chance"
    elif "reordered_accuracy" in measured:
        hint = (f"its columns in another order would agree with {measured['reordered_accuracy']:.3f} of the labels: "
                f"are the probabilities' columns in class order?")
    elif "samples_per_class" in measured:
        hint = (f"{measured['samples_per_class']:g} labeled samples per class: too few to learn from, or labels "
                f"unrelated to the images?")
    elif measured.get("model") == "given":
        hint = "are the probabilities' rows in the labels' order, and their columns in class order?"
    else:
        hint = "too few samples per class? probabilities' rows or columns not in the labels' order?"
    return f"{head} ({hint})"


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


def cross_validated_outputs(manifest: Manifest, load_inputs: Callable[[], tuple], config, device: str, seed: int,
                            cache_dir: str | None, weights=None, progress=None, map_folds=None,
                            map_predict=None) -> ModelOutputs:
    """Train K fold models on the labeled, readable images and collect out-of-fold outputs;
    the readable images without a label are embedded too (every fold model's space, or a
    frozen backbone's, which needs no training: then even without two classes).

    ``load_inputs()`` gives :func:`datacheck.engine.loader.load_pixels`' ``(pixels, ok, key)``;
    it is not called (no image is decoded for a model) when no model would use the pixels: fewer
    than two labeled classes and a model that would have to be trained on them.
    Results are cached in ``cache_dir`` by file contents, labels, training config, seed and
    device type (on the CPU, torch thread count), so auditing the same data again skips training. ``map_folds`` runs the folds,
    and ``map_predict`` a frozen backbone's embedding, elsewhere (see
    :func:`datacheck.engine.train.cross_validate`); the results are the same.
    """
    from ..engine.train import cross_validate

    classes, labels = label_ids(manifest)
    n, c = len(manifest), len(classes)
    pred_probs = np.full((n, c), np.nan, dtype=np.float32)
    softmax = pred_probs.copy()
    aum = AumOutputs(np.full(n, np.nan, dtype=np.float32), np.zeros(0, dtype=np.float32))
    # Without two labeled classes only a frozen backbone has a use for the pixels (built once here).
    network = None if _can_cross_validate(labels, c) else _network(config, weights)
    if network is not None and network.trainable:
        return ModelOutputs(classes, labels, pred_probs, None, "cross-validation", softmax, aum)
    pixels, ok, key = load_inputs()
    use = ok & (labels >= 0)
    labels = np.where(use, labels, -1)
    embeddings = None
    # Readable rows without a label are embedded too, by every fold model (or the frozen
    # backbone), into the labeled rows' space: unlabeled images get outliers and
    # near-duplicate candidates like the others.
    extra = manifest.in_id_order(np.flatnonzero(ok & ~use))
    if _can_cross_validate(labels, c):
        # In sample-id order: folds, threshold samples and batches are drawn by position, so
        # the same samples listed in another order train the same models.
        labeled = manifest.in_id_order(np.flatnonzero(use))

        def train() -> dict:
            result = cross_validate(pixels, labels, c, config, device, seed, weights, progress, rows=labeled,
                                    map_folds=map_folds, map_predict=map_predict, embed_rows=extra)
            return {"pred_probs": result.pred_probs, "softmax": result.softmax, "embeddings": result.embeddings,
                    "aum": result.aum, "threshold_aum": result.threshold_aum}

        path = cache_file(cache_dir, "cv-v7", key, config.key(), seed, _device_key(device), weights, labels.tobytes(),
                          labeled.tobytes())
        arrays = cached_arrays(path, train)
        pred_probs[labeled], softmax[labeled] = arrays["pred_probs"], arrays["softmax"]
        embeddings = np.full((n, arrays["embeddings"].shape[1]), np.nan, dtype=np.float32)
        embeddings[labeled], embeddings[extra] = arrays["embeddings"][:len(labeled)], arrays["embeddings"][len(labeled):]
        aum.aum[labeled] = arrays["aum"]
        aum.threshold_aum = arrays["threshold_aum"]
    elif len(extra):
        network = network if network is not None else _network(config, weights)  # unreadable images left < 2 classes
        embeddings = _frozen_embeddings(network, extra, n, pixels, key, config, device, cache_dir, weights, map_predict)
    return ModelOutputs(classes, labels, pred_probs, embeddings, "cross-validation", softmax, aum)


def _frozen_embeddings(network, rows: np.ndarray, n: int, pixels, key: str, config, device: str, cache_dir, weights,
                       map_predict) -> np.ndarray | None:
    """Embeddings (n, D) of ``rows`` by ``network`` (the configured model, untrained) when it is
    a frozen pretrained backbone (NaN elsewhere), for data without two labeled classes to
    cross-validate on; None for a model trained here, which has nothing to learn from.

    A frozen backbone's features do not depend on any label: a folder of unlabeled photos
    gets outliers from an ImageNet model.
    """
    from ..engine.train import frozen_features

    if network.trainable:
        return None

    def embed() -> dict:
        return {"embeddings": frozen_features(network, pixels, config, device, rows, map_predict)[0]}

    path = cache_file(cache_dir, "frozen-v2", key, config.model, config.key(), _device_key(device), weights,
                      rows.tobytes())
    found = cached_arrays(path, embed)["embeddings"]
    embeddings = np.full((n, found.shape[1]), np.nan, dtype=np.float32)
    embeddings[rows] = found
    return embeddings


def _device_key(device: str) -> str:
    """The cache key's device: its type, and on the CPU torch's thread count too. A training on
    1 thread and on 2 sums in another order (label scores up to 0.08 apart on sample_data), so
    an audit on 1 thread read the outputs of one on 2 from a shared cache: warm and cold caches
    gave other findings for the same data, seed and threads."""
    kind = device.split(":")[0]
    if kind != "cpu":
        return kind
    import torch

    return f"cpu-{torch.get_num_threads()}-threads"


def _can_cross_validate(labels: np.ndarray, num_classes: int) -> bool:
    """Whether the class ids ``labels`` (N,), -1 for none, hold two classes of two samples each."""
    return int((np.bincount(labels[labels >= 0], minlength=num_classes) >= 2).sum()) >= 2


def _network(config, weights):
    """The configured model, untrained (for whether it is ``trainable``, or a frozen backbone to embed with)."""
    from ..engine.models import create_model

    return create_model(config.model, 1, weights)


@dataclass
class Orientation:
    """Orientation surprise per sample (:mod:`datacheck.engine.orientation`), row-aligned with the manifest.

    Attributes
    ----------
    surprise : ndarray of shape (N,), float32, or None
        Cross-fitted mean -log p(true quarter turn); NaN where not scored (unreadable). None
        when not measured (``off`` says why).
    accuracy : float
        Held-out share of quarter turns told right (0.25 is chance); NaN when not measured.
    off : str
        Why it was not measured; empty when it was.
    """

    surprise: np.ndarray | None
    accuracy: float
    off: str = ""


#: Fewer readable images than this teach a network too little of the data's upright look.
MIN_ORIENTATION_IMAGES = 100
#: The images have an upright look to learn when the held-out networks tell at least this share
#: of quarter turns right (0.25 is chance); below it (textures, aerial views, round objects) every
#: image is about as surprising as any other, and the surprise is no evidence (``outliers``
#: leaves it out). The second network is not trained when the first tells fewer.
MIN_ORIENTATION_ACCURACY = 0.5
#: A ``[train] image_size`` larger than this is not trained on for orientation: from scratch,
#: convnet-small costs (side / 32)² times its 32 px training (a pretrained backbone's 224 px input
#: is not this size: the pipeline decodes the images at ``[train] image_size`` for orientation).
MAX_ORIENTATION_SIDE = 64


def orientation_outputs(load_inputs: Callable[[], tuple], images: int, config, device: str, seed: int,
                        cache_dir: str | None, progress=None,
                        in_order: Callable[[np.ndarray], np.ndarray] | None = None) -> Orientation:
    """Orientation surprise of every readable image (``load_inputs()``: their model inputs'
    ``(pixels, ok, key)``; not called when ``images``, how many there are or are known to be
    readable, is too few), cached like the
    cross-validation by file contents, config, seed and device type (and CPU threads).
    ``in_order(rows)``: the rows in the order the networks take them (their halves are drawn
    by position; :meth:`~datacheck.manifest.Manifest.in_id_order`), default as listed."""
    from ..engine.orientation import network_config, orientation_surprise

    if config.image_size > MAX_ORIENTATION_SIDE:
        return Orientation(None, float("nan"), f"off: [train] image_size {config.image_size} (at most "
                                               f"{MAX_ORIENTATION_SIDE})")
    if images < MIN_ORIENTATION_IMAGES:
        return Orientation(None, float("nan"), f"off: {images} readable images (needs {MIN_ORIENTATION_IMAGES})")
    pixels, ok, key = load_inputs()
    rows = np.flatnonzero(ok) if in_order is None else in_order(np.flatnonzero(ok))
    if len(rows) < MIN_ORIENTATION_IMAGES:
        return Orientation(None, float("nan"), f"off: {len(rows)} readable images (needs {MIN_ORIENTATION_IMAGES})")

    def train() -> dict:
        scores = orientation_surprise(pixels, rows, config, device, seed, progress, MIN_ORIENTATION_ACCURACY)
        return {"surprise": scores.surprise, "accuracy": np.float64(scores.accuracy)}

    # Keyed by what shapes the networks only: another label model, folds or k-NN vote trains none again.
    path = cache_file(cache_dir, "orientation-v4", key, network_config(config).key(), seed, _device_key(device),
                      rows.tobytes())
    arrays = cached_arrays(path, train)
    surprise = np.full(len(ok), np.nan, dtype=np.float32)
    surprise[rows] = arrays["surprise"]
    return Orientation(surprise, float(arrays["accuracy"]))

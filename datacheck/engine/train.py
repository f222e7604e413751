"""Cross-validated training: out-of-fold probabilities, embeddings and training margins.

Every labeled, readable sample gets its predicted probabilities from the fold model that
never saw it (out-of-fold), which is what confident learning needs; its embedding joins the
features of all fold models, so that every sample lives in the same space.
Training runs on whatever device is given, with AMP on CUDA and ``inference_mode`` for
prediction, and is deterministic for a given seed on a given device.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from .device import deterministic_kernels
from .knn import knn_vote_probs
from .models import Network, create_model
from .train_config import TrainConfig  # noqa: F401  (re-exported: the config of everything here)

Progress = Callable[[str, int, int], None]
_TTA_SHIFTS = [(2, 0), (-2, 0), (0, 2), (0, -2)]


@dataclass
class CrossValResult:
    """Out-of-fold outputs for the rows that were trained on.

    Attributes
    ----------
    pred_probs : ndarray of shape (N, C), float32
        Out-of-fold probabilities: each fold model's softmax averaged with a k-NN vote in its
        feature space (see :func:`with_neighbour_votes`).
    softmax : ndarray of shape (N, C), float32
        The fold models' own out-of-fold softmax (the network's output, e.g. for gradients).
    embeddings : ndarray of shape (N + E, K * D), float32
        Penultimate-layer features of every sample (the N cross-validated rows, then the E rows
        given to embed only) from each of the K fold models, each
        L2-normalised and scaled by 1/sqrt(K), side by side: unit vectors whose cosine is the
        mean of the K models' cosines. Out-of-fold features would come from K different
        models, i.e. K incomparable spaces (two copies of one image in different folds land
        far apart); kNN, duplicates and clustering need one space.
    fold : ndarray of shape (N,), int
        Fold in which each row was held out.
    aum : ndarray of shape (N,), float32
        Area under the margin (Pleiss et al., 2020): the row's margin (given-class logit
        minus the largest other) averaged over the training epochs of every fold model that
        trained on it with its own label; NaN where none did (see :func:`threshold_folds`).
    threshold_aum : ndarray of shape (T,), float32
        The AUM of the T threshold samples, pooled over the folds (each from the fold model in
        which it had the fake class): the margins that surely-wrong labels get. Empty
        without threshold samples.
    """

    pred_probs: np.ndarray
    softmax: np.ndarray
    embeddings: np.ndarray
    fold: np.ndarray
    aum: np.ndarray
    threshold_aum: np.ndarray


def cross_validate(
    pixels: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    config: TrainConfig,
    device: str,
    seed: int,
    weights=None,
    progress: Progress | None = None,
    rows: np.ndarray | None = None,
    map_folds: Callable | None = None,
    map_predict: Callable | None = None,
    embed_rows: np.ndarray | None = None,
) -> CrossValResult:
    """Stratified K-fold training and out-of-fold prediction.

    Parameters
    ----------
    pixels : ndarray of shape (N, 3, H, W), uint8
        May be a memory map: it is read batch by batch, never copied whole.
    labels : ndarray of shape (N,), int in [0, num_classes) on ``rows``
    rows : ndarray of int, shape (M,), optional
        The rows to cross-validate (default: all); the result has M rows, in this order.
    map_folds : callable, optional
        ``map_folds(train, pixels, folds, device)`` returns ``[train(pixels, k) for k in folds]``, e.g.
        as remote tasks (:func:`datacheck.engine.ray_engine.ray_map_folds`); default: in turn, here.
    map_predict : callable, optional
        Where the models (each fold's, or a frozen backbone) predict and embed the images
        (see :func:`frozen_features`), e.g. a Ray Data actor pool
        (:func:`datacheck.engine.ray_engine.ray_map_predict`); default: here. With
        ``map_folds``, every fold model's predictions go to it in one call.
    embed_rows : ndarray of int, shape (E,), optional
        Rows not to cross-validate (unlabeled ones) that the models embed too, into the same
        space: their embeddings follow the M rows' in the result's ``embeddings``.
    """
    rows = np.arange(len(labels)) if rows is None else np.asarray(rows)
    extra = np.zeros(0, np.int64) if embed_rows is None else np.asarray(embed_rows, np.int64)
    labels = labels[rows]
    n = len(rows)
    folds = stratified_folds(labels, config.folds, seed)
    threshold = threshold_folds(folds, num_classes, config.threshold_fraction, seed)
    margins = _Margins(n)
    torch.manual_seed(seed)
    network = create_model(config.model, num_classes, weights)
    if not network.trainable:
        return _cross_validate_head(network, pixels, rows, labels, folds, threshold, margins, num_classes, config,
                                    device, seed, map_predict, extra)
    n_folds = int(folds.max() + 1)
    pred_probs = np.zeros((n, num_classes), dtype=np.float32)
    softmax = np.zeros_like(pred_probs)
    embeddings = np.zeros((n + len(extra), n_folds * network.dim), dtype=np.float32)
    train = functools.partial(fit_fold, labels=labels, rows=rows, folds=folds, threshold=threshold,
                              num_classes=num_classes, config=config, device=device, seed=seed, weights=weights)
    def trained_here(k: int) -> tuple:  # (fold, network, margins)
        fold_progress = (lambda e, total: progress(f"train fold {k + 1}/{n_folds}", e, total)) if progress else None
        return (k, *train(pixels, k, progress=fold_progress))

    if map_folds is None:  # one fold at a time: one network held at a time
        groups = ([trained_here(k)] for k in range(n_folds))
    else:  # e.g. one Ray task per fold, each returning its trained network; then all their predictions at once
        fitted = map_folds(train, pixels, list(range(n_folds)), device)
        groups = [[(k, *network_and_margins) for k, network_and_margins in enumerate(fitted)]]
    for group in groups:  # [(fold, network, margins), ...]
        outputs = predict_folds([(k, fold_network) for k, fold_network, _ in group], pixels, folds, labels=labels,
                                rows=rows, num_classes=num_classes, config=config, device=device,
                                map_predict=map_predict, extra=extra)
        for (k, _, fold_margins), (fold_softmax, fold_probs, features) in zip(group, outputs):
            held_out = folds == k
            softmax[held_out], pred_probs[held_out] = fold_softmax, fold_probs
            # Every fold model embeds every sample: one space shared by all samples (see CrossValResult).
            embeddings[:, k * network.dim : (k + 1) * network.dim] = features / np.sqrt(n_folds)
            margins.add(~held_out, threshold == k, fold_margins)
    return CrossValResult(pred_probs, softmax, embeddings, folds, *margins.aum())


def threshold_folds(folds: np.ndarray, num_classes: int, fraction: float, seed: int) -> np.ndarray:
    """Choose the threshold samples of each fold model, for AUM without another training.

    Pleiss et al. relabel N/(C+1) random samples to a fake extra class in a separate run:
    their margins show what a surely-wrong label looks like. Here each fold model relabels
    ``min(1/(C+1), fraction)`` of its training rows instead, disjoint across folds and never
    the fold's held-out rows, so the cross-validation that runs anyway yields the AUM of every
    sample from the 3-4 (K-2 or K-1) fold models that trained on it with its own label. The
    price: each fold model learns from that fraction fewer labels (at most 10 % by default;
    1/(C+1) = 9 % on a 10-class dataset). The fake class is smaller than the paper's for
    few classes (capped), which lowers the threshold samples' margins: a conservative cut.

    Parameters
    ----------
    folds : ndarray of shape (N,), int
        Held-out fold of each row.
    fraction : float
        Upper bound of the share of a fold's training rows relabelled; 0 = no threshold samples.

    Returns
    -------
    ndarray of shape (N,), int64
        The fold in which each row is a threshold sample, -1 for none.
    """
    n, n_folds = len(folds), int(folds.max() + 1)
    out = np.full(n, -1, dtype=np.int64)
    if fraction <= 0:
        return out
    per_fold = math.ceil(n * (n_folds - 1) / n_folds * min(1.0 / (num_classes + 1), fraction))
    rng = np.random.default_rng([seed, 7919])
    # Each row draws one of the other folds uniformly; each fold takes the first rows (in a
    # random order) that drew it, up to its quota.
    choice = (folds + 1 + rng.integers(0, n_folds - 1, size=n)) % n_folds
    order = rng.permutation(n)
    for k in range(n_folds):
        out[order[choice[order] == k][:per_fold]] = k
    return out


class _Margins:
    """Collects the fold models' mean training margins into each row's AUM and the pooled
    threshold samples' AUM."""

    def __init__(self, n: int):
        self.total = np.zeros(n, dtype=np.float64)
        self.count = np.zeros(n, dtype=np.int64)
        self.threshold = []

    def add(self, trained: np.ndarray, fake: np.ndarray, margins: np.ndarray | None) -> None:
        """``margins`` (M,): a fold model's mean margin of its M training rows (``trained``, bool
        (N,)), of which ``fake`` (bool (N,)) had the fake class."""
        if margins is None:
            return
        own = ~fake[trained]
        rows = np.flatnonzero(trained)
        self.total[rows[own]] += margins[own]
        self.count[rows[own]] += 1
        self.threshold.append(margins[~own])

    def aum(self) -> tuple[np.ndarray, np.ndarray]:
        """Each row's AUM (N,), NaN where no fold model trained on it with its own label, and
        the threshold samples' AUM (T,)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            aum = (self.total / self.count).astype(np.float32)
        pooled = np.concatenate(self.threshold) if self.threshold else np.zeros(0)
        return aum, pooled.astype(np.float32)


def fit_fold(pixels: np.ndarray, k: int, *, labels: np.ndarray, rows: np.ndarray, folds: np.ndarray,
             threshold: np.ndarray, num_classes: int, config: TrainConfig, device: str, seed: int, weights=None,
             progress: Callable[[int, int], None] | None = None) -> tuple:
    """Train fold ``k``'s model: a pure function of its arguments (seeded by ``seed`` and
    ``k``), so it runs the same in this process or as a remote task.

    Returns
    -------
    network : Network
        The trained model, on the CPU (so that a remote task can return it to any driver).
    margins : ndarray of shape (T,), float32, or None
        The mean margin over the epochs of each of the fold's T training rows (in row order;
        the threshold samples' margin is that of the fake class), or None without threshold
        samples (see :func:`threshold_folds`).
    """
    held_out = folds == k
    fake = threshold == k
    target = np.where(fake, num_classes, labels)  # threshold samples learn the fake class C
    torch.manual_seed(seed * 1009 + k)
    network = create_model(config.model, num_classes + int(fake.any()), weights)
    margins = fit(network, pixels, target[~held_out], config, device, seed * 1009 + k, rows=rows[~held_out],
                  progress=progress, record_margins=fake.any())
    return network.cpu(), None if margins is None else margins.mean(axis=0)


def predict_folds(fitted: list, pixels: np.ndarray, folds: np.ndarray, *, labels: np.ndarray, rows: np.ndarray,
                  num_classes: int, config: TrainConfig, device: str, map_predict: Callable | None = None,
                  extra: np.ndarray | None = None) -> list:
    """Trained fold models' outputs, computed here or through ``map_predict`` in one call
    (see :func:`frozen_features`).

    Parameters
    ----------
    fitted : list of (int, Network)
        Each fold's number and its trained model.
    folds : ndarray of shape (M,), int
        The fold of each of the M ``rows``.
    extra : ndarray of int, shape (E,), optional
        More rows to embed (not predicted, no fold).

    Returns
    -------
    list of (softmax, pred_probs, features), one per fold of ``fitted``
        ``softmax`` (H, C): the model's softmax on the fold's H held-out rows (with test-time
        augmentation); ``pred_probs`` (H, C): the same averaged with the k-NN vote of the
        training rows (:func:`with_neighbour_votes`); ``features`` (M + E, D): the model's
        unit-length embeddings of every row, then of the ``extra`` rows.
    """
    embedded = rows if extra is None or not len(extra) else np.concatenate([rows, extra])
    calls = [call for k, network in fitted for call in ((network, rows[folds == k], True), (network, embedded, False))]
    outputs = (map_predict or _predict_here)(calls, pixels, config.batch_size * 4, device)
    results = []
    for i, (k, _) in enumerate(fitted):
        held_out = folds == k
        softmax = _without_fake_class(outputs[2 * i][0], num_classes)
        features = outputs[2 * i + 1][1]
        # The vote counts the neighbours' given labels: the fake class is a device of AUM only.
        pred_probs = with_neighbour_votes(softmax, features[: len(rows)], labels, held_out, num_classes, config, device)
        features /= np.linalg.norm(features, axis=1, keepdims=True) + 1e-12
        results.append((softmax, pred_probs, features))
    return results


def _predict_here(calls: list, pixels: np.ndarray, batch_size: int, device: str) -> list:
    """:func:`predict` of each ``(network, rows, tta)`` of ``calls``, here, in turn."""
    return [predict(network, pixels, device, batch_size, tta=tta, rows=rows) for network, rows, tta in calls]


def _without_fake_class(probs, num_classes: int):
    """Drop the fake class's column (if any) from probabilities (H, C or C+1) and renormalise."""
    if probs.shape[1] == num_classes:
        return probs
    real = probs[:, :num_classes]
    return real / real.sum(axis=1, keepdims=True)


def _cross_validate_head(network: Network, pixels, rows, labels, folds, threshold, margins, num_classes, config,
                         device, seed, map_predict=None, extra=()) -> CrossValResult:
    """Frozen backbone: embed every image once (the ``rows`` and then the ``extra`` ones, in one
    pass), then cross-validate a linear head on the ``rows``' embeddings (with threshold
    samples, as :func:`fit_fold`)."""
    embedded = np.concatenate([rows, extra]) if len(extra) else rows
    embeddings, features = frozen_features(network, pixels, config, device, embedded, map_predict, fitted=len(rows))
    target = torch.as_tensor(labels, device=device)
    pred_probs = np.zeros((len(labels), num_classes), dtype=np.float32)
    softmax = np.zeros_like(pred_probs)
    for k in range(folds.max() + 1):
        rows, fake = folds == k, threshold == k
        held_out = torch.as_tensor(rows, device=device)
        fake_target = torch.as_tensor(np.where(fake, num_classes, labels), device=device)
        head, fold_margins = fit_head(features[~held_out], fake_target[~held_out], num_classes + int(fake.any()),
                                      config, seed * 1009 + k, record_margins=fake.any())
        with torch.inference_mode():
            probs = torch.softmax(head(features[held_out]), dim=1).cpu().numpy()
        softmax[rows] = _without_fake_class(probs, num_classes)
        pred_probs[rows] = with_neighbour_votes(softmax[rows], features, target, held_out, num_classes, config, device)
        margins.add(~rows, fake, None if fold_margins is None else fold_margins.mean(axis=0))
    return CrossValResult(pred_probs, softmax, embeddings, folds, *margins.aum())


def with_neighbour_votes(probs: np.ndarray, features, labels, held_out, num_classes: int, config: TrainConfig,
                         device: str) -> np.ndarray:
    """Average a fold model's softmax on its held-out rows with a k-NN vote in its own feature space.

    The neighbours are the fold's training rows, so the vote is out-of-fold too. Why: the
    softmax of a small model trained on few images spreads its confidence, and confident
    learning counts a label as wrong only when the other class's probability reaches that
    class's average. Neighbour votes are near-unanimous for typical images, which brings
    the typical mislabel above that average (on sample_data, mean recall of the planted
    mislabels over three seeds 0.82 → 0.86, precision ≥ 0.8; see benchmarks/RESULTS.md).

    Parameters
    ----------
    probs : ndarray of shape (H, C)
        Softmax of the held-out rows.
    features : array or tensor of shape (N, D)
        The fold model's embeddings of every row.
    labels : array or tensor of shape (N,)
    held_out : bool array or tensor of shape (N,)
    """
    if not config.knn_k:
        return probs
    votes = knn_vote_probs(features[held_out], features[~held_out], labels[~held_out], num_classes, config.knn_k, device)
    return (probs + votes) / 2


def frozen_features(network: Network, pixels: np.ndarray, config: TrainConfig, device: str,
                    rows: np.ndarray | None = None, map_predict: Callable | None = None, fitted: int | None = None):
    """A frozen backbone's embeddings (M, D) of ``rows`` (default all) as an array, and the first
    ``fitted`` of them (default all) standardised per dimension by their own mean and spread, on
    ``device`` (the rows a head is trained and evaluated on; the others are only embedded).

    ``map_predict(calls, pixels, batch_size, device)`` returns :func:`predict`'s
    ``(probabilities, embeddings)`` of each ``(network, rows, tta)`` of ``calls`` (``rows`` None:
    all), computed elsewhere (:func:`datacheck.engine.ray_engine.ray_map_predict`); default: here.
    """
    _, embeddings = (map_predict or _predict_here)([(network, rows, False)], pixels, config.batch_size * 4, device)[0]
    features = torch.as_tensor(embeddings[:fitted], device=device)
    # One row has no spread to scale by (torch warns, and the division gives NaN): it is its own mean.
    spread = features.std(0) if len(features) > 1 else torch.ones_like(features[0])
    return embeddings, (features - features.mean(0)) / (spread + 1e-6)


#: Full-batch optimisation steps of a linear head (a convex problem: this converges).
HEAD_STEPS = 200


def fit_head(features: torch.Tensor, target: torch.Tensor, num_classes: int, config: TrainConfig, seed: int,
             record_margins: bool = False) -> tuple[nn.Linear, np.ndarray | None]:
    """Train a linear head on fixed features (N, D), full batch.

    Returns
    -------
    head : torch.nn.Linear
    margins : ndarray of shape (HEAD_STEPS, N), float32, or None
        With ``record_margins``, every sample's margin at every step (AUM on a frozen backbone).
    """
    torch.manual_seed(seed)
    head = nn.Linear(features.shape[1], num_classes).to(features.device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    margins = []
    for _ in range(HEAD_STEPS):
        optimizer.zero_grad(set_to_none=True)
        logits = head(features)
        loss_fn(logits, target).backward()
        optimizer.step()
        if record_margins:
            margins.append(_margin(logits.detach().float(), target).cpu().numpy())
    return head, (np.stack(margins) if record_margins else None)


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index per sample, shape (N,): stratified by label, reproducible for ``seed``.

    With fewer samples in some class than folds, scikit-learn spreads that class over as
    many folds as it can (its warning about it is silenced: it is expected here).
    """
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(labels)
    folds = int(max(2, min(folds, counts.max())))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = np.empty(len(labels), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for k, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
            out[test] = k
    return out


def fit(
    network: Network,
    pixels: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    device: str,
    seed: int,
    record_margins: bool = False,
    progress: Callable[[int, int], None] | None = None,
    rows: np.ndarray | None = None,
    quarter_turns: bool = False,
) -> np.ndarray | None:
    """Train ``network`` in place on (pixels, labels).

    Parameters
    ----------
    pixels : ndarray of shape (N, 3, H, W), uint8
        May be a memory map: only the batches are read.
    labels : ndarray of shape (M,), int
        The label of each training row.
    rows : ndarray of int, shape (M,), optional
        The rows of ``pixels`` to train on (default: all, M = N), gathered batch by batch
        rather than copied.
    quarter_turns : bool, default False
        Self-supervised instead: each image of a batch is turned by a random number of
        quarter turns (0-3), which is its target (``labels`` only give M; the network has
        four outputs). See :mod:`datacheck.engine.orientation`.

    Returns
    -------
    margins : ndarray of shape (epochs, M), float32, or None
        With ``record_margins``, every sample's margin (assigned-class logit minus the
        largest other logit) from the forward pass that trained on it, per epoch (AUM).
    """
    rows = np.arange(len(pixels)) if rows is None else np.asarray(rows)
    network.to(device).train()
    use_amp = device.startswith("cuda")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(labels) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=max(steps, 1))
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    target = torch.as_tensor(labels, dtype=torch.long)
    margins = np.zeros((config.epochs, len(labels)), dtype=np.float32) if record_margins else None
    with deterministic_kernels(device):  # same seed, same weights, also on CUDA
        for epoch in range(config.epochs):
            order = torch.randperm(len(labels), generator=generator)
            for start in range(0, len(order), config.batch_size):
                idx = order[start : start + config.batch_size]
                if len(idx) < 2:  # BatchNorm needs two samples
                    continue
                x = _to_input(pixels[rows[idx.numpy()]], device, network.normalization)
                x = random_shift(x, config.max_shift, generator)
                if quarter_turns:
                    turns = torch.randint(0, 4, (len(idx),), generator=generator)
                    x, y = quarter_turned(x, turns), turns.to(device)
                else:
                    y = target[idx].to(device, non_blocking=True)
                with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
                    logits, _ = network(x)
                    loss = loss_fn(logits, y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                if margins is not None:
                    margins[epoch, idx.numpy()] = _margin(logits.detach().float(), y).cpu().numpy()
            if progress:
                progress(epoch + 1, config.epochs)
    return margins


#: Pixels per inference batch at most (512 images of 64 x 64, the default model's input, as
#: before the bound): a pretrained backbone's 224 x 224 inputs came 512 at a time too, and
#: EfficientNet-Lite0's activations of such a batch took 7.3 GB (1,797 images: 1.8 GB now, and
#: 56 s instead of 79 on 2 cores).
PREDICT_PIXELS = 512 * 64 * 64


@torch.inference_mode()
def predict(network: Network, pixels: np.ndarray, device: str, batch_size: int = 256,
            tta: bool = True, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (M, C) and embeddings (M, D), float32, of ``rows`` of ``pixels``
    (default: all, M = N), read batch by batch (``pixels`` may be a memory map).

    With ``tta``, the probabilities are averaged over the image and four copies shifted by
    2 pixels (the shifts seen in training); embeddings are always of the image itself.
    A batch holds at most :data:`PREDICT_PIXELS` pixels: on the CPU nothing signals that a
    batch does not fit in memory until the system kills the process.
    """
    network.to(device).eval()
    use_amp = device.startswith("cuda")
    batch_size = max(1, min(batch_size, PREDICT_PIXELS // (pixels.shape[2] * pixels.shape[3])))
    probs, embs = [], []
    start, n = 0, len(pixels) if rows is None else len(rows)
    while start < n:
        try:
            stop = start + batch_size
            x = _to_input(pixels[start:stop] if rows is None else pixels[rows[start:stop]], device,
                          network.normalization)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
                logits, emb = network(x)
                # Test-time augmentation: average over the small shifts seen in training.
                views = [torch.softmax(logits.float(), dim=1)]
                for dy, dx in _TTA_SHIFTS if tta else []:
                    views.append(torch.softmax(network(torch.roll(x, (dy, dx), dims=(2, 3)))[0].float(), dim=1))
        except torch.cuda.OutOfMemoryError:
            # The batch size adapts to the device's memory: halve it and retry this batch
            # (inference only, so results do not depend on it).
            if batch_size == 1:
                raise
            batch_size //= 2
            torch.cuda.empty_cache()
            continue
        probs.append(torch.stack(views).mean(dim=0).cpu().numpy())
        embs.append(emb.float().cpu().numpy())
        start += len(x)
    if not probs:
        return np.zeros((0, network.head.out_features), np.float32), np.zeros((0, network.dim), np.float32)
    return np.concatenate(probs), np.concatenate(embs)


#: ImageNet channel statistics of torchvision's pretrained weights, on pixels scaled to [0, 1].
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_input(pixels: np.ndarray, device: str, normalization: str = "per_image") -> torch.Tensor:
    """uint8 (B, 3, H, W) → float (B, 3, H, W) on ``device``, scaled as the network expects.

    ``normalization`` is :attr:`datacheck.engine.models.Network.normalization`:

    - ``"per_image"``: standardised per image. This makes a model trained here blind to
      exposure and contrast: a dark or washed-out picture of a class is still that class,
      and the label checks should judge the content, not the exposure (which the
      image-property checks report).
    - ``"imagenet"``: pixels / 255, then ImageNet mean and std per channel, the inputs
      torchvision's pretrained weights were trained on; a pretrained backbone's features are
      only meaningful on the input distribution it was trained on.
    - ``"inception"``: (pixels - 127) / 128, about [-1, 1], what TensorFlow's EfficientNet-Lite
      weights were trained on ("inception-style" statistics, chosen there for quantisation).
    """
    if not pixels.flags.writeable:  # a slice of a read-only memory map; torch wants writable memory
        pixels = pixels.copy()
    x = torch.from_numpy(np.ascontiguousarray(pixels))
    if device.startswith("cuda"):
        x = x.pin_memory().to(device, non_blocking=True)
    x = x.float()
    if normalization == "imagenet":
        mean = torch.tensor(_IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x / 255.0 - mean) / std
    if normalization == "inception":
        return (x - 127.0) / 128.0
    if normalization != "per_image":
        raise ValueError(f"unknown normalization {normalization!r}")
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / (std + 1.0)  # +1 grey level keeps flat images from exploding


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Randomly translate (up to ``max_shift`` pixels) and rescale (±15 %) each image, edges
    replicated: label-preserving for any class, unlike flips (which turn "iv" into "vi")."""
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    scale = 1.0 + (torch.rand(b, generator=generator) * 0.3 - 0.15)
    shift = (torch.rand(b, 2, generator=generator) * 2 - 1) * (2.0 * max_shift / torch.tensor([w, h]))
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = nn.functional.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def quarter_turned(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Each square image of ``x`` (B, C, S, S) turned anticlockwise by ``turns`` (B,) quarter turns."""
    turned = x.clone()
    for k in (1, 2, 3):
        chosen = (turns == k).to(x.device)
        if chosen.any():
            turned[chosen] = torch.rot90(x[chosen], k, dims=(2, 3))
    return turned


def _margin(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Assigned-class logit minus the largest other logit, shape (B,)."""
    assigned = logits.gather(1, target[:, None]).squeeze(1)
    others = logits.scatter(1, target[:, None], float("-inf"))
    return assigned - others.max(dim=1).values

"""Orientation surprise: how badly a model of the data's upright look tells which way up an image is.

A self-supervised out-of-distribution signal (Hendrycks et al., "Using Self-Supervised
Learning Can Improve Model Robustness and Uncertainty", NeurIPS 2019): a small network
learns to tell which of four quarter turns an image was given. What it learns is how the
data's images look upright: the slant of handwriting, where the ground is in a photo. An
image unlike the data (a letter among numerals, a drawn shape, a scan filed on its side, a
scrawl) gives it no clue, and the loss of the true turn is high, whatever the image's label.
Nothing here reads a label, so it is a second opinion beside the distance to the nearest
neighbours in the label model's embedding space, which sees only what separates the classes.

The network is cross-fitted: trained on one half of the images, it scores the other half,
so it cannot have memorised the images it scores.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import numpy as np
import torch

from .train import _to_input, fit, quarter_turned
from .train_config import TrainConfig

#: Halves the images are split into: each half is scored by a network trained on the rest.
FOLDS = 2
#: The orientation networks train for this share of the label model's epochs. Injected roman
#: (86 off-class among 2,981): 69 off-class among the 150 most surprising after 10 of 20
#: epochs, 68 after 20, 65 after 6; half the epochs, half the cost.
EPOCH_SHARE = 0.5


class OrientationScores(NamedTuple):
    """:func:`orientation_surprise` of M images."""

    surprise: np.ndarray  # (M,) float32: mean over the four quarter turns of -log p(true turn); NaN: not scored
    accuracy: float  # held-out share of (image, turn) pairs whose turn was told right; 0.25 is chance


def network_config(config: TrainConfig) -> TrainConfig:
    """The training config of the orientation networks, from the label model's ``config``:
    :data:`EPOCH_SHARE` of its epochs, and the settings that do not shape the networks (the
    label model's name: they are convnet-small; its folds, k-NN vote and threshold samples)
    at their defaults, so that a cache key made of it (:meth:`TrainConfig.key`) changes only
    when the networks would."""
    defaults = TrainConfig()
    return dataclasses.replace(config, epochs=max(1, round(config.epochs * EPOCH_SHARE)), model=defaults.model,
                               folds=defaults.folds, knn_k=defaults.knn_k,
                               threshold_fraction=defaults.threshold_fraction)


def orientation_surprise(pixels: np.ndarray, rows: np.ndarray, config: TrainConfig, device: str,
                         seed: int, progress: Callable[[str, int, int], None] | None = None,
                         min_accuracy: float = 0.0) -> OrientationScores:
    """Cross-fitted orientation surprise of ``rows`` of ``pixels``.

    Parameters
    ----------
    pixels : ndarray of shape (N, 3, S, S), uint8
        Model inputs (a memory map is read batch by batch).
    rows : ndarray of shape (M,), int
        The rows to train on and score (readable images), at least ``2 * FOLDS``.
    config : TrainConfig
        Batch size, learning rate and shifts of the training (the label model's), and its
        epochs, of which the networks train :data:`EPOCH_SHARE`.

    progress : callable, optional
        ``progress(stage, epochs done, epochs)`` after each epoch of each network.
    min_accuracy : float, default 0
        When the first network tells fewer than this share of its held-out turns, the second
        is not trained: its half is NaN and the accuracy is the first's.

    Returns
    -------
    OrientationScores
    """
    from .models import create_model

    rows = np.asarray(rows)
    config = network_config(config)
    fold = np.random.default_rng(seed).permutation(len(rows)) % FOLDS
    surprise = np.full(len(rows), np.nan, dtype=np.float32)
    correct = scored = 0
    for k in range(FOLDS):
        if scored and correct / (4 * scored) < min_accuracy:
            # The first network found no upright look to learn: another would not either
            # (a sixth of a default audit's training at 20,000 images, for no evidence).
            break
        torch.manual_seed(seed + k)  # the network's initial weights
        network = create_model("convnet-small", 4)
        train = rows[fold != k]
        stage = f"orientation network {k + 1}/{FOLDS}"
        fit(network, pixels, np.zeros(len(train), dtype=np.int64), config, device, seed + k, rows=train,
            quarter_turns=True, progress=(lambda done, total: progress(stage, done, total)) if progress else None)
        held_out = np.flatnonzero(fold == k)
        surprise[held_out], right = _score(network, pixels, rows[held_out], device, config.batch_size)
        correct, scored = correct + right, scored + len(held_out)
    return OrientationScores(surprise, correct / (4 * max(scored, 1)))


@torch.inference_mode()
def _score(network, pixels: np.ndarray, rows: np.ndarray, device: str, batch_size: int) -> tuple[np.ndarray, int]:
    """Surprise (M,) of ``rows`` and how many of their 4 M turns ``network`` told right."""
    network.to(device).eval()
    surprise, right = [], 0
    for start in range(0, len(rows), batch_size):
        x = _to_input(pixels[rows[start:start + batch_size]], device, network.normalization)
        total = torch.zeros(len(x), device=x.device)
        for k in range(4):
            turns = torch.full((len(x),), k)
            log_probs = torch.log_softmax(network(quarter_turned(x, turns))[0].float(), dim=1)
            total -= log_probs[:, k]
            right += int((log_probs.argmax(dim=1) == k).sum())
        surprise.append((total / 4).cpu().numpy())
    return (np.concatenate(surprise) if surprise else np.zeros(0, np.float32)), right

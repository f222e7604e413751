"""Adversarial pass on the label checks' at-chance gate (helper-59, 6 December): the test of the
model against chance, its wording, and how gates, JUnit and the report show a check that did
not judge."""

from __future__ import annotations

import json

import numpy as np

import datacheck
from datacheck.features.model import agreement_beyond_chance, at_chance_reason

from .conftest import invoke


def _weak_imbalanced(n: int = 2000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """95/5 labels and a real but weak model: the minority's score shifted by 0.8 SD (AUC
    about 0.7), its probability above 0.5 for few samples."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.05).astype(int)
    p1 = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 0.8 * labels - 2.2)))
    return labels, np.c_[1 - p1, p1]


def test_a_weak_model_of_imbalanced_classes_is_judged_though_its_accuracy_is_near_chance():
    """Its most probable class agrees with 0.943 of the labels against 0.936 by chance (p > 0.001):
    the label check was off. Its probabilities rank the labels far beyond chance, and confident
    learning's thresholds are per class: it judges (71 flagged)."""
    labels, probs = _weak_imbalanced()
    predicted = probs.argmax(axis=1)
    measured = agreement_beyond_chance(labels, predicted)  # the most probable class alone
    assert measured == {"out_of_fold_accuracy": 0.9425, "chance_accuracy": 0.9361, "samples": 2000}
    assert agreement_beyond_chance(labels, predicted, probs) is None
    result = datacheck.audit(pred_probs=probs, labels=labels, checks="label_issues")
    check = result.summary["checks"]["label_issues"]
    assert check["threshold"]["rule"].startswith("cleanlab") and (check["flagged"], check["scored"]) == (71, 2000)
    # A model that always predicts the majority (every probability of the minority below 0.5)
    # but ranks the minority first: accuracy = chance = 0.95, judged.
    rng = np.random.default_rng(0)
    labels = (rng.random(2000) < 0.05).astype(int)
    p1 = 0.4 / (1 + np.exp(-(rng.normal(0, 1, 2000) + 2 * labels - 1)))
    probs = np.c_[1 - p1, p1]
    assert probs.argmax(axis=1).max() == 0 and agreement_beyond_chance(labels, probs.argmax(axis=1), probs) is None


def test_the_probability_test_is_exact_where_a_normal_approximation_is_not():
    """One minority sample among 50 given probability 1: z = 7 under the permutation variance,
    but any of the 50 rows holding it would score so (p = 1/50); constant rows tie every
    permutation."""
    labels = np.zeros(50, dtype=int)
    labels[7] = 1
    probs = np.tile([1.0, 0.0], (50, 1))
    probs[7] = [0.0, 1.0]
    assert agreement_beyond_chance(labels, probs.argmax(axis=1), probs) == {
        "out_of_fold_accuracy": 1.0, "chance_accuracy": 0.9608, "samples": 50}
    labels = np.random.default_rng(0).integers(0, 2, 100)
    constant = np.tile([0.6, 0.4], (100, 1))
    assert agreement_beyond_chance(labels, constant.argmax(axis=1), constant)["chance_accuracy"] == 0.44
    # two samples, both right: no evidence either way
    two = np.array([[0.9, 0.1], [0.1, 0.9]])
    assert agreement_beyond_chance(np.array([0, 1]), np.array([0, 1]), two)["samples"] == 2


def test_a_model_below_chance_is_called_so_and_a_column_reordering_is_named():
    """Columns shifted by one (class k's probability in column k + 1): accuracy 0.000 against
    0.100. The reason said "not clearly above chance (... too few samples per class?)"; it now
    says below chance, and that the columns in another order agree with every label."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1000)
    probs = np.full((1000, 10), 0.02)
    probs[np.arange(1000), (labels + 1) % 10] = 0.82
    result = datacheck.audit(pred_probs=probs, labels=labels, checks="label_issues")
    threshold = result.summary["checks"]["label_issues"]["threshold"]
    assert threshold["out_of_fold_accuracy"] == 0.0 and threshold["chance_accuracy"] == 0.1
    assert threshold["below_chance"] is True and threshold["reordered_accuracy"] == 1.0
    assert threshold["rule"] == (
        "off: the model is below chance (out-of-fold accuracy 0.000, 0.100 by chance, 1,000 samples): its "
        "disagreements with the labels are systematic, no evidence of wrong ones (its columns in another order would "
        "agree with 1.000 of the labels: are the probabilities' columns in class order?)")
    assert result.summary["notes"] == [f"label_issues did not judge the labels: {threshold['rule'][5:]}"]
    # Random probabilities: at chance, not below; no order fits; the hint names rows and columns.
    random = rng.dirichlet(np.ones(10), 1000)
    measured = agreement_beyond_chance(labels, random.argmax(axis=1), random, trained=False)
    assert measured == {"out_of_fold_accuracy": 0.094, "chance_accuracy": 0.0998, "samples": 1000, "model": "given"}
    assert at_chance_reason(measured).endswith(
        "no evidence of wrong ones (are the probabilities' rows in the labels' order, and their columns in class order?)")
    # A model datacheck trained: the hint is its samples per class.
    trained = agreement_beyond_chance(labels[:16] % 2, random[:16, :2].argmax(axis=1), trained=True)
    assert trained["samples_per_class"] == 8.0
    assert at_chance_reason(trained).endswith(
        "(a model trained on 8 labeled samples per class: too few, or labels unrelated to the images?)")

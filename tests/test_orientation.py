"""Orientation surprise (datacheck.engine.orientation) and its use by the outliers check."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from datacheck.detectors import create_detector
from datacheck.engine.orientation import orientation_surprise
from datacheck.engine.train import quarter_turned
from datacheck.engine.train_config import TrainConfig
from datacheck.features.arrays import manifest_for_outputs
from datacheck.features.model import ModelOutputs, Orientation
from datacheck.robust import robust_z
from datacheck.testing import make_context


def test_quarter_turned_turns_each_image_by_its_own_count():
    x = torch.arange(4 * 2 * 5 * 5, dtype=torch.float32).reshape(4, 2, 5, 5)
    turns = torch.tensor([0, 1, 2, 3])
    turned = quarter_turned(x, turns)
    for i, k in enumerate(turns.tolist()):
        assert torch.equal(turned[i], torch.rot90(x[i], k, dims=(1, 2)))
    assert torch.equal(x, torch.arange(4 * 2 * 5 * 5, dtype=torch.float32).reshape(4, 2, 5, 5))  # not in place


def upright_glyphs(n: int, rng) -> np.ndarray:
    """``n`` 16 px "L" shapes (a stem and a foot), jittered: a look with an up and a down."""
    images = np.full((n, 3, 16, 16), 255, np.uint8)
    for image in images:
        x, y = rng.integers(3, 6), rng.integers(2, 4)
        height, foot = rng.integers(9, 12), rng.integers(5, 8)
        image[:, y:y + height, x:x + 2] = 0
        image[:, y + height - 2:y + height, x:x + foot] = 0
    return images


def test_images_unlike_the_data_are_the_most_surprising():
    """240 upright "L" glyphs and 10 "L"s on their side: a network of the glyphs' upright look
    tells most turns of the glyphs, and the turned ones surprise it most (measured: all 10
    among the 12 most surprising, turn accuracy 0.9)."""
    rng = np.random.default_rng(0)
    pixels = upright_glyphs(250, rng)
    odd = np.arange(240, 250)
    pixels[odd] = np.rot90(pixels[odd], 1, axes=(2, 3))
    config = TrainConfig(image_size=16, epochs=8, batch_size=32)
    scores = orientation_surprise(pixels, np.arange(250), config, "cpu", seed=0)
    assert scores.surprise.shape == (250,) and np.isfinite(scores.surprise).all()
    assert scores.accuracy >= 0.7
    top = np.argsort(-scores.surprise)[:15]
    assert np.isin(odd, top).sum() >= 8
    again = orientation_surprise(pixels, np.arange(250), config, "cpu", seed=0)
    np.testing.assert_array_equal(scores.surprise, again.surprise)  # seeded: the same numbers


def test_round_images_have_no_orientation_to_learn():
    """Discs of random sizes look the same every way up: the turn accuracy stays near chance."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:16, :16]
    pixels = np.full((200, 3, 16, 16), 255, np.uint8)
    for image in pixels:
        r = rng.uniform(3, 7)
        image[:, (yy - 7.5) ** 2 + (xx - 7.5) ** 2 <= r * r] = 0
    config = TrainConfig(image_size=16, epochs=4, batch_size=32)
    assert orientation_surprise(pixels, np.arange(200), config, "cpu", seed=0).accuracy < 0.5
    # With a floor on the accuracy, the second network is not trained for nothing: half unscored.
    stopped = orientation_surprise(pixels, np.arange(200), config, "cpu", seed=0, min_accuracy=0.5)
    assert stopped.accuracy < 0.5 and np.isnan(stopped.surprise).sum() == 100


def gaussian_classes(seed=0):
    """Four Gaussian classes of 150 in 16 dimensions, with their ModelOutputs and manifest."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 16)) * 3
    labels = np.repeat(np.arange(4), 150)
    x = (centres[labels] + rng.normal(size=(600, 16))).astype(np.float32)
    probs = np.full((600, 4), 0.02, np.float32)
    probs[np.arange(600), labels] = 0.94
    outputs = ModelOutputs(["c0", "c1", "c2", "c3"], labels, probs, x, "test")
    return outputs, manifest_for_outputs(outputs, "arrays")


def outliers_with(measured: Orientation | None, **params):
    outputs, manifest = gaussian_classes()
    ctx = make_context(manifest, outputs=outputs)
    if measured is not None:
        ctx.features.provide("orientation", lambda: measured, timed=False)
    detector = create_detector("outliers", **params)
    found = detector.run(ctx)
    return found.set_index("sample_id").loc[[str(i) for i in range(600)]], detector.thresholds_["outliers"]


def test_orientation_surprise_joins_the_distance():
    """Ten samples typical in embedding space but very surprising to the orientation networks
    are flagged with the orientation evidence and not without it; the summary says which."""
    rng = np.random.default_rng(2)
    surprise = rng.gamma(2.0, 0.05, 600).astype(np.float32)  # most images cost little
    planted = np.arange(5, 600, 60)
    surprise[planted] = 2.5
    alone, alone_rule = outliers_with(None)
    both, rule = outliers_with(Orientation(surprise, 0.8))
    ids = [str(i) for i in planted]
    assert not alone.loc[ids, "is_issue"].any()
    assert both.loc[ids, "is_issue"].all()
    # The cut falls (Benjamini-Hochberg) as ten stand out: measured 6 others against 3.0 expected.
    assert both["is_issue"].sum() - len(planted) <= 2 * rule["expected_false_positives"]
    assert "orientation surprise" in rule["statistic"] and rule["orientation"]["held_out_turn_accuracy"] == 0.8
    assert "above" not in rule and "above" in alone_rule and "orientation" not in alone_rule
    assert {"distance_z", "orientation_z", "orientation_surprise", "z"} <= set(json.loads(both["details"].iloc[0]))


@pytest.mark.parametrize("orientation, params, note", [
    (Orientation(None, float("nan"), "off: 40 readable images (needs 100)"), {}, "off: 40 readable images"),
    ("uninformative", {}, "off: held-out turn accuracy 0.300"),
    ("informative", {"orientation": False}, None),
])
def test_orientation_evidence_that_is_off_leaves_the_distance_alone(orientation, params, note):
    surprise = np.random.default_rng(3).gamma(2.0, 0.05, 600).astype(np.float32)
    surprise[:10] = 2.5
    if isinstance(orientation, str):
        orientation = Orientation(surprise, 0.3 if orientation == "uninformative" else 0.8)
    alone, _ = outliers_with(None)
    found, rule = outliers_with(orientation, **params)
    np.testing.assert_array_equal(found["is_issue"], alone["is_issue"])
    np.testing.assert_array_equal(found["score"], alone["score"])
    if note is None:
        assert "orientation" not in rule
    else:
        assert rule["orientation"]["rule"].startswith(note)


def test_upper_robust_z_measures_the_right_side_of_a_skewed_bulk():
    values = np.concatenate([np.linspace(-10, 0, 50), np.linspace(0, 1, 51)[1:]])  # a long left side
    z_both, median, both = robust_z(values, 0.01)
    z_upper, _, upper = robust_z(values, 0.01, upper=True)
    assert median == pytest.approx(0.0, abs=0.2)
    assert upper == pytest.approx(1.4826 * 0.5, abs=0.02)  # the right side's deviations: median 0.5
    assert both > 1.5 * upper and z_upper[-1] > 1.5 * z_both[-1]

"""Degenerate datasets through every command: one class, no readable image, blank images.

A check that cannot run on such data says why in ``summary.json`` (``"rule": "off: ..."``),
so that a later command can tell "not asked for" from "asked for, nothing to work on".
"""

from __future__ import annotations

from pathlib import Path

import pytest

import datacheck

from .conftest import make_image


def _one_class(root: Path, n: int = 6) -> Path:
    for i in range(n):
        make_image(root / "cat" / f"{i}.png", i)
    return root


def test_coreset_without_a_model_says_it_is_off(tmp_path):
    """One class trains no model, so no sample has probabilities: coreset was reported as run
    (a rule, no ``off``) with nothing scored, and ``balance --strategy coreset`` then asked for an
    audit "with --checks including coreset", which this one had."""
    run = tmp_path / "run"
    result = datacheck.audit(_one_class(tmp_path / "data"), checks=["coreset"], out=run)
    rule = result.summary["checks"]["coreset"]["threshold"]["rule"]
    assert rule.startswith("off: ") and "out-of-fold probabilities" in rule
    with pytest.raises(datacheck.UsageError, match="coreset was off: no labeled sample"):
        datacheck.balance(run, tmp_path / "plan", strategy="coreset")


def _files(root: Path, write) -> Path:
    for label in ("a", "b"):
        for i in range(4):
            path = root / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path, i)
    return root


def _rules(summary: dict, checks) -> dict:
    return {c: summary["checks"][c]["threshold"].get("rule", "") for c in checks}


def test_no_readable_image_turns_the_image_checks_off(tmp_path):
    """Every file corrupt (random bytes named .png): the image checks and the duplicates read as
    run (an empty threshold, nothing scored) instead of saying why they could not."""
    data = _files(tmp_path / "data", lambda p, i: p.write_bytes(bytes(range(i, i + 200))))
    result = datacheck.audit(data, checks=["image_properties", "*duplicates"], out=None)
    assert result.summary["checks"]["corrupt"]["flagged"] == 8
    rules = _rules(result.summary, ("dark", "blurry", "odd_size", "grayscale", "exact_duplicates", "near_duplicates"))
    assert all(r.startswith("off: ") and "readable" in r for r in rules.values()), rules


def test_blank_images_turn_the_content_checks_off(tmp_path):
    """Every image one colour: exposure, sharpness, noise and near duplicates need content."""
    from PIL import Image

    data = _files(tmp_path / "data", lambda p, i: Image.new("RGB", (16, 16), (40, 40, 40)).save(p))
    result = datacheck.audit(data, checks=["image_properties", "*duplicates"], out=None)
    rules = _rules(result.summary, ("dark", "light", "blurry", "noisy", "near_duplicates"))
    assert all(r.startswith("off: ") and "one colour" in r for r in rules.values()), rules
    assert result.summary["checks"]["low_information"]["flagged"] == 8  # flat: flagged on its own account

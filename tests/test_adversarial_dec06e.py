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

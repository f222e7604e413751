"""`datacheck fix` on inputs the sample data does not cover: a one-class dataset, missing
files, an --out made from another dataset. Small datasets and the checks that need no model,
so each test takes seconds."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import datacheck
from datacheck.errors import UsageError

from .conftest import assert_one_line_error, invoke, make_image, make_tiny_dataset, tree_digest

QUICK = '[audit]\nchecks = ["image_properties"]\n'


@pytest.fixture
def quick(tmp_path):
    config = tmp_path / "quick.toml"
    config.write_text(QUICK)
    return config


def make_one_class(root):
    seed = 0
    for split, n in (("train", 8), ("val", 2)):
        for i in range(n):
            make_image(root / split / "cat" / f"cat{i}.png", seed)
            seed += 1
    return root


def test_one_class_dataset_is_fixed_without_relabelling(tmp_path, quick):
    """One class: no label suggestions, so relabelling is skipped with a note, and the other
    steps still fill the budget (before: "--auto needs label suggestions", exit 2)."""
    data = make_one_class(tmp_path / "one")
    before = tree_digest(data)
    out = tmp_path / "out"
    result = invoke("fix", data, "--out", out, "--budget", 20, "--config", quick, "--workers", 0, "--json", "-q")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("datacheck: note: ")]
    assert len(notes) == 1 and "1 class has no label suggestions" in notes[0], result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows"] == 20 and summary["choices"]["relabel"]["auto"] is False
    assert summary["steps"]["relabel"]["status"] == "done" and summary["steps"]["augment"]["status"] == "done"
    m = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert len(m) == 20 and set(m["label"]) == {"cat"} and not (m["action"] == "relabel").any()
    assert tree_digest(data) == before

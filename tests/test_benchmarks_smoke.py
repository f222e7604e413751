"""Smoke test of benchmarks/near_dup_variants.py on its smallest folder (83 files, about 6 s
on 2 cores), so the script cannot rot: both tools run, every planted copy and hard negative
is scored, an exact copy is found by both and a 90-degree turn by neither."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "near_dup_variants.py"


def test_near_dup_variants_smallest_folder(tmp_path):
    pytest.importorskip("cleanvision")
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--sources", "60", "--per-transform", "1", "--negatives", "1",
                           "--work", str(tmp_path / "work"), "--json", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(out.read_text())["summary"]
    transforms = summary["transforms"]
    assert len(transforms) == 15
    assert all(row["planted"] == 1 for row in transforms.values())
    assert transforms["exact"]["datacheck"] == transforms["exact"]["cleanvision"] == 1
    assert transforms["exact"]["datacheck_leak"] == 1  # the copy is in val, its source in train
    assert transforms["rotate_90deg"]["datacheck"] == transforms["rotate_90deg"]["cleanvision"] == 0
    assert {kind: row["pairs"] for kind, row in summary["hard_negatives"].items()} == {
        "retext": 1, "moved_shapes": 1, "photo_neighbour": 1, "dataset_same_class": 1}
    assert sum(row["datacheck"] for row in summary["hard_negatives"].values()) == 0
    assert summary["unrelated"]["datacheck"] == 0
    assert summary["copies"]["planted"] == 15
    assert "all copies" in done.stdout

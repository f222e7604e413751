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


def detection_module():
    """benchmarks/detection.py imported as a module (it imports _common from its own folder)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("detection", SCRIPT.parent / "detection.py")
    detection = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec.loader.exec_module(detection)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return detection


def test_detection_sheets_of_uninjected_flags(tmp_path):
    """benchmarks/detection.py --save-examples: the check's flags that were not injected, most
    suspect first, and as many unflagged ones ranked next; injected images on neither sheet."""
    import numpy as np
    from PIL import Image

    detection = detection_module()
    root = tmp_path / "roman"
    ids = np.array([f"train/i/{k}.png" for k in range(8)])
    (root / "train" / "i").mkdir(parents=True)
    for k, sample in enumerate(ids):
        Image.new("L", (20, 20), 30 * k).save(root / sample)
    score = np.array([0.1, 0.2, 0.3, 0.45, 0.6, 0.7, 0.8, 0.9])
    flagged = score < 0.5
    injected = np.array([True, False, False, False, True, False, False, False])
    flags, below = detection.save_uninjected_flags(tmp_path / "sheets", root, ids, score, flagged, injected, "outliers")
    assert (flags.name, below.name) == ("outliers_flagged_not_injected.png", "outliers_next_not_injected.png")
    with Image.open(flags) as sheet:  # samples 1, 2, 3 (0 is injected): one row of 12 cells of 80 px
        assert sheet.size == (12 * 80, 80 + 14)
        cells = [sheet.getpixel((k * 80 + 40, 40)) for k in range(4)]
    assert cells[:3] == [(30 * k,) * 3 for k in (1, 2, 3)] and cells[3] == (255, 255, 255)
    with Image.open(below) as sheet:  # the next three not injected: 5, 6, 7 (4 is injected)
        assert [sheet.getpixel((k * 80 + 40, 40)) for k in range(3)] == [(30 * k,) * 3 for k in (5, 6, 7)]


def test_input_memory_measures_both_input_types(tmp_path):
    """benchmarks/input_memory.py at a toy size (reading the inputs only): every input form is
    written with the same values, each read in a process of its own, the ratios printed."""
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(SCRIPT.parent / "input_memory.py"), "--rows", "2000", "--dim", "16",
                           "--classes", "3", "--load-only", "--work", str(tmp_path / "work"), "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["results"]) == {"float64", "float32", "parquet"}
    assert all(row["load_peak_mb"] > 20 for row in result["results"].values())  # an interpreter with numpy and pandas
    assert 0.8 < result["ratio"]["float64"]["load_peak_mb"] < 1.25 and result["ratio"]["parquet"]["load_peak_mb"] > 0.8
    import numpy as np

    wide = np.load(tmp_path / "work" / "embeddings_float64.npy")
    narrow = np.load(tmp_path / "work" / "embeddings_float32.npy")
    assert wide.dtype == np.float64 and narrow.dtype == np.float32 and np.array_equal(wide, narrow)
    assert "float64 / float32: load_peak_mb" in done.stdout and "parquet / float32: load_peak_mb" in done.stdout


def test_coreset_scale_in_parts_against_undivided(tmp_path):
    """benchmarks/coreset_scale.py at one size just above PART_MAX (two regions, about 6 s): the
    selection in regions covers the class about as well as the undivided one."""
    out = tmp_path / "coreset.json"
    done = subprocess.run([sys.executable, str(SCRIPT.parent / "coreset_scale.py"), "--sizes", "9000",
                           "--undivided-max", "9000", "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["n"] == 9000 and row["budget"] == 4500 and row["method"] == "stochastic greedy in 2 regions"
    assert 0.95 <= row["coverage_ratio"] <= 1.05 and row["parts_s"] > 0 and row["undivided_s"] > 0


def test_roman_review_file_is_well_formed():
    """benchmarks/roman_reviewed.csv, read by detection.py as a second truth: one row per image,
    known verdicts, a read class for each mislabelled numeral, paths in roman's own layout."""
    import pandas as pd

    review = pd.read_csv(SCRIPT.parent / "roman_reviewed.csv", dtype=str, keep_default_na=False)
    assert list(review.columns) == ["sample_id", "verdict", "note"]
    assert review["sample_id"].is_unique
    assert set(review["verdict"]) == {"numeral", "off_class", "noisy", "mislabeled"}
    assert review["sample_id"].str.fullmatch(r"(train|val)/(i|ii|iii|iv|v|vi|vii|viii|ix|x)/[0-9a-f-]+\.png").all()
    mislabeled = review[review["verdict"] == "mislabeled"]
    read = mislabeled["note"].str.extract(r"^reads as (\w+)$")[0]
    assert (mislabeled["note"].str.startswith("reads as ") | (mislabeled["note"] == "another numeral, unclear which")).all()
    assert (read.dropna() != mislabeled.loc[read.notna(), "sample_id"].str.split("/").str[1]).all()  # another class
    assert len(review) == 492 and (review["verdict"] != "numeral").sum() == 176


def test_detection_digits_folder(tmp_path):
    """benchmarks/detection.py's digits part builds scikit-learn's digits as a labelled folder:
    every image once, the planted flips at their rates, each flip to another class."""
    import argparse

    from PIL import Image

    detection = detection_module()
    args = argparse.Namespace(seed=3, flip_rate=0.04, lookalike_rate=0.04)
    root, truth = detection.build_digits(args, tmp_path)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    assert files == sorted(truth["sample_id"]) and len(files) == 1797
    assert truth["kind"].value_counts().to_dict() == {"random": 72, "lookalike": 72}
    flipped = truth[truth["kind"].notna()]
    assert (flipped["given_label"] != flipped["true_label"]).all()
    assert (truth.loc[truth["kind"].isna(), "given_label"] == truth.loc[truth["kind"].isna(), "true_label"]).all()
    assert 0.15 < truth["sample_id"].str.startswith("val/").mean() < 0.25
    with Image.open(root / files[0]) as image:
        assert image.size == (8, 8) and image.mode == "L"

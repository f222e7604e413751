"""Checks for the committed synthetic dataset in sample_data/.

The dataset is produced by scripts/make_sample_data.py; these tests make sure
the committed copy is exactly what the generator produces today, and that it
has the shape and the planted issues that the rest of the test suite and the
docs rely on.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "sample_data"
GENERATOR = REPO_ROOT / "scripts" / "make_sample_data.py"

CLASSES = ("circle", "square", "triangle", "cross", "ring", "star", "hbars", "vbars")
EXPECTED_COUNTS = {
    "train": {**{c: 60 for c in CLASSES}, "star": 24},
    "val": {c: 15 for c in CLASSES},
}
TRUTH_COLUMNS = ["sample_id", "issue", "group", "true_label", "note"]
EXPECTED_ISSUE_ROWS = {
    "mislabeled": 24,
    "exact_duplicate": 12,
    "near_duplicate": 18,
    "split_leakage": 12,
    "dark": 5,
    "light": 5,
    "blurry": 5,
    "low_information": 4,
    "odd_size": 3,
    "odd_aspect_ratio": 3,
    "grayscale": 4,
    "corrupt": 1,
    "outlier": 6,
    "subgroup": 6,
}
MAX_TOTAL_BYTES = 5 * 1024 * 1024


def _load_generator():
    # scripts/ is not a package, so import the generator by file path.
    # It must be registered in sys.modules while executing: @dataclass looks
    # its defining module up there.
    name = "make_sample_data"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, GENERATOR)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def _all_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def _image_files(root: Path) -> dict[str, Path]:
    return {sid: p for sid, p in _all_files(root).items() if sid.split("/")[0] in EXPECTED_COUNTS}


@pytest.fixture(scope="module")
def truth_rows() -> list[dict[str, str]]:
    with (SAMPLE_DIR / "truth.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_committed_output_matches_generator(tmp_path: Path) -> None:
    _load_generator().generate(tmp_path, seed=0)
    expected, actual = _all_files(tmp_path), _all_files(SAMPLE_DIR)
    assert sorted(actual) == sorted(expected), "file list differs; re-run scripts/make_sample_data.py"
    changed = [sid for sid in expected if expected[sid].read_bytes() != actual[sid].read_bytes()]
    assert not changed, f"{len(changed)} files differ, e.g. {changed[:5]}"


def test_total_size_is_small() -> None:
    total = sum(p.stat().st_size for p in _all_files(SAMPLE_DIR).values())
    assert total <= MAX_TOTAL_BYTES


def test_split_and_class_counts() -> None:
    counts = Counter(tuple(sid.split("/")[:2]) for sid in _image_files(SAMPLE_DIR))
    expected = {(split, c): n for split, per_class in EXPECTED_COUNTS.items() for c, n in per_class.items()}
    assert dict(counts) == expected


def test_truth_columns_and_issue_counts(truth_rows: list[dict[str, str]]) -> None:
    with (SAMPLE_DIR / "truth.csv").open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header == TRUTH_COLUMNS
    assert Counter(r["issue"] for r in truth_rows) == EXPECTED_ISSUE_ROWS
    ids = [r["sample_id"] for r in truth_rows]
    assert len(ids) == len(set(ids)), "a sample must have exactly one planted issue"


def test_truth_sample_ids_exist(truth_rows: list[dict[str, str]]) -> None:
    missing = [r["sample_id"] for r in truth_rows if not (SAMPLE_DIR / r["sample_id"]).is_file()]
    assert not missing


def test_exactly_one_file_fails_to_decode(truth_rows: list[dict[str, str]]) -> None:
    failed = []
    for sid, path in _image_files(SAMPLE_DIR).items():
        try:
            with Image.open(path) as im:
                im.load()
        except Exception:  # noqa: BLE001 - any decode failure counts
            failed.append(sid)
    corrupt = [r["sample_id"] for r in truth_rows if r["issue"] == "corrupt"]
    assert failed == corrupt


def test_unlisted_files_are_normal_images(truth_rows: list[dict[str, str]]) -> None:
    planted = {r["sample_id"] for r in truth_rows}
    odd = []
    for sid, path in _image_files(SAMPLE_DIR).items():
        if sid in planted:
            continue
        with Image.open(path) as im:
            if (im.format, im.mode, im.size) != ("PNG", "RGB", (64, 64)):
                odd.append((sid, im.format, im.mode, im.size))
    assert not odd

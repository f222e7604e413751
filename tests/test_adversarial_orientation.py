"""The outliers check's orientation surprise as a user meets it: small datasets (100-150 tiny
images) through ``datacheck.audit`` and ``datacheck audit``, with unreadable files, grey,
palette and transparent images, 1 x N strips, unlabeled rows, one class, the switch turned off,
other checks only, the same seed twice and a reused cache. Each audit trains on 32 px "L"
glyphs (an up and a down to learn) with 2 folds and a few epochs: seconds each."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from .conftest import invoke

QUICK = {"audit": {"checks": ["outliers"]}, "train": {"epochs": 8, "folds": 2, "batch_size": 32}}
QUICK_TOML = '[audit]\nchecks = ["outliers"]\n[train]\nepochs = 8\nfolds = 2\nbatch_size = 32\n'
CORRUPT = b"\x89PNG\r\n\x1a\n not an image"


def glyph(rng, mode: str = "RGB", size: tuple[int, int] = (32, 32)) -> Image.Image:
    """A jittered "L" (a stem and a foot) on white, 32 px, converted to ``mode`` and resized to ``size``."""
    a = np.full((32, 32), 255, np.uint8)
    x, y = 2 * rng.integers(3, 6), 2 * rng.integers(2, 4)
    height, foot = 2 * rng.integers(9, 12), 2 * rng.integers(5, 8)
    a[y:y + height, x:x + 4] = 0
    a[y + height - 4:y + height, x:x + foot] = 0
    image = Image.fromarray(a)
    return (image if size == (32, 32) else image.resize(size)).convert(mode)


def make_dataset(root, n: int, corrupt: int = 0, classes=("a", "b"), modes=("RGB",), sizes=((32, 32),), seed=0):
    """``root/<class>/<class><i>.png``: ``n`` files, the first ``corrupt`` of them not images;
    image i in ``modes[i % len(modes)]`` and ``sizes[i % len(sizes)]``."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = classes[i % len(classes)]
        path = root / label / f"{label}{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if i < corrupt:
            path.write_bytes(CORRUPT)
        else:
            glyph(rng, modes[i % len(modes)], sizes[i % len(sizes)]).save(path)
    return root


@pytest.fixture
def trainings(monkeypatch):
    """Calls of the orientation networks' training (datacheck.engine.orientation.orientation_surprise)."""
    import datacheck.engine.orientation as orientation

    calls = []
    real = orientation.orientation_surprise

    def counted(*args, **kwargs):
        calls.append(len(args[1]))  # rows trained on and scored
        return real(*args, **kwargs)

    monkeypatch.setattr(orientation, "orientation_surprise", counted)
    return calls


def audit(data, out, config=QUICK, **kwargs):
    """``datacheck.audit`` of ``data`` into ``out``; also (summary.json parsed strictly, the outliers rows)."""
    import datacheck

    kwargs.setdefault("cache_dir", "off")
    result = datacheck.audit(data, config=copy.deepcopy(config), out=out, workers=0, **kwargs)
    summary = json.loads((out / "summary.json").read_text(), parse_constant=_no_constant)
    rows = pd.read_parquet(out / "findings.parquet")
    return result, summary, rows[rows["check"] == "outliers"].drop(columns="run_id").reset_index(drop=True)


def _no_constant(name):
    raise AssertionError(f"summary.json holds {name}, which is not JSON")


def orientation_note(summary) -> dict | None:
    return summary["checks"]["outliers"]["threshold"].get("orientation")


def assert_finite_details(rows, orientation: bool) -> None:
    for text in rows["details"]:
        details = json.loads(text, parse_constant=_no_constant)
        assert all(math.isfinite(v) for v in details.values()), details
        assert ("orientation_surprise" in details) == orientation, details


def test_readable_images_are_counted_not_files(tmp_path, trainings):
    """109 files, 10 of them not images: 99 readable, off without training, and said so; 110
    files with 100 readable: the networks train on exactly those 100 and their evidence is used."""
    _, summary, rows = audit(make_dataset(tmp_path / "d99", 109, corrupt=10), tmp_path / "r99")
    assert orientation_note(summary) == {"rule": "off: 99 readable images (needs 100)"}
    assert trainings == [] and len(rows) == 99
    assert_finite_details(rows, orientation=False)

    _, summary, rows = audit(make_dataset(tmp_path / "d100", 110, corrupt=10), tmp_path / "r100")
    note = orientation_note(summary)
    assert trainings == [100] and len(rows) == 100
    assert note["held_out_turn_accuracy"] >= 0.5 and note["rule"].startswith("used when"), note
    assert_finite_details(rows, orientation=True)


def test_grey_palette_transparent_and_strip_images(tmp_path, trainings):
    """Grey, 1-bit, palette, RGBA and grey-alpha images, a third of them 1 x 64 or 64 x 1 strips,
    in one folder: no error, every sample scored with finite orientation evidence."""
    data = make_dataset(tmp_path / "d", 120, modes=("L", "RGBA", "P", "LA", "1", "RGB"),
                        sizes=((32, 32), (1, 64), (32, 32), (64, 1), (40, 24)))
    _, summary, rows = audit(data, tmp_path / "r")
    assert trainings == [120] and len(rows) == 120
    assert orientation_note(summary)["held_out_turn_accuracy"] >= 0.5
    assert_finite_details(rows, orientation=True)
    assert rows["score"].between(0, 1).all()


def test_unlabeled_rows_of_a_manifest_get_orientation_evidence(tmp_path, trainings):
    """A manifest whose every third label is blank: the networks train on every readable image
    (labeled or not, 5 are not images) and each unlabeled row is scored with both opinions."""
    data = make_dataset(tmp_path / "d", 130, corrupt=5)
    paths = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.png"))
    frame = pd.DataFrame({"path": paths, "label": [p.split("/")[0] if i % 3 else "" for i, p in enumerate(paths)]})
    frame.to_csv(data / "manifest.csv", index=False)
    _, summary, rows = audit(data / "manifest.csv", tmp_path / "r")
    assert trainings == [125] and len(rows) == 125
    unlabeled = rows[rows["label"].isna()]
    assert len(unlabeled) >= 40
    assert_finite_details(unlabeled, orientation=True)
    assert orientation_note(summary)["held_out_turn_accuracy"] >= 0.5


def test_one_class_trains_no_orientation_network(tmp_path, trainings):
    """130 images of one class: nothing embedded (convnet-small has no second class to learn),
    so no orientation network is trained and no image is decoded for one."""
    _, summary, rows = audit(make_dataset(tmp_path / "d", 130, classes=("a",)), tmp_path / "r")
    assert trainings == [] and len(rows) == 0
    assert summary["checks"]["outliers"]["threshold"]["rule"].startswith("off:")


def test_orientation_false_and_other_checks_train_no_orientation_network(tmp_path, trainings):
    """``[detectors.outliers] orientation = false``, and ``--checks label_issues`` on the command
    line: the label model trains, the orientation networks do not (no 'orientation' timing)."""
    data = make_dataset(tmp_path / "d", 120)
    off = copy.deepcopy(QUICK)
    off["detectors"] = {"outliers": {"orientation": False}}
    _, summary, rows = audit(data, tmp_path / "off", off)
    assert trainings == [] and "orientation" not in summary["timings_s"] and len(rows) == 120
    assert orientation_note(summary) is None
    assert_finite_details(rows, orientation=False)

    config = tmp_path / "quick.toml"
    config.write_text(QUICK_TOML)
    result = invoke("audit", data, "--out", tmp_path / "li", "--config", config, "--checks", "label_issues",
                    "--workers", 0, "--cache-dir", "off", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "li" / "summary.json").read_text())
    assert trainings == [] and "orientation" not in summary["timings_s"] and "model_outputs" in summary["timings_s"]


def test_same_seed_same_findings_and_a_reused_cache_trains_nothing_again(tmp_path, trainings):
    """The same data and seed, without a cache and with one: identical outliers rows. The second
    audit with the cache trains no orientation network, nor does one that changes only the
    label model's folds and k-NN vote (two identical networks were trained again: the cache key
    held the whole training config; now only what shapes the networks)."""
    data = make_dataset(tmp_path / "d", 120, corrupt=4)
    _, _, fresh = audit(data, tmp_path / "r0")
    assert trainings == [116]
    cache = str(tmp_path / "cache")
    _, first_summary, first = audit(data, tmp_path / "r1", cache_dir=cache)
    assert trainings == [116, 116]
    pd.testing.assert_frame_equal(first, fresh)
    assert_finite_details(first, orientation=True)

    _, summary, again = audit(data, tmp_path / "r2", cache_dir=cache)
    assert trainings == [116, 116]  # cached
    pd.testing.assert_frame_equal(again, fresh)
    assert orientation_note(summary) == orientation_note(first_summary)

    other = copy.deepcopy(QUICK)
    other["train"].update(folds=3, knn_k=5)
    _, summary, _ = audit(data, tmp_path / "r3", other, cache_dir=cache)
    assert trainings == [116, 116], "other folds and k-NN vote trained the orientation networks again"
    assert orientation_note(summary) == orientation_note(first_summary)


def test_outliers_off_for_k_trains_no_orientation_network(tmp_path, trainings):
    """``[detectors.outliers] k = 200`` with 120 images: outliers says "off: needs more than
    k=200 embedded samples", yet the two orientation networks were trained for it."""
    config = copy.deepcopy(QUICK)
    config["detectors"] = {"outliers": {"k": 200}}
    _, summary, rows = audit(make_dataset(tmp_path / "d", 120), tmp_path / "r", config)
    assert summary["checks"]["outliers"]["threshold"]["rule"] == "off: needs more than k=200 embedded samples"
    assert len(rows) == 0
    assert trainings == []


def test_frozen_backbone_does_not_decode_again_to_find_too_few_readable(tmp_path, trainings, monkeypatch):
    """``--model efficientnet-lite0`` on 150 files of which 120 are not images: the 224 px decode
    for the backbone already says 30 are readable (too few for orientation), yet every file
    was decoded a second time at [train] image_size (32 px) only to say so. (It had 90
    readable: a third of them, embedded by the backbone at 224 px, asks the same question.)"""
    import datacheck.engine.loader as loader

    decodes = []
    real = loader.load_pixels

    def spied(paths, side, *args, **kwargs):
        decodes.append(side)
        return real(paths, side, *args, **kwargs)

    monkeypatch.setattr(loader, "load_pixels", spied)
    _, summary, rows = audit(make_dataset(tmp_path / "d", 150, corrupt=120), tmp_path / "r", model="efficientnet-lite0")
    assert len(rows) == 30 and trainings == []
    assert orientation_note(summary)["rule"].startswith("off: 30 ")
    assert decodes == [224]


@pytest.mark.xfail(strict=True, reason="known limit, left: the networks get EPOCH_SHARE of the label model's epochs "
                                       "whatever the number of optimizer steps (10 steps here); the off reason says "
                                       "'or too few to learn it from'. A floor on steps would retrain sample_data 3x.")
def test_clearly_upright_images_at_64_px_are_learned_with_default_training():
    """100 "L" glyphs (told 100% right at 32 px) at ``[train] image_size = 64``, the largest the
    orientation networks take, with the default training: 50 images a half, one batch of 128
    an epoch, 10 epochs, so 10 optimizer steps. Measured held-out accuracy 0.395 (seed 1), and
    summary.json would say "the images have no upright look to learn"."""
    from datacheck.engine.orientation import orientation_surprise
    from datacheck.engine.train_config import TrainConfig

    def glyphs(side):
        rng = np.random.default_rng(0)
        return np.stack([np.asarray(glyph(rng).resize((side, side), Image.Resampling.BILINEAR).convert("RGB"))
                         .transpose(2, 0, 1) for _ in range(100)])

    assert orientation_surprise(glyphs(32), np.arange(100), TrainConfig(), "cpu", 1).accuracy >= 0.9
    assert orientation_surprise(glyphs(64), np.arange(100), TrainConfig(image_size=64), "cpu", 1).accuracy >= 0.5

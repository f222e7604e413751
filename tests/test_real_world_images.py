"""Image folders as teams have them: odd file names, high-bit and transparent images."""

from __future__ import annotations

import os
import sys

import pytest

from .conftest import REPO_ROOT, assert_one_line_error, invoke, make_image, tree_digest

QUICK = ["--config", REPO_ROOT / "datacheck" / "presets" / "quick.toml", "--workers", 0]


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="the file system there only stores UTF-8 names")
def test_a_file_name_that_is_not_utf8_is_bad_data_naming_the_file(tiny_dataset, tmp_path):
    # Latin-1 names from an old archive: Python hands them over with surrogate escapes that
    # no Parquet or CSV output can hold (an internal error, exit 4, before).
    folder = os.fsencode(tiny_dataset / "train" / "cat")
    make_image(tmp_path / "x.png", 99).rename(os.path.join(folder, b"caf\xe9.png").decode("utf-8", "surrogateescape"))
    before = tree_digest(tiny_dataset)
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "run", *QUICK)
    assert_one_line_error(result, 3, "not valid UTF-8", "train/cat/caf\\xe9.png", "rename")
    assert tree_digest(tiny_dataset) == before


def report_thumbnails(page: str) -> dict:
    """Sample id -> the report's embedded thumbnail, decoded (through the findings table's rows)."""
    import base64
    import io
    import json
    import re

    from PIL import Image

    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1))
    images = {}
    for row in data["table"]["rows"]:
        uri = data["thumbs"].get(row[8] or "", "")
        if uri.startswith("data:image/jpeg;base64,"):
            images[row[0]] = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    return images


def test_report_thumbnails_of_16_bit_and_float_images_are_scaled_not_clipped(tiny_dataset, tmp_path):
    # Mid-grey scans: 32768 of 65535 and 0.5 of 1.0. Pillow's own conversion clipped the first
    # to a white thumbnail and the second to a black one, where the statistics see grey 128.
    import numpy as np
    from PIL import Image

    folder = tiny_dataset / "train" / "cat"
    Image.fromarray(np.full((32, 32), 32768, np.uint16)).save(folder / "scan16.png")
    Image.fromarray(np.full((32, 32), 0.5, np.float32), "F").save(folder / "depth.tiff")
    run = tmp_path / "run"
    assert invoke("audit", tiny_dataset, "--out", run, *QUICK, "--fail-on", "").exit_code == 0
    assert invoke("report", run, "-q").exit_code == 0
    thumbs = report_thumbnails((run / "report.html").read_text())
    for name in ("scan16.png", "depth.tiff"):
        mean = np.asarray(thumbs[f"train/cat/{name}"].convert("L"), dtype=float).mean()
        assert abs(mean - 128) < 8, (name, mean)


def test_junit_report_is_well_formed_xml_when_file_names_hold_control_characters(tiny_dataset, tmp_path):
    # Linux names may hold any byte but "/" and NUL; ElementTree wrote a form feed as it is,
    # which no XML parser (a CI system's included) reads.
    import xml.etree.ElementTree as ET

    (tiny_dataset / "train" / "cat" / "scan\x0c\x1b.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    junit = tmp_path / "junit.xml"
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "run", *QUICK, "--junit", junit, "-q")
    assert result.exit_code == 1  # the quick config's corrupt>0 gate
    failure = ET.parse(junit).find(".//testcase[@name='corrupt']/failure")
    assert "train/cat/scan\\x0c\\x1b.jpg" in failure.text


def _icon(path, mode: str):
    """A black disc on a transparent 32x32 background whose hidden colour is black (as most
    tools store it): RGBA, LA (grey with alpha) or P with a transparent palette entry."""
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[:32, :32]
    disc = (yy - 16) ** 2 + (xx - 16) ** 2 < 64  # radius 8: about a fifth of the pixels
    alpha = np.where(disc, 255, 0).astype(np.uint8)
    black = np.zeros((32, 32), np.uint8)
    if mode == "P":
        image = Image.fromarray(np.where(disc, 1, 0).astype(np.uint8), "P")
        image.putpalette([0, 0, 0, 0, 0, 0])
        image.info["transparency"] = 0
        image.save(path, transparency=0)
    else:
        bands = [black, alpha] if mode == "LA" else [black, black, black, alpha]
        Image.fromarray(np.stack(bands, axis=2), mode).save(path)
    return disc.mean()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_images_are_measured_and_shown_on_white(tmp_path, mode):
    """An icon on a transparent background is what viewers show, a dark disc on white: its
    statistics, thumbnail and model input see that, not the black stored under the
    transparent pixels (a black square, flagged dark)."""
    import numpy as np
    from PIL import Image

    from datacheck.engine.image_stats import analyze_image
    from datacheck.engine.loader import model_input

    ink = _icon(tmp_path / "icon.png", mode)
    stats = analyze_image(str(tmp_path / "icon.png"))
    assert stats["error"] == "" and stats["brightness_high"] == 255
    assert abs(stats["brightness_mean"] - 255 * (1 - ink)) < 3  # measured: white but for the disc
    thumb = np.frombuffer(stats["thumbnail"], np.uint8)
    assert thumb.max() == 255 and thumb.mean() > 150
    with Image.open(tmp_path / "icon.png") as image:
        pixels = model_input(image, 32)
    assert pixels.shape == (3, 32, 32) and pixels[:, 0, 0].tolist() == [255, 255, 255] and pixels[:, 16, 16].max() == 0


def test_a_transparent_icon_among_photos_is_not_dark(tiny_dataset, tmp_path):
    _icon(tiny_dataset / "train" / "cat" / "icon.png", "RGBA")
    run = tmp_path / "run"
    assert invoke("audit", tiny_dataset, "--out", run, *QUICK, "--checks", "image_properties", "--fail-on", "").exit_code == 0
    import pandas as pd

    findings = pd.read_parquet(run / "findings.parquet")
    dark = findings[(findings["check"] == "dark") & (findings["sample_id"] == "train/cat/icon.png")]
    assert len(dark) == 1 and not dark["is_issue"].iloc[0] and dark["score"].iloc[0] == 1.0


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "CMYK"])
def test_large_images_shrunk_in_strips_measure_as_whole(monkeypatch, mode):
    """An image over the strip limit is hashed and shrunk a strip of rows at a time (a
    169-megapixel RGBA PNG took 3.3 GB whole): the hash, the thumbnail and the analysis copy
    are exactly the whole image's, partial boxes at the edges included (1,003 x 701 px)."""
    import numpy as np
    from PIL import Image

    from datacheck.engine import image_stats

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (701, 1003, 4), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGBA")
    if mode == "P":
        image = image.convert("RGB").quantize(64)
        image.info["transparency"] = 3
    else:
        image = image.convert(mode)
    whole = image_stats._identify(image)
    monkeypatch.setattr(image_stats, "STRIP_PIXELS", 50_000)  # strips of 12 rows (factor 4)
    strips = image_stats._identify(image)
    assert whole["pixel_hash"] == strips["pixel_hash"] and whole["thumbnail"] == strips["thumbnail"]
    assert whole["copy"].shape == strips["copy"].shape == ((176, 251, 3) if mode not in ("L", "LA") else (176, 251))
    assert np.array_equal(whole["copy"], strips["copy"])


def test_a_greyscale_copy_of_a_training_image_in_val_is_a_leak(sample_copy, tmp_path):
    """Teams keep greyscale versions of colour photos beside them; one in the validation split
    of a training image leaks it. Its colour correlation with the original fell below the cut."""
    import pandas as pd
    from PIL import Image

    originals = sorted((sample_copy / "train" / "ring").glob("*.png"))[:6]
    for path in originals:
        Image.open(path).convert("L").save(sample_copy / "val" / "ring" / f"grey_{path.name}")
    assert invoke("audit", sample_copy, "--out", tmp_path / "run", "-q", "--cache-dir", "off", *QUICK).exit_code == 1  # leaks fail it
    findings = pd.read_parquet(tmp_path / "run" / "findings.parquet")
    leaks = set(findings.loc[(findings.check == "split_leakage") & findings.is_issue, "sample_id"])
    assert {f"val/ring/grey_{path.name}" for path in originals} <= leaks


@pytest.mark.parametrize("mode", ["I;16", "I", "F", "F01"])
def test_high_bit_images_are_scaled_strip_by_strip_as_in_one_piece(monkeypatch, mode):
    """eight_bit reads the values in their own type and scales a strip of rows at a time (a
    64-megapixel 16-bit scan took 2.6 GB in float64 at once): every value is the one-piece
    float64 formula's, NaN and infinite pixels included."""
    import numpy as np
    from PIL import Image

    from datacheck.engine import image_stats

    rng = np.random.default_rng(0)
    shape = (37, 23)
    if mode == "I;16":
        values = rng.integers(0, 65536, shape).astype(np.uint16)
    elif mode == "I":
        values = rng.integers(-5000, 300_000, shape).astype(np.int32)
    else:
        values = (rng.random(shape) * (1.0 if mode == "F01" else 900.0)).astype(np.float32)
        values[3, 4], values[20, 1], values[36, 22] = np.nan, np.inf, -np.inf
    im = Image.fromarray(values) if mode != "I;16" else Image.frombytes("I;16", shape[::-1], values.tobytes())
    monkeypatch.setattr(image_stats, "_SCALE_ROWS", 5)
    got = np.asarray(image_stats.eight_bit(im))

    wide = values.astype(np.float64)  # the formula in one piece
    finite = wide[np.isfinite(wide)]
    top = finite.max()
    full = (1.0 if mode == "F01" else 65535.0 if mode == "I;16" else 255.0 if top <= 255 else 65535.0 if top <= 65535
            else top)
    expected = np.rint(np.nan_to_num(np.clip(wide, 0.0, full)) * (255.0 / full)).astype(np.uint8)
    np.testing.assert_array_equal(got, expected)
    assert got.max() >= 250 and (not mode.startswith("F") or got[36, 22] == 0)


def test_a_large_16_bit_scan_is_scaled_without_whole_image_float_copies():
    """numpy's allocations while a 16-megapixel 16-bit image is scaled to 8 bits: its values
    as stored (2 bytes a pixel), the result (1 byte) and its image; in float64 at once, 37 bytes."""
    import tracemalloc

    import numpy as np
    from PIL import Image

    from datacheck.engine.image_stats import eight_bit

    side = 4000
    values = (np.arange(side * side, dtype=np.uint32) % 65536).astype(np.uint16)
    im = Image.frombytes("I;16", (side, side), values.tobytes())
    del values
    tracemalloc.start()
    try:
        small = eight_bit(im)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert small.mode == "L" and small.size == (side, side)
    assert peak < 5 * side * side  # bytes (4.5 measured; 37 in float64 at once)


def test_a_large_transparent_image_is_reduced_in_strips_for_the_model():
    """model_input lays a large RGBA image on white a strip at a time, reduced by the factor
    the resize starts with: the pixels are the one-piece path's within rounding (the
    one-piece path took 1 GB beside the decode of a 64-megapixel RGBA PNG;
    benchmarks/large_image_memory.py)."""
    import numpy as np
    from PIL import Image

    from datacheck.engine import image_stats
    from datacheck.engine.loader import model_input

    rng = np.random.default_rng(0)
    y, x = np.mgrid[:2100, :2500]
    # smooth colours (a resize aliases fine detail differently from any other), transparent squares
    pixels = np.stack([x * 255 // 2500, y * 255 // 2100, (x + y) * 255 // 4600, 255 * ((x // 300 + y // 300) % 2)], axis=-1)
    image = Image.fromarray((pixels + rng.integers(0, 3, pixels.shape)).clip(0, 255).astype(np.uint8), "RGBA")
    assert image.width * image.height > image_stats.STRIP_PIXELS
    one_piece = np.asarray(image_stats.displayed(image).resize((32, 32), Image.Resampling.BILINEAR, reducing_gap=2.0)
                           .convert("RGB")).transpose(2, 0, 1).astype(int)
    stripped = model_input(image, 32).astype(int)
    assert stripped.shape == (3, 32, 32)
    # measured: 0.88 apart on average; against a box average of the whole picture 4.0, the
    # one-piece path 4.8 (the reduction's own rounding differs, not the picture's geometry)
    assert np.abs(stripped - one_piece).mean() < 1.5
    box = np.asarray(image_stats.displayed(image).resize((32, 32), Image.Resampling.BOX)).transpose(2, 0, 1).astype(int)
    assert np.abs(stripped - box).mean() <= np.abs(one_piece - box).mean() + 0.5


def test_report_thumbnails_of_tiny_images_are_blown_up_with_sharp_pixels(tiny_dataset, tmp_path):
    # scikit-learn's 8 x 8 digits showed in the report as 8 x 8 dots in a 96 px tile.
    import numpy as np
    from PIL import Image

    checker = np.kron([[0, 255] * 4, [255, 0] * 4] * 4, np.ones((1, 1))).astype(np.uint8)  # 8 x 8 checkerboard
    Image.fromarray(checker).save(tiny_dataset / "train" / "cat" / "digit.png")
    Image.fromarray(np.zeros((30, 50), np.uint8)).save(tiny_dataset / "train" / "cat" / "strip.png")
    run = tmp_path / "run"
    assert invoke("audit", tiny_dataset, "--out", run, *QUICK, "--fail-on", "").exit_code == 0
    assert invoke("report", run, "-q").exit_code == 0
    thumbs = report_thumbnails((run / "report.html").read_text())
    digit = np.asarray(thumbs["train/cat/digit.png"].convert("L"), dtype=float)
    assert digit.shape == (80, 80)  # 10 times, the most that fits the 80 px thumbnail
    assert abs(digit[2:8, 2:8].mean() - 0) < 40 and abs(digit[2:8, 12:18].mean() - 255) < 40  # squares, not a blur
    assert thumbs["train/cat/strip.png"].size == (50, 30)  # under twice smaller: as it is

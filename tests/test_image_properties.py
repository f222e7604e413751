"""The image-property statistics and checks on small drawn images with known defects."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

import datacheck
from datacheck.engine.image_stats import measure_image


def drawn_numeral(rng: np.random.Generator, size: int = 120) -> Image.Image:
    """Black pen strokes on white paper, like a scanned handwritten numeral."""
    im = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(im)
    for _ in range(rng.integers(1, 4)):
        x = int(rng.integers(20, size - 20))
        draw.line([(x, 15), (x + int(rng.integers(-10, 10)), size - 15)], fill=0, width=int(rng.integers(3, 7)))
    return im


def salt_and_pepper(rng: np.random.Generator, im: Image.Image, density: float) -> Image.Image:
    pixels = np.asarray(im).copy()
    hit = rng.random(pixels.shape) < density
    pixels[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255)
    return Image.fromarray(pixels)


def test_speckle_measures_isolated_pixels_not_strokes():
    rng = np.random.default_rng(0)
    clean = drawn_numeral(rng)
    assert measure_image(clean)["speckle"] == 0.0
    noisy = measure_image(salt_and_pepper(rng, clean, 0.2))["speckle"]
    # pepper on paper and salt on ink are isolated unless a neighbour was hit too
    assert 0.05 < noisy < 0.2
    flat = measure_image(Image.new("L", (50, 50), 200))
    assert np.isnan(flat["speckle"])


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """30 clean drawn numerals and 2 of them again under salt-and-pepper noise."""
    rng = np.random.default_rng(1)
    root = tmp_path_factory.mktemp("scans")
    (root / "i").mkdir()
    for i in range(30):
        im = drawn_numeral(rng)
        im.save(root / "i" / f"clean{i:02d}.png")
        if i < 2:
            salt_and_pepper(rng, im, 0.05).save(root / "i" / f"noisy{i}.png")
    return root


def test_noisy_flags_the_noisy_scans_only(scans):
    result = datacheck.audit(scans, checks=["image_properties"], workers=0)
    assert sorted(result.issues(check="noisy")["sample_id"]) == ["i/noisy0.png", "i/noisy1.png"]
    cut = result.summary["checks"]["noisy"]["threshold"]
    assert cut["statistic"] == "speckle"
    # most images have no isolated pixels at all: the scale's floor puts the cut at 0.5 %
    assert cut["above"] == pytest.approx(0.005, abs=0.0005)


@pytest.mark.parametrize("scale, dtype, mode", [(65535, np.uint16, "I;16"), (1.0, np.float32, "F")])
def test_high_bit_images_are_scaled_to_8_bits_not_clipped(scale, dtype, mode):
    rng = np.random.default_rng(2)
    picture = rng.random((48, 64)) * 0.6 + 0.2  # grey levels in [0.2, 0.8] of the full range
    picture[10:30, 10:30] = 0.05
    eight = measure_image(Image.fromarray(np.rint(picture * 255).astype(np.uint8)))
    high_image = Image.fromarray(np.rint(picture * scale).astype(dtype) if dtype is np.uint16 else picture.astype(dtype))
    assert high_image.mode == mode
    high = measure_image(high_image)
    # the same picture: the same exposure statistics and thumbnail (a 16-bit copy of an 8-bit
    # image is its near duplicate), where clipping at 255 had made it a white page
    for stat in ("brightness_low", "brightness_high", "entropy", "has_content"):
        assert high[stat] == eight[stat], stat
    assert high["thumbnail"] == eight["thumbnail"]
    assert high["pixel_hash"] != eight["pixel_hash"]  # different files, different pixels

"""The image-property statistics and checks on small drawn images with known defects."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

import datacheck
from datacheck.engine.image_stats import _edge_statistics, _histograms, measure_image

from .conftest import assert_one_line_error, invoke


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


def test_speckle_counts_each_interior_pixel_beyond_all_four_neighbours():
    """The flat-row computation against the definition, pixel by pixel, on random stacks."""
    rng = np.random.default_rng(3)
    for _ in range(30):
        count, height, width = (int(v) for v in rng.integers((1, 3, 3), (4, 12, 12)))
        grey = rng.integers(0, 256, size=(count, height, width)).astype(np.uint8)
        low, high = rng.uniform(0, 100, count), rng.uniform(100, 255, count)
        _, speckle = _edge_statistics(grey, low, high)
        for i in range(count):
            g, jump = grey[i].astype(int), max((high[i] - low[i]) / 4.0, 8.0)
            hits = 0
            for y in range(1, height - 1):
                for x in range(1, width - 1):
                    steps = [g[y, x] - g[y + dy, x + dx] for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
                    hits += min(steps) > jump or max(steps) < -jump
            assert speckle[i] == hits / ((height - 2) * (width - 2))


@pytest.mark.parametrize("kind", ["varied", "mostly_white", "constant", "two_values"])
def test_byte_histograms_count_every_value(kind):
    rng = np.random.default_rng(4)
    rows = {"varied": rng.integers(0, 256, (3, 5000)),
            "mostly_white": np.where(rng.random((3, 5000)) < 0.9, 255, rng.integers(0, 256, (3, 5000))),
            "constant": np.full((3, 5000), 7),
            "two_values": np.where(rng.random((3, 5000)) < 0.5, 0, 200)}[kind].astype(np.uint8)
    hist = _histograms(rows, 256)
    assert hist.dtype == np.int64
    assert np.array_equal(hist, np.stack([np.bincount(row, minlength=256) for row in rows]))


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


def test_large_jpegs_are_decoded_at_a_reduced_scale(tmp_path, monkeypatch):
    """A JPEG at least twice the analysis side on both sides is decoded at 1/2-1/8 scale (never
    under the analysis side): statistics as from the full decode, the file's own size (as
    displayed), one hash for copies of its image data, another than a lossless re-save's."""
    import datacheck.engine.image_stats as image_stats

    rng = np.random.default_rng(4)
    smooth = Image.fromarray(rng.integers(0, 256, (12, 18, 3), dtype=np.uint8)).resize((1200, 800), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    photo, commented, lossless, small = (tmp_path / name for name in ("photo.jpg", "commented.jpg", "photo.png", "small.jpg"))
    smooth.save(photo, quality=92, exif=exif)
    smooth.save(commented, quality=92, exif=exif, comment=b"another file, the same image data")
    with Image.open(photo) as im:
        full = image_stats.upright(im.convert("RGB"))
    full.save(lossless)
    smooth.resize((500, 800)).save(small, quality=92)  # under twice 256 wide: decoded whole

    decoded_sizes = []
    real = image_stats._identify
    monkeypatch.setattr(image_stats, "_identify", lambda im, *a: decoded_sizes.append(im.size) or real(im, *a))
    stats = image_stats.analyze_batch({"path": [str(p) for p in (photo, commented, lossless, small)]})
    assert decoded_sizes == [(400, 600), (400, 600), (800, 1200), (500, 800)]  # shown portrait; 1/2 scale
    assert (stats["width"], stats["height"]) == ([800, 800, 800, 500], [1200, 1200, 1200, 800])
    assert stats["pixel_hash"][0] == stats["pixel_hash"][1] != stats["pixel_hash"][2]
    for name in ("brightness_mean", "contrast", "entropy", "colorfulness"):  # the lossless re-save: the full decode
        assert stats[name][0] == pytest.approx(stats[name][2], rel=0.02), name
    from datacheck.engine.similarity import pair_similarity

    thumbs = np.stack([np.frombuffer(t, np.uint8).reshape(64, 64, 3) for t in stats["thumbnail"]])
    assert pair_similarity(thumbs, np.array([0]), np.array([2]))[0] > 0.99  # a near duplicate of its re-save


def test_photos_stored_sideways_are_measured_as_displayed(tmp_path):
    """A photo stored landscape with EXIF orientation 6 (turn 90° clockwise to view) is the
    portrait picture a person sees: its size, its exact duplicate (the same picture saved
    turned, without the tag), its model input and its augmented copies all follow the tag."""
    from datacheck.actions.transforms import open_source
    from datacheck.engine.image_stats import analyze_batch
    from datacheck.engine.loader import decode_resize_batch

    rng = np.random.default_rng(3)
    stored = Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8))  # 40 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    tagged, turned, plain = (tmp_path / "photos" / "cat" / name for name in ("tagged.png", "turned.png", "plain.png"))
    stored.save(tagged, exif=exif)
    displayed = stored.transpose(Image.Transpose.ROTATE_270)  # what orientation 6 shows: 20 wide, 40 high
    displayed.save(turned)
    stored.save(plain)  # the stored pixels without the tag: another picture

    stats = analyze_batch({"path": [str(tagged), str(turned), str(plain)]})
    assert (stats["width"], stats["height"]) == ([20, 20, 40], [40, 40, 20])
    assert stats["pixel_hash"][0] == stats["pixel_hash"][1] != stats["pixel_hash"][2]
    assert stats["thumbnail"][0] == stats["thumbnail"][1]

    model = decode_resize_batch({"path": [str(tagged), str(turned)]}, 16)["pixels"]
    assert np.array_equal(model[0], model[1])
    assert np.array_equal(np.asarray(open_source(str(tagged))), np.asarray(displayed))

    result = datacheck.audit(tmp_path / "photos", checks=["exact_duplicates", "image_properties"], workers=0)
    flagged = result.issues(check="exact_duplicates")["sample_id"].tolist()
    assert len(flagged) == 1 and flagged[0] in ("cat/tagged.png", "cat/turned.png")
    # the untagged landscape copy is the odd shape among what people see: two portraits
    assert result.issues(check="odd_aspect_ratio")["sample_id"].tolist() == ["cat/plain.png"]


@pytest.mark.parametrize("block", [b"II*\x00", b"II*\x00\xf0\xff\xff\xff", bytes(range(7, 207)),
                                   b"II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\xff\xff\xff\x7f\x00\xff\xff\xff"],
                         ids=["header-only", "ifd-past-the-end", "garbage", "huge-count"])
def test_a_damaged_exif_block_leaves_the_image_readable_as_stored(tmp_path, block):
    from datacheck.engine.image_stats import analyze_image

    path = tmp_path / "odd.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(
        path, exif=b"Exif\x00\x00" + block)
    row = analyze_image(str(path))
    assert row["error"] == "" and (row["width"], row["height"]) == (40, 24)


def test_images_under_3_px_on_a_side_have_content_by_their_contrast(tmp_path):
    """A 1x5000 strip with a real grey spread is not flat: ``has_content`` follows the grey
    std alone; sharpness and speckle, which need four neighbours, stay NaN (not scored)."""
    rng = np.random.default_rng(5)
    strip = np.clip(rng.normal(128, 40, size=(1, 5000)), 0, 255).astype(np.uint8)
    for pixels in (strip, strip.T.copy(), np.repeat(strip[:, :300], 2, axis=0), np.array([[0, 255]], np.uint8)):
        stats = measure_image(Image.fromarray(pixels))
        assert stats["contrast"] >= 2.0 and stats["has_content"], pixels.shape
        assert np.isnan(stats["sharpness"]) and np.isnan(stats["speckle"]), pixels.shape
        assert len(stats["thumbnail"]) == 64 * 64 * 3
    assert not measure_image(Image.fromarray(np.full((1, 300), 7, np.uint8)))["has_content"]

    # In an audit: the strip is not low information, and its thumbnail (64x64, as for any
    # image) finds its half-length copy as a near duplicate.
    (tmp_path / "i").mkdir()
    for i in range(12):
        drawn_numeral(rng).save(tmp_path / "i" / f"clean{i:02d}.png")
    Image.fromarray(strip).save(tmp_path / "i" / "strip.png")
    Image.fromarray(strip).resize((2500, 1)).save(tmp_path / "i" / "strip_half.png")
    Image.fromarray(np.full((1, 300), 7, np.uint8)).save(tmp_path / "i" / "flat_strip.png")
    result = datacheck.audit(tmp_path, checks=["image_properties", "near_duplicates"], workers=0, cache_dir="off")
    assert set(result.issues(check="low_information")["sample_id"]) == {"i/flat_strip.png"}
    for check in ("blurry", "noisy"):
        assert "i/strip.png" not in set(result.findings.query("check == @check")["sample_id"])
    # (two of the numerals, single strokes of one slant a few pixels apart, are near duplicates
    # of each other once aligned to a fraction of a pixel: what matters here is the strips)
    near = set(result.issues(check="near_duplicates")["sample_id"])
    assert {sample for sample in near if "strip" in sample} == {"i/strip_half.png"}


def test_cuts_from_an_earlier_audit_judge_new_data_by_its_ruler(tmp_path):
    """Scans at half exposure are all alike, so a batch of them sets its own norm and flags
    none as dark; with the cuts a normal batch learned (``cuts_from``) every one is dark, and
    the summary names where the cut was learned."""
    rng = np.random.default_rng(3)
    normal, dim = tmp_path / "normal" / "i", tmp_path / "dim" / "i"
    normal.mkdir(parents=True)
    dim.mkdir(parents=True)
    for i in range(24):
        im = drawn_numeral(rng)
        im.save(normal / f"scan{i:02d}.png")
        Image.fromarray((np.asarray(im) // 2).astype(np.uint8)).save(dim / f"scan{i:02d}.png")
    reference = datacheck.audit(tmp_path / "normal", out=tmp_path / "runs" / "normal", checks=["image_properties"],
                                workers=0, cache_dir="off")
    assert reference.summary["checks"]["dark"]["flagged"] == 0

    own = datacheck.audit(tmp_path / "dim", checks=["image_properties"], workers=0, cache_dir="off")
    assert own.summary["checks"]["dark"]["flagged"] == 0
    config = {"detectors": {"image_properties": {"cuts_from": str(tmp_path / "runs" / "normal")}}}
    judged = datacheck.audit(tmp_path / "dim", checks=["image_properties"], config=config, workers=0, cache_dir="off")
    assert judged.summary["checks"]["dark"]["flagged"] == 24
    cut = judged.summary["checks"]["dark"]["threshold"]
    learned = reference.summary["checks"]["dark"]["threshold"]
    assert cut["learned_in"] == str(tmp_path / "runs" / "normal")
    assert (cut["center"], cut["scale"], cut["below"]) == (learned["center"], learned["scale"], learned["below"])
    # the summary file itself is a reference too; the grayscale rule is not a learned cut
    config["detectors"]["image_properties"]["cuts_from"] = str(tmp_path / "runs" / "normal" / "summary.json")
    again = datacheck.audit(tmp_path / "dim", checks=["image_properties"], config=config, workers=0, cache_dir="off")
    pd.testing.assert_frame_equal(again.findings, judged.findings)


@pytest.mark.parametrize("reference", ["missing", "other_checks", "not_json"])
def test_an_unusable_cuts_from_is_a_usage_error_before_any_work(tmp_path, tiny_dataset, reference):
    if reference == "other_checks":  # an audit that learned no image-property cut
        datacheck.audit(tiny_dataset, out=tmp_path / "ref", checks=["exact_duplicates"], workers=0, cache_dir="off")
    elif reference == "not_json":
        (tmp_path / "ref").mkdir()
        (tmp_path / "ref" / "summary.json").write_text("[1, 2")
    (tmp_path / "c.toml").write_text(f'[detectors.image_properties]\ncuts_from = "{tmp_path / "ref"}"\n')
    result = invoke("audit", tiny_dataset, "--config", tmp_path / "c.toml", "--checks", "image_properties",
                    "--out", tmp_path / "run", "--cache-dir", "off")
    assert_one_line_error(result, 2, "image_properties.cuts_from", str(tmp_path / "ref"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("center", ["1" + "0" * 400, "true", '"0.5"'])
def test_a_cuts_from_center_that_is_no_float_is_not_a_learned_cut(tmp_path, tiny_dataset, center):
    """A hand-edited summary.json whose only cut has a centre too large for a float (a JSON
    integer of 401 digits), a boolean or text: no learned cut, exit 2 (before, the integer
    was exit 4: OverflowError in math.isfinite)."""
    (tmp_path / "ref.json").write_text('{"checks": {"dark": {"threshold": {"center": %s, "scale": 1}}}}' % center)
    (tmp_path / "c.toml").write_text(f'[detectors.image_properties]\ncuts_from = "{tmp_path / "ref.json"}"\n')
    result = invoke("audit", tiny_dataset, "--config", tmp_path / "c.toml", "--checks", "image_properties",
                    "--out", tmp_path / "run", "--cache-dir", "off")
    assert_one_line_error(result, 2, "image_properties.cuts_from", "records no learned image-property cut")


def test_a_cuts_from_spread_too_small_for_the_data_flags_without_warnings(tmp_path, tiny_dataset):
    """A hand-made cut whose spread is so small that z overflows: every image is past it, and
    stderr holds no numpy RuntimeWarning (before: "overflow encountered in divide")."""
    (tmp_path / "ref.json").write_text('{"checks": {"dark": {"threshold": {"center": 1e308, "scale": 1e-308}}}}')
    (tmp_path / "c.toml").write_text(f'[detectors.image_properties]\ncuts_from = "{tmp_path / "ref.json"}"\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # printed on stderr by the command line
        result = invoke("audit", tiny_dataset, "--config", tmp_path / "c.toml", "--checks", "image_properties",
                        "--out", tmp_path / "run", "--cache-dir", "off", "-q")
    assert result.exit_code == 0, result.output
    dark = pd.read_parquet(tmp_path / "run" / "findings.parquet").query("check == 'dark'")
    assert len(dark) == 16 and dark["is_issue"].all()


def test_cuts_from_the_run_folder_the_audit_writes_is_read_before_it_is_cleared(tmp_path, tiny_dataset):
    """``cuts_from`` naming the audit's own --out (an earlier run there): the cuts are read
    when the configuration is checked, so the audit replaces that run, judged by its cuts
    (before: the run folder was cleared first, then "summary.json is missing", exit 2, and
    the earlier run's summary and findings were gone)."""
    run = tmp_path / "run"
    args = ["audit", tiny_dataset, "--checks", "image_properties", "--out", run, "--cache-dir", "off", "-q"]
    assert invoke(*args).exit_code == 0
    learned = json.loads((run / "summary.json").read_text())["checks"]["dark"]["threshold"]
    (tmp_path / "c.toml").write_text(f'[detectors.image_properties]\ncuts_from = "{run}"\n')
    result = invoke(*args, "--config", tmp_path / "c.toml")
    assert result.exit_code == 0, result.output
    again = json.loads((run / "summary.json").read_text())["checks"]["dark"]["threshold"]
    assert again["learned_in"] == str(run) and (again["center"], again["scale"]) == (learned["center"], learned["scale"])


def test_a_detector_reused_after_its_reference_was_audited_again_reads_the_new_cuts(tmp_path, tiny_dataset):
    """One ``ImageProperties(cuts_from=...)`` instance in two audits, the reference re-audited
    in between on other data: the second audit applies the new cuts, not the first read's."""
    from datacheck.detectors.image_properties import ImageProperties

    reference = tmp_path / "ref"
    datacheck.audit(tiny_dataset, out=reference, checks=["image_properties"], workers=0, cache_dir="off")
    detector = ImageProperties(cuts_from=str(reference))
    datacheck.audit(tiny_dataset, out=tmp_path / "a", checks=[detector], workers=0, cache_dir="off")
    for path in tiny_dataset.rglob("*.png"):  # other data: every image darker
        Image.open(path).point(lambda v: v // 4).save(path)
    datacheck.audit(tiny_dataset, out=reference, checks=["image_properties"], workers=0, cache_dir="off")
    learned = json.loads((reference / "summary.json").read_text())["checks"]["dark"]["threshold"]["center"]
    again = datacheck.audit(tiny_dataset, out=tmp_path / "b", checks=[detector], workers=0, cache_dir="off")
    assert again.summary["checks"]["dark"]["threshold"]["center"] == learned


def _digit(rng: np.random.Generator, side: int) -> Image.Image:
    """An 8 x 8 dark stroke on white, blown up to ``side`` (nearest pixels): no isolated pixel."""
    pixels = np.full((8, 8), 255, np.uint8)
    column = int(rng.integers(2, 6))
    pixels[1:7, column:column + 2] = 0
    return Image.fromarray(pixels).resize((side, side), Image.NEAREST)


def test_a_size_held_by_a_large_share_of_the_images_is_not_odd(tmp_path):
    """Two sources, 8 x 8 and 32 x 32 scans half and half: the median lay in one half, the spread
    was 0, and the other half was flagged odd_size (898 of 1,797 digits). A size held by at least
    MODE_SHARE of the images is the data's own; a rare size is still odd."""
    rng = np.random.default_rng(0)
    for i in range(60):
        folder = tmp_path / "data" / "train" / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        _digit(rng, 8 if i < 31 else 32).save(folder / f"{i}.png")
    _digit(rng, 256).save(tmp_path / "data" / "train" / "a" / "big.png")
    result = datacheck.audit(tmp_path / "data", checks=["image_properties"], workers=0)
    odd = result.findings[(result.findings["check"] == "odd_size") & result.findings["is_issue"]]
    assert odd["sample_id"].tolist() == ["train/a/big.png"]
    assert result.summary["checks"]["odd_size"]["threshold"]["unless_shared_by"] == 0.05
    spared = result.findings[(result.findings["check"] == "odd_size") & ~result.findings["is_issue"]]
    assert (spared["score"] >= 0.5).all()


def test_one_isolated_pixel_in_a_tiny_image_is_not_noise(tmp_path):
    """In an 8 x 8 scan one isolated pixel is 2.8 % of the 36 inner pixels, past the 0.5 % cut
    that most images' zero sets: a JPEG folder of digits had 39 % flagged noisy. An image needs
    MIN_ISOLATED isolated pixels; a salt-and-pepper scan of the same size still has them."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "data" / "train" / "a"
    folder.mkdir(parents=True)
    for i in range(40):
        pixels = np.asarray(_digit(rng, 8)).copy()
        if i < 15:
            pixels[1, 1] = 0  # one speck
        Image.fromarray(pixels).save(folder / f"{i}.png")
    speckled = np.full((8, 8), 255, np.uint8)
    speckled[1:7, 3:5] = 0
    speckled[[1, 1, 6], [1, 6, 1]] = 0  # three specks in corners of the inner area: exactly MIN_ISOLATED
    Image.fromarray(speckled).save(folder / "specks.png")
    result = datacheck.audit(tmp_path / "data", checks=["image_properties"], workers=0)
    noisy = result.findings[(result.findings["check"] == "noisy") & result.findings["is_issue"]]
    assert noisy["sample_id"].tolist() == ["train/a/specks.png"]
    assert result.summary["checks"]["noisy"]["threshold"]["min_isolated_pixels"] == 3

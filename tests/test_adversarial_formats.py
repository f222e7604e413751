"""Image files as real datasets hold them: odd modes, holes in depth maps, transparency in
16-bit grey, and the files a decoder must refuse without a crash or a flood of memory."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datacheck.engine.image_stats import analyze_image
from datacheck.engine.loader import decode_resize_batch, model_input

from .conftest import REPO_ROOT, invoke, make_image

QUICK = ["--config", REPO_ROOT / "datacheck" / "presets" / "quick.toml", "--workers", 0]


@pytest.mark.parametrize("hole", [np.nan, np.inf, -np.inf])
def test_a_float_depth_map_with_holes_is_measured_by_its_finite_values(tmp_path, hole):
    # Stereo and LiDAR depth maps mark pixels without a depth as NaN or infinite. Their range
    # was taken with the holes in it (a NaN maximum), which scaled every pixel to black: a
    # mid-grey map with a hole in one corner was measured, thumbnailed and fed to the model black.
    depth = np.full((32, 32), 0.5, np.float32)
    depth[:2, :2] = hole  # 4 pixels: under the 1 % that sets brightness_high
    Image.fromarray(depth, "F").save(tmp_path / "depth.tiff")
    stats = analyze_image(str(tmp_path / "depth.tiff"))
    assert stats["error"] == "" and stats["brightness_high"] == 128  # 0.5 of [0, 1]
    hole_level = 255 if hole == np.inf else 0  # no depth: as far as it goes, else nothing
    assert stats["brightness_mean"] == pytest.approx((128 * 1020 + hole_level * 4) / 1024)
    with Image.open(tmp_path / "depth.tiff") as image:
        pixels = model_input(image, 32)
    assert pixels[:, 16, 16].tolist() == [128, 128, 128] and pixels[:, 0, 0].tolist() == [hole_level] * 3


def test_a_16_bit_grey_png_with_a_transparent_value_is_laid_on_white(tmp_path):
    # PNG's tRNS chunk names one grey value transparent, in 16 bits as in 8. The 8-bit icon was
    # measured as viewers show it, a dark disc on white; its 16-bit twin lost the transparency
    # when scaled to 8 bits and was measured as the black square stored under it (flagged dark).
    yy, xx = np.mgrid[:32, :32]
    disc = (yy - 16) ** 2 + (xx - 16) ** 2 < 64
    Image.fromarray(np.where(disc, 2570, 0).astype(np.uint16)).save(tmp_path / "icon16.png", transparency=0)
    Image.fromarray(np.where(disc, 10, 0).astype(np.uint8)).save(tmp_path / "icon8.png", transparency=0)
    with Image.open(tmp_path / "icon16.png") as image:
        assert image.mode == "I;16" and image.info["transparency"] == 0
        pixels = model_input(image, 32)
    assert pixels[:, 0, 0].tolist() == [255, 255, 255] and pixels[:, 16, 16].tolist() == [10, 10, 10]
    sixteen, eight = analyze_image(str(tmp_path / "icon16.png")), analyze_image(str(tmp_path / "icon8.png"))
    for name in ("brightness_high", "brightness_mean", "contrast", "entropy", "sharpness"):
        assert sixteen[name] == eight[name], name
    assert sixteen["brightness_high"] == 255 and sixteen["thumbnail"] == eight["thumbnail"]


def _damaged_png(path) -> None:
    """A PNG whose compressed pixel data has one byte flipped: zlib stops at it."""
    make_image(path, 7, size=(64, 64))
    data = bytearray(path.read_bytes())
    data[data.find(b"IDAT") + 10] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_png_with_damaged_pixel_data_is_unreadable_for_the_model_and_the_report_too(tiny_dataset, tmp_path):
    # Finding a PNG's EXIF loads its pixels; the EXIF reader swallowed that load's error, and
    # Pillow then hands out the half-decoded pixels as loaded. The statistics called the file
    # corrupt, but the model trained on it as a black picture of its class, and the report
    # showed that black picture.
    damaged = tiny_dataset / "train" / "cat" / "damaged.png"
    _damaged_png(damaged)
    assert analyze_image(str(damaged))["error"] == "OSError: broken data stream when reading image file"
    assert decode_resize_batch({"path": [str(damaged)]}, 32)["ok"] == [False]
    run = tmp_path / "run"
    assert invoke("audit", tiny_dataset, "--out", run, *QUICK, "-q").exit_code == 1  # quick's corrupt>0 gate
    assert invoke("report", run, "-q").exit_code == 0
    import json
    import re

    page = (run / "report.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1))
    thumb = next(data["thumbs"][row[8]] for row in data["table"]["rows"] if row[0] == "train/cat/damaged.png")
    assert thumb.startswith("data:image/svg+xml")  # the placeholder of an unreadable file


def test_the_reason_a_file_is_unreadable_does_not_depend_on_where_the_dataset_lies(tmp_path):
    # A zero-byte file or a web page saved as .jpg: Pillow's message held the absolute path, the
    # only difference between the findings of two copies of a dataset.
    import json
    import shutil

    import pandas as pd

    from .conftest import make_tiny_dataset

    details = []
    for name in ("here", "there"):
        root = make_tiny_dataset(tmp_path / name / "data")
        (root / "train" / "cat" / "empty.png").write_bytes(b"")
        run = tmp_path / name / "run"
        assert invoke("audit", root, "--out", run, *QUICK, "--fail-on", "", "-q").exit_code == 0
        findings = pd.read_parquet(run / "findings.parquet").drop(columns="run_id")
        details.append(findings)
        shutil.rmtree(root)
    corrupt = details[0][(details[0]["check"] == "corrupt") & details[0]["is_issue"]]
    assert corrupt["sample_id"].tolist() == ["train/cat/empty.png"]
    assert json.loads(corrupt["details"].iloc[0]) == {"error": "UnidentifiedImageError: cannot identify image file 'empty.png'"}
    pd.testing.assert_frame_equal(details[0], details[1])


def test_a_damaged_exif_block_is_ignored_without_a_warning_from_the_python_api(tmp_path):
    # The command line silences Pillow's warnings; a notebook calling datacheck.audit or
    # datacheck.report got "UserWarning: Corrupt EXIF data" from each process that read the
    # file for the model or a thumbnail. The image is used as stored, its orientation unknown.
    import io
    import warnings

    exif = Image.Exif()
    exif[0x0112] = 6  # "turn a quarter", then the block's first directory offset broken
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), (200, 30, 30)).save(buffer, "JPEG", exif=exif.tobytes())
    data = bytearray(buffer.getvalue())
    start = data.find(b"Exif\x00\x00") + 6
    data[start + 4 : start + 8] = b"\xff\xff\xff\x7f"
    (tmp_path / "photo.jpg").write_bytes(bytes(data))
    Image.new("RGB", (48, 40), (200, 30, 30)).save(tmp_path / "photo.png", exif=bytes(data[start - 6 : start + 200]))
    for name in ("photo.jpg", "photo.png"):  # a JPEG's EXIF is read at open, a PNG's when asked for
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pixels = decode_resize_batch({"path": [str(tmp_path / name)]}, 16)["pixels"][0]
            stats = analyze_image(str(tmp_path / name))
        assert [str(w.message) for w in caught] == [], name
        assert np.abs(pixels[:, 8, 8].astype(int) - [200, 30, 30]).max() <= 3, name  # the JPEG's rounding
        assert (stats["width"], stats["height"]) == (48, 40), name


@pytest.mark.parametrize("name", ["anim.gif", "pages.tiff", "anim.webp"])
def test_a_file_of_several_frames_is_measured_by_its_first_as_viewers_show_it(tmp_path, name):
    first = Image.new("RGB", (32, 32), (250, 250, 250))
    first.paste((0, 0, 0), (0, 0, 4, 4))
    first.save(tmp_path / name, save_all=True, append_images=[Image.new("RGB", (32, 32))], duration=100)
    with Image.open(tmp_path / name) as image:
        assert image.n_frames == 2
    stats = analyze_image(str(tmp_path / name))
    assert stats["error"] == "" and stats["brightness_high"] == 250  # the second frame is black
    assert abs(stats["brightness_mean"] - (250 * 1008) / 1024) < 1


def test_a_cmyk_jpeg_is_measured_as_its_rgb_conversion(tmp_path):
    make_image(tmp_path / "rgb.png", 3, size=(48, 40))
    Image.open(tmp_path / "rgb.png").convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    Image.open(tmp_path / "print.jpg").convert("RGB").save(tmp_path / "converted.png")
    cmyk, rgb = analyze_image(str(tmp_path / "print.jpg")), analyze_image(str(tmp_path / "converted.png"))
    assert cmyk["mode"] == "CMYK" and rgb["mode"] == "RGB"
    for name in ("brightness_low", "brightness_high", "brightness_mean", "contrast", "colorfulness", "thumbnail"):
        assert cmyk[name] == rgb[name], name


def _bomb_png(path, side: int) -> None:
    """A 1-bit, all-black PNG of side x side pixels, written row by row (100 KB for 30000)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def test_a_decompression_bomb_and_a_truncated_jpeg_are_corrupt_rows_not_a_crash(tiny_dataset, tmp_path):
    # 900 megapixels of zeros: never decoded (a worker would hold gigabytes), one corrupt row
    # naming the limit. A truncated JPEG stays unreadable: Pillow's LOAD_TRUNCATED_IMAGES,
    # which would pass it off as an image with a grey bottom, is not switched on.
    import io
    import json

    import pandas as pd
    from PIL import ImageFile

    folder = tiny_dataset / "train" / "cat"
    _bomb_png(folder / "scan.png", 30000)
    buffer = io.BytesIO()
    Image.open(folder / "cat0.png").save(buffer, "JPEG")
    (folder / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    run = tmp_path / "run"
    result = invoke("audit", tiny_dataset, "--out", run, *QUICK, "-q")
    assert result.exit_code == 1 and result.stderr == "datacheck: gate failed: corrupt>0 (flagged 2 of 18, 11.1%)\n"
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    findings = pd.read_parquet(run / "findings.parquet")
    corrupt = findings[(findings["check"] == "corrupt") & findings["is_issue"]].set_index("sample_id")["details"]
    assert json.loads(corrupt["train/cat/scan.png"])["error"] == (
        "DecompressionBombError: Image size (900000000 pixels) exceeds limit of 178956970 pixels, "
        "could be decompression bomb DOS attack.")
    assert json.loads(corrupt["train/cat/cut.jpg"])["error"] == "OSError: Truncated File Read"

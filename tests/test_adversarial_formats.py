"""Image files as real datasets hold them: odd modes, holes in depth maps, transparency in
16-bit grey, and the files a decoder must refuse without a crash or a flood of memory."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datacheck.engine.image_stats import analyze_image
from datacheck.engine.loader import model_input


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

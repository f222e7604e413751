"""Smoke test of benchmarks/large_image_memory.py at a small side (1500 px, about 6 s on 2 cores), so
the script cannot rot, and a bound that fails if high-bit images are scaled to 8 bits as
whole-image float64 copies again (commit 26511dc scales them a strip of rows at a time).

At 1500 px the 16-bit grey PNG's ``analyze`` took 24 MB above the after-import baseline at
9ab5c05 (5.6x its 4.3 MB of decoded 16-bit pixels, 11x their 8-bit size) and 88 MB at 5ead6b8
(before the strips: 20.5x); its model input 20 MB against 84 MB. The bound, 10x the decoded
16-bit size (20x the 8-bit size), lies between the two with room on both sides.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "large_image_memory.py"


def test_large_image_memory_small_side(tmp_path):
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--side", "1500", "--work", str(tmp_path / "work"),
                           "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    report = json.loads(out.read_text())
    images = report["images"]
    assert set(images) == {"png16", "rgba", "jpeg", "float"}
    assert {kind: image["mode"] for kind, image in images.items()} == {
        "png16": "I;16", "rgba": "RGBA", "jpeg": "RGB", "float": "F"}
    assert images["png16"]["width"] == images["png16"]["height"] == 1500
    assert images["float"]["width"] == 1125
    for kind, image in images.items():
        assert set(image["operations"]) == {"analyze", "model_input"}, kind
        for op, r in image["operations"].items():
            assert r["error"] == "", (kind, op, r)
            assert r["peak_rss_mb"] >= r["baseline_rss_mb"] > 0, (kind, op, r)
            assert r["above_baseline_mb"] >= 0 and r["seconds"] > 0, (kind, op, r)
    png16 = images["png16"]
    assert png16["decoded_mb"] == 2 * png16["decoded_8bit_mb"] > 0
    for op in ("analyze", "model_input"):
        above = png16["operations"][op]["above_baseline_mb"]
        assert 0 < above < 10 * png16["decoded_mb"], (op, above, png16["decoded_mb"])
    assert "png16 1500x1500 I;16" in done.stdout

"""The HTML report as its readers see it, in headless Chromium: what a real browser showed
wrong on 2026-12-06 (numbers cut at an edge, names that widen tables or reverse the text
around them). The browser helpers are tests/test_report.py's."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd

from datacheck.reporting.html import _short_count, write_report

from .test_report import chromium, console_messages, run_chromium, synthetic_run  # noqa: F401 (fixture)


def probe(chromium, page: Path, script: str, width: int = 1280) -> object:
    """Run ``script`` (JavaScript whose last statement sets ``out``) in the loaded page; its JSON value."""
    text = page.read_text(encoding="utf-8")
    probed = page.with_name(page.stem + ".probe.html")
    probed.write_text(text.replace("</body>", "<script>window.addEventListener('load', function () {"
                                   "var out = null;" + script + ";document.body.setAttribute('data-probe', "
                                   "JSON.stringify(out));});</script></body>"), encoding="utf-8")
    dom = run_chromium(chromium, probed, f"--window-size={width},2000", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    return json.loads(html.unescape(re.search(r'data-probe="([^"]*)"', dom.stdout).group(1)))


def test_short_count_fits_the_histogram_axis():
    assert [_short_count(n) for n in (0, 8339, 9999, 10_000, 12_345, 199_950, 999_999, 1_450_000, 2 * 10**9)] \
        == ["0", "8339", "9999", "10k", "12.3k", "200k", "1M", "1.45M", "2G"]


def test_histogram_axis_count_of_ten_thousand_is_not_cut(chromium, tmp_path):
    """A bin of 10,000 or more samples (any audit of 10k images: CIFAR-10's test set) put its
    count, e.g. 11402, at the y axis right-aligned 3 px left of the plot: 5 digits did not
    fit in the 30 px margin and the browser showed '1402' (the first digit outside the SVG).
    The axis now says '11.4k' (the exact count as its tooltip), inside the SVG."""
    run = synthetic_run(tmp_path, samples=12_000, images=5, checks=1)  # clusters: 95 % score 1.0
    page = write_report(run, tmp_path / "r.html", max_thumbnails=0).html
    peak = int((pd.read_parquet(run / "findings.parquet").query("check == 'clusters'")["score"] == 1.0).sum())
    assert peak >= 10_000 and f"<title>{peak:,}</title>" in page.read_text()
    cut = probe(chromium, page, """out = [];
      document.querySelectorAll(".hist svg").forEach(function (svg) {
        var box = svg.getBoundingClientRect();
        svg.querySelectorAll("text").forEach(function (t) {
          var r = t.getBoundingClientRect();
          if (r.left < box.left - 0.5 || r.right > box.right + 0.5) { out.push(t.textContent); }
        });
      })""")
    assert cut == []

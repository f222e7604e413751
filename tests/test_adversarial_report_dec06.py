"""The HTML report as its readers see it, in headless Chromium: what a real browser showed
wrong on 2026-12-06 (numbers cut at an edge, names that widen tables or reverse the text
around them). The browser helpers are tests/test_report.py's."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from datacheck.reporting.html import _short_count, write_report
from datacheck.runs import write_parquet
from datacheck.schema import findings_table

from .test_report import chromium, console_messages, run_chromium, synthetic_run  # noqa: F401 (fixture)

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: what follows it shows reversed, to the end of the paragraph
LONG = "L" + "x" * 200  # a class folder name near the file system's limit, with no place to break


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


def named_run(tmp_path: Path) -> Path:
    """A synthetic run whose class names are what folder names may be: one of 201 characters
    with no place to break, one with a right-to-left override."""
    run = synthetic_run(tmp_path, samples=400, images=10, checks=13)
    findings = pd.read_parquet(run / "findings.parquet")
    for column in ("label", "suggested_label"):
        findings[column] = findings[column].replace({"class_1": LONG, "class_2": f"ab{RLO}cd"})
    write_parquet(run / "findings.parquet", findings_table(findings))
    return run


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


def test_right_to_left_override_in_a_label_stays_in_the_label(chromium, tmp_path):
    """A class folder named with U+202E reversed the rest of each card's line: 'label ab‮cd · val'
    showed as 'label ablav · dc', the split read backwards and placed inside the label. The
    label, split and suggested label are isolated (<bdi>): the split is after the label."""
    page = write_report(named_run(tmp_path), tmp_path / "r.html").html
    assert f"<bdi>ab{RLO}cd</bdi>" in page.read_text()
    lines = probe(chromium, page, """out = [];
      document.querySelectorAll(".sample .kv").forEach(function (kv) {
        var b = kv.querySelector("b"), last = kv.lastChild;
        if (!b || b.textContent.indexOf("\\u202e") < 0 || last === b) { return; }
        var range = document.createRange(); range.selectNodeContents(last);
        out.push([range.getBoundingClientRect().left >= b.getBoundingClientRect().right - 0.5, kv.textContent]);
      })""")
    assert len(lines) >= 3
    assert all(after for after, _ in lines), lines


@pytest.mark.parametrize("width", [1280, 390])
def test_a_long_class_name_wraps_instead_of_widening_the_tables(chromium, tmp_path, width):
    """A class folder of 201 characters with no space made the per-class and per-cluster tables and
    the findings table's label column 1,500 px wide: at 1280 px the counts beside the name (samples,
    flagged) were off the page, and the findings table squeezed the sample id to 8 characters a
    line; in the relabel heatmap the name ran over the counts of its row. The name now wraps within
    320 px; at 1280 px every table but the heatmap (a column per class) fits the page."""
    page = write_report(named_run(tmp_path), tmp_path / "r.html").html
    got = probe(chromium, page, """out = {};
      ["table.breakdown", "table.clusters", "table.heatmap", "#findings-table"].forEach(function (sel) {
        document.querySelectorAll(sel).forEach(function (t, i) {
          var box = t.parentNode;  // the .scroll box a wide table scrolls in
          var cells = Array.prototype.filter.call(t.querySelectorAll("td, th"), function (c) {
            return c.textContent.indexOf("Lxxxx") === 0; });
          out[sel + i] = [t.offsetWidth - box.clientWidth,  // the name's box, or its text if wider
                          Math.max.apply(null, cells.map(function (c) { return Math.max(c.offsetWidth, c.scrollWidth); })
                                                    .concat([0]))];
        });
      })""", width)
    assert {"table.breakdown0", "table.breakdown1", "table.clusters0", "table.heatmap0", "#findings-table0"} <= set(got)
    for table, (too_wide, name_width) in got.items():
        assert name_width <= 340, (table, name_width)  # 320 px and the cell's padding
        if width == 1280 and table != "table.heatmap0":  # the heatmap has a column per class
            assert too_wide <= 0, (table, too_wide)


def test_an_arrays_audit_names_no_image_folder(tmp_path):
    """An audit of --pred-probs/--labels records the folder it ran in as its dataset root, and the
    page's Run table said 'images under /home/me' of a run that has no images. It now says none."""
    import numpy as np

    from .conftest import invoke

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), 60)
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "l.npy", probs.argmax(1))
    audit = invoke("audit", "--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "l.npy", "--out", tmp_path / "run", "-q")
    assert audit.exit_code == 0, audit.output
    page = write_report(tmp_path / "run", tmp_path / "r.html").html.read_text()
    row = re.search(r"<tr><td>images under</td><td><code>([^<]*)</code></td></tr>", page).group(1)
    assert row == "(none: audited from arrays)"

"""``datacheck report RUN``: the self-contained HTML report, findings.csv, and the report in a real browser."""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import pytest

from datacheck.cli import cli
from datacheck.errors import ExitStatus
from datacheck.reporting import html as report_html
from datacheck.reporting.html import write_report
from datacheck.runs import write_parquet
from datacheck.schema import FINDINGS_COLUMNS, findings_table

from .conftest import REPO_ROOT, invoke

SECTIONS = ("overview", "galleries", "groups", "relabels", "histograms", "clusters", "findings")
HOSTILE = "<script>alert(1)</script>"
ARTIFACTS = REPO_ROOT / "test-artifacts"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("report_size", REPO_ROOT / "benchmarks" / "report_size.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synthetic_run = _load_benchmark().synthetic_run


def report(*args):
    return invoke("report", *args)


@pytest.fixture(scope="module")
def sample_report(sample_audit, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    # Above the default cap (sample_data's audit has 10,560 findings rows): every row listed.
    result = write_report(sample_audit.run_dir, out, csv=True, max_table_rows=20_000)
    return result, out.read_text(encoding="utf-8")


def embedded_data(page: str) -> dict:
    text = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    return json.loads(text)


def test_sample_report_sections_and_counts(sample_report, sample_audit):
    result, page = sample_report
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    findings = sample_audit.findings
    assert result.findings_rows == result.table_rows == len(findings)  # a small run lists every row
    data = embedded_data(page)
    assert len(data["table"]["rows"]) == len(findings)
    assert data["table"]["columns"] == report_html.TABLE_COLUMNS
    # Every check that flagged something has a gallery, showing min(flagged, 24) cards.
    flagged = findings[findings["is_issue"]].groupby("check").size()
    for check, n in flagged.items():
        assert f"worst {min(n, 24)} of {n} flagged" in page
    # One thumbnail per distinct sample shown; the corrupt file is the one placeholder.
    assert result.unreadable == 1
    assert result.thumbnails == sum(k.startswith("t") for k in data["thumbs"]) > 50
    assert set(data["thumbs"]) - {f"t{i}" for i in range(1, result.thumbnails + 1)} == {"x"}
    # The relabel heatmap counts exactly the flagged label issues with another suggestion.
    issues = findings[(findings["check"] == "label_issues") & findings["is_issue"]]
    moved = int((issues["suggested_label"].notna() & (issues["suggested_label"] != issues["label"])).sum())
    assert f"{moved:,} flagged label issue(s) with a different suggested label" in page
    if "clusters" in set(findings["check"]):  # once the clusters detector runs by default
        clusters = re.search(r'<table class="clusters">(.*?)</table>', page, re.S).group(1)
        rows = findings[findings["check"] == "clusters"]
        assert clusters.count("<tr>") == 1 + rows["label"].nunique()
        for label, n in rows[rows["is_issue"]].groupby("label").size().items():
            assert f'<td class="num">{n:,}</td><td><div class="bar"' in clusters, label
    else:
        assert "No <code>clusters</code> check in this run." in page
    # Offline: nothing loaded from elsewhere.
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert "<link" not in page and "<script src" not in page and "@import" not in page
    assert result.size_bytes < 3_000_000


def test_findings_csv_has_the_parquet_columns_and_rows(sample_report, sample_audit):
    result, _ = sample_report
    assert result.csv.name == "findings.csv" and result.csv.parent == result.html.parent
    parquet = pd.read_parquet(sample_audit.run_dir / "findings.parquet")
    # Scores read as text and parsed by Python's float (correctly rounded): pandas' default
    # parser may be 1 ulp off (seen on 3.0.6), and its float_precision option is deprecated.
    csv = pd.read_csv(result.csv, dtype={"sample_id": str, "label": str, "suggested_label": str, "score": str})
    assert list(csv.columns) == FINDINGS_COLUMNS == list(parquet.columns)
    assert len(csv) == len(parquet) > 7000
    assert csv["score"].map(float).tolist() == parquet["score"].tolist()  # full precision round trip
    assert csv["sample_id"].tolist() == parquet["sample_id"].tolist()
    assert csv["details"].map(json.loads).tolist() == parquet["details"].map(json.loads).tolist()
    assert int(csv["is_issue"].sum()) == int(parquet["is_issue"].sum())


def test_thumbnail_cap(sample_audit, tmp_path):
    capped = write_report(sample_audit.run_dir, tmp_path / "r.html", max_thumbnails=5, max_table_rows=20_000)
    page = (tmp_path / "r.html").read_text()
    assert capped.thumbnails + capped.unreadable == 5
    assert page.count("data:image/jpeg;base64,") == capped.thumbnails
    assert any("thumbnail(s) left out" in n and "--max-thumbnails 5" in n for n in capped.notes)
    # Interleaved: the worst sample of each of the first checks gets one, not 5 of one check.
    findings = sample_audit.findings
    first = sorted(findings.loc[findings["is_issue"], "check"].unique())[:5]
    data = embedded_data(page)
    with_thumb = {r[3] for r in data["table"]["rows"] if r[8]}
    assert set(first) <= with_thumb
    none = write_report(sample_audit.run_dir, tmp_path / "n.html", max_thumbnails=0)
    assert none.thumbnails == 0 and "data:image/jpeg" not in (tmp_path / "n.html").read_text()
    assert none.size_bytes < capped.size_bytes


def hostile_run(tmp_path: Path) -> Path:
    """A synthetic run whose sample ids, labels and splits carry markup."""
    run = synthetic_run(tmp_path, samples=200, images=10, checks=13)
    findings = pd.read_parquet(run / "findings.parquet")
    first = findings["sample_id"] == findings["sample_id"].iloc[0]
    findings.loc[first, "sample_id"] = f'x"{HOSTILE}.png'
    findings.loc[findings["label"] == "class_1", "label"] = HOSTILE
    findings.loc[findings["suggested_label"] == "class_2", "suggested_label"] = "</script><!--<img src=x onerror=alert(2)>"
    findings.loc[findings["split"] == "val", "split"] = "<b>val</b>"
    write_parquet(run / "findings.parquet", findings_table(findings))
    return run


def test_user_data_is_escaped(tmp_path):
    run = hostile_run(tmp_path)
    result = write_report(run, tmp_path / "h.html")
    page = result.html.read_text()
    assert HOSTILE not in page and "<img src=x" not in page and "<b>val</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text
    assert page.count("<script") == 2  # the JSON data and the report's own script, nothing injected
    assert page.count("</script>") == 2
    data = embedded_data(page)  # the JSON survives: </script> and <!-- were escaped
    assert HOSTILE in {r[2] for r in data["table"]["rows"]}
    assert f'x"{HOSTILE}.png' in {r[0] for r in data["table"]["rows"]}


def test_large_run_table_is_capped_and_said(tmp_path):
    run = synthetic_run(tmp_path, samples=10_000, images=50, checks=13)  # 140,000 findings rows
    result = write_report(run, tmp_path / "big.html", max_table_rows=1000)
    findings = pd.read_parquet(run / "findings.parquet")
    assert result.findings_rows == len(findings) == 140_000
    assert result.table_rows == 1000
    page = result.html.read_text()
    flagged = int(findings["is_issue"].sum())
    assert f"lists 1,000 of 140,000 rows: only flagged rows ({flagged:,})" in page
    rows = embedded_data(page)["table"]["rows"]
    assert all(r[5] for r in rows)
    # Round-robin: every check that flagged something is in the capped table.
    assert {r[3] for r in rows} == set(findings.loc[findings["is_issue"], "check"])
    # The clusters check: 10 classes, each split into the 4 synthetic clusters, the smallest flagged.
    clusters = findings[findings["check"] == "clusters"]
    small = clusters[clusters["is_issue"]].groupby("label").size()
    for label, n in small.items():
        assert f'<tr><td>{label}</td><td class="num">{(clusters["label"] == label).sum():,}</td><td class="num">4</td>' \
               f'<td class="num">{n:,}</td>' in page
    assert len(small) == 10 and page.count("(flagged: under-represented)") == 10
    assert result.size_bytes < 2_000_000


def test_heatmap_of_many_classes_keeps_the_most_involved(tmp_path):
    run = synthetic_run(tmp_path, samples=3000, images=5, checks=13, classes=60)
    page = write_report(run, tmp_path / "r.html", max_thumbnails=0).html.read_text()
    heatmap = re.search(r'<table class="heatmap">(.*?)</table>', page, re.S).group(1)
    involved = int(re.search(r"Showing the 40 classes with the most suggestions in or out, of (\d+) involved", page).group(1))
    assert 40 < involved <= 60
    assert heatmap.count("<tr>") == 1 + 40  # header + one row per class shown


def test_moved_dataset_omits_thumbnails_and_dataset_option_finds_them(tmp_path):
    run = synthetic_run(tmp_path / "a", samples=100, images=5, checks=13)
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "a" / "images", moved)
    result = report(run, "--out", tmp_path / "m.html")
    assert result.exit_code == 0, result.output
    assert "thumbnails omitted; pass --dataset" in result.stderr
    assert "data:image/jpeg" not in (tmp_path / "m.html").read_text()
    found = write_report(run, tmp_path / "f.html", dataset=moved)
    assert found.thumbnails > 0 and found.unreadable == 0


def test_a_dataset_changed_since_the_audit_is_named_on_the_page(tmp_path):
    """An image rewritten under its own name after the audit: the report's thumbnails would
    show the new picture as if it were the one audited. The page says so (the repairs refuse
    such a dataset; a report changes nothing, so it is still written); unchanged, no word."""
    import datacheck

    from .conftest import make_image, make_tiny_dataset

    data = make_tiny_dataset(tmp_path / "data")
    run = datacheck.audit(data, checks=["image_properties", "exact_duplicates"], out=tmp_path / "run",
                          cache_dir="off").run_dir
    same = write_report(run, tmp_path / "same.html")
    assert not any("not those audited" in note for note in same.notes)
    target = sorted((data / "train" / "cat").iterdir())[0]
    make_image(target, seed=99, size=(40, 30))  # other pixels, other size, same name
    changed = report(run, "--out", tmp_path / "changed.html")
    assert changed.exit_code == 0, changed.output
    assert "the thumbnails show the files as they are now, which are not those audited" in changed.stderr
    assert "not those audited" in (tmp_path / "changed.html").read_text()


def test_report_of_pred_probs_run(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 4.0 * np.eye(3)[true]
    np.save(tmp_path / "p.npy", np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))
    labels = true.copy()
    labels[:15] = (labels[:15] + 1) % 3
    np.save(tmp_path / "l.npy", labels)
    audit = invoke("audit", "--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "l.npy",
                   "--out", tmp_path / "run", "--fail-on", "label_issues>0", "-q")
    assert audit.exit_code == ExitStatus.GATE_FAILED, audit.output
    result = report(tmp_path / "run", "--csv")
    assert result.exit_code == 0, result.output
    assert f"report written to {tmp_path / 'run' / 'report.html'}" in result.stderr
    page = (tmp_path / "run" / "report.html").read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert "no images, so no thumbnails" in page and "data:image" not in page
    assert "Exit status 1: a --fail-on gate was exceeded." in page
    assert '<span class="failed">label_issues&gt;0 failed</span>' in page  # in the checks table
    assert re.search(r"<td>label_issues&gt;0</td><td class=\"num\">\d+</td>", page)  # and the gates table
    assert len(pd.read_csv(tmp_path / "run" / "findings.csv")) == len(pd.read_parquet(tmp_path / "run" / "findings.parquet"))


def test_bad_run_dirs(tmp_path, sample_audit):
    cases = {}
    cases["missing"] = (tmp_path / "nope", ExitStatus.USAGE, "does not exist")
    (tmp_path / "plain").mkdir()
    cases["plain"] = (tmp_path / "plain", ExitStatus.USAGE, "is not a datacheck run directory")
    broken = tmp_path / "broken"
    shutil.copytree(sample_audit.run_dir, broken, ignore=shutil.ignore_patterns("artifacts", "report.html", "*.csv"))
    (broken / "findings.parquet").write_bytes(b"not parquet")
    cases["parquet"] = (broken, ExitStatus.BAD_DATA, "cannot read")
    bad_summary = tmp_path / "bad_summary"
    shutil.copytree(broken, bad_summary)
    shutil.copy(sample_audit.run_dir / "findings.parquet", bad_summary / "findings.parquet")
    (bad_summary / "summary.json").write_text("{truncated")
    cases["summary"] = (bad_summary, ExitStatus.BAD_DATA, "cannot read")
    running = tmp_path / "running"
    shutil.copytree(bad_summary, running)
    info = json.loads((running / "run.json").read_text())
    (running / "run.json").write_text(json.dumps({**info, "status": "running"}))
    cases["incomplete"] = (running, ExitStatus.USAGE, "did not complete")
    for name, (path, status, message) in cases.items():
        result = report(path)
        assert result.exit_code == status, (name, result.output)
        assert result.stderr.startswith("datacheck: error: ") and message in result.stderr, name
        assert result.stderr.count("\n") == 1, name
    assert report(sample_audit.run_dir, "--out", tmp_path).exit_code == ExitStatus.USAGE  # a folder
    assert report(sample_audit.run_dir, "--max-thumbnails", "-1").exit_code == ExitStatus.USAGE


def test_cli_defaults_match_the_library():
    params = {p.name: p.default for p in cli.commands["report"].params}
    assert params["max_thumbnails"] == report_html.DEFAULT_MAX_THUMBNAILS
    assert params["gallery_size"] == report_html.DEFAULT_GALLERY_SIZE
    assert params["max_table_rows"] == report_html.DEFAULT_MAX_TABLE_ROWS


# --------------------------------------------------------------------------- in a real browser


def _browser_required() -> bool:
    """CI must really run the browser test: .ci/run sets DATACHECK_REQUIRE_BROWSER=1 once
    Chromium is installed (0 where it could not be); a bare ``CI`` requires it too."""
    flag = os.environ.get("DATACHECK_REQUIRE_BROWSER")
    if flag is not None:
        return flag == "1"
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


@pytest.fixture(scope="module")
def chromium():
    exe = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if exe is None:
        message = ("headless Chromium not found: the report's BROWSER TEST DID NOT RUN "
                   "(apt-get install chromium, or run .ci/run)")
        if _browser_required():
            pytest.fail(message + "; DATACHECK_REQUIRE_BROWSER/CI requires it")
        warnings.warn(message, pytest.PytestWarning)
        pytest.skip(message)
    return exe


def run_chromium(exe: str, page: Path, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="datacheck-chromium-") as profile:
        return subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-extensions", f"--user-data-dir={profile}",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", *args, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def console_messages(stderr: str) -> list[str]:
    # Chromium logs every console message and uncaught exception of the page as ":CONSOLE".
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_report_in_headless_chromium(chromium, sample_report):
    result, _ = sample_report
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(result.html, ARTIFACTS / "report.html")
    dom = run_chromium(chromium, result.html, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body))
    assert attrs["data-ready"] == "1" and attrs["data-js-errors"] == "0"
    # Every embedded image decoded (naturalWidth > 0): thumbnails, placeholder, table icons.
    assert int(attrs["data-images-total"]) > 100
    assert attrs["data-images-loaded"] == attrs["data-images-total"] and attrs["data-images-failed"] == "0"
    assert attrs["data-table-rows"] == str(result.table_rows)
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom.stdout
    # The table was rendered by the script: the first 500 rows by score (a stable sort), worst first.
    rows = sorted(embedded_data(result.html.read_text())["table"]["rows"], key=lambda r: r[4])[:500]
    assert dom.stdout.count('<tr class="issue">') == sum(r[5] for r in rows) > 50
    assert f"showing 500 of {result.table_rows} matching rows" in dom.stdout

    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    taken = run_chromium(chromium, result.html, "--window-size=1280,10000", f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.stat().st_size > 100_000, taken.stderr[-2000:]
    print(f"report screenshot: {shot}")


# Drives the table as a person would: filter by check and text, flagged only, sort by id descending;
# and checks that nothing makes the page wider than a 1280 px window.
PROBE = """<script>
(function () {
  function set(id, value) { var el = document.getElementById(id); el[id === "f-flagged" ? "checked" : "value"] = value;
                            el.dispatchEvent(new Event("input")); }
  function rows() { return document.querySelectorAll("#findings-table tbody tr").length; }
  set("f-check", "dark"); set("f-text", "TRAIN/");
  var filtered = rows();
  var th = document.querySelector('#findings-table th[data-col="0"]'); th.click(); th.click();
  var first = document.querySelector("#findings-table tbody td.id").textContent;
  set("f-flagged", true);
  var fits = document.documentElement.scrollWidth <= window.innerWidth;  // wide tables scroll inside the page
  document.body.setAttribute("data-probe", JSON.stringify([filtered, first, rows(), fits]));
})();
</script></body>"""


def test_table_filters_and_sorts_in_chromium(chromium, tmp_path, sample_report):
    result, page = sample_report
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE), encoding="utf-8")
    dom = run_chromium(chromium, probe, "--window-size=1280,2000", "--dump-dom")
    assert console_messages(dom.stderr) == []
    got = json.loads(html.unescape(re.search(r'data-probe="([^"]*)"', dom.stdout).group(1)))
    rows = [r for r in embedded_data(page)["table"]["rows"] if r[3] == "dark" and "train/" in r[0].lower()]
    assert got == [min(len(rows), 500), max(r[0] for r in rows), min(sum(r[5] for r in rows), 500), True]
    assert len(rows) > 400 and sum(r[5] for r in rows) >= 3


def test_hostile_report_runs_no_injected_script(chromium, tmp_path):
    run = hostile_run(tmp_path)
    page = write_report(run, tmp_path / "h.html").html
    dom = run_chromium(chromium, page, "--dump-dom")
    assert console_messages(dom.stderr) == []
    assert 'data-js-errors="0"' in dom.stdout and 'data-ready="1"' in dom.stdout
    assert dom.stdout.count("<script") == 2  # no element was injected by the hostile strings
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom.stdout  # the label shows as text in the table


def test_unlabeled_samples_show_no_label_not_pandas_missing_marker(tmp_path):
    """A folder of unlabeled photos: the cards said 'label <NA> · <NA>' (pandas' missing
    value printed); an unlabeled sample is 'label (none)' and shows no split."""
    from .conftest import make_image

    photos = tmp_path / "photos"
    for i in range(4):
        make_image(photos / f"{i}.png", i)
    make_image(photos / "copy.png", 0)
    assert invoke("audit", photos, "--out", tmp_path / "run", "-q", "--checks", "exact_duplicates", "--workers", 0,
                  "--cache-dir", "off").exit_code == 0
    page = write_report(tmp_path / "run", tmp_path / "r.html").html.read_text()
    assert "&lt;NA&gt;" not in page and "<NA>" not in page
    assert page.count("label <b>(none)</b></div>") >= 2  # the copy and its original


def test_the_audits_notes_are_on_the_page(tiny_dataset, tmp_path):
    """summary.json's notes (what the audit says of the dataset's layout, or of a kNN graph
    short of its recall target) were printed by the audit only: the page, which a reviewer
    reads later, left them out."""
    from .conftest import make_image

    for i in range(2):
        make_image(tiny_dataset / "train" / "cat " / f"more{i}.png", 100 + i)
    audit = invoke("audit", tiny_dataset, "--out", tmp_path / "run", "--checks", "exact_duplicates", "-q")
    assert audit.exit_code == 0, audit.output
    note = json.loads((tmp_path / "run" / "summary.json").read_text())["notes"][0]
    assert note.startswith("the class folders 'cat', 'cat ' are read as one class")
    result = report(tmp_path / "run")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "run" / "report.html").read_text()
    assert f'<p class="note warn">{html.escape(note)}</p>' in page
    assert "datacheck: note: the class folders" not in result.stderr  # said by the audit, not again by the report


def test_a_z_score_threshold_shows_its_cut():
    """``outliers`` with the orientation surprise records a combined z-score and its cut
    (``z_cut``), with no cut in the statistic's own units: the summary table and the report
    showed the statistic alone, without the number it is cut at."""
    from datacheck.reporting.summary import format_threshold

    combined = {"statistic": "robust z of (distance z + orientation z)", "z_cut": 2.471,
                "cut_rule": "Benjamini-Hochberg at fdr=0.2", "expected_false_positives": 20.1}
    assert format_threshold(combined) == "robust z of (distance z + orientation z) > 2.471"
    # a cut in the statistic's units is shown as before, not the z cut beside it
    distance = {"statistic": "mean cosine distance to 10 nearest", "above": 0.0969, "z_cut": 2.55}
    assert format_threshold(distance) == "mean cosine distance to 10 nearest > 0.0969"


def test_a_coreset_selection_is_not_counted_as_samples_flagged(tmp_path):
    """The overview's "samples flagged" counted coreset's non-members (a selection, not a problem
    found): at budget 0.1, 90 % of the dataset read as flagged. Checks tagged ``selection``
    are left out of that tile (and of the per-class flagged counts); their own table row stays."""
    run = synthetic_run(tmp_path, samples=400, images=10, checks=13)
    findings = pd.read_parquet(run / "findings.parquet")
    problems = findings.loc[findings["is_issue"], "sample_id"].nunique()
    coreset = findings[findings["check"] == "label_issues"].assign(check="coreset", detector="coreset", details="{}",
                                                                    suggested_label=None, confidence=float("nan"))
    coreset["is_issue"] = coreset["score"] > 0.1  # 90 % left out of the selection
    write_parquet(run / "findings.parquet", findings_table(pd.concat([findings, coreset], ignore_index=True)))
    summary = json.loads((run / "summary.json").read_text())
    summary["checks"]["coreset"] = {**summary["checks"]["label_issues"], "detector": "coreset",
                                    "flagged": int(coreset["is_issue"].sum())}
    (run / "summary.json").write_text(json.dumps(summary))
    page = write_report(run, tmp_path / "c.html").html.read_text()
    tile = re.search(r"<b>([\d,]+)</b><span>samples flagged</span>", page)
    assert 0 < problems < 100 and int(tile.group(1).replace(",", "")) == problems
    assert 'id="g-coreset"' not in page and 'id="g-label_issues"' in page  # no "worst" gallery of a selection
    assert int(coreset["is_issue"].sum()) > 300

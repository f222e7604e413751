"""``datacheck report RUN``: the audit as ONE self-contained HTML file (and optionally CSV).

The page works offline and from e-mail attachments: CSS, JavaScript and SVG are inline,
thumbnails are small base64 JPEGs decoded from the dataset files, nothing is fetched. Its
size is bounded whatever the dataset's size: at most ``max_thumbnails`` distinct images
(each stored once, however many sections show it), at most ``gallery_size`` samples per
check, a fixed number of duplicate groups, and a findings table that lists every row only
for small runs (otherwise the flagged rows, worst first, up to ``max_table_rows``).

Every piece of user data (sample ids, labels, splits, paths) is HTML-escaped where it is
rendered by Python, set through ``textContent`` where it is rendered by JavaScript, and the
JSON embedded in ``<script>`` has ``<``, ``>`` and ``&`` escaped, so a label such as
``</script><script>alert(1)</script>`` is shown as text.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..audit_run import AuditRun, open_run
from ..files.findings import details_object
from ..errors import BadDataError, UsageError, keyword_errors
from ..fusion import CHECK as FUSED_CHECK
from ..gates import is_off
from ..runs import Sources, atomic_write, check_outputs, folder_lock
from .csv import write_findings_csv
from .summary import format_threshold

#: Distinct thumbnails embedded at most. A thumbnail costs 3.5-4.7 KB (base64 JPEG, 80 px;
#: per-pixel noise is the worst case). With the default gallery size a 100k-sample audit
#: uses about 420 (a 3.0 MB report); raising --gallery-size to 1,000 hits this cap, and the
#: report of a 100k-sample, 1.4M-row audit is then about 13 MB (benchmarks/report_size.py).
DEFAULT_MAX_THUMBNAILS = 2000
#: Worst flagged samples shown per check.
DEFAULT_GALLERY_SIZE = 24
#: Findings table rows at most; a run with more rows lists only flagged rows (worst first).
DEFAULT_MAX_TABLE_ROWS = 10_000
#: Duplicate / leakage groups shown per check, and members shown per group.
MAX_GROUPS = 30
MAX_GROUP_MEMBERS = 8
MAX_HEATMAP_CLASSES = 40
THUMBNAIL_PX = 80
HIST_BINS = 20
TABLE_COLUMNS = ["sample_id", "split", "label", "check", "score", "is_issue", "suggested_label",
                 "suggested_confidence", "thumb"]
_EXIT_MEANING = {0: "no gate exceeded", 1: "a --fail-on gate was exceeded"}
_PALETTE = ["#2f5fb3", "#e08a1e", "#3a9b5c", "#7b5ea7", "#2a9ca6", "#b8a12f", "#8c6d4f", "#6b7a8f"]
_FLAGGED = "#c0392b"
# An unreadable or missing file: a grey tile with a cross, so the gallery keeps its shape.
_PLACEHOLDER = "data:image/svg+xml;base64," + base64.b64encode(
    b'<svg xmlns="http://www.w3.org/2000/svg" width="80" height="80"><rect width="80" height="80" fill="#d7dbe2"/>'
    b'<path d="M24 24L56 56M56 24L24 56" stroke="#8a93a3" stroke-width="5"/></svg>').decode()


@dataclass
class ReportResult:
    """What :func:`write_report` wrote.

    Attributes
    ----------
    html : pathlib.Path
    csv : pathlib.Path or None
    size_bytes : int
        Size of the HTML file.
    thumbnails : int
        Thumbnails embedded (decoded images; placeholders not counted).
    unreadable : int
        Files that could not be read or decoded (shown as a placeholder).
    table_rows : int
        Findings rows in the page's table (of ``findings_rows``).
    findings_rows : int
    notes : list of str
        What was left out and why (also shown in the page).
    """

    html: Path
    csv: Path | None
    size_bytes: int
    thumbnails: int
    unreadable: int
    table_rows: int
    findings_rows: int
    notes: list[str] = field(default_factory=list)


@keyword_errors()
def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
                 max_thumbnails: int = DEFAULT_MAX_THUMBNAILS, csv: bool | str | os.PathLike = False,
                 gallery_size: int = DEFAULT_GALLERY_SIZE, max_table_rows: int = DEFAULT_MAX_TABLE_ROWS,
                 dataset: str | os.PathLike | None = None, command: list[str] | None = None) -> ReportResult:
    """Write the HTML report of an audit run (and, with ``csv``, its findings as CSV).

    Parameters
    ----------
    run_dir : path-like
        A complete run directory written by ``datacheck audit``.
    out : path-like, optional
        The HTML file (default ``RUN/report.html``), written atomically.
    max_thumbnails : int, default 2000
        Distinct images embedded at most; 0 embeds none.
    csv : bool or path-like, default False
        ``True`` writes ``findings.csv`` beside the HTML file; a path writes it there.
    gallery_size : int, default 24
        Worst flagged samples shown per check.
    max_table_rows : int, default 10000
        Rows of the findings table at most. A run with more findings rows than this lists
        only its flagged rows, the worst of each check first, and the page says so.
    dataset : path-like, optional
        Where the audited images are now, if the dataset moved (default: the folder recorded
        in ``run.json``). Without readable images the report has no thumbnails and says so.
    command : list of str, optional
        The command line; given (by ``datacheck report``), messages name its options
        (``--max-thumbnails``), else this function's keywords (``max_thumbnails``).

    Returns
    -------
    ReportResult

    Raises
    ------
    UsageError
        ``run_dir`` is not a complete run, or an option is out of range.
    BadDataError
        A run file is unreadable.
    """
    for name, value in (("max_thumbnails", max_thumbnails), ("gallery_size", gallery_size),
                        ("max_table_rows", max_table_rows)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be an integer >= 0, got {value!r:.40}")
    run = open_run(run_dir)
    out = Path(out) if out is not None else run.path / "report.html"
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give the HTML file's path")
    csv_path = None if csv is False or csv is None else out.with_name("findings.csv") if csv is True else Path(csv)
    # The dataset where it now is (--dataset: moved since the audit), else where it was audited.
    sources = Sources.at(dataset) if dataset is not None else Sources.of_run(run.info)
    if sources is not None and sources.manifest is not None:
        # A manifest dataset is its manifest and the files it lists: every sample has findings rows.
        sources = dataclasses.replace(sources, files=pd.Series(run.findings["path"].unique(), dtype=object))
    check_outputs(sources, files={"--out": out, "--csv": csv_path}, run=run.path)
    # Written into the run (the default): not while an audit rewrites it, which removes the last
    # report and findings.csv first; nor may an audit start on the run while it is written.
    into_run = any(os.path.realpath(path.parent) == os.path.realpath(run.path) for path in (out, csv_path)
                   if path is not None)
    with folder_lock(run.path if into_run else None, "the run"):
        page, result = render_report(run, max_thumbnails=int(max_thumbnails), gallery_size=int(gallery_size),
                                     max_table_rows=int(max_table_rows), dataset=dataset)
        data = page.encode("utf-8")
        atomic_write(out, lambda tmp: tmp.write_bytes(data))
        result.html, result.size_bytes = out, len(data)
        if csv_path is not None:
            result.csv = write_findings_csv(run.findings, csv_path)
    return result


def render_report(run: AuditRun, *, max_thumbnails: int = DEFAULT_MAX_THUMBNAILS,
                  gallery_size: int = DEFAULT_GALLERY_SIZE, max_table_rows: int = DEFAULT_MAX_TABLE_ROWS,
                  dataset: str | os.PathLike | None = None) -> tuple[str, ReportResult]:
    """The report page of ``run`` as text, and what it holds (``html``/``size_bytes`` unset)."""
    findings = run.findings
    notes: list[str] = []
    thumbs = _Thumbnails(_image_root(run, dataset, notes), max_thumbnails, THUMBNAIL_PX)

    galleries = _gallery_rows(findings, gallery_size)
    source = run.path / "findings.parquet"  # names the file when a details value is damaged
    from ..detectors.registry import checks_with_tag

    groups = {check: _duplicate_groups(findings, check, source) for check in checks_with_tag("groups")}
    # Thumbnails are handed out in priority order, interleaved so that a small budget still
    # shows every check: the worst sample of each check, then the second worst, ...; then
    # duplicate groups, one group of each check in turn.
    # galleries holds at most gallery_size rows each: the ranks stop at the longest (a gallery
    # size of a billion, "show them all", was a billion empty turns)
    for rank in range(max(map(len, galleries.values()), default=0)):
        for rows in galleries.values():
            if rank < len(rows):
                thumbs.request(rows.iloc[rank])
    for index in range(MAX_GROUPS):
        for check_groups in groups.values():
            if index < len(check_groups):
                for member in check_groups[index]["members"][:MAX_GROUP_MEMBERS]:
                    thumbs.request(member)
    if thumbs.skipped:
        notes.append(f"{thumbs.skipped} thumbnail(s) left out to keep the page small (--max-thumbnails {max_thumbnails})")
    if thumbs.unreadable:
        notes.append(f"{thumbs.unreadable} image file(s) could not be read and are shown as a grey placeholder")

    table, table_note = _table(findings, max_table_rows, thumbs)
    if table_note:
        notes.append(table_note)
    sections = [
        ("overview", "Overview", _overview(run, notes)),
        ("galleries", "Review first, and the worst samples per check", _galleries(galleries, findings, thumbs)),
        ("groups", "Duplicate and leakage groups", _groups_section(groups, thumbs)),
        ("relabels", "Suggested relabels", _heatmap(findings, run.summary.get("checks", {}))),
        ("histograms", "Score histograms", _histograms(findings)),
        ("clusters", "Sub-clusters per class", _clusters(findings, source)),
        ("findings", "Findings", _table_section(table_note, len(findings))),
    ]
    title = f"datacheck report: {run.summary.get('run_id', run.path.name)}"
    body = [
        f'<header class="top"><h1>{_e(title)}</h1><div class="sub">{_iso(run.info.dataset)} · '
        f'audited {_e(run.info.created)} · datacheck {_e(run.info.datacheck_version)}</div></header>',
        "<nav>" + "".join(f'<a href="#{key}">{_e(name)}</a>' for key, name, _ in sections) + "</nav>",
        "<main>",
        *(f'<section id="{key}"><h2>{_e(name)}</h2>{content}</section>' for key, name, content in sections),
        "</main>",
        f"<footer>Written by datacheck {_e(__version__)} from {_e(run.path)}. Self-contained: no network access.</footer>",
    ]
    data = {"thumbs": thumbs.data, "table": table}
    page = _fill(_template("report.html"), version=_e(__version__), title=_e(title), css=_template("report.css"),
                 js=_template("report.js"), body="\n".join(body), data=script_json(data))
    result = ReportResult(Path(), None, 0, thumbs.decoded, thumbs.unreadable, len(table["rows"]), len(findings), notes)
    return page, result


# --------------------------------------------------------------------------- helpers


def _e(value) -> str:
    """HTML-escaped text of a value; missing values (None, NaN, pandas' NA) are empty."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=True)


def _iso(value) -> str:
    """User text shown inline beside other text (a label, split or path): escaped, in ``<bdi>``.

    The element isolates the text's direction, so a right-to-left override (U+202E) in a
    class name reverses only that name, not the words after it (``label X · train`` read
    ``label niart`` without it); missing values are empty, as with :func:`_e`.
    """
    text = _e(value)
    return f"<bdi>{text}</bdi>" if text else ""


def script_json(data) -> str:
    """JSON safe to embed in ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` become ``\\u003c`` ..., so no ``</script>`` or ``<!--`` in user
    data can end or alter the element; ``JSON.parse`` restores them.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _template(name: str) -> str:
    return resources.files("datacheck.reporting").joinpath("templates", name).read_text(encoding="utf-8")


def _fill(template: str, **parts: str) -> str:
    # One pass, so a marker inside an inserted part is never replaced again.
    return re.sub(r"<!--@(\w+)@-->", lambda m: parts[m.group(1)], template)


def _image_root(run: AuditRun, dataset, notes: list[str]) -> Path | None:
    if run.info.manifest_format == "arrays":
        notes.append("audited from arrays (--pred-probs or --embeddings): no images, so no thumbnails")
        return None
    if dataset is not None and not Path(dataset).is_dir():  # asked for: an error, not a quiet note
        what = "is a file; give the folder its paths start from" if Path(dataset).exists() else "no such dataset folder"
        raise BadDataError(f"--dataset {dataset}: {what}")
    root = Path(dataset) if dataset is not None else Path(run.info.dataset_root or run.info.dataset)
    if not root.is_dir():
        notes.append(f"dataset folder {root} not found (moved?): thumbnails omitted; "
                     "pass --dataset (dataset= in Python) to show them")
        return None
    # The thumbnails are decoded from the files as they are now: a dataset changed since the
    # audit (an image rewritten under the same name, files added or removed) would show
    # pictures that are not the ones audited, without a word. The repairs refuse such a
    # dataset; a report, which changes nothing, says so on the page.
    try:
        run.manifest(dataset)
    except BadDataError as exc:
        notes.append(f"the thumbnails show the files as they are now, which are not those audited ({exc})")
    return root


class _Thumbnails:
    """Base64 thumbnails keyed by sample, decoded at most ``budget`` times (each stored once)."""

    def __init__(self, root: Path | None, budget: int, size: int):
        self.root = root.resolve() if root is not None else None
        self.budget = budget
        self.size = size
        self.data: dict[str, str] = {}
        self.keys: dict[str, str] = {}
        self.decoded = self.unreadable = self.skipped = 0

    def request(self, row) -> None:
        """Decode the thumbnail of a findings row (needs ``sample_id`` and ``path``) if budget allows."""
        sample_id = row["sample_id"]
        if self.root is None or sample_id in self.keys:
            return
        if self.decoded + self.unreadable >= self.budget:
            self.skipped += 1
            self.keys[sample_id] = ""  # counted once
            return
        uri = self._encode(row["path"])
        if uri is None:
            self.unreadable += 1
            self.data["x"] = _PLACEHOLDER
            self.keys[sample_id] = "x"
            return
        self.decoded += 1
        key = f"t{self.decoded}"
        self.data[key] = uri
        self.keys[sample_id] = key

    def key(self, sample_id) -> str:
        return self.keys.get(sample_id, "")

    def _encode(self, path) -> str | None:
        from PIL.Image import NEAREST

        from ..engine.image_stats import DECODE_ERRORS, eight_bit, on_white, open_image, upright

        if path is None or (isinstance(path, float) and math.isnan(path)):
            return None
        file = (self.root / str(path)).resolve()
        if not file.is_relative_to(self.root):  # a damaged run must not make the report read elsewhere
            return None
        try:
            with open_image(file) as image:  # never a pipe or device: it would hang the report
                image.draft("RGB", (self.size, self.size))  # JPEG: decode at reduced scale, much faster
                # As viewers show it (EXIF orientation); 16-bit and float grey scaled to 8 bits as
                # the statistics see them: Pillow's conversion clips them (a 16-bit scan turns white).
                image = eight_bit(upright(image))
                image.thumbnail((self.size, self.size))
                factor = self.size // max(image.size)
                if factor >= 2:  # an 8 x 8 scan showed as a dot: blown up a whole number of times, pixels kept sharp
                    image = image.resize((image.width * factor, image.height * factor), NEAREST)
                image = on_white(image).convert("RGB")
                buffer = io.BytesIO()
                image.save(buffer, "JPEG", quality=75, optimize=True)
        except DECODE_ERRORS:
            return None  # missing, truncated, not an image, or a mode PIL cannot convert
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _model_fact(run: AuditRun) -> str:
    """The model the audit trained, or why none: an arrays audit, or no check that needed one."""
    from ..files.model_outputs import OUTPUTS_ARTIFACT

    if run.info.manifest_format == "arrays":
        return "(none: audited from arrays)"
    if not (run.artifacts / OUTPUTS_ARTIFACT).exists():
        return "(none: no check needed one)"
    return run.info.audit_setting("model", "")


def _table_html(header: list[str], rows: list[list[str]], numeric=None, cls: str = "") -> str:
    """A small table of already-escaped HTML cells; ``numeric`` columns (default: all but the first) right-aligned."""
    numeric = set(range(1, len(header))) if numeric is None else set(numeric)
    head = "".join(f'<th class="num">{h}</th>' if i in numeric else f"<th>{h}</th>" for i, h in enumerate(header))
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            classes = " ".join(c for c, on in (("num", i in numeric), ("zero", i in numeric and value == "0")) if on)
            cells.append(f'<td class="{classes}">{value}</td>' if classes else f"<td>{value}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    thead = f"<thead><tr>{head}</tr></thead>" if any(header) else ""  # a key/value table has no header
    return f'<div class="scroll"><table class="{cls}">{thead}<tbody>{"".join(body)}</tbody></table></div>'


# --------------------------------------------------------------------------- overview


def _problems(findings: pd.DataFrame) -> pd.DataFrame:
    """The flagged rows that are problems found: not those of a selection (``coreset``'s
    left-out samples; counted, a coreset at budget 0.1 made 90 % of any dataset "samples
    flagged", and filled a "worst samples" gallery)."""
    from ..detectors.registry import checks_with_tag

    return findings[findings["is_issue"] & ~findings["check"].isin(checks_with_tag("selection"))]


def _overview(run: AuditRun, notes: list[str]) -> str:
    summary, info, findings = run.summary, run.info, run.findings
    checks: dict = summary.get("checks", {})
    flagged = _problems(findings)
    status = int(summary.get("exit_status", info.exit_status or 0))
    splits = summary.get("splits", {})
    stats = [
        ("samples", f"{summary.get('samples', 0):,}", ""),
        ("classes", f"{summary.get('classes', 0):,}", ""),
        ("splits", " / ".join(f"{k} {v:,}" for k, v in splits.items()) or "-", ""),
        ("samples flagged", f"{flagged['sample_id'].nunique():,}", "bad" if len(flagged) else "good"),
        ("checks run", str(len(checks)), ""),
        ("exit status", f"{status}", "bad" if status else "good"),
    ]
    parts = ['<div class="cards">' + "".join(
        f'<div class="stat {cls}"><b>{_e(value)}</b><span>{_e(name)}</span></div>' for name, value, cls in stats) + "</div>"]
    untested = [g["gate"] for g in summary.get("gates", []) if not g.get("judged", True)]
    untested = (f'; <span class="untested">untested: {_e(", ".join(untested))}</span> (every check '
                f'{"they count" if len(untested) > 1 else "it counts"} was off)' if untested else "")
    parts.append(f'<p class="note">Exit status {status}: {_e(_EXIT_MEANING.get(status, "see the README"))}{untested}. '
                 f"Scores are in [0, 1], lower = worse.</p>")
    # the audit's own notes (a folder layout that reads oddly, a kNN graph short of its recall
    # target), then the report's (thumbnails left out, a dataset moved or changed)
    for note in summary.get("notes", []) + notes:
        parts.append(f'<p class="note warn">{_e(note)}</p>')

    gates = summary.get("gates", [])
    gate_of = {}
    for gate in gates:
        gate_of.setdefault(re.split(r"[<>=]", gate["gate"])[0], []).append(gate)
    rows = []
    for check, c in checks.items():
        gate_cells = [f'<span class="{_gate_state(g)}">{_e(g["gate"])} {_gate_state(g)}</span>'
                      for g in gate_of.get(check, []) + (gate_of.get(c.get("detector"), [])
                                                         if c.get("detector") != check else [])]
        rows.append([_e(check), _e(c.get("detector", "")), f"{c.get('flagged', 0):,}", f"{c.get('scored', 0):,}",
                     f"{c.get('percent', 0):.1f}", _e(format_threshold(c.get("threshold") or {})), " ".join(gate_cells)])
    header = ["check", "detector", "flagged", "scored", "%", "threshold", "gate"]
    if not gates:  # no gate column to leave empty
        header, rows = header[:-1], [r[:-1] for r in rows]
    parts.append("<h3>Checks</h3>" + _table_html(header, rows, numeric={2, 3, 4}))
    if gates:
        parts.append("<h3>Gates (--fail-on)</h3>" + _table_html(
            ["gate", "flagged", "scored", "%", "result"],
            [[_e(g["gate"]), f"{g['flagged']:,}", f"{g['scored']:,}", f"{g['percent']:.1f}",
              f'<span class="{_gate_state(g)}">{_gate_state(g)}'
              + (f' ({_e(" and ".join(g["off"]))} off: passed without a judgment)' if "off" in g else "") + "</span>"]
             for g in gates]))
    else:
        parts.append('<p class="note">No --fail-on gates were set.</p>')

    by = '<div class="cols">'
    for column, name in (("label", "class"), ("split", "split")):
        by += f"<div><h3>Per {name}</h3>{_breakdown(findings, flagged, column, name)}</div>"
    parts.append(by + "</div>")

    facts = [
        # an arrays audit records the folder it ran in as its root: no images are under it
        ("dataset", info.dataset),
        ("images under", "(none: audited from arrays)" if info.manifest_format == "arrays" else info.dataset_root or ""),
        ("manifest format", info.manifest_format), ("run", str(run.path)),
        ("command", " ".join(map(str, info.command))), ("seed", info.seed),
        ("model", _model_fact(run)), ("device", info.device),
        ("missing files", len(summary.get("missing_files", []))),
        ("skipped files", sum(summary.get("skipped_files", {}).values())),
        ("versions", ", ".join(f"{k} {v}" for k, v in info.versions.items())),
    ]
    parts.append("<h3>Run</h3>" + _table_html(["", ""], [[_e(k), f"<code>{_e(v)}</code>"] for k, v in facts],
                                                numeric=()))
    return "".join(parts)


def _breakdown(findings: pd.DataFrame, flagged: pd.DataFrame, column: str, name: str) -> str:
    """Samples and flagged samples per value of ``column``, and flagged counts per check."""
    samples = findings.drop_duplicates("sample_id")[column].fillna("(none)").value_counts()
    if samples.empty:
        return '<p class="note">No findings.</p>'
    keys = flagged[column].fillna("(none)")
    any_flag = flagged.assign(_k=keys).groupby("_k")["sample_id"].nunique()
    per_check = pd.crosstab(keys, flagged["check"]) if len(flagged) else pd.DataFrame(index=samples.index)
    rows = []
    for key in sorted(samples.index, key=str):
        row = [_e(key), f"{samples[key]:,}", f"{int(any_flag.get(key, 0)):,}"]
        row += [f"{int(per_check.at[key, c]) if key in per_check.index else 0:,}" for c in per_check.columns]
        rows.append(row)
    # The check columns' headers are vertical (CSS), so a score of checks fits the page's width.
    return _table_html([_e(name), "samples", "flagged", *(_e(c) for c in per_check.columns)], rows, cls="breakdown")


# --------------------------------------------------------------------------- galleries and groups


def _gallery_rows(findings: pd.DataFrame, size: int) -> dict[str, pd.DataFrame]:
    """Per check with flagged samples, its ``size`` worst flagged rows (lowest score first);
    the fused ``issue_score`` first, in the audit's review order (as stored); none for a
    selection (:func:`_problems`)."""
    flagged = _problems(findings)
    fused = flagged[flagged["check"] == FUSED_CHECK]
    out = {FUSED_CHECK: fused.head(size)} if len(fused) else {}
    rest = flagged[flagged["check"] != FUSED_CHECK].sort_values(["check", "score", "sample_id"], kind="stable")
    out.update({check: rows.head(size) for check, rows in rest.groupby("check", sort=True)})
    return out


def _sample_card(row, thumbs: _Thumbnails, extra: str = "", cls: str = "") -> str:
    key = thumbs.key(row["sample_id"])
    image = f'<img data-t="{_e(key)}" alt="">' if key else ""
    suggested = row.get("suggested_label")
    lines = [f'<div class="id" title="{_e(row["sample_id"])}">{_e(row["sample_id"])}</div>',
             f'<div class="kv">label <b>{_iso(row.get("label")) or "(none)"}</b>'
             + (f' · {_iso(row.get("split"))}' if _e(row.get("split")) else "") + "</div>"]
    if _e(suggested):
        conf = row.get("suggested_confidence")
        conf_text = f" ({conf:.2f})" if conf is not None and not pd.isna(conf) else ""
        lines.append(f'<div class="kv sugg">suggested <b>{_iso(suggested)}</b>{_e(conf_text)}</div>')
    lines.append(f'<div class="kv">score <b>{row["score"]:.4f}</b></div>')
    if extra:
        lines.append(f"<div>{extra}</div>")
    return (f'<div class="sample {cls}"><div class="img{"" if key else " none"}">{image}</div>'
            + "".join(lines) + "</div>")


def _galleries(galleries: dict[str, pd.DataFrame], findings: pd.DataFrame, thumbs: _Thumbnails) -> str:
    if not galleries:
        return '<p class="note">No check flagged any sample.</p>'
    if not any(len(rows) for rows in galleries.values()):
        return '<p class="note">Galleries are off (--gallery-size 0).</p>'
    total = findings[findings["is_issue"]].groupby("check").size()
    parts = []
    for check, rows in galleries.items():
        parts.append(f'<h3 id="g-{_e(check)}">{_e(check)} <span class="count">worst {len(rows)} of '
                     f'{int(total[check]):,} flagged</span></h3>')
        parts.append('<div class="gallery">' + "".join(_sample_card(r, thumbs, _flagged_by(r, check))
                                                       for _, r in rows.iterrows()) + "</div>")
    return "".join(parts)


def _flagged_by(row, check: str) -> str:
    """For a fused row, the checks that flagged the sample (HTML); else nothing."""
    if check != FUSED_CHECK:
        return ""
    checks = details_object(row["details"], "findings.parquet").get("checks", [])
    return "flagged by " + ", ".join(f"<b>{_e(c)}</b>" for c in checks)


def _duplicate_groups(findings: pd.DataFrame, check: str, source="findings.parquet") -> list[dict]:
    """The groups a duplicate check reported, biggest first.

    Each is ``{"group": representative id, "members": [row dicts, representative first],
    "size": int, "anchor": split kept (split_leakage) or None}``. Only rows whose details
    name a group are parsed, so a run of millions of rows stays fast. ``source`` names the
    findings file in the error raised for a damaged ``details`` value.
    """
    rows = findings[(findings["check"] == check) & findings["details"].str.contains('"group"', regex=False)]
    by_group: dict[str, list[dict]] = {}
    anchors: dict[str, str] = {}
    for row in rows.to_dict("records"):
        details = details_object(row["details"], source)
        group = str(details.get("group"))
        row["_flagged"] = bool(row["is_issue"])
        by_group.setdefault(group, []).append(row)
        if "anchor_split" in details:
            anchors[group] = details["anchor_split"]
    groups = []
    for group, members in by_group.items():
        members.sort(key=lambda r: (r["sample_id"] != group, r["_flagged"], str(r["sample_id"])))
        groups.append({"group": group, "members": members, "size": len(members), "anchor": anchors.get(group),
                       "flagged": sum(r["_flagged"] for r in members)})
    groups.sort(key=lambda g: (-g["flagged"], -g["size"], g["group"]))
    return groups


def _groups_section(groups: dict[str, list[dict]], thumbs: _Thumbnails) -> str:
    parts = []
    for check, check_groups in groups.items():
        if not check_groups:
            continue
        shown = check_groups[:MAX_GROUPS]
        parts.append(f'<h3>{_e(check)} <span class="count">{len(shown)} of {len(check_groups):,} groups'
                     f'{", biggest first" if len(check_groups) > len(shown) else ""}</span></h3><div class="groups">')
        for g in shown:
            head = (f'<div class="ghead"><b>{g["size"]}</b> samples<br>{g["flagged"]} flagged'
                    + (f'<br>kept split: <b>{_iso(g["anchor"])}</b>' if g["anchor"] else "") + "</div>")
            cards = []
            for m in g["members"][:MAX_GROUP_MEMBERS]:
                if m["_flagged"]:
                    badge, cls = '<span class="badge flagged">flagged</span>', "flagged"
                elif m["sample_id"] == g["group"]:
                    badge, cls = '<span class="badge kept">kept</span>', "kept"
                else:
                    badge, cls = '<span class="badge">not flagged</span>', ""
                cards.append(_sample_card(m, thumbs, badge, cls))
            more = len(g["members"]) - MAX_GROUP_MEMBERS
            tail = f'<div class="ghead">+{more} more</div>' if more > 0 else ""
            parts.append(f'<div class="group">{head}{"".join(cards)}{tail}</div>')
        parts.append("</div>")
    if not parts:
        return '<p class="note">No duplicate or split-leakage groups (or those checks did not run).</p>'
    return ('<p class="note">The copy kept in each group is outlined in green (the largest image, then the '
            '<code>train</code> copy); flagged copies in red.</p>' + "".join(parts))


# --------------------------------------------------------------------------- charts


def _gate_state(gate: dict) -> str:
    """A gate's result as the report shows it (and its CSS class): failed, passed, or untested
    when every check it counts was off (``judged`` false in ``summary.json``)."""
    return "failed" if gate["failed"] else "passed" if gate.get("judged", True) else "untested"


def _heatmap(findings: pd.DataFrame, checks: dict | None = None) -> str:
    """Class × class counts of label_issues rows flagged with a different suggested label."""
    if not (findings["check"] == "label_issues").any():
        entry = (checks or {}).get("label_issues", {})
        if is_off(entry):  # it ran, and did not judge: say why
            return f'<p class="note warn">label_issues was {_e(entry["threshold"]["rule"])}</p>'
        return '<p class="note">The label_issues check did not run.</p>'
    rows = findings[(findings["check"] == "label_issues") & findings["is_issue"] & findings["suggested_label"].notna()]
    rows = rows[rows["suggested_label"] != rows["label"]]
    if rows.empty:
        return '<p class="note">label_issues suggested no relabel.</p>'
    counts = pd.crosstab(rows["label"].fillna("(none)"), rows["suggested_label"])
    classes = sorted(set(findings.loc[findings["check"] == "label_issues", "label"].dropna()) | set(counts.columns), key=str)
    left_out = ""
    if len(classes) > MAX_HEATMAP_CLASSES:  # keep the grid readable (and the page small)
        involved = counts.sum(axis=1).add(counts.sum(axis=0), fill_value=0).sort_values(ascending=False, kind="stable")
        classes = sorted(involved.index[:MAX_HEATMAP_CLASSES], key=str)
        left_out = (f" Showing the {len(classes)} classes with the most suggestions in or out, of "
                    f"{len(involved):,} involved.")
    peak = counts.to_numpy().max()
    head = "<th>given ↓ / suggested →</th>" + "".join(f'<th class="rot">{_e(c)}</th>' for c in classes) + "<th>total</th>"
    body = []
    for given in classes:
        cells = []
        for suggested in classes:
            n = int(counts.at[given, suggested]) if given in counts.index and suggested in counts.columns else 0
            if given == suggested:
                cells.append('<td class="cell" style="background:#f0f1f4"></td>')
            elif n:
                alpha = 0.15 + 0.85 * n / peak
                color = "#fff" if alpha > 0.6 else "#1d2330"
                cells.append(f'<td class="cell" style="background:rgba(192,57,43,{alpha:.2f});color:{color}" '
                             f'title="{_e(given)} → {_e(suggested)}: {n}">{n}</td>')
            else:
                cells.append('<td class="cell"></td>')
        total = int(counts.loc[given].sum()) if given in counts.index else 0
        body.append(f"<tr><th>{_e(given)}</th>{''.join(cells)}<td class=\"num\">{total}</td></tr>")
    return (f'<p class="note">{len(rows):,} flagged label issue(s) with a different suggested label: row = given '
            f"label, column = the model's suggestion.{_e(left_out)}</p>"
            f'<div class="scroll"><table class="heatmap"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def _histograms(findings: pd.DataFrame) -> str:
    if findings.empty:
        return '<p class="note">No findings.</p>'
    parts = []
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    for check, rows in findings.groupby("check", sort=True):
        score = rows["score"].to_numpy(dtype=float)
        issue = rows["is_issue"].to_numpy(dtype=bool)
        flagged, _ = np.histogram(score[issue], bins=edges)
        clean, _ = np.histogram(score[~issue], bins=edges)
        parts.append(_histogram_svg(str(check), clean, flagged))
    legend = ('<p class="legend">Samples per score bin (square-root scale, so small bins stay visible):'
              '<i style="background:#8fa6cc"></i>not flagged<i style="background:#c0392b"></i>flagged</p>')
    return legend + '<div class="hists">' + "".join(parts) + "</div>"


def _histogram_svg(check: str, clean: np.ndarray, flagged: np.ndarray) -> str:
    """An inline SVG histogram (20 bins over [0, 1]) with flagged counts stacked on top."""
    width, height, left, bottom = 260, 110, 34, 18
    plot_w, plot_h = width - left - 6, height - bottom - 8
    total = clean + flagged
    peak = max(int(total.max()), 1)
    scale = plot_h / math.sqrt(peak)
    bar_w = plot_w / len(total)
    bars = []
    for i, (c, f) in enumerate(zip(clean.tolist(), flagged.tolist())):
        x = left + i * bar_w
        h_all = math.sqrt(c + f) * scale
        h_flag = h_all * f / (c + f) if c + f else 0.0
        y0 = 8 + plot_h
        if c:
            bars.append(f'<rect x="{x + 0.5:.1f}" y="{y0 - h_all:.1f}" width="{bar_w - 1:.1f}" height="{h_all - h_flag:.1f}" '
                        f'fill="#8fa6cc"><title>{_bin_label(i)}: {c} not flagged</title></rect>')
        if f:
            bars.append(f'<rect x="{x + 0.5:.1f}" y="{y0 - h_flag:.1f}" width="{bar_w - 1:.1f}" height="{h_flag:.1f}" '
                        f'fill="#c0392b"><title>{_bin_label(i)}: {f} flagged</title></rect>')
    axis = (f'<line x1="{left}" y1="{8 + plot_h}" x2="{left + plot_w}" y2="{8 + plot_h}" stroke="#888"/>'
            f'<text x="{left}" y="{height - 4}" font-size="10" text-anchor="middle">0</text>'
            f'<text x="{left + plot_w / 2}" y="{height - 4}" font-size="10" text-anchor="middle">0.5</text>'
            f'<text x="{left + plot_w}" y="{height - 4}" font-size="10" text-anchor="middle">1</text>'
            f'<text x="{left - 3}" y="14" font-size="10" text-anchor="end">{_short_count(peak)}<title>{peak:,}</title></text>'
            f'<text x="{left - 3}" y="{8 + plot_h}" font-size="10" text-anchor="end">0</text>')
    title = (f'<div class="t">{_e(check)}</div><div class="legend">{int(total.sum()):,} scored, '
             f'{int(flagged.sum()):,} flagged</div>')
    return (f'<div class="hist">{title}<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="score histogram of {_e(check)}">{axis}{"".join(bars)}</svg></div>')


def _short_count(n: int) -> str:
    """A count in at most 5 characters (``8339``, ``12.3k``, ``200k``, ``1.4M``): the y axis
    has room for no more, and a longer number was cut at the SVG's left edge (``10000`` read
    ``0000``)."""
    if n < 10_000:
        return str(n)
    for scale, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")):
        value = float(f"{n / scale:.3g}")
        if value < 1000:  # else (999,999 rounds to 1000k) the next unit
            return f"{value:g}{suffix}"
    return f"{n:.0e}"


def _bin_label(i: int) -> str:
    """The score range of histogram bin ``i``, e.g. ``0.05–0.10``."""
    return f"{i / HIST_BINS:.2f}–{(i + 1) / HIST_BINS:.2f}"


def _clusters(findings: pd.DataFrame, source="findings.parquet") -> str:
    """Sub-cluster sizes per class from a ``clusters`` check (one row per sample), if it ran.

    ``source`` names the findings file in the error raised for a damaged ``details`` value.
    """
    from ..detectors.registry import check_owner, checks_with_tag, get_detector_class

    ran = [c for c in checks_with_tag("subgroups") if (findings["check"] == c).any()]
    if not ran:
        return '<p class="note">No <code>clusters</code> check in this run.</p>'
    rows = findings[findings["check"] == ran[0]]
    clusters = get_detector_class(check_owner(ran[0])).read_details(findings, ran[0], source, fields=["cluster"])["cluster"]
    sizes: dict[str, dict[int, int]] = {}
    flagged: dict[str, set[int]] = {}  # clusters with a flagged (under-represented) sample
    n_flagged: dict[str, int] = {}  # flagged samples (off-class members of a small cluster are not)
    for sample_id, label, issue in zip(rows["sample_id"].tolist(), rows["label"].fillna("(none)").tolist(),
                                       rows["is_issue"].tolist()):
        if sample_id not in clusters.index:
            continue
        cluster = int(clusters.at[sample_id])
        per_class = sizes.setdefault(str(label), {})
        per_class[cluster] = per_class.get(cluster, 0) + 1
        if issue:
            flagged.setdefault(str(label), set()).add(cluster)
            n_flagged[str(label)] = n_flagged.get(str(label), 0) + 1
    if not sizes:
        return '<p class="note">The <code>clusters</code> check reported no cluster ids.</p>'
    peak = max(sum(c.values()) for c in sizes.values())
    body = []
    for label in sorted(sizes, key=str):
        clusters = sorted(sizes[label].items(), key=lambda kv: (-kv[1], kv[0]))
        small = flagged.get(label, set())
        total = sum(n for _, n in clusters)
        segments = "".join(
            f'<span style="width:{100 * n / total:.2f}%;background:{_FLAGGED if c in small else _PALETTE[i % len(_PALETTE)]}" '
            f'title="cluster {c}: {n} samples{" (flagged: under-represented)" if c in small else ""}"></span>'
            for i, (c, n) in enumerate(clusters))
        listed = ", ".join(str(n) for _, n in clusters[:12]) + (" …" if len(clusters) > 12 else "")
        n_small = n_flagged.get(label, 0)
        body.append(f'<tr><td>{_e(label)}</td><td class="num">{total:,}</td><td class="num">{len(clusters)}</td>'
                    f'<td class="num{" zero" if not n_small else ""}">{n_small:,}</td>'
                    f'<td><div class="bar" style="width:{max(60, 360 * total / peak):.0f}px">{segments}</div></td>'
                    f"<td>{_e(listed)}</td></tr>")
    return ('<p class="note">Each class split into sub-clusters by the <code>clusters</code> check; '
            'bar length = class size, segments = clusters, largest first; red = flagged as under-represented.</p>'
            '<div class="scroll"><table class="clusters"><thead><tr><th>class</th><th class="num">samples</th>'
            '<th class="num">clusters</th><th class="num">flagged</th><th>share</th><th>sizes, largest first</th>'
            '</tr></thead><tbody>' + "".join(body) + "</tbody></table></div>")


# --------------------------------------------------------------------------- findings table


def _table(findings: pd.DataFrame, max_rows: int, thumbs: _Thumbnails) -> tuple[dict, str]:
    """The rows the page's table holds, as JSON-ready lists, and a note when some were left out."""
    note = ""
    rows = findings
    if len(findings) > max_rows:
        flagged = findings[findings["is_issue"]].sort_values(["check", "score", "sample_id"], kind="stable")
        # Round-robin over checks (1st worst of each, then 2nd...), so one noisy check cannot
        # push the others out of a capped table.
        order = flagged.assign(_rank=flagged.groupby("check").cumcount()).sort_values(["_rank", "check"], kind="stable")
        rows = order.head(max_rows)
        note = (f"The findings table lists {len(rows):,} of {len(findings):,} rows: only flagged rows "
                f"({len(flagged):,}), the worst of each check first, capped at {max_rows:,} (--max-table-rows). "
                "findings.parquet (or --csv) has them all.")
    ids = rows["sample_id"].astype(str).tolist()
    columns = [ids, _nullable(rows["split"]), _nullable(rows["label"]), rows["check"].astype(str).tolist(),
               np.round(rows["score"].to_numpy(dtype=float), 4).tolist(), rows["is_issue"].astype(bool).tolist(),
               _nullable(rows["suggested_label"]), _nullable(rows["suggested_confidence"], 3),
               [thumbs.key(i) or None for i in ids]]
    table = {
        "columns": TABLE_COLUMNS,
        "rows": [list(r) for r in zip(*columns)],
        "checks": sorted(findings["check"].astype(str).unique().tolist()),
        "splits": sorted(findings["split"].dropna().astype(str).unique().tolist()),
    }
    return table, note


def _nullable(series: pd.Series, digits: int | None = None) -> list:
    """Values as JSON-ready Python objects with None for missing (NaN is not valid JSON)."""
    if digits is not None:
        values = np.round(series.to_numpy(dtype=float), digits)
        return [None if math.isnan(v) else v for v in values.tolist()]
    return [None if pd.isna(v) else str(v) for v in series.tolist()]


def _table_section(note: str, total: int) -> str:
    sorted_cls = ' class="asc"'  # the initial order: score ascending, worst first
    header = "".join(f'<th data-col="{i}"{sorted_cls if name == "score" else ""}>{_e(name.replace("_", " "))}</th>'
                     for i, name in enumerate(TABLE_COLUMNS[:-1]))
    return (
        (f'<p class="note warn">{_e(note)}</p>' if note else f'<p class="note">All {total:,} findings rows.</p>')
        + '<div class="controls"><input type="search" id="f-text" placeholder="filter sample id or label" '
        'aria-label="filter"><label>check <select id="f-check"><option value="">all</option></select></label>'
        '<label>split <select id="f-split"><option value="">all</option></select></label>'
        '<label><input type="checkbox" id="f-flagged"> flagged only</label><span id="findings-shown" class="note"></span></div>'
        '<div class="scroll"><table id="findings-table"><thead><tr><th></th>'
        + header
        + '</tr></thead><tbody></tbody></table></div><p><button id="findings-more" hidden>show more</button></p>'
    )

"""The rich summary table printed on stderr after an audit."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def format_threshold(threshold: dict) -> str:
    """A short human form of a check's learned threshold (``summary.json`` has it all).

    A threshold of a shape this version does not know (another version's, or edited by hand)
    is shown as its JSON: it is only displayed, so it must never stop a report.
    """
    if not threshold:
        return ""
    try:
        return _format_threshold(threshold)
    except (KeyError, TypeError, ValueError):
        return json.dumps(threshold, sort_keys=True, default=str)


def _format_threshold(threshold: dict) -> str:
    if "rule" in threshold:
        return str(threshold["rule"])
    if "min_similarity" in threshold:
        return f"similarity >= {threshold['min_similarity']:g}"
    if "median_class_size" in threshold:
        missing = threshold.get("not_in_train")
        missing = f"; none in train: {_first_names(missing)}" if isinstance(missing, list) and missing else ""
        return f"class size < {threshold['below']:g} ({threshold['scope']}){missing}"
    stat = threshold.get("statistic", "")
    cuts = []
    if "below" in threshold:
        cuts.append(f"< {threshold['below']:.4g}")
    if "above" in threshold:
        cuts.append(f"> {threshold['above']:.4g}")
    if not cuts and "z_cut" in threshold:  # a z-score without a cut in the statistic's units (outliers' combined z)
        cuts.append(f"> {threshold['z_cut']:.4g}")
    text = f"{stat} {' or '.join(cuts)}"
    return text + (f" or {threshold['or']}" if "or" in threshold else "")


#: Class names a threshold's text lists at most; ``summary.json`` keeps them all.
MAX_NAMES_SHOWN = 10


def _first_names(names: list) -> str:
    """The first :data:`MAX_NAMES_SHOWN` of ``names``, and how many more: a long-tailed dataset of
    10,000 classes had 613 classes without a train sample: 620 lines of the summary table."""
    shown = ", ".join(map(str, names[:MAX_NAMES_SHOWN]))
    more = len(names) - MAX_NAMES_SHOWN
    return f"{shown} and {more:,} more (summary.json: not_in_train)" if more > 0 else shown


def print_summary(summary: dict, run_dir: Path, console: Console) -> None:
    """Print per-check counts, thresholds, worst examples and where the run is."""
    table = Table(title=f"datacheck audit: {summary['samples']} samples", title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("flagged", justify="right", no_wrap=True)
    table.add_column("%", justify="right", no_wrap=True)
    table.add_column("threshold", ratio=1)
    table.add_column("worst examples", ratio=1, overflow="ellipsis")
    for check, info in summary["checks"].items():
        style = "bold red" if info["flagged"] else ""
        # Sample ids, labels and paths are user text: escaped, so "[x]" is shown, not read as markup.
        table.add_row(check, str(info["flagged"]), f"{info['percent']:.1f}", escape(format_threshold(info["threshold"])),
                      escape(" ".join(info["worst"])), style=style)
    console.print(table)
    skipped = summary["skipped_files"]
    if skipped.get("non_image"):
        console.print(f"skipped {skipped['non_image']} non-image file(s)")
    if skipped.get("outside_class_folder"):
        console.print(f"[yellow]skipped {skipped['outside_class_folder']} image(s) outside any class folder "
                      "(no class to give them)[/]")
    if summary["missing_files"]:
        console.print(f"[yellow]{len(summary['missing_files'])} listed file(s) missing and left out[/]")
    corrupt = summary["checks"].get("corrupt", {}).get("flagged", 0)
    if corrupt:
        console.print(f"[yellow]{corrupt} image(s) could not be decoded (see check 'corrupt')[/]")
    console.print(f"run written to {run_dir}", markup=False)


def failed_gates(summary: dict) -> list[str]:
    """One line per exceeded ``--fail-on`` gate, saying what was found."""
    return [
        f"gate failed: {g['gate']} (flagged {g['flagged']} of {g['scored']}, {g['percent']:.1f}%)"
        for g in summary["gates"]
        if g["failed"]
    ]


#: Rows of a per-class table printed on the terminal; the rest are counted in a caption.
MAX_PRINTED_ROWS = 50


def print_table(frame, console: Console, title: str, *, rank=None, more: str = "") -> None:
    """Print a small DataFrame (index = row names, e.g. classes) as a rich table.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows to print, index = row names.
    console : rich.console.Console
    title : str
    rank : callable, optional
        ``rank(frame)``: how much each row matters, shape (len(frame),) (e.g. the samples a
        class gains or loses), called only when the frame is longer than
        :data:`MAX_PRINTED_ROWS`; then only that many rows of highest rank are printed, in the
        frame's order, and a caption counts the rest: with 10,000 classes the table was 10,000
        lines of stderr that no one reads to its end.
    more : str
        Where the rows left out can be read, for the caption (``"changes.parquet"``).
    """
    import numpy as np

    left_out = 0
    if rank is not None and len(frame) > MAX_PRINTED_ROWS:
        order = np.argsort(-np.asarray(rank(frame), dtype=np.float64), kind="stable")[:MAX_PRINTED_ROWS]
        left_out = len(frame) - MAX_PRINTED_ROWS
        frame = frame.iloc[np.sort(order)]
    noun = "classes" if frame.index.name == "class" else "rows"
    caption = (f"{left_out:,} more {noun} with fewer changes not shown" + (f"; {more}" if more else "")
               if left_out else None)
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column(frame.index.name or "", no_wrap=True)
    for column in frame.columns:
        table.add_column(str(column), justify="right", no_wrap=True)
    for name, row in frame.iterrows():
        table.add_row(escape(str(name)), *(escape(str(v)) for v in row.tolist()))
    console.print(table)

"""The human review round-trip: export the queue as CSV or Label Studio tasks, import decisions.

CSV: one row per queued sample; a reviewer fills ``decision`` with ``relabel``, ``drop`` or
``keep`` (blank: undecided) and, for ``relabel``, ``new_label`` (blank: accept the suggestion). Text
cells a spreadsheet would run as formulas are escaped with a leading ``'`` (CSV injection) and
read back as they were.

Label Studio: a JSON list of tasks (``data.image`` is a local-files URL relative to the dataset
root, the suggestion is a pre-annotation under ``predictions``), written with the labeling
config that matches it (``<name>.label_config.xml``: one choice per class plus ``(drop)``).
Its JSON export is imported, tasks matched by ``data.sample_id``: the most recent annotation of
each task that was not cancelled decides (one without a choice leaves the task in review).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

from ..errors import BadDataError, UsageError
from ..reporting.csv import escape_formulas, unescape_formulas
from ..runs import atomic_write
from ..spreadsheet_csv import csv_line_end, read_spreadsheet_csv

DECISIONS = ("relabel", "drop", "keep")
#: The Label Studio choice that means "remove this sample".
DROP_CHOICE = "(drop)"
REVIEW_COLUMNS = ["sample_id", "path", "split", "label", "suggested_label", "confidence", "checks", "reason",
                  "decision", "new_label"]
#: Characters XML 1.0 does not allow, escaped or not (a class folder's name may hold them).
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
#: The columns of a filled review CSV that its decisions are read from.
REVIEW_READ_COLUMNS = ("sample_id", "decision", "new_label")
_SHOW = 3


def review_queue(frame: pd.DataFrame, changes: pd.DataFrame, ranks: pd.Series | None = None) -> pd.DataFrame:
    """Samples under review with what a reviewer needs, in the audit's review order.

    ``ranks`` (sample_id → place, 1 = first: :func:`datacheck.fusion.review_ranks`) orders
    the queue; samples without a rank follow, and ties go to the most confident suggestion.
    """
    queue = changes[changes["action"] == "review"]
    rows = frame.set_index("sample_id").loc[queue["sample_id"], ["path", "split"]].reset_index()
    out = pd.DataFrame({
        "sample_id": queue["sample_id"].to_numpy(),
        "path": rows["path"].to_numpy(),
        "split": rows["split"].to_numpy(),
        "label": queue["old_label"].to_numpy(),
        "suggested_label": queue["new_label"].to_numpy(),
        "confidence": queue["confidence"].round(4).to_numpy(),
        "checks": queue["checks"].to_numpy(),
        "reason": queue["reason"].to_numpy(),
        "decision": "",
        "new_label": "",
    })
    out = out.sort_values("confidence", ascending=False, kind="stable", na_position="last")
    if ranks is not None and len(ranks):
        out = out.iloc[np.argsort(out["sample_id"].map(ranks).fillna(np.inf).to_numpy(), kind="stable")]
    return out.reset_index(drop=True)


def write_review_csv(queue: pd.DataFrame, path: Path) -> Path:
    """Write the review queue as CSV for a spreadsheet: text cells that it would run as a formula
    (a sample id ``=HYPERLINK(...)``) are escaped with a leading ``'``, which
    :func:`read_review_table` removes again."""
    table = escape_formulas(queue.loc[:, REVIEW_COLUMNS])
    end = csv_line_end(table)  # a file name holding "\r" is quoted only with "\r\n"
    return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False, lineterminator=end))


def write_label_studio(queue: pd.DataFrame, classes: list[str], path: Path, model_version: str) -> tuple[Path, Path]:
    """Label Studio tasks (JSON) and their labeling config (XML, beside it).

    Serve the dataset root to Label Studio as local files
    (``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true``,
    ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<dataset root>``) and the images show.
    """
    choices = label_studio_choices(classes)
    tasks = []
    for row in queue.itertuples(index=False):
        task = {"data": {"image": "/data/local-files/?d=" + quote(row.path), "sample_id": row.sample_id,
                         "label": None if pd.isna(row.label) else row.label, "checks": row.checks}}
        if isinstance(row.suggested_label, str) and row.suggested_label:
            task["predictions"] = [{
                "model_version": model_version,
                "score": None if pd.isna(row.confidence) else float(row.confidence),
                "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                            "value": {"choices": [row.suggested_label]}}],
            }]
        tasks.append(task)
    text = json.dumps(tasks, indent=1, ensure_ascii=False) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in choices)
    config = (f'<View>\n  <Image name="image" value="$image"/>\n'
              f'  <Choices name="label" toName="image" choice="single" showInline="true">\n{choices}\n  </Choices>\n'
              f'</View>\n')
    config_path = label_config_path(path)
    atomic_write(config_path, lambda tmp: tmp.write_text(config, encoding="utf-8"))
    return path, config_path


def label_studio_choices(classes: list[str]) -> list[str]:
    """The Label Studio choices for ``classes``: one per class, then :data:`DROP_CHOICE`.

    Raises
    ------
    BadDataError
        A class is named :data:`DROP_CHOICE` (its choice would drop the sample, not relabel
        it), or its name holds a character that XML 1.0 cannot hold, even escaped (the
        labeling config would not parse). The review CSV holds either.
    """
    for name in classes:
        if name == DROP_CHOICE or _NOT_XML.search(name):
            why = (f"{DROP_CHOICE} is the choice that drops a sample" if name == DROP_CHOICE
                   else "XML, the labeling config's format, cannot hold its control character")
            raise BadDataError(f"cannot export class {name!r} to Label Studio: {why}; rename the class, "
                               "or review with --export-review FILE.csv")
    return [*classes, DROP_CHOICE]


def label_config_path(tasks_path: Path) -> Path:
    """Where the Label Studio labeling config goes beside the tasks file ``tasks_path``."""
    return tasks_path.with_name(tasks_path.stem + ".label_config.xml")


def read_decisions(path: Path, frame: pd.DataFrame, suggestions: pd.Series, classes: list[str]) -> pd.DataFrame:
    """Decisions from a filled review CSV or a Label Studio JSON export.

    Parameters
    ----------
    path : pathlib.Path
    frame : pandas.DataFrame
        The audited manifest: every decided sample must be in it.
    suggestions : pandas.Series
        Suggested label by sample id: a CSV ``relabel`` with a blank ``new_label`` accepts
        the file's own ``suggested_label`` (what the reviewer saw) or, in a file without that
        column, this one.
    classes : list of str
        Allowed labels for ``relabel``.

    Returns
    -------
    pandas.DataFrame
        ``sample_id, action, new_label`` for the decided samples (undecided ones left out).

    Raises
    ------
    BadDataError
        Unreadable or malformed file, unknown decisions or labels, sample ids that are not in
        the audited dataset (a review from another run), the same sample decided twice.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--import-review {path}: " + ("is a folder; give the review file in it" if path.is_dir() else
                                                         "file not found" if not path.exists() else "not a regular file"))
    if path.suffix.lower() == ".json":
        decisions = _label_studio_decisions(path, frame)
    elif path.suffix.lower() == ".csv":
        decisions = _csv_decisions(path, suggestions)
    else:
        raise UsageError(f"--import-review {path}: expected a .csv review file or a Label Studio .json export")
    return _validated(decisions, path, frame, classes)


def read_review_table(path: Path) -> pd.DataFrame:
    """A review CSV as text columns, as a spreadsheet may have saved it.

    Read by :func:`datacheck.spreadsheet_csv.read_spreadsheet_csv`: UTF-8 (with or without a
    byte-order mark), UTF-16 with a byte-order mark (Excel's "Unicode text"), else
    Windows-1252 (Excel's "CSV" on Western-European Windows); separated by ``,``, ``;``
    (Excel in a decimal-comma locale) or tabs, the one that makes ``sample_id``, ``decision``
    or ``new_label`` a column of the header. Every cell is text, an empty one ``""``. Cells
    :func:`write_review_csv` escaped are read as they were (a sample id ``'=x`` is ``=x``).

    Raises
    ------
    BadDataError
        The file cannot be read, is in none of these encodings, is ragged or is not CSV.
    """
    table = read_spreadsheet_csv(path, expected=REVIEW_READ_COLUMNS, what="review file", dtype=str,
                                 keep_default_na=False)
    return unescape_formulas(table)


def _csv_decisions(path: Path, suggestions: pd.Series) -> pd.DataFrame:
    table = read_review_table(path)
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REVIEW_READ_COLUMNS if c not in table.columns]
    if missing:
        raise BadDataError(f"review file {path} lacks column(s) {', '.join(missing)} (export one with --export-review)")
    table["decision"] = table["decision"].str.strip().str.lower()
    table["new_label"] = table["new_label"].str.strip()
    bad = table[~table["decision"].isin([*DECISIONS, ""])]
    if len(bad):
        row = int(bad.index[0]) + 2  # header is line 1
        raise BadDataError(f"review file {path} line {row}: decision {bad['decision'].iloc[0]!r} is not one of "
                           f"{', '.join(DECISIONS)} (or blank)")
    table = table[table["decision"] != ""]
    accept = (table["decision"] == "relabel") & (table["new_label"] == "")
    if "suggested_label" in table.columns:  # accept the suggestion the reviewer saw (blank: none)
        table.loc[accept, "new_label"] = table.loc[accept, "suggested_label"].str.strip()
    else:
        table.loc[accept, "new_label"] = table.loc[accept, "sample_id"].map(suggestions).fillna("")
    table.loc[table["decision"] != "relabel", "new_label"] = ""
    return pd.DataFrame({"sample_id": table["sample_id"].str.strip(), "action": table["decision"],
                         "new_label": table["new_label"].replace("", None)})


def _label_studio_decisions(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Decisions from a Label Studio JSON export, matched to samples by ``data.sample_id``
    (what :func:`write_label_studio` stores), never by the tasks' order: Label Studio exports
    them in its own order, and a task may be left out or added."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))  # tolerate a BOM, as for CSV
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise BadDataError(f"cannot read Label Studio export {path}: {str(exc)[:200]}") from exc
    if not isinstance(tasks, list):
        raise BadDataError(f"Label Studio export {path} must be a JSON list of tasks (Export → JSON)")
    given = frame.set_index("sample_id")["label"]
    rows = []
    for number, task in enumerate(tasks, start=1):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("sample_id"), str):
            raise BadDataError(f"Label Studio export {path}: task {number} has no data.sample_id "
                               "(import tasks made by --export-label-studio)")
        sample_id = data["sample_id"]
        if sample_id not in given.index:  # annotated or not: the export is of another dataset or run
            raise BadDataError(f"Label Studio export {path}: task {number} is for sample {sample_id!r}, which is not "
                               "in the audited dataset; was it exported from another run?")
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            raise BadDataError(f"Label Studio export {path}: task {number} has annotations that are not a list")
        choice = _latest_choice(annotations, path, number)
        if choice is None:
            continue  # not annotated yet, or submitted without a choice: stays in review
        if choice == DROP_CHOICE:
            rows.append((sample_id, "drop", None))
        elif choice == given.get(sample_id):
            rows.append((sample_id, "keep", None))
        else:
            rows.append((sample_id, "relabel", choice))
    return pd.DataFrame(rows, columns=["sample_id", "action", "new_label"])


def _annotation_time(annotation: dict):
    """When an annotation was last saved (``updated_at``, else ``created_at``, as UTC), or None."""
    from datetime import datetime, timezone

    for key in ("updated_at", "created_at"):
        value = annotation.get(key)
        if isinstance(value, str):
            try:
                when = datetime.fromisoformat(value.strip())
            except ValueError:
                continue
            return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
    return None


def _latest_choice(annotations: list, path: Path, number: int) -> str | None:
    """The chosen value of the most recent annotation that was not cancelled (by
    ``updated_at``/``created_at``; without them, the last one listed), or None: none, or the
    most recent one has an empty ``result`` (submitted without a choice)."""
    from datetime import datetime, timezone

    earliest = datetime.min.replace(tzinfo=timezone.utc)
    valid = [(i, a) for i, a in enumerate(annotations) if isinstance(a, dict) and not a.get("was_cancelled")]
    if not valid:
        return None
    _, latest = max(valid, key=lambda item: (_annotation_time(item[1]) or earliest, item[0]))
    results = latest.get("result") or []
    if isinstance(results, list) and not results:
        return None
    for result in results if isinstance(results, list) else [None]:
        value = result.get("value") if isinstance(result, dict) else None
        choices = value.get("choices") if isinstance(value, dict) else None
        if isinstance(choices, list) and len(choices) == 1 and isinstance(choices[0], str):
            return choices[0]
    raise BadDataError(f"Label Studio export {path}: task {number} has an annotation without a single choice")


def _validated(decisions: pd.DataFrame, path: Path, frame: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    unknown = decisions.loc[~decisions["sample_id"].isin(frame["sample_id"]), "sample_id"]
    if len(unknown):
        first = ", ".join(repr(s) for s in unknown.head(_SHOW))
        raise BadDataError(f"{len(unknown)} sample id(s) in {path} are not in the audited dataset (first: {first}); "
                           "was it exported from another run?")
    twice = decisions.loc[decisions["sample_id"].duplicated(), "sample_id"]
    if len(twice):
        raise BadDataError(f"{path} decides sample {twice.iloc[0]!r} more than once")
    relabel = decisions[decisions["action"] == "relabel"]
    missing = relabel[relabel["new_label"].isna()]
    if len(missing):
        raise BadDataError(f"{path}: relabel of {missing['sample_id'].iloc[0]!r} names no new_label and has no suggestion")
    foreign = relabel[~relabel["new_label"].isin(classes)]
    if len(foreign):
        row = foreign.iloc[0]
        raise BadDataError(f"{path}: new label {row['new_label']!r} for {row['sample_id']!r} is not one of the "
                           f"dataset's {len(classes)} classes")
    return decisions.reset_index(drop=True)

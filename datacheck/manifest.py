"""Load a dataset as a validated manifest: one row per sample.

Sources
-------
* a folder laid out as ``root/<class>/*`` or ``root/<split>/<class>/*``;
* a CSV, Parquet or JSONL file with columns ``path,label[,split,sample_id,...]``, whose paths
  are relative to the manifest file's folder (absolute paths must point inside that folder).

The result follows the manifest contract of DESIGN.md: ``sample_id`` (default: the path
relative to the dataset root), ``path`` (relative, POSIX style), ``label`` (class name as a
string, or null), ``split`` (``train``/``val``/``test`` or null), then the user's own columns,
untouched. Nothing here ever writes to the dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from .errors import BadDataError, UsageError
from .folder_scan import SPLIT_ALIASES, scan_folder
from .spreadsheet_csv import csv_line_end, read_spreadsheet_csv

MANIFEST_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: How a message names the files a folder scan skipped, by reason.
_SKIP_WORDS = {"non_image": "non-image file(s)", "outside_class_folder": "image(s) outside any class folder"}
CONTRACT_COLUMNS = ["sample_id", "path", "label", "split"]
#: Columns of a Parquet manifest that hold per-sample arrays (list columns), read by
#: :mod:`datacheck.features.arrays` as (N, K)/(N, D) arrays, never as pandas objects.
ARRAY_COLUMNS = ("pred_probs", "embeddings")
_SHOW = 3  # how many offending values an error message names
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # s3://, gs://, https://, file://
_WINDOWS_ABSOLUTE = re.compile(r"[A-Za-z]:[\\/]|\\\\")  # C:\data, D:/x.png, \\server\share (UNC)


@dataclass
class Manifest:
    """A validated dataset manifest.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per sample that exists on disk; columns ``sample_id, path, label, split``
        and then the user's extra columns in their original order.
    root : pathlib.Path
        Absolute, resolved dataset root; every ``path`` is relative to it.
    source : pathlib.Path
        The folder or manifest file the manifest was loaded from.
    format : str
        ``"folder"``, ``"csv"``, ``"parquet"`` or ``"jsonl"``.
    skipped : dict of str to int
        Files that were not samples, by reason (e.g. ``{"non_image": 3}``).
    missing : list of str
        Sample ids whose files do not exist (dropped; at most ``max_missing`` of them).
    fingerprint : str
        SHA-256 over ids, paths, labels, splits, file sizes and modification times: a cheap
        way to tell that a dataset changed since an audit.
    """

    frame: pd.DataFrame
    root: Path
    source: Path
    format: str
    skipped: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)
    fingerprint: str = ""

    def __len__(self) -> int:
        return len(self.frame)

    def abspaths(self) -> list[str]:
        """Absolute file paths, in row order."""
        root = str(self.root)
        return [os.path.join(root, p) for p in self.frame["path"]]

    @cached_property
    def id_rank(self) -> np.ndarray:
        """Each row's position (N,) in the order of the sample ids: by value when every id is a
        number (an arrays audit's row numbers; ids of one value, "01" and "1", by text), else as
        text.

        Whatever depends on the order of the samples (the folds and batches of a training,
        K-means++ seeding, a silhouette sample, ties of a greedy selection or of the findings'
        sort, which copy of a duplicate is kept) takes them in this order
        (``rows[np.argsort(manifest.id_rank[rows])]``), so the same samples listed in another
        order get the same findings. A folder's manifest is usually listed in it already."""
        keys = self.frame["sample_id"].astype(str)
        text = keys
        if len(keys) and not pd.isna(pd.to_numeric(keys.iloc[:1], errors="coerce")).any():  # else text: 1 s for 1M paths
            numbers = pd.to_numeric(keys, errors="coerce")
            keys = keys if numbers.isna().any() else numbers
        rank = np.empty(len(keys), np.int64)
        if keys is not text and keys.duplicated().any():
            # distinct ids of one value ("1" and "01", "1e1" and "10", ints past 2**53 read as
            # floats) went in row order: ties by text, so a shuffled manifest sorts them alike
            order = np.lexsort((np.argsort(np.argsort(text.to_numpy(), kind="stable")), keys.to_numpy()))
            rank[order] = np.arange(len(keys))
            return rank
        if keys.is_monotonic_increasing:  # a folder's manifest, an arrays audit's row numbers
            return np.arange(len(keys))
        rank[np.argsort(keys.to_numpy(), kind="stable")] = np.arange(len(keys))
        return rank

    def in_id_order(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` (M,) of the manifest sorted by :attr:`id_rank`."""
        rows = np.asarray(rows)
        return rows[np.argsort(self.id_rank[rows], kind="stable")]


def layout_notes(manifest: Manifest) -> list[str]:
    """What the user may have meant by a dataset folder whose layout reads oddly: one class
    folder whose images all lie in two or more subfolders of it (``DATA/animals/{cat,dog}``
    read as the single class ``animals``: no label check can run), a level too high; class
    folders read as one class (``cat`` and ``cat `` with a trailing space); a class folder
    with a blank name, whose images are read as unlabeled.

    Returns
    -------
    list of str
        One sentence per note (none for a manifest file, or a folder that reads as expected).
    """
    if manifest.format != "folder" or manifest.frame.empty:
        return []
    return _merged_class_notes(manifest.frame) + _one_class_notes(manifest)


def _merged_class_notes(frame: pd.DataFrame) -> list[str]:
    """Class folders whose names read as the same label (a label is stripped text in composed
    form, NFC, and a column of numbers reads 1.0 as 1, as a manifest's cells are): their images
    were merged silently."""
    split = frame["split"].notna()
    # the class folder: the first part of the path, or the second under a split folder; none
    # for the unlabeled images right in the root or a split folder
    folders = pd.concat([frame.loc[~split, "path"].str.extract(r"^([^/]*)/", expand=False),
                         frame.loc[split, "path"].str.extract(r"^[^/]*/([^/]*)/", expand=False)])
    pairs = pd.DataFrame({"folder": folders, "label": frame["label"]}).dropna(subset=["folder"]).drop_duplicates()
    notes = []
    for label, group in pairs.dropna(subset=["label"]).groupby("label", sort=True):
        if len(group) > 1:
            # a decomposed (NFD) name is shown with its combining marks escaped: it prints as the other
            names = ", ".join(repr(str(f)) if unicodedata.is_normalized("NFC", str(f)) else ascii(str(f))
                              for f in sorted(group["folder"]))
            ways = ["without surrounding spaces"]
            if not all(unicodedata.is_normalized("NFC", str(f)) for f in group["folder"]):
                ways.append("in Unicode's composed form (NFC)")
            if any(unicodedata.normalize("NFC", str(f).strip()) != label for f in group["folder"]):
                ways.append("and 1.0 as 1")
            why = ", ".join(ways)
            notes.append(f"the class folders {names} are read as one class, {str(label)!r} (a class name is read "
                         f"{why}): rename them if they are different classes")
    blank = sorted(pairs.loc[pairs["label"].isna(), "folder"])
    if blank:
        names = ", ".join(repr(str(f)) for f in blank)
        notes.append(f"the class folder name(s) {names} are blank, so their images are read as unlabeled: "
                     "rename them after their class")
    return notes


def _one_class_notes(manifest: Manifest) -> list[str]:
    """One class folder holding every image in two or more subfolders: a level too high."""
    frame = manifest.frame
    if frame["label"].nunique() != 1:
        return []
    depth = 1 if frame["split"].notna().any() else 0  # the class folder: DATA/<class>/ or DATA/<split>/<class>/
    if len(PurePosixPath(frame["path"].iloc[0]).parts) < depth + 3:  # the usual case, told by one row
        return []
    parts = [PurePosixPath(path).parts for path in frame["path"]]
    if any(len(p) < depth + 3 for p in parts):  # an image right in the class folder: the class is meant
        return []
    below = sorted({p[depth + 1] for p in parts})
    if len(below) < 2:
        return []
    shown = ", ".join(below[:5]) + (", ..." if len(below) > 5 else "")
    meant = (f"audit {manifest.source / parts[0][0]} instead" if depth == 0
             else "make those the class folders (DATA/<split>/<class>/)")
    return [f"every image lies under one class folder, {parts[0][depth]!r}, in {len(below)} subfolders "
            f"({shown}), so no label check can run: if those are the classes, {meant}"]


def load_manifest(source: "str | os.PathLike | pd.DataFrame", max_missing: int = 0, root: str | os.PathLike | None = None,
                  *, files: bool = True) -> Manifest:
    """Load and validate a dataset folder or manifest file.

    Parameters
    ----------
    source : path-like or pandas.DataFrame
        Dataset folder, a ``.csv``/``.parquet``/``.jsonl`` manifest file, or a manifest
        DataFrame (paths relative to ``root``, default the working directory).
    max_missing : int, default 0
        How many listed files may be missing before the manifest is rejected; missing
        files below that count are dropped and listed in :attr:`Manifest.missing`.
    root : path-like, optional
        For a manifest file: the folder its relative paths start from and that no path may
        leave (default: the manifest's own folder). Name it to read a manifest kept apart
        from its images, such as the one ``relabel --out`` writes with absolute paths.
    files : bool, default True
        False for a manifest of samples that exist as arrays (embeddings, probabilities): its
        ``path`` column is optional and never read, only carried; ``sample_id`` defaults to the
        path or, without one, the row number. The manifest's format is then ``"arrays"``.

    Raises
    ------
    BadDataError
        Unreadable manifest, no samples, unsafe or duplicate paths/ids, unknown split names,
        or more than ``max_missing`` missing files.
    """
    if isinstance(source, pd.DataFrame):
        require_flat_columns(source, "the manifest DataFrame")
    if not files:
        return _array_manifest(source, root)
    if isinstance(source, pd.DataFrame):  # the Python API: a manifest already in memory
        root = Path(root if root is not None else os.getcwd()).resolve()
        _require_root(root)
        where = Path("<DataFrame>")
        if source.empty:
            raise BadDataError("the manifest DataFrame has no rows")
        _require_path_column(source, where)
        frame = _normalise(source.reset_index(drop=True).copy(), root, where)
        frame, missing, fingerprint = _check_files(frame, root, where, max_missing)
        return Manifest(frame, root, where, "dataframe", {}, missing, fingerprint)
    source = Path(source)
    if not source.exists():
        raise BadDataError(f"dataset not found: {source}")
    if source.is_dir() and root is not None and Path(root).resolve() != source.resolve():
        raise UsageError("--root applies to a manifest file; a dataset folder is its own root")
    if source.is_dir():
        root = source.resolve()
        rows, skipped = scan_folder(root)
        frame = pd.DataFrame(rows, columns=["path", "label", "split"])
        fmt = "folder"
    else:
        fmt = MANIFEST_FORMATS.get(source.suffix.lower())
        if fmt is None:
            known = ", ".join(sorted(MANIFEST_FORMATS))
            raise BadDataError(f"unsupported manifest type '{source.suffix}' for {source} (expected a folder or {known})")
        root = Path(root).resolve() if root is not None else source.resolve().parent
        _require_root(root)
        frame = _read_table(source, fmt)
        skipped = {}
    if frame.empty:
        detail = "".join(f", skipped {n} {_SKIP_WORDS[why]}" for why, n in skipped.items())
        hint = ("; a folder dataset keeps each class's images in a folder named after the class "
                "(root/<class>/... or root/<split>/<class>/...)" if skipped.get("outside_class_folder") else "")
        raise BadDataError(f"no images found in {source}{detail}{hint}")
    frame = _normalise(frame, root, source)
    frame, missing, fingerprint = _check_files(frame, root, source, max_missing)
    return Manifest(frame, root, source, fmt, skipped, missing, fingerprint)


def _array_manifest(source: "str | os.PathLike | pd.DataFrame", root) -> Manifest:
    """The manifest of an array audit: ids, labels and splits, no files (see :func:`load_manifest`)."""
    if isinstance(source, pd.DataFrame):
        where, frame = Path("<DataFrame>"), source.drop(columns=[c for c in ARRAY_COLUMNS if c in source])
    else:
        where = Path(source)
        fmt = MANIFEST_FORMATS.get(where.suffix.lower())
        if where.is_dir() or fmt is None:
            known = ", ".join(sorted(MANIFEST_FORMATS))
            raise UsageError(f"arrays (--pred-probs, --embeddings) go with a manifest file ({known}) whose rows "
                             f"they align with, not {where}")
        if not where.exists():
            raise BadDataError(f"dataset not found: {where}")
        frame = _read_table(where, fmt, need_path=False)
    if frame.empty:
        raise BadDataError(f"the manifest {where} has no rows")
    frame = _normalise(frame, None, where)
    # Vectorised: a row-by-row digest costs seconds at a million rows.
    hashed = pd.util.hash_pandas_object(frame[CONTRACT_COLUMNS].astype("string"), index=False).to_numpy()
    fingerprint = hashlib.sha256(hashed.tobytes()).hexdigest()
    base = Path(root).resolve() if root is not None else (where.resolve().parent if where.name != "<DataFrame>" else Path(os.getcwd()))
    return Manifest(frame, base, where, "arrays", fingerprint=fingerprint)


# --------------------------------------------------------------------------- manifest files


def _require_root(root: Path) -> None:
    if not root.is_dir():
        raise BadDataError(f"dataset root {root} is a file, not a folder" if root.exists() else f"dataset root not found: {root}")


def _read_table(path: Path, fmt: str, need_path: bool = True) -> pd.DataFrame:
    from .engine.image_stats import require_regular_file

    try:
        require_regular_file(path)  # a named pipe or device would block the read for ever
        if fmt == "csv":
            # pandas reads "NA", "None", "null", "n/a", "nan"... as missing. The extra columns keep
            # that (and the types it gives them), but in the columns datacheck interprets these
            # are names: a class folder called "NA" is a class, and relabel writes it back as
            # "NA". There only an empty cell is missing: those columns are read verbatim.
            frame = read_spreadsheet_csv(path, expected=CONTRACT_COLUMNS, what="manifest", verbatim=CONTRACT_COLUMNS)
        elif fmt == "parquet":
            # Array (list) columns are read as arrays by datacheck.features.arrays, not as a
            # million pandas objects.
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            frame = pd.read_parquet(path, columns=[c for c in names if c not in ARRAY_COLUMNS])
        else:
            # utf-8-sig: a byte-order mark (Windows editors) is read past, as for CSV
            frame = pd.read_json(path, lines=True, dtype=False, encoding="utf-8-sig")
    except TypeError as exc:  # pandas on a JSONL line that is an array, a number or null
        raise BadDataError(f"cannot read manifest {path}: {_non_object_line(path)}") from exc
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        # pandas/pyarrow errors are ValueError/OSError subclasses; EmptyDataError included.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if fmt == "jsonl" and isinstance(exc, ValueError) and not isinstance(exc, UnicodeDecodeError):
            # pandas names a character offset into the whole file ("at position 1280"): name the line
            try:
                reason = _non_object_line(path, reason)
            except (OSError, UnicodeDecodeError):
                pass
        raise BadDataError(f"cannot read manifest {path}: {reason}") from exc
    if not len(frame):  # a header only, or blank lines: not "no 'path' column"
        raise BadDataError(f"the manifest {path} has no rows")
    if need_path:
        _require_path_column(frame, path)
    return frame


def require_flat_columns(frame: pd.DataFrame, what: str) -> None:
    """A manifest DataFrame's columns are single names, each once: ``frame["label"]`` must be
    one column, not a table (which failed later as an AttributeError). ``what`` names the
    frame in the message."""
    if frame.columns.nlevels > 1:
        raise BadDataError(f"{what} has {frame.columns.nlevels}-level columns; flatten them to single names "
                           "(path, label, ...)")
    twice = frame.columns[frame.columns.duplicated()]
    if len(twice):
        raise BadDataError(f"{what} has the column {twice[0]!r} twice; each column must have its own name")


def _require_path_column(frame: pd.DataFrame, source: Path) -> None:
    if "path" not in frame.columns:
        columns = ", ".join(map(str, frame.columns)) or "none"
        arrays = [c for c in ARRAY_COLUMNS if c in frame.columns]
        # A JSONL or CSV file holds lists as well as Parquet: say why its columns were not read
        # as the arrays of an audit of arrays, and how to give them.
        hint = (f"; its {' and '.join(arrays)} are read as arrays from a Parquet manifest only: write it as Parquet, "
                f"or give them as .npy files ({', '.join('--' + c.replace('_', '-') for c in arrays)})") if arrays else ""
        raise BadDataError(f"manifest {source} has no 'path' column (columns: {columns}){hint}")


def _non_object_line(path: Path, otherwise: str = "every line must be a JSON object") -> str:
    """Which line of a JSONL manifest is not a JSON object (read again only on that error);
    ``otherwise`` when every line is one."""
    with open(path, encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    value = json.loads(line)
                except ValueError:
                    return f"line {number} is not JSON"
                if not isinstance(value, dict):
                    return f"line {number} is {type(value).__name__ if value is not None else 'null'}, not a JSON object"
    return otherwise


# --------------------------------------------------------------------------- validation


def _normalise(frame: pd.DataFrame, root: Path | None, source: Path) -> pd.DataFrame:
    """Bring a raw table to the manifest contract and reject unsafe or ambiguous rows.

    ``root`` None: the rows are arrays, not files; a path is optional and only carried."""
    frame = frame.reset_index(drop=True)
    extras = [c for c in frame.columns if c not in CONTRACT_COLUMNS]
    out = pd.DataFrame(index=frame.index)
    if root is not None:
        folders: dict = {}  # resolved once per folder: a dataset has few folders and many files
        out["path"] = [_safe_relpath(p, root, source, i, folders) for i, p in enumerate(frame["path"].tolist())]
    elif "path" in frame:
        out["path"] = _as_text(frame["path"], source)
    else:  # row numbers, built as Arrow strings (a million Python strings cost seconds)
        import pyarrow as pa

        out["path"] = pd.array(pa.array(np.arange(len(frame))).cast(pa.string()), dtype="string")
    out["sample_id"] = _as_text(frame["sample_id"], source) if "sample_id" in frame else out["path"]
    out["label"] = _composed(_as_text(frame["label"], source)) if "label" in frame else pd.Series(pd.NA, index=frame.index, dtype="string")
    out["split"] = _normalise_splits(frame["split"], source) if "split" in frame else pd.Series(pd.NA, index=frame.index, dtype="string")

    if out["sample_id"].isna().any():
        row = int(out["sample_id"].isna().to_numpy().argmax())
        raise BadDataError(f"empty sample_id in {source} (row {row + 1})")
    dup = out["sample_id"][out["sample_id"].duplicated(keep=False)]
    if len(dup):
        names = ", ".join(repr(s) for s in list(dict.fromkeys(dup))[:_SHOW])
        raise BadDataError(f"{dup.nunique()} duplicate sample id(s) in {source}: {names}")
    return pd.concat([out[CONTRACT_COLUMNS], frame[extras]], axis=1)


def _as_text(column: pd.Series, source: Path) -> pd.Series:
    """Labels and ids are names: 3 and "3" are the same class, blanks are missing."""
    if pd.api.types.is_object_dtype(column.dtype):  # mixed cells, maybe lists or mappings: one by one
        values = [_cell_text(v, column.name, source, i) for i, v in enumerate(column)]
        return pd.Series(values, index=column.index, dtype="string")
    text = column.astype("string").str.strip()
    if pd.api.types.is_float_dtype(column.dtype):  # a null among integers: 1.0 is the class 1
        whole = column.notna() & (column % 1 == 0) & (column.abs() < 2**53)  # exactly representable
        text[whole] = column[whole].astype(np.int64).astype("string")
    elif text.str.fullmatch(r"[+-]?\d+(\.\d*)?").fillna(True).all():
        # A CSV column of numbers, read as text: written from a number column with a gap,
        # its integers read "1.0", the class 1 of the same labels saved as Parquet or JSONL.
        whole = text.str.fullmatch(r"[+-]?\d+\.0*").fillna(False).astype(bool)
        text[whole] = text[whole].str.replace(r"\.0*$", "", regex=True)
    return text.mask(text == "")


def _composed(labels: pd.Series) -> pd.Series:
    """``labels`` in Unicode's composed form (NFC). A name typed or saved on a Mac is often
    decomposed (NFD: ``e`` + a combining accent), the same text elsewhere composed; a class
    folder ``café`` of each form was two classes that print alike (a class of 1 flagged as
    imbalanced beside its namesake of 300). Only the few distinct labels are looked at."""
    names = [name for name in labels.dropna().unique() if not name.isascii()]
    changed = {name: unicodedata.normalize("NFC", name) for name in names}
    changed = {name: nfc for name, nfc in changed.items() if nfc != name}
    return labels.replace(changed) if changed else labels


def _cell_text(value, column: str, source: Path, row: int) -> str | None:
    """One cell of a column datacheck interprets, as stripped text; ``None`` when missing."""
    # JSONL and Parquet cells can hold lists and mappings; str() would make "['circle']" a class.
    if isinstance(value, (list, tuple, dict, set, np.ndarray)):
        shown = repr(value.tolist() if isinstance(value, np.ndarray) else value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise BadDataError(f"{column} in {source} (row {row + 1}) is not a single value: {shown}")
    if pd.isna(value):
        return None
    if isinstance(value, bytes):
        # Text stored as bytes: a Parquet string column without its UTF-8 annotation (Hive,
        # Impala, Spark's default), tf.data's strings. str() made the split b'train' unknown
        # and the class cat a class named "b'cat'".
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadDataError(f"{column} in {source} (row {row + 1}) is bytes that are not UTF-8 text: "
                               f"{value[:40]!r}") from None
    # A null among integers makes the whole column float (JSONL, Parquet): 1.0 is the class 1.
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value).strip() or None


def _normalise_splits(column: pd.Series, source: Path) -> pd.Series:
    text = _as_text(column, source).str.lower()
    unknown = sorted(set(text.dropna()) - set(SPLIT_ALIASES))
    if unknown:
        names = ", ".join(repr(s) for s in unknown[:_SHOW])
        raise BadDataError(f"unknown split name(s) {names} in {source}; expected train, val (valid, validation) or test")
    return text.map(SPLIT_ALIASES, na_action="ignore").astype("string")


def _safe_relpath(value, root: Path, source: Path, row: int, folders: dict) -> str:
    """``value`` as a POSIX path relative to ``root``; refuse anything that leaves it.

    ``folders`` maps folders to their resolved paths, filled as rows are checked."""
    raw = _cell_text(value, "path", source, row)
    if raw is None:
        raise BadDataError(f"empty path in {source} (row {row + 1}); every row needs a file path")
    if isinstance(value, str) and value != raw and os.path.exists(root / value):  # False on any OS error
        raw = value  # a name that really starts or ends with a space (" lead/x.png"), not a stray blank
    # No file system allows a NUL byte in a name: a broken cell, like an empty one, whatever
    # --max-missing says (and os.stat would raise ValueError on it).
    if "\x00" in raw:
        raise BadDataError(f"path contains a NUL byte: {raw!r} (row {row + 1} of {source})")
    if "://" in raw and _URL.match(raw) and not os.path.lexists(os.path.join(str(root), raw)):
        # os.path.normpath would make "s3://b/x.png" the missing file "s3:/b/x.png", on every row
        hint = ("list it as a plain path" if raw[:5].lower() == "file:" else
                "datacheck reads local files: download them and list their local paths")
        raise BadDataError(f"path is a URL, not a local file: {raw!r} (row {row + 1} of {source}); {hint}")
    if os.sep == "/" and _WINDOWS_ABSOLUTE.match(raw) and not _listed_file_exists(root, raw):
        # A drive or UNC path is absolute on Windows only: made relative here, every row was
        # one more missing file ("C:/data/cat/1.png" under the dataset root).
        base = ("the manifest's folder" if source.name != "<DataFrame>" and source.resolve().parent == root
                else "the dataset root")
        raise BadDataError(f"path is a Windows drive path, not a path on this machine: {raw!r} (row {row + 1} of "
                           f"{source}); paths must be relative to {base} {root} (or absolute on this machine)")
    if "\\" in raw and os.sep == "/" and not os.path.lexists(os.path.join(str(root), raw)):
        raw = raw.replace("\\", "/")  # written on Windows ("train\cat\1.png"), where "\" separates folders
    # Strings and os.path, not pathlib: this runs once per file of the dataset.
    top = str(root)
    normal = os.path.normpath(os.path.join(top, raw))  # an absolute raw path stays itself
    # Symlinks are followed: a link inside the dataset that points outside it is refused too.
    try:
        link = stat.S_ISLNK(os.lstat(normal).st_mode)  # a dangling symlink is present too
        present = True
    except (OSError, ValueError):
        # Too long a name (ENAMETOOLONG) and the like: no file is there to escape through, and
        # _check_files counts the row as missing, as it does for any path the OS cannot stat.
        present = False
    if not present:
        resolved = normal
    elif link:
        # A symlink loop (a.png -> a.png) resolves to a path that leads to no file, so nothing
        # can be read or escape through it; _check_files counts it as missing.
        resolved = os.path.realpath(normal)
    else:  # only its folders can be links: resolve each folder once
        folder, name = os.path.split(normal)
        if folder not in folders:
            folders[folder] = os.path.realpath(folder)
        resolved = os.path.join(folders[folder], name)
    inside = top if top.endswith(os.sep) else top + os.sep
    for path in (normal, resolved):
        if path != top and not path.startswith(inside):
            raise BadDataError(f"path escapes the dataset root {root}: {raw!r} (row {row + 1} of {source})")
    return normal[len(inside):].replace(os.sep, "/") or "."  # "." names the root: a folder, so missing


def _listed_file_exists(root: Path, raw: str) -> bool:
    """Whether a file is there as a manifest names it, ``\\`` read as a character or as a
    separator: a path that looks like a Windows one is then that file (a folder called ``C:``).

    Parameters
    ----------
    root : pathlib.Path
        The dataset root, which relative paths start from.
    raw : str
        The path as the manifest lists it.

    Returns
    -------
    bool
    """
    top = str(root)
    return os.path.lexists(os.path.join(top, raw)) or os.path.lexists(os.path.join(top, raw.replace("\\", "/")))


def _check_files(frame: pd.DataFrame, root: Path, source: Path, max_missing: int):
    """Drop rows whose file is missing (up to ``max_missing``) and fingerprint the rest.

    A path is missing when following its symlinks leads to no file: nothing there, a dangling
    symlink, a symlink loop (ELOOP), or a folder. A path that does lead to something, even a
    named pipe, socket or device, is kept: the image checks report it as unreadable (check
    ``corrupt``) without ever opening it (:func:`datacheck.engine.image_stats.open_image`).
    """
    sizes, mtimes, present = [], [], []
    top = str(root)  # strings and os.path, not pathlib: this runs once per file
    for rel in frame["path"].tolist():
        try:
            st = os.stat(os.path.join(top, rel))  # follows symlinks; never opens the file
        except OSError:
            st = None
        ok = st is not None and not stat.S_ISDIR(st.st_mode)
        present.append(ok)
        sizes.append(st.st_size if ok else -1)
        mtimes.append(st.st_mtime_ns if ok else -1)
    present = pd.Series(present, index=frame.index)
    missing = frame.loc[~present, "sample_id"].tolist()
    if len(missing) > max_missing:
        first = ", ".join(repr(p) for p in frame.loc[~present, "path"].head(_SHOW))
        raise BadDataError(
            f"{len(missing)} of {len(frame)} files listed in {source} are missing (first: {first}); "
            f"allow some with --max-missing (now {max_missing})"
        )
    digest = hashlib.sha256()
    for row, size, mtime in zip(zip(*(frame[c].tolist() for c in CONTRACT_COLUMNS)), sizes, mtimes):
        digest.update("\t".join(map(str, (*row, size, mtime))).encode())
        digest.update(b"\n")
    kept = frame[present.to_numpy()].reset_index(drop=True)
    if kept.empty:
        raise BadDataError(f"no images found in {source}: every listed file is missing")
    return kept, missing, digest.hexdigest()


# --------------------------------------------------------------------------- writing


def write_manifest(frame: pd.DataFrame, root: str | os.PathLike | None, path: str | os.PathLike) -> Path:
    """Write a manifest ``frame`` (paths relative to ``root``) to ``path``, atomically.

    The format follows the suffix of ``path`` (``.csv``, ``.parquet``, ``.jsonl``). Paths are
    rewritten relative to the new file's folder when the files lie under it (so the manifest
    can be audited again); otherwise they are written as absolute paths, which a training
    script can read and :func:`load_manifest` accepts with ``root`` set to a folder holding them.
    ``root`` None: the rows are arrays, whose paths (if any) were never read; they are written
    as they are, not made into file paths.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from .runs import atomic_write  # runs imports nothing from here; keep it that way

    path = Path(path)
    fmt = MANIFEST_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BadDataError(f"cannot write a manifest as '{path.suffix}' ({path}); use .csv, .parquet or .jsonl")
    out = frame.copy()
    if root is not None:
        base = path.resolve().parent
        root = Path(root).resolve()

        def relocate(rel: str) -> str:
            absolute = Path(os.path.normpath(root / rel))
            return absolute.relative_to(base).as_posix() if absolute.is_relative_to(base) else str(absolute)

        out["path"] = [relocate(p) for p in out["path"]]

    def write(tmp: Path) -> None:
        if fmt == "csv":
            out.to_csv(tmp, index=False, lineterminator=csv_line_end(out))  # "\r" in a path: quoted
        elif fmt == "parquet":
            out.to_parquet(tmp, index=False)
        else:
            out.to_json(tmp, orient="records", lines=True, force_ascii=False)

    return atomic_write(path, write)

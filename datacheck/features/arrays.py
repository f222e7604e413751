"""Arrays the user brings, for any modality: probabilities, labels and embeddings.

They come as ``.npy`` files (memory-mapped copy-on-write and validated in blocks of rows, so
a 1,000,000 x 512 file is never copied whole and never modified), as in-memory arrays (never
modified), or as list columns ``pred_probs``/``embeddings`` of a Parquet manifest. With a
manifest (CSV, Parquet, JSONL or a DataFrame) the arrays' rows are its rows, and it gives
sample ids, labels and splits, so the duplicate and leakage checks run on the embeddings;
without one, sample ids are row numbers and the labels come from ``--labels``.

Class ids: the columns of ``pred_probs`` are the classes in the order of ``--class-names``;
without names, labels that are all whole numbers are column numbers (label ``3`` is column
3), a manifest DataFrame's Categorical labels are its categories in order (as its codes number
them), and other labels are sorted, numbers by value, as scikit-learn's ``LabelEncoder`` and
cleanlab order them.
Boolean labels are the classes ``"False"`` and ``"True"`` (in that order without names).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..engine.image_stats import SpecialFileError, require_regular_file
from ..engine.memory import mapped_file, release_rows, temporary_map
from ..errors import BadDataError, UsageError
from ..manifest import ARRAY_COLUMNS, MANIFEST_FORMATS, Manifest, load_manifest
from .model import Labels, ModelOutputs, label_ids

#: Rows of ``pred_probs`` may deviate this much from summing to 1 (float16 rounding) and are
#: renormalised; larger deviations are an error (logits or garbage, not probabilities).
SUM_TOLERANCE = 1e-2
#: Rows deviating less than this from a sum of 1 are float rounding and left as they are
#: (renormalising them would write to every page of a memory-mapped file).
_RENORMALISE_ABOVE = 1e-4
#: Negative probabilities down to this are float rounding (a last column computed as
#: ``1 - sum(others)``) and set to 0; below it they are logits or garbage, an error.
_ROUNDING_BELOW_ZERO = 1e-6
#: Bytes per block of rows validated at once: bounded temporaries at any N and D.
_BLOCK_BYTES = 16 << 20
_OPTION = {"pred_probs": "--pred-probs", "embeddings": "--embeddings"}


@dataclass(frozen=True)
class _Named:
    """How a message names an array: ``--embeddings`` (a file or an array, given as an option
    or a keyword; rows counted from 0, as numpy counts them), or ``column 'embeddings' of
    m.parquet`` (rows counted from 1, as the manifest's messages count a table's rows), so a
    column is never blamed on an option its user did not pass.
    """

    text: str
    first_row: int = 0

    def __str__(self) -> str:
        return self.text

    def row(self, index: int) -> int:
        return index + self.first_row


def _column(name: str, source) -> _Named:
    where = "<DataFrame>" if isinstance(source, pd.DataFrame) else source
    return _Named(f"column {name!r} of {where}", 1)


@dataclass
class ArrayInputs:
    """An array audit's inputs, row-aligned.

    Attributes
    ----------
    manifest : Manifest
        Format ``"arrays"``: ids, labels and splits, no files.
    labels : Labels
    outputs : ModelOutputs or None
        The probabilities (and embeddings), when ``pred_probs`` was given.
    embeddings : ndarray of shape (N, D), float32, or None
    """

    manifest: Manifest
    labels: Labels
    outputs: ModelOutputs | None
    embeddings: np.ndarray | None

    def release_pages(self) -> None:
        """Hand the memory-mapped inputs' resident pages back to the system (see :func:`release_pages`)."""
        release_pages(self.embeddings, *((self.outputs.pred_probs, self.outputs.embeddings) if self.outputs else ()))


#: Linux's ``MADV_PAGEOUT`` (5.4+; Python's mmap module names it from 3.12 only).
_MADV_PAGEOUT = 21


def release_pages(*arrays) -> None:
    """Reclaim the resident pages of memory-mapped ``.npy`` inputs, between the stages that read them.

    A stage that reads a mapped input block by block leaves every page it read resident in
    the process (the embeddings of 1M x 512 float32: 2 GB of its RSS) until the kernel needs
    the memory. Reclaiming them when the stage ends keeps the audit's peak memory to what one
    stage touches; a later stage reads them again (about 1 s per GB). Pages this process
    modified (rows renormalised in a copy-on-write map) stay. Linux only; elsewhere, and for
    in-memory arrays, nothing happens.
    """
    if not sys.platform.startswith("linux"):
        return
    for array in arrays:
        mapping = getattr(mapped_file(array), "_mmap", None)  # a view or slice of the map: release the map itself
        if mapping is not None:
            with contextlib.suppress(OSError, ValueError):  # an older kernel, or a closed map
                mapping.madvise(_MADV_PAGEOUT)


def array_columns(source) -> set[str]:
    """Which of ``pred_probs``/``embeddings`` a manifest (file or DataFrame) holds as columns."""
    if isinstance(source, pd.DataFrame):
        return {c for c in ARRAY_COLUMNS if c in source.columns}
    path = Path(source)
    if MANIFEST_FORMATS.get(path.suffix.lower()) != "parquet" or not path.is_file():
        return set()
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowException):
        return set()  # load_manifest reports the unreadable file
    return {c for c in ARRAY_COLUMNS if c in names}


def load_array_inputs(source=None, *, pred_probs=None, labels=None, embeddings=None, class_names=None,
                      root=None) -> ArrayInputs:
    """Read and validate an array audit's inputs.

    Parameters
    ----------
    source : path-like or pandas.DataFrame, optional
        A manifest whose rows the arrays align with (labels and splits come from it); None for
        ``pred_probs`` with ``labels`` alone.
    pred_probs, labels, embeddings : path-like or ndarray, optional
        ``.npy`` files or arrays of shapes (N, K), (N,) class ids, (N, D).
    class_names : path-like or sequence of str, optional
        A text file of K class names (one per line), or the names: the columns' classes.
    root : path-like, optional
        Recorded as the manifest's root (its paths are not read).

    Raises
    ------
    BadDataError
        Unreadable files, wrong shapes, NaN/inf, negative probabilities, rows that do not
        sum to 1 (beyond :data:`SUM_TOLERANCE`), labels that are not among the classes.
    UsageError
        An array given twice (as a column and as a file), or none at all.
    """
    if source is None:
        outputs = load_outputs_from_files(pred_probs, labels, embeddings, class_names)
        manifest = manifest_for_outputs(outputs, str(pred_probs) if is_path(pred_probs) else "arrays")
        return ArrayInputs(manifest, outputs.label_ids, outputs, outputs.embeddings)
    if labels is not None:
        raise UsageError("--labels goes without a DATASET: with a manifest, labels come from its label column")
    manifest = load_manifest(source, root=root, files=False)
    columns = _array_columns(source)
    for name, given in (("pred_probs", pred_probs), ("embeddings", embeddings)):
        if given is not None and name in columns:
            raise UsageError(f"{_OPTION[name]} is given twice: as the {name!r} column of the manifest and as an array")
    pred_probs = pred_probs if pred_probs is not None else columns.get("pred_probs")
    embeddings = embeddings if embeddings is not None else columns.get("embeddings")
    if pred_probs is None and embeddings is None:
        raise UsageError("an array audit needs --pred-probs or --embeddings (files, or columns of a Parquet manifest)")
    n = len(manifest)
    named = {name: _column(name, source) if name in columns else _Named(_OPTION[name]) for name in ARRAY_COLUMNS}
    # The manifest's own columns were read into arrays of ours: rows renormalised in place.
    probs = (_probabilities(pred_probs, n, named["pred_probs"], owned="pred_probs" in columns)
             if pred_probs is not None else None)
    if probs is not None and manifest.frame["label"].isna().all():
        # Probabilities are read against labels: without one, the label checks scored nothing
        # and the audit passed every gate (a column named "labels", as the keyword is, was no label).
        others = [str(c) for c in manifest.frame.columns if c not in ("sample_id", "path", "label", "split")]
        raise BadDataError(f"{named['pred_probs']} needs labels, and the manifest {manifest.source} has none: no 'label' "
                           f"column, or every row's is empty (other columns: {', '.join(others[:8]) or 'none'})")
    categories = source["label"].dtype.categories if (
        isinstance(source, pd.DataFrame) and isinstance(source.get("label", pd.Series()).dtype, pd.CategoricalDtype)) else None
    classes = _classes(class_names, manifest.frame["label"], probs.shape[1] if probs is not None else None, categories)
    classes, ids = label_ids(manifest, classes)
    emb = _embeddings(embeddings, n, named["embeddings"]) if embeddings is not None else None
    digest = hashlib.sha256(manifest.fingerprint.encode())
    _digest(digest, probs if probs is not None else emb)
    manifest.fingerprint = digest.hexdigest()
    outputs = ModelOutputs(classes, ids, probs, emb, "files") if probs is not None else None
    return ArrayInputs(manifest, Labels(classes, ids), outputs, emb)


def load_outputs_from_files(pred_probs_path, labels_path, embeddings_path=None, class_names_path=None) -> ModelOutputs:
    """Read and validate model outputs without a manifest: ``.npy`` paths or in-memory arrays
    (mixed freely), class names as a text file or a sequence. Raises as :func:`load_array_inputs`."""
    probs = _probabilities(pred_probs_path, None)
    raw = _load_array(labels_path, "--labels")
    if raw.ndim != 1 or len(raw) != len(probs):
        raise BadDataError(f"--labels must be a 1-D array of {len(probs)} class ids (one per --pred-probs row), got shape {raw.shape}")
    if np.issubdtype(raw.dtype, np.floating) and np.isnan(raw).any():  # a gap (pandas NA), not a fraction
        raise BadDataError(f"--labels has a missing value (NaN) in row {int(np.argmax(np.isnan(raw)))}; "
                           "every --pred-probs row needs its given label")
    classes = _class_names(class_names_path, probs.shape[1]) if class_names_path is not None else None
    if classes is not None and not is_path(class_names_path) and _are_numbers(class_names_path):
        raw = _ids_by_value(raw, class_names_path)
    if raw.dtype == np.bool_:
        raw, classes = _boolean_ids(raw, classes, probs.shape[1])
    if raw.dtype.kind in "US":
        raw = _ids_by_name(raw, classes)
    # Whole floats (1.0) are accepted as ids; complex arrays are not (text ones are names, above).
    whole = np.issubdtype(raw.dtype, np.floating) and np.all(np.isfinite(raw) & (raw == np.round(raw)))
    if not (np.issubdtype(raw.dtype, np.integer) or whole):
        raise BadDataError("--labels must hold integer class ids")
    # Range-checked before the cast to int64, which would wrap a uint64 id or a float above 2**63.
    out_of_range = (raw < 0) | (raw >= probs.shape[1])
    if out_of_range.any():
        row = int(np.argmax(out_of_range))
        value = raw[row].item()  # exact for any integer dtype; a whole float prints as an int while exact
        value = int(value) if isinstance(value, float) and abs(value) < 2**53 else value
        raise BadDataError(f"--labels has id {value} at row {row}, outside 0..{probs.shape[1] - 1} (the --pred-probs columns)")
    labels = raw.astype(np.int64)
    embeddings = _embeddings(embeddings_path, len(probs)) if embeddings_path is not None else None
    return ModelOutputs(classes or [str(i) for i in range(probs.shape[1])], labels, probs, embeddings, "files")


def _ids_by_name(raw: np.ndarray, classes: list | None) -> np.ndarray:
    """Text labels (class names, as the Python API takes them) as ids of the ``classes`` that
    name the ``--pred-probs`` columns, (N,) int64.

    Raises
    ------
    BadDataError
        No class names to match them with, or a label they do not list.
    """
    if classes is None:
        raise BadDataError("--labels holds class names: name the --pred-probs columns with --class-names FILE "
                           "(one name per line, in column order), or save class ids")
    ids = pd.Index(classes).get_indexer(raw.astype(str))
    if (ids < 0).any():
        unknown = sorted(set(raw[ids < 0].astype(str).tolist()))
        raise BadDataError(f"--labels has {len(unknown)} class name(s) that --class-names does not list: "
                           + ", ".join(repr(name) for name in unknown[:3]))
    return ids.astype(np.int64)


def _boolean_ids(raw: np.ndarray, classes: list | None, k: int) -> tuple[np.ndarray, list]:
    """Boolean labels (a binary target) as ids of the classes named ``"False"`` and ``"True"``.

    They are names, as pandas' ``str`` gives them and as a manifest's boolean label column is
    read, not the ids 0 and 1 of a column each: with ``classes`` (the class names) they are
    matched by name; without, ``False`` is column 0 and ``True`` column 1, the order of
    scikit-learn's ``classes_`` for a boolean target (they were refused as "not integer class ids").

    Raises
    ------
    BadDataError
        Without class names, ``pred_probs`` has other than 2 columns; with them, a label the
        names do not list.
    """
    if classes is None and k != 2:
        raise BadDataError(f"--labels are booleans, the classes False and True, but --pred-probs has {k} columns; "
                           "give --class-names, one per column, False and True among them")
    names = classes if classes is not None else ["False", "True"]
    index = {name: i for i, name in enumerate(names)}
    used = [name for name, present in (("False", not raw.all()), ("True", raw.any())) if present]
    unknown = [name for name in used if name not in index]
    if unknown:
        raise BadDataError(f"--labels are booleans, and {unknown[0]} is not among the class names {names[:10]}")
    return np.where(raw, index.get("True", -1), index.get("False", -1)).astype(np.int64), names


def _are_numbers(names) -> bool:
    """Whether class names given in memory are numbers (a classifier's ``classes_`` of integer
    labels, a pred_probs DataFrame's columns ``[0, 1, 2]``), not text."""
    values = np.asarray(list(names))
    return values.ndim == 1 and values.dtype.kind in "iuf"


def _ids_by_value(raw: np.ndarray, names) -> np.ndarray:
    """Numeric labels of classes whose names are numbers, as ids of the columns with those names.

    Label 10 of the classes ``[10, 20, 30]`` is column 0, and label 2 of a DataFrame whose
    columns were reordered to ``[2, 0, 1]`` is column 0 (scikit-learn's ``classes_``, pandas'
    columns). Read as column numbers, the first was refused as out of range, and the second
    matched every label to the wrong column without a word (85 of 90 samples flagged).
    """
    if raw.dtype.kind not in "iuf":
        return raw  # refused as labels that are not numbers, below
    ids = pd.Index(np.asarray(list(names))).get_indexer(raw)
    if (ids < 0).any():
        row = int(np.argmax(ids < 0))
        value = raw[row].item()
        value = int(value) if isinstance(value, float) and value.is_integer() and abs(value) < 2**53 else value
        raise BadDataError(f"--labels has {value!r} at row {row}, which is not among the class names "
                           f"{[v.item() if hasattr(v, 'item') else v for v in list(names)[:10]]}: with class "
                           "names that are numbers, a numeric label is the class of that name")
    return ids.astype(np.int64)


def manifest_for_outputs(outputs: ModelOutputs, source: str) -> Manifest:
    """A manifest for data that exists only as model outputs: sample ids are row numbers."""
    n = len(outputs.labels)
    # Built as Arrow arrays: a million Python strings would cost seconds.
    ids = pd.array(pa.array(np.arange(n)).cast(pa.string()), dtype="string")
    names = pa.array(list(outputs.classes), type=pa.string())
    frame = pd.DataFrame({
        "sample_id": ids,
        "path": ids,
        "label": pd.array(names.take(pa.array(outputs.labels)), dtype="string"),
        "split": pd.array(pa.nulls(n, pa.string()), dtype="string"),
    })
    digest = hashlib.sha256()
    _digest(digest, outputs.pred_probs)
    digest.update(np.ascontiguousarray(outputs.labels).data)
    return Manifest(frame, Path(os.getcwd()), Path(source), "arrays", fingerprint=digest.hexdigest())


def _probabilities(value, n: int | None, what: _Named = _Named("--pred-probs"), owned: bool = False) -> np.ndarray:
    """``pred_probs`` (N, K) float32, checked block by block; rows off 1 by rounding renormalised.
    ``what`` names it in messages; ``owned``: ``value`` is an array made here (a manifest's
    column), renormalised in place rather than copied whole."""
    probs = _load_array(value, str(what))
    _check_real(probs, str(what))
    if probs.ndim == 2 and probs.shape[0] == 0:
        raise BadDataError(f"{what} has no rows (shape {probs.shape}): there are no samples to audit")
    if probs.ndim != 2 or probs.shape[1] < 2:
        # one probability per row is a binary classifier's predict_proba(X)[:, 1]: say how to give both
        binary = "; for one class's probability p of two, pass both: np.column_stack([1 - p, p])" if (
            probs.ndim == 1 or (probs.ndim == 2 and probs.shape[1] == 1)) and probs.size else ""
        raise BadDataError(f"{what} must be a 2-D array of shape (N, K) with K >= 2, got shape {probs.shape}{binary}")
    if n is not None and len(probs) != n:
        raise BadDataError(f"{what} has {len(probs)} rows, the manifest {n}: they must be row-aligned")
    # float32 throughout: a 1,000,000 x 100 array is 400 MB, and float64 would double it.
    probs = _float32(probs, what)
    sums = np.empty(len(probs))
    below_zero = []
    for start, block in _blocks(probs):
        sums[start : start + len(block)] = block.sum(axis=1, dtype=np.float64)
        if not np.isfinite(sums[start : start + len(block)]).all():  # a NaN or inf makes its row's sum non-finite
            _check_finite(block, what, start)
        if block.min() < 0:
            if block.min() < -_ROUNDING_BELOW_ZERO:
                row = start + int(np.argmax((block < -_ROUNDING_BELOW_ZERO).any(axis=1)))
                raise BadDataError(f"{what} has negative values (first in row {what.row(row)}); "
                                   "pass probabilities, not logits")
            below_zero.append(start + np.flatnonzero((block < 0).any(axis=1)))
    if below_zero:
        probs = _private(probs, value, owned)
        rows = np.concatenate(below_zero)
        probs[rows] = np.maximum(probs[rows], 0)
    bad = np.abs(sums - 1) > SUM_TOLERANCE
    if bad.any():
        row = int(np.argmax(bad))
        raise BadDataError(f"{what} rows must sum to 1 (row {what.row(row)} sums to {sums[row]:.4g}); "
                           "pass softmax probabilities")
    off = np.flatnonzero(np.abs(sums - 1) > _RENORMALISE_ABOVE)
    if len(off):
        probs = _private(probs, value, owned)
        probs[off] /= sums[off, None].astype(np.float32)  # a copy-on-write map: only these pages are copied
    return probs


def _private(probs: np.ndarray, value, owned: bool = False) -> np.ndarray:
    """``probs`` where it may be written to: itself when it is a copy made here, an array this
    module made (``owned``: a manifest's column, in a temporary map) or a copy-on-write map of
    the file ``value`` (only the pages written are copied), else a copy.

    The caller's array is never modified. An ndarray subclass (``np.memmap`` opened ``"r+"``, a
    masked array, ``np.matrix``) arrives as a base-class view of the caller's memory, which a
    test of ``probs is value`` took for a copy: its rows were renormalised in place, and an
    ``r+`` map wrote them to the user's file.
    """
    if probs.flags.writeable and (owned or is_path(value) or (probs is not value and probs.flags.owndata)):
        return probs
    return probs.copy()


def _embeddings(value, n: int, what: _Named = _Named("--embeddings")) -> np.ndarray:
    """``embeddings`` (N, D) float32, finite, checked block by block; ``what`` names it in messages."""
    embeddings = _load_array(value, str(what))
    _check_real(embeddings, str(what))
    if embeddings.ndim != 2 or len(embeddings) != n or embeddings.shape[1] == 0:
        raise BadDataError(f"{what} must have shape ({n}, D), got {embeddings.shape}")
    if embeddings.shape[1] == 1:
        # Every check compares embeddings by cosine, and the cosine of two 1-D vectors is only
        # their sign: 58 of 60 random values were near duplicates, and relabel --drop emptied classes.
        raise BadDataError(f"{what} has 1 dimension (shape {embeddings.shape}); cosine similarity of 1-D vectors "
                           "is only their sign: give embeddings of 2 or more dimensions")
    embeddings = _float32(embeddings, what)
    for start, block in _blocks(embeddings):
        _check_finite(block, what, start)
        _check_magnitude(block, what, start)
    return embeddings


def _float32(array: np.ndarray, what) -> np.ndarray:
    """``array`` (N, ...) as float32: itself when it is, else converted.

    A memory-mapped ``.npy`` of another type (scikit-learn's ``predict_proba`` gives float64)
    is converted block by block into a nameless temporary map (:func:`~datacheck.engine.memory.temporary_map`,
    in ``$TMPDIR``), not into memory: ``astype`` made a whole in-memory copy, 2 GB for
    1,000,000 x 512 embeddings, and "never copied whole" held for float32 files only. The
    converted rows leave resident memory as they are written; an array given in memory is
    converted in memory (the caller already holds it there). The file's pages read leave
    resident memory too: loading 200,000 x 512 float64 embeddings peaked at 1,294 MB RSS, now
    at 552 MB, as the same values in a float32 file (551 MB).
    """
    if array.dtype == np.float32:
        return array
    source = mapped_file(array)  # a view of a map (a Fortran-ordered file's transpose) is still a file
    if source is None:
        return array.astype(np.float32)
    out = temporary_map(array.shape, np.float32, what=f"{what} as float32")
    for start, block in _blocks(array):
        out[start : start + len(block)] = block
        release_rows(out, start, start + len(block))
        release_pages(source)  # the file's pages read so far (nothing was written to them)
    return out


#: A label that reads as a number (``-1``, ``+1``, ``2.5``, ``1e3``); not ``nan`` or ``inf``, which are names.
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"


def _classes(class_names, labels: pd.Series, k: int | None, categories=None) -> list:
    """The classes of the columns (see the module docstring).

    ``categories``: those of a manifest DataFrame's Categorical label column, the classes in
    the order its codes number them (used without class names, for labels that are not
    column numbers).
    """
    if class_names is not None:
        return _class_names(class_names, k)
    names = [str(name) for name in labels.dropna().unique()]
    numbers = [int(name) if name.isdecimal() else -1 for name in names]  # isdigit takes "²", which int() refuses
    if names and all(v >= 0 and str(v) == name for v, name in zip(numbers, names)):  # "3", not "03"
        width = k if k is not None else max(numbers) + 1
        if max(numbers) >= width:
            raise BadDataError(f"label {max(numbers)} is not a column of --pred-probs ({k} columns: 0..{k - 1})")
        return [str(i) for i in range(width)]
    if categories is not None:
        # A model trained on the codes (df.label.cat.codes) lays its columns out in the
        # categories' order; sorted, they were matched to the wrong columns without a word.
        classes = [str(c).strip() for c in categories]
        if (k is not None and len(classes) != k) or len(set(classes)) != len(classes):
            raise BadDataError(f"the manifest's label column is a Categorical of {len(classes)} categories, which "
                               f"cannot name the {k} --pred-probs columns; give --class-names (one per column, in column order)")
        return classes
    if k is not None and len(names) != k:
        raise BadDataError(f"the manifest has {len(names)} label names but --pred-probs has {k} columns; "
                           "give --class-names (one per column, in column order)")
    return class_order(names)


def class_order(names) -> list[str]:
    """Distinct label ``names`` in the order they name the columns of ``pred_probs`` without
    class names: sorted, as scikit-learn's ``LabelEncoder`` and cleanlab order them, and labels
    that all read as numbers by value.

    Numbers that are not column numbers (-1 and 1, -2..2, 0.5 and 2.5) are sorted as a script
    reading the file sorts them (LabelEncoder on its number column): sorted as text, "-1" came
    before "-2" and "+1" before "-1", and every label of those classes was matched to the wrong
    column (179 and 498 of 500 samples flagged).
    """
    names = sorted(set(names))
    if names and pd.Series(names).str.fullmatch(_NUMBER).all():
        return sorted(names, key=lambda name: (float(name), name))
    return names


def _class_names(value, k: int | None) -> list:
    if not is_path(value):
        classes = [str(name) for name in value]
        what = "class_names"
    else:
        try:
            require_regular_file(value)
            # utf-8-sig, as for a CSV manifest: a byte order mark (Windows editors) is not part of the first name.
            classes = [line.strip() for line in Path(value).read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise BadDataError(f"cannot read --class-names {value}: {exc}") from exc
        what = "--class-names"
    names = pd.Series(classes, dtype=object)
    twice = names[names.duplicated()]
    if len(twice):
        raise BadDataError(f"{what} lists {twice.iloc[0]!r} twice; each column needs its own class name")
    if (k is not None and len(classes) != k) or not classes:
        count = f"{k} " if k is not None else ""
        raise BadDataError(f"{what} must list {count}distinct names, one per column (found {len(classes)})")
    return classes


def _array_columns(source) -> dict[str, np.ndarray]:
    """The ``pred_probs``/``embeddings`` list columns of a Parquet manifest or DataFrame, as (N, ·) arrays."""
    if isinstance(source, pd.DataFrame):
        return {c: _stack(source[c], _column(c, source)) for c in ARRAY_COLUMNS if c in source.columns}
    names = sorted(array_columns(source))
    if not names:
        return {}
    import pyarrow.parquet as pq

    # A batch at a time into float32 (the type every check reads), in a temporary map: read
    # whole, a 1,000,000 x 512 column of doubles was 4 GB as Arrow, 4 GB more gathered into
    # one chunk, and 2 GB as float32. Streamed (no row group read ahead whole, 1 MB reads),
    # 60,000 x 256 doubles peaked at 80-110 MB over the process's, against 521 MB read whole.
    arrays: dict[str, np.ndarray] = {}
    with pq.ParquetFile(source, pre_buffer=False, buffer_size=1 << 20) as parquet:
        rows = parquet.metadata.num_rows
        start = 0
        for batch in parquet.iter_batches(batch_size=_batch_rows(parquet.metadata, names), columns=names):
            for name in names:
                width = arrays[name].shape[1] if name in arrays else None
                values = _list_column(batch.column(name), name, source, first_row=start, width=width)
                if name not in arrays:
                    arrays[name] = temporary_map((rows, values.shape[1]), np.float32, what=f"column {name!r} of {source}")
                arrays[name][start : start + len(values)] = values
                release_rows(arrays[name], start, start + len(values))
            start += batch.num_rows
    # A file of no rows: (0, 0) arrays, refused by their readers as having no rows.
    return {name: arrays.get(name, np.empty((0, 0), np.float32)) for name in names}


#: Rows of a Parquet manifest's list columns read at a time, at most (16 MB of 512 doubles).
_PARQUET_BATCH_ROWS = 4096


def _batch_rows(metadata, names: list[str]) -> int:
    """Rows per batch of a Parquet file's list columns ``names``: :data:`_BLOCK_BYTES` of doubles
    of the widest, at most :data:`_PARQUET_BATCH_ROWS`.

    A fixed row count made the batch grow with the classes: 4,096 rows of 5,000 probabilities
    peaked at 1.1 GB to read a 164 MB float32 array (0.44 GB in batches of 512 rows). The width
    is the column's values per row in the file's metadata (its rows are read only later).
    """
    rows = metadata.num_rows
    widest = 1
    for j in range(metadata.num_columns if metadata.num_row_groups else 0):
        if metadata.row_group(0).column(j).path_in_schema.split(".")[0] in names:
            values = sum(metadata.row_group(g).column(j).num_values for g in range(metadata.num_row_groups))
            widest = max(widest, values // max(rows, 1))
    return max(1, min(_PARQUET_BATCH_ROWS, _BLOCK_BYTES // (8 * widest)))


def _list_column(column: pa.Array, name: str, source, first_row: int = 0, width: int | None = None) -> np.ndarray:
    """A list column as an (N, D) array, without a Python object per row.

    For a batch of a larger file: its rows are numbered from ``first_row`` + 1 in messages,
    and each must hold ``width`` values, as row 1 of the file does (default: as its first row).
    """
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
            or pa.types.is_fixed_size_list(column.type)):
        raise BadDataError(f"column {name!r} of {source} must be a list of numbers per row, got {column.type}")
    if column.null_count:
        row = int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
        raise BadDataError(f"column {name!r} of {source} is empty in row {first_row + row + 1}")
    import pyarrow.compute as pc

    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if (lengths == 0).any():  # else an empty first row reads as every other row being wrong
        row = int(np.argmax(lengths == 0))
        raise BadDataError(f"column {name!r} of {source} holds an empty list in row {first_row + row + 1}; every row needs its values")
    width = width if width is not None else (int(lengths[0]) if len(lengths) else 0)
    if (lengths != width).any():
        row = int(np.argmax(lengths != width))
        raise BadDataError(f"column {name!r} of {source}: row {first_row + row + 1} has {lengths[row]} values, row 1 has {width}")
    values = column.flatten()
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        raise BadDataError(f"column {name!r} of {source} must hold numbers, got {values.type}")
    if values.null_count:  # pandas writes a NaN inside a list as a null
        row = int(np.argmax(values.is_null().to_numpy(zero_copy_only=False))) // max(int(lengths[0]), 1)
        raise BadDataError(f"column {name!r} of {source} has a missing or NaN value in row {first_row + row + 1}")
    return values.to_numpy(zero_copy_only=False).reshape(len(column), width)


def _stack(column: pd.Series, what: _Named) -> np.ndarray:
    """A DataFrame's list column as an (N, D) array; a row that is not a list of numbers, is
    empty or differs in length from the first is named (numpy's own errors name no row)."""
    rows = []
    for i, value in enumerate(column):
        try:
            row = np.asarray(value, dtype=np.float64)
        except (ValueError, TypeError):
            row = None
        if row is None or row.ndim != 1 or np.asarray(value).dtype.kind not in "iufO":  # "b": True is no number
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise BadDataError(f"{what} must hold a list of numbers per row; row {what.row(i)} holds {shown}")
        if len(row) == 0:
            raise BadDataError(f"{what} holds an empty list in row {what.row(i)}; every row needs its values")
        if rows and len(row) != len(rows[0]):
            raise BadDataError(f"{what}: row {what.row(i)} has {len(row)} values, row {what.row(0)} has {len(rows[0])}")
        rows.append(row)
    return np.stack(rows)


def _load_array(path, option: str) -> np.ndarray:
    """A ``.npy`` file's array, memory-mapped copy-on-write (nothing ever reaches the file),
    or an in-memory array as it is."""
    if not is_path(path):
        if (isinstance(path, pd.Series) and path.dtype == object and len(path)
                and isinstance(path.iloc[0], (list, tuple, np.ndarray))):
            # A column of vectors (df["embedding"], as a notebook keeps them) is rows as a
            # list of them is: it was refused as "a Series of objects", which list(column) passed.
            return _stack(path, _Named(option))
        if isinstance(path, (pd.DataFrame, pd.Series, pd.Index, pd.api.extensions.ExtensionArray)):
            path = _pandas_numbers(path)
        if isinstance(path, np.ma.MaskedArray) and path.dtype.kind in "iuf" and np.ma.getmaskarray(path).any():
            # np.asarray keeps the values under a mask, which numpy.ma users mean as gaps: read
            # them as missing (NaN), as pandas' gaps are, so they are refused or skipped by row.
            path = path.astype(np.float64).filled(np.nan)
        try:
            array = np.asarray(path)
        except (TypeError, ValueError, RuntimeError) as exc:
            # what __array__ raises: a torch tensor that requires grad (RuntimeError), one of
            # bfloat16 or on a GPU (TypeError); a traceback named no argument
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise BadDataError(f"{option} cannot be read as a numpy array ({type(path).__name__}): {reason}") from None
        if array.dtype == object:
            raise BadDataError(f"{option} must be a numeric array, got {type(path).__name__} of objects")
        return array
    try:
        require_regular_file(path)  # a named pipe would block np.load for ever
        array = np.load(path, mmap_mode="c", allow_pickle=False)
    except FileNotFoundError:
        raise BadDataError(f"{option} {path}: file not found") from None
    except SpecialFileError as exc:
        raise BadDataError(f"{option} {path} is {exc}") from None
    except (OSError, ValueError, EOFError) as exc:
        # numpy takes a file without the .npy header for a pickle, and an object array needs
        # one; both messages advise loading it unsafely: never advice to pass on
        objects = "Object arrays" in str(exc) or "Python objects" in str(exc)  # np.load's words, or np.memmap's
        # mmap's words for a file shorter than its header's shape: a copy or a download cut short
        truncated = "mmap length is greater than file size" in str(exc)
        reason = ("holds Python objects, not numbers" if objects
                  else "truncated: shorter than the shape its header gives" if truncated
                  else "not in .npy format" if "pickle" in str(exc) else str(exc).splitlines()[0])
        raise BadDataError(f"{option} {path} is not a readable .npy array: {reason} (write it with numpy.save)") from exc
    if not isinstance(array, np.ndarray):
        array.close()
        raise BadDataError(f"{option} {path} must be a single .npy array, not an .npz archive")
    return array


def _pandas_numbers(values):
    """A pandas table or column of numbers in pandas' nullable dtypes (``Float64``, ``Int64``,
    ``float64[pyarrow]``: ``convert_dtypes()``, ``read_parquet(dtype_backend=...)``) as a float64
    array, missing values NaN; anything else as it is. numpy sees those dtypes as objects, and
    a probability table of them was refused as "a DataFrame of objects"."""
    dtypes = list(values.dtypes) if isinstance(values, pd.DataFrame) else [values.dtype]
    nullable = [d for d in dtypes if isinstance(d, pd.api.extensions.ExtensionDtype)]
    if nullable and all(pd.api.types.is_numeric_dtype(d) and not pd.api.types.is_bool_dtype(d) for d in dtypes):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return values


def _check_real(array: np.ndarray, option: str) -> None:
    """Refuse arrays that are not real numbers: casting complex values to float drops the
    imaginary part (with a ComplexWarning on stderr), and strings or booleans are not data."""
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise BadDataError(f"{option} must hold real numbers (integer or float), got dtype {array.dtype}")


#: Largest embedding value taken: squares and sums of squares over a million rows (cosine norms,
#: PCA covariances, K-means distances, all float32) stay far from float32's 3.4e38 below it. At
#: 1e18 the norms overflowed and outliers flagged 904 samples of 60,000 instead of 5.
MAX_EMBEDDING_VALUE = 1e15


def _check_magnitude(array: np.ndarray, what: _Named, offset: int = 0) -> None:
    largest = np.abs(array).max(axis=1) if array.size else np.zeros(0)
    if (largest > MAX_EMBEDDING_VALUE).any():
        row = offset + int(np.argmax(largest > MAX_EMBEDDING_VALUE))
        raise BadDataError(f"{what} has values up to {float(largest.max()):.3g} (first past {MAX_EMBEDDING_VALUE:.0e} "
                           f"in row {what.row(row)}): float32 distances overflow; scale the embeddings down")


def _check_finite(array: np.ndarray, what: _Named, offset: int = 0) -> None:
    if not np.isfinite(array).all():
        row = offset + int(np.argwhere(~np.isfinite(array))[0, 0])
        raise BadDataError(f"{what} has NaN or infinite values (first in row {what.row(row)})")


def _blocks(array: np.ndarray):
    """``(first row, rows)`` of ``array`` in blocks of about :data:`_BLOCK_BYTES`."""
    step = max(1, _BLOCK_BYTES // max(1, array[:1].nbytes))
    for start in range(0, len(array), step):
        yield start, array[start : start + step]


def _digest(digest, array: np.ndarray) -> None:
    """Feed ``array``'s values to ``digest`` block by block (no whole copy of a strided array)."""
    for _, block in _blocks(array):
        digest.update(np.ascontiguousarray(block).data)


def is_path(value) -> bool:
    """Whether ``value`` names a file (rather than holding an array or names)."""
    return isinstance(value, (str, os.PathLike))

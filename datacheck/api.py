"""The Python API: ``datacheck.audit`` and ``datacheck.load``, for notebooks and scripts.

>>> import datacheck
>>> result = datacheck.audit(pred_probs=probs, labels=labels)        # doctest: +SKIP
>>> result.issues("label_issues").head()                              # doctest: +SKIP
>>> result.save("runs/mine"); again = datacheck.load("runs/mine")     # doctest: +SKIP

Library errors are :class:`datacheck.DatacheckError` subclasses that name the parameter
(``UsageError``: a bad argument; ``BadDataError``: bad data); the CLI maps them to its flags
and exit statuses. Defaults live in one place, :func:`datacheck.config.default_config`:
a parameter left as None takes the default (or the ``config`` file's value).
"""

from __future__ import annotations

import os
import re
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .errors import AUDIT_KEYWORDS, BadDataError, DatacheckError, UsageError, as_keywords
from .manifest import require_flat_columns
from .pipeline import AuditResult, run_file_identity
from .validation import check_callable, paths_checked


@paths_checked
def audit(
    data=None,
    *,
    labels=None,
    pred_probs=None,
    embeddings=None,
    class_names: Sequence[str] | str | os.PathLike | None = None,
    checks: Sequence | str | None = None,
    config: str | os.PathLike | dict | None = None,
    out: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    seed: int | None = None,
    fail_on: str | None = None,
    max_missing: int | None = None,
    device: str | None = None,
    workers: int | None = None,
    model: str | None = None,
    weights: str | None = None,
    cache_dir: str | None = None,
    engine: str | None = None,
    ray_address: str | None = None,
    junit: str | os.PathLike | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> AuditResult:
    """Audit a labeled dataset; return its findings (and write a run directory if ``out`` is given).

    Parameters
    ----------
    data : path-like or pandas.DataFrame, optional
        A dataset folder (``root/<class>/*`` or ``root/<split>/<class>/*``), a CSV/Parquet/JSONL
        manifest file, or a manifest DataFrame (columns ``path, label[, split, sample_id, ...]``,
        paths relative to ``root``). Omit it to audit model outputs alone (any modality).
        With ``pred_probs`` or ``embeddings`` (or a Parquet manifest with such list columns),
        a manifest gives the arrays' sample ids, labels and splits (its paths are not read),
        so duplicates and split leakage are found on the embeddings.
    labels : array-like of shape (N,), optional
        Given labels, as class ids in ``0..K-1`` (numbers, or whole-number text such as ``"3"``)
        or as class names (strings; a pandas Series, Categorical or Index too), row-aligned with
        ``pred_probs``; or a ``.npy`` path. Only without ``data``. Booleans are the classes
        ``"False"`` and ``"True"`` (the columns 0 and 1 without ``class_names``).
    pred_probs : array-like of shape (N, K), optional
        Out-of-fold predicted probabilities (rows sum to 1), or a ``.npy`` path (memory-mapped);
        a DataFrame's column names are the class names.
    embeddings : array-like of shape (N, D), optional
        Embeddings of the same samples (enable ``outliers``, ``clusters`` and, with a manifest,
        the duplicate checks), or a ``.npy`` path (memory-mapped); a pandas Series of vectors
        (``df["embedding"]``) is its rows, as for ``pred_probs``.
    class_names : sequence of str or path-like, optional
        The K class names of the ``pred_probs`` columns, in order (a text file: one per line).
        Without them, whole-number labels are column numbers, a Categorical's classes are its
        categories in order (as its codes number them), and other labels are sorted (names
        that all read as numbers, ``"-1"`` and ``"+1"``, by value).
        Names that are numbers (a classifier's ``classes_``, as a DataFrame's columns too) name
        numeric labels by value.
    checks : str or Detector, or list or tuple of them, optional
        Detectors to run: names (wildcards allowed: ``"*dup*"``) or configured instances
        (``Outliers(k=20)``); default: every default detector whose inputs the data has.
        Anything else (bytes, a number, ``[None]``) is a :class:`UsageError` naming ``checks``.
    config : path-like or dict, optional
        TOML file of settings (``configs/default.toml`` lists every default), the name of a
        config that comes with datacheck (``"quick"``: no model, seconds; ``"strict-ci"``), or
        its tables as a dict: ``{"detectors": {"outliers": {"k": 20}}}``.
    out : path-like, optional
        Write the run directory there (what ``datacheck audit --out`` writes); None keeps the
        audit in memory (``result.save(dir)`` writes it later).
    root : path-like, optional
        The folder a manifest's paths are relative to (default: the manifest file's folder,
        or the working directory for a DataFrame).
    seed, fail_on, max_missing, device, workers, model, weights, cache_dir, engine, ray_address
        As the ``datacheck audit`` options of the same names (``--fail-on`` etc.); ``engine="ray"``
        runs the per-image work on Ray Data (``pip install 'datacheck[ray]'``). ``model`` and
        ``weights`` name the model trained on images: with ``pred_probs`` or ``embeddings``
        nothing is trained, and either is a :class:`UsageError`.
    junit : path-like, optional
        Also write a JUnit XML report.
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    AuditResult
        ``.issues(check)``, ``.issue_summary()``, ``.findings``, ``.summary``, ``.save(dir)``,
        ``.relabel()``, ``.balance()``, ``.report()``.

    Raises
    ------
    UsageError
        A bad argument (the message names it).
    BadDataError
        Unreadable or inconsistent data.
    """
    from .detectors import Detector

    check_callable("progress", progress, "progress(stage, done, total)")
    if data is not None and not isinstance(data, (str, os.PathLike, pd.DataFrame)):
        hint = ": pass pd.DataFrame(data)" if isinstance(data, dict) else ""
        numbers = isinstance(data, (list, tuple)) and len(data) > 0 and not isinstance(data[0], (str, os.PathLike))
        if hasattr(data, "to_pandas") and (hasattr(data, "column_names") or hasattr(data, "columns")):
            hint = ": pass data.to_pandas()"  # a table of another library (pyarrow, polars) is a manifest
        elif hasattr(data, "__array__") or numbers:
            # audit(probs, labels), as cleanlab's find_label_issues(labels, pred_probs) takes them
            hint = ": arrays go by keyword, audit(pred_probs=..., labels=..., embeddings=...)"
        raise UsageError(f"data must be a dataset folder, a manifest file or a pandas DataFrame, "
                         f"got a {type(data).__name__}{hint}")
    if isinstance(data, pd.DataFrame):  # before anything reads data["label"], which would be a table
        require_flat_columns(data, "data")
    _check_row_order({"data": data, "labels": labels, "pred_probs": pred_probs, "embeddings": embeddings})
    # columns named 0..K-1 (pandas' default) name nothing; range(1, 4) or [10, 20, 30] name classes
    named_by = "class_names"  # what a message names the classes by
    if isinstance(pred_probs, pd.DataFrame) and not pred_probs.columns.equals(pd.RangeIndex(pred_probs.shape[1])):
        class_names = _column_classes(pred_probs, class_names)
        named_by = "the pred_probs DataFrame's column names"
    for name, value in (("pred_probs", pred_probs), ("labels", labels), ("embeddings", embeddings)):
        if isinstance(value, (list, tuple)):  # ragged nested lists: numpy's ValueError names no argument
            try:
                np.asarray(value)
            except (ValueError, TypeError) as exc:
                raise BadDataError(f"{name} must be a rectangular array of numbers; its rows differ in length "
                                   f"or hold something else ({type(exc).__name__} from numpy)") from None
    instances = None
    names = None
    if isinstance(checks, (str, Detector)):
        checks = [checks]
    if checks is not None:
        _check_checks(checks, Detector)
        checks = list(checks)
        if any(isinstance(c, Detector) for c in checks):
            instances = checks
        else:
            names = [str(c) for c in checks]
    if class_names is not None and not isinstance(class_names, (str, os.PathLike, list, tuple, np.ndarray, pd.Series, pd.Index)):
        raise UsageError(f"class_names must be a sequence of names or a text file (str or os.PathLike), "
                         f"got {type(class_names).__name__} {class_names!r:.60}")
    # pandas arrays too: a Categorical or a StringArray of names is no numeric array
    if (isinstance(labels, (list, tuple, pd.Series, pd.Index, pd.api.extensions.ExtensionArray, np.ndarray))
            and not _is_numeric(labels)):
        labels, class_names = _label_ids(labels, class_names, np.shape(pred_probs)[1] if np.ndim(pred_probs) == 2 else None,
                                         named_by)
    if data is not None and labels is not None:
        raise UsageError("labels go without data: a manifest's labels are its label column")
    if data is None and pred_probs is None and (labels is not None or embeddings is not None):
        # as cleanlab's Datalab takes features with labels: say how, not only what is missing
        raise UsageError("labels or embeddings without pred_probs go with data, a manifest of their rows: "
                         "audit(pd.DataFrame({'label': labels}), embeddings=embeddings)")
    if data is None and pred_probs is None:
        raise UsageError("audit needs data (a dataset folder, manifest or DataFrame) or pred_probs with labels")
    if data is None and labels is None:
        raise UsageError("pred_probs needs labels")
    from .pipeline import audit as run

    options = {"checks": names, "seed": seed, "fail_on": fail_on, "max_missing": max_missing, "device": device,
               "workers": workers, "model": model, "weights": weights, "cache_dir": cache_dir, "engine": engine,
               "ray_address": ray_address}
    if instances is not None:
        options["detectors"] = instances
    try:
        return run(data, out, config=config, progress=progress, pred_probs=pred_probs, labels=labels,
                   embeddings=embeddings, class_names=class_names, root=root, junit=junit, command=["python-api"],
                   **options)
    except DatacheckError as exc:  # the code behind both names datacheck audit's options: name ours
        raise type(exc)(in_python(str(exc))) from None


@paths_checked
def load(run_dir: str | os.PathLike) -> AuditResult:
    """Open a run directory written by ``datacheck audit`` or :meth:`AuditResult.save`.

    Raises
    ------
    UsageError
        Not a run, or an unfinished one.
    BadDataError
        A damaged run.
    """
    from .audit_run import open_run
    from .errors import ExitStatus

    run = open_run(run_dir)
    outputs = run.outputs() if run.info.manifest_format != "arrays" else None
    return AuditResult(run.path, run.findings, run.summary, ExitStatus(int(run.summary.get("exit_status", 0))),
                       None, outputs, run.info, run_file_identity(run.path))


#: config.py's name for a keyword's value: ``audit.workers in command line``, ``engine.name in command line``.
_OVERRIDE = re.compile(r"\b(audit|engine)\.(\w+) in command line\b")


def in_python(message: str) -> str:
    """A message of the code behind ``datacheck audit``, as :func:`audit`'s caller reads it: the
    options it names (``--max-missing``, ``--pred-probs``) as keywords (``max_missing``,
    ``pred_probs``), and ``DATASET`` as ``data``.

    >>> in_python("allow some with --max-missing (now 0)")
    'allow some with max_missing (now 0)'
    """
    message = as_keywords(message, AUDIT_KEYWORDS)
    message = _OVERRIDE.sub(lambda m: "engine" if m.groups() == ("engine", "name") else m.group(2), message)
    return (message.replace("a DATASET manifest file", "data that is a manifest file")
            .replace("a DATASET", "data").replace("DATASET", "data"))


def _check_checks(checks, detector_type: type) -> None:
    """Raise :class:`UsageError` unless ``checks`` is a list or tuple of names and Detectors.

    Anything else was taken apart by ``list()`` and ``str()``: ``123`` failed with a TypeError
    naming no keyword, ``b"image_properties"`` became the checks ``'105'``, ``'109'``, ...,
    and ``[None]`` the check ``'None'``.
    """
    what = "a check name (str), a Detector, or a list or tuple of them"
    if not isinstance(checks, (list, tuple)):
        raise UsageError(f"checks must be {what}, got {type(checks).__name__} {checks!r:.60}")
    for item in checks:
        if not isinstance(item, (str, detector_type)):
            raise UsageError(f"checks must be {what}; it holds {type(item).__name__} {item!r:.60}")


def _check_row_order(given: dict) -> None:
    """Refuse pandas inputs whose indexes hold the same labels in different orders.

    Rows are matched by position, as scikit-learn and cleanlab match them; pandas matches by
    index. A table re-sorted after its probabilities were put beside it (``data.sort_values``,
    ``pred_probs`` keeping the old order) was audited against the wrong rows without a word.
    Indexes that are equal, or share no such order (a default range beside ids), are left alone.

    Raises
    ------
    BadDataError
        Naming both arguments and how to align them.
    """
    indexed = [(name, value.index) for name, value in given.items() if isinstance(value, (pd.DataFrame, pd.Series))]
    for (first, reference), (name, index) in zip(indexed, indexed[1:]):
        # by membership, not sorting: labels of mixed types ("a", 1) do not sort
        if (len(index) == len(reference) and not index.equals(reference) and index.is_unique
                and reference.is_unique and reference.isin(index).all()):
            raise BadDataError(f"{name} has the index of {first} in another order; rows are matched by position: "
                               f"align them ({name}.loc[{first}.index]) or pass {name}.to_numpy()")


def _is_numeric(values) -> bool:
    array = np.asarray(values)
    return np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)


def _column_classes(pred_probs: pd.DataFrame, class_names) -> list:
    """The class names of a ``pred_probs`` DataFrame: its column names (otherwise ignored, so
    labels would be matched to columns in sorted order, whatever the columns say), which
    ``class_names``, when given too, must repeat in order."""
    columns = [str(c) for c in pred_probs.columns]
    if class_names is not None and (isinstance(class_names, (str, os.PathLike))
                                    or [str(c) for c in class_names] != columns):
        raise UsageError(f"class_names differ from the column names of the pred_probs DataFrame ({columns[:5]}); "
                         "give the classes once")
    # as they are, not as text: numeric labels are matched to columns named by numbers by value
    return list(pred_probs.columns)


#: A label that is a column number when no class names are given: "3", not "03" or "3.0" (as
#: for a manifest's labels); 18 digits at most, so that it is an int64.
_WHOLE = re.compile(r"0|[1-9][0-9]{0,17}")


def _label_ids(labels, class_names, columns: int | None, named_by: str = "class_names") -> tuple[np.ndarray, list | None]:
    """Text labels as ids into ``class_names``; without them, whole numbers (``"0"``..``"K-1"``,
    as a CSV gives them) are column numbers (sorted as text, ``"10"`` would come before ``"2"``),
    other labels name the ``columns`` columns in sorted order (:func:`~datacheck.features.arrays.class_order`:
    numbers such as ``-1`` and ``+1`` by value). Class names None: the ids are
    column numbers, checked against ``pred_probs`` as numeric labels are. ``named_by`` is where the
    class names came from, as a message names it (a DataFrame's columns: no ``class_names`` was given).
    """
    categories = getattr(getattr(labels, "dtype", None), "categories", None)  # a pandas Categorical's
    names = pd.Series(np.asarray(labels, dtype=object))
    if names.isna().any():
        raise UsageError("labels has missing values; every row of pred_probs needs its given label")
    names = names.astype(str)
    if class_names is None and names.str.fullmatch(_WHOLE).all():
        return names.to_numpy(dtype=np.int64), None
    if class_names is None and categories is not None:
        # A Categorical numbers its classes in its categories' order (its codes), and a model
        # trained on the codes lays its columns out so: sorted, 55 of 60 samples were flagged.
        class_names = list(categories)
    from .features.arrays import class_order

    classes = [str(c) for c in class_names] if class_names is not None else class_order(names.unique())
    twice = pd.Series(classes)[pd.Series(classes).duplicated()]
    if len(twice):
        listed = "class_names lists" if named_by == "class_names" else "the pred_probs DataFrame has the column"
        raise UsageError(f"{listed} {twice.iloc[0]!r} twice; each column needs its own class name")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise UsageError(f"labels {unknown[:3]} are not among {named_by}")
    if class_names is None and columns is not None and columns != len(classes):
        # sorted distinct labels cannot say which column is which
        raise UsageError(f"labels name {len(classes)} classes but pred_probs has {columns} columns; "
                         "pass class_names, one per column in column order")
    return names.map(index).to_numpy(dtype=np.int64), classes

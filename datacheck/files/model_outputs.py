"""``artifacts/model_outputs.npz``: the model's view of the data a model-based audit used.

Members (``OUTPUT_MEMBERS``): ``classes`` (C,), ``labels`` (N,) class ids (-1: unscored),
out-of-fold ``pred_probs`` (N, C), ``source`` (how they were made), and optionally
``embeddings`` (N, D) and the models' own out-of-fold ``softmax`` (N, C). An audit of
user arrays writes none: its inputs are recorded in run.json and read again.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import BadDataError
from ..runs import write_npz

OUTPUTS_ARTIFACT = "model_outputs.npz"
#: Members: name -> (required, number of dimensions).
OUTPUT_MEMBERS = {"classes": (True, 1), "labels": (True, 1), "pred_probs": (True, 2), "source": (True, 0),
                  "embeddings": (False, 2), "softmax": (False, 2)}
#: What reading a damaged .npz can raise: a truncated or overwritten archive is a BadZipFile,
#: a corrupt member a BadZipFile (bad CRC) or a zlib/EOF error, a bad .npy header a ValueError.
NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def write_outputs(path: Path, outputs) -> Path:
    """Write a :class:`~datacheck.features.model.ModelOutputs` atomically."""
    arrays = {"classes": np.asarray(outputs.classes, dtype=str), "labels": outputs.labels,
              "pred_probs": outputs.pred_probs, "source": np.asarray(outputs.source)}
    for name in ("embeddings", "softmax"):
        if getattr(outputs, name) is not None:
            arrays[name] = getattr(outputs, name)
    return write_npz(path, arrays)


def read_outputs(path: Path):
    """The :class:`~datacheck.features.model.ModelOutputs` saved at ``path``.

    Its members and shapes are checked by :func:`check_outputs_file` when the run is opened;
    this checks what needs the values.

    Raises
    ------
    BadDataError
        Unreadable, or its label ids are out of range.
    """
    from ..features.model import ModelOutputs

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except NPZ_ERRORS as exc:
        raise _damaged(path, _reason(exc)) from exc
    labels = arrays["labels"]
    if len(labels) and (labels.min() < -1 or labels.max() >= len(arrays["classes"])):
        # -1 marks an unscored row; anything else outside the classes would index past them.
        raise _damaged(path, f"labels holds class ids outside -1..{len(arrays['classes']) - 1}")
    return ModelOutputs(arrays["classes"].tolist(), labels, arrays["pred_probs"],
                        arrays.get("embeddings"), str(arrays["source"]), arrays.get("softmax"))


def read_classes(path: Path) -> list:
    """The class names saved at ``path``, without loading the other arrays."""
    try:
        with np.load(path, allow_pickle=False) as data:  # reads only this member
            return data["classes"].tolist()
    except NPZ_ERRORS as exc:
        raise _damaged(path, _reason(exc)) from exc


def check_outputs_file(path: Path, samples: int) -> None:
    """Refuse a ``model_outputs.npz`` that is unreadable or not row-aligned with the audit.

    Only the archive's directory and each member's .npy header are read (shapes and dtypes),
    so this is cheap even for a (1M, 100) ``pred_probs``.

    Parameters
    ----------
    path : pathlib.Path
    samples : int
        Rows of the audited manifest (``run.json``'s ``samples``).

    Raises
    ------
    BadDataError
        ``<path> is damaged (<why>); rerun the audit``.
    """
    from numpy.lib import format as npy

    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                with archive.open(member) as stream:
                    version = npy.read_magic(stream)
                    if version not in readers:  # 3.0 is only for non-Latin-1 field names: never written
                        raise ValueError(f"member {member.filename} has .npy format version {version}")
                    shape, _, dtype = readers[version](stream)
                headers[member.filename.removesuffix(".npy")] = shape, dtype
    except NPZ_ERRORS as exc:
        raise _damaged(path, _reason(exc)) from exc
    for name, (required, ndim) in OUTPUT_MEMBERS.items():
        if name not in headers:
            if required:
                raise _damaged(path, f"no {name} array")
            continue
        shape, dtype = headers[name]
        if len(shape) != ndim:
            raise _damaged(path, f"{name} has shape {shape}, expected {ndim} dimension(s)")
        if ndim and name != "classes" and shape[0] != samples:
            raise _damaged(path, f"{name} has {shape[0]} rows, the audited manifest {samples} samples")
    classes = headers["classes"][0][0]
    for name in ("pred_probs", "softmax"):
        if name in headers and headers[name][0][1] != classes:
            raise _damaged(path, f"{name} has {headers[name][0][1]} columns for {classes} classes")
    kinds = {"classes": "U", "labels": "iu", "pred_probs": "f", "softmax": "f", "embeddings": "f"}
    for name, allowed in kinds.items():
        if name in headers and headers[name][1].kind not in allowed:
            raise _damaged(path, f"{name} has dtype {headers[name][1]}")


def _damaged(path: Path, why: str) -> BadDataError:
    return BadDataError(f"{path} is damaged ({why}); rerun the audit")


def _reason(exc: Exception) -> str:
    """``Type: first line of the message`` of an exception (its type alone if it has no message)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""A dataset folder's images, listed by its class layout (``root/<class>/*`` or
``root/<split>/<class>/*``), without pandas.

:mod:`datacheck.manifest` makes the manifest of a folder from this listing. The command line
lists a folder with it before the audit's libraries load, to start decoding its images while
they do (:mod:`datacheck.engine.decode_ahead`): pandas and pyarrow take a third of a second.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from .errors import BadDataError

# At least what torchvision's ImageFolder reads (.pgm, .ppm: the ORL and Yale face sets), which
# a team trains from the same folder: an image it trains on must not be skipped as a non-image.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}


def scan_folder(root: Path) -> tuple[list[tuple], dict]:
    """The image files under ``root/<class>/`` or ``root/<split>/<class>/``: rows of
    ``(path relative to root, label, split)`` in listing order (sorted), and the files skipped
    by reason (``{"non_image": 3}``; reasons with a count only).

    Raises
    ------
    BadDataError
        A folder of the dataset cannot be listed, a mixed layout, or a file name that is not UTF-8.
    """
    top_dirs = _subdirs(root, root)
    split_dirs = [d for d in top_dirs if d.lower() in SPLIT_ALIASES]
    if (split_dirs and len(split_dirs) != len(top_dirs) and not any(_subdirs(root / d, root) for d in split_dirs)
            and any(_holds_images(root / d) for d in top_dirs if d not in split_dirs)):
        # Classes named like splits (Pascal VOC's "train") beside other classes: a split folder
        # holds class folders, and these hold none. The flat outputs of relabel --materialize,
        # augment and fix are laid out so too, and must audit again. (Beside folders of no
        # images only, train/*.jpg + annotations/*.json, it is no class layout: still refused.)
        split_dirs = []
    skipped = {"non_image": 0}
    rows = []
    if split_dirs and len(split_dirs) != len(top_dirs):
        others = [d for d in top_dirs if d not in split_dirs]
        raise BadDataError(
            f"mixed folder layout in {root}: {split_dirs[0]!r} is a split name but {others[0]!r} is not; "
            "use root/<class>/* or root/<split>/<class>/* (or a manifest file)"
        )
    if split_dirs:
        _count_loose_files(root, root, skipped)  # beside the split folders
        for split_dir in split_dirs:
            rows += _class_rows(root, PurePosixPath(split_dir), SPLIT_ALIASES[split_dir.lower()], skipped)
    else:
        rows += _class_rows(root, PurePosixPath(), None, skipped)
    return rows, {k: v for k, v in skipped.items() if v}


def _class_rows(root: Path, rel_dir: PurePosixPath, split: str | None, skipped: dict) -> list[tuple]:
    """The rows of ``root/rel_dir``'s class folders, each named after its class; or, where none
    of its folders holds an image, of the images directly in it, unlabeled (a folder of photos
    as CleanVision audits it: the image checks and duplicates run, the label checks say they
    are off). Images beside class folders have no class and are counted as skipped."""
    folder = root / rel_dir
    rows, in_classes = [], {"non_image": 0}
    for label in _subdirs(folder, root):
        rows += _image_rows(root, rel_dir / label, label, split, in_classes)
    if rows:
        skipped["non_image"] += in_classes["non_image"]
        _count_loose_files(folder, root, skipped)
        return rows
    loose = _image_rows(root, rel_dir, None, split, skipped, recurse=False)
    if not loose:  # no images at all: say what was skipped below too
        skipped["non_image"] += in_classes["non_image"]
    return loose


def _subdirs(folder: Path, root: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError as exc:
        raise _unlisted(exc, root) from None


def _unlisted(exc: OSError, root: Path) -> BadDataError:
    """The error for a folder of the dataset at or below ``root`` that cannot be listed (no
    read or search permission, an I/O error). A folder scan that went on without it would
    leave its images out of the audit without a word (a whole class, or a split, read as
    absent), so the dataset is refused, naming the folder; an unreadable *file* is listed and
    reported by the ``corrupt`` check instead."""
    folder = Path(exc.filename) if exc.filename else root
    try:
        shown = folder.relative_to(root).as_posix()
    except ValueError:
        shown = str(folder)
    if shown == ".":
        return BadDataError(f"cannot list the dataset folder {root}: {exc.strerror or exc}")
    shown = f"{shown!r} in {root}" if not Path(shown).is_absolute() else shown
    return BadDataError(f"cannot list the folder {shown}: {exc.strerror or exc}; its images would be left out of "
                        "the audit: make it readable, or list the images in a manifest file")


def _holds_images(folder: Path) -> bool:
    """Whether any file at or below ``folder`` (hidden ones aside) has an image extension."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS for n in filenames):
            return True
    return False


def _count_loose_files(folder: Path, root: Path, skipped: dict) -> None:
    """Count the files directly in ``folder`` (above the class folders) as skipped: images as
    ``outside_class_folder`` (no class to give them), the rest as ``non_image``."""
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise _unlisted(exc, root) from None
    for entry in entries:
        if not entry.name.startswith(".") and not entry.is_dir():
            image = os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS
            why = "outside_class_folder" if image else "non_image"
            skipped[why] = skipped.get(why, 0) + 1


def _image_rows(root: Path, rel_dir: PurePosixPath, label: str | None, split: str | None, skipped: dict,
                recurse: bool = True) -> list[tuple]:
    """Image files anywhere below ``root/rel_dir`` (directly in it only, unless ``recurse``;
    sorted, hidden files ignored). A folder that cannot be listed is refused (:func:`_unlisted`)."""
    rows = []

    def refuse(exc: OSError) -> None:
        raise _unlisted(exc, root)

    for dirpath, dirnames, filenames in os.walk(root / rel_dir, onerror=refuse):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recurse else []
        rel = Path(dirpath).relative_to(root).as_posix()
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                skipped["non_image"] += 1
                continue
            path = f"{rel}/{name}" if rel != "." else name
            if not path.isascii():  # the check below costs nothing for the usual ASCII names
                _require_utf8_name(path, root)
            rows.append((path, label, split))
    return rows


def _require_utf8_name(path: str, root: Path) -> None:
    """Refuse a file or class folder name that is not valid UTF-8 (``path`` relative to ``root``).

    Python gives such names (Latin-1 or CP-1252 names from an old archive) as text with
    surrogate escapes, which no output can hold: findings, manifests and reports are UTF-8.
    Skipping the file would leave it out of the audit while a training script still reads
    it, so the user is asked to rename it.

    Raises
    ------
    BadDataError
        ``path`` holds bytes that are not UTF-8.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise BadDataError(f"file name is not valid UTF-8: '{shown}' in {root}; rename it "
                           "(findings, manifests and reports are UTF-8)") from None

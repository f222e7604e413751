"""Reading a JSON object that datacheck wrote (run.json, summary.json, plan.json, fix.json...)."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path

from ..errors import BadDataError
from ..validation import check_keys


def read_json(path: Path) -> dict:
    """The JSON object in ``path``; BadDataError if it is missing, unreadable or not an object."""
    from ..engine.image_stats import require_regular_file

    try:
        require_regular_file(path)  # a named pipe would block the read for ever
        # utf-8-sig: a file edited by hand and saved "UTF-8 with BOM" (Windows editors) is
        # the same JSON; json.loads refused its first character.
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise BadDataError(f"{path} is missing; the run directory is incomplete") from None
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise BadDataError(f"cannot read {path}: {str(exc)[:200]}") from exc
    if not isinstance(data, dict):
        raise BadDataError(f"{path} is not a JSON object")
    return data


def check_fields(record_type: type, path: Path, data: dict, required: tuple[str, ...], remedy: str) -> dict:
    """Check ``data`` (a JSON object) against the fields of the dataclass ``record_type`` and
    return the values of its fields (keys it does not know are left out, so a newer datacheck's
    extra keys are no error).

    The JSON type of each key comes from the field's annotation (``int | None`` -> an integer
    or null), so the dataclass is the one declaration of the file's keys.

    Raises
    ------
    BadDataError
        A ``required`` key is absent, or a key holds a value of another type (naming the
        file and the key, then ``remedy``).
    """
    kinds = {name: _json_kind(hint) for name, hint in typing.get_type_hints(record_type).items()}
    check_keys(path, data, {k: kinds[k] for k in required}, {k: v for k, v in kinds.items() if k not in required},
               remedy)
    return {key: data[key] for key in kinds if key in data}


def _json_kind(hint) -> type | tuple:
    """The types :func:`~datacheck.validation.has_type` accepts for an annotation:
    ``int`` -> int, ``str | None`` -> (str, NoneType), ``dict[str, str]`` -> dict."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(_json_kind(arg) for arg in typing.get_args(hint))
    return typing.get_origin(hint) or hint

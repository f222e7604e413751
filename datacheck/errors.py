"""Exit statuses and the error hierarchy.

Library code raises a :class:`DatacheckError` subclass; the single top-level handler in
:mod:`datacheck.__main__` turns it into one line on stderr and the subclass's exit status.
"""

from __future__ import annotations

import functools
import inspect
import re
from enum import IntEnum, unique


@unique
class ExitStatus(IntEnum):
    """Process exit statuses (documented in the README; stable across releases)."""

    OK = 0
    #: The audit ran, but a ``--fail-on`` gate was exceeded.
    GATE_FAILED = 1
    #: Bad command line, option value or config file.
    USAGE = 2
    #: Bad data: unreadable manifest, missing files past ``--max-missing``, unsafe paths, ...
    BAD_DATA = 3
    #: A bug in datacheck itself (never bad input); rerun with ``--debug`` for the traceback.
    INTERNAL_ERROR = 4
    #: Interrupted with Ctrl-C.
    INTERRUPTED = 130


class DatacheckError(Exception):
    """Base class of every error datacheck reports to a user."""

    exit_status = ExitStatus.INTERNAL_ERROR


class UsageError(DatacheckError):
    """An option, argument or configuration value is invalid."""

    exit_status = ExitStatus.USAGE


class BadDataError(DatacheckError):
    """The dataset or manifest cannot be audited as given."""

    exit_status = ExitStatus.BAD_DATA


#: ``datacheck audit``'s options as ``datacheck.audit`` spells them (its keywords); the messages of the
#: code both share name the command line's.
AUDIT_KEYWORDS = {"--" + name.replace("_", "-"): name for name in (
    "pred_probs", "labels", "embeddings", "class_names", "checks", "config", "out", "root", "seed", "fail_on",
    "max_missing", "device", "workers", "model", "weights", "cache_dir", "engine", "ray_address", "junit")}
_OPTION = re.compile(r"(?<![\w/.-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?![\w-])")


def keyword_errors(spelt: dict | None = None):
    """Decorate a function that a ``datacheck`` command and Python both call (``relabel``,
    ``balance``, ``augment``, ``fix``, ``write_report``), whose messages name the command's options: called without
    ``command`` (from Python), the options its errors name become its keywords (``--out`` ->
    ``out``, ``--boost-pool`` -> ``boost_pool``; ``datacheck.audit``'s too: ``--checks`` -> ``checks``).
    ``spelt``: options whose keyword is spelt otherwise (``{"--materialize": "materialize_to"}``).
    Called with ``command`` (by the CLI), its messages are left as they are. Its path arguments
    are checked first (:func:`datacheck.validation.paths_checked`).
    """
    def decorate(function):
        from .validation import paths_checked  # validation imports this module

        checked = paths_checked(function)
        keywords = {**AUDIT_KEYWORDS, **{"--" + name.replace("_", "-"): name for name in inspect.signature(function).parameters},
                    **(spelt or {})}

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                return checked(*args, **kwargs)
            except DatacheckError as exc:
                if kwargs.get("command") is not None:
                    raise
                raise type(exc)(as_keywords(str(exc), keywords)) from None
        return wrapper
    return decorate


def as_keywords(message: str, keywords: dict) -> str:
    """``message`` with the options that ``keywords`` maps (``--max-missing``) as their keywords."""
    return _OPTION.sub(lambda m: keywords.get(m.group(0), m.group(0)), message)

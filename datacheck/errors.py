"""Exit statuses and the error hierarchy.

Library code raises a :class:`DatacheckError` subclass; the single top-level handler in
:mod:`datacheck.__main__` turns it into one line on stderr and the subclass's exit status.
"""

from __future__ import annotations

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

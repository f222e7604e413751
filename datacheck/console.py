"""Rich consoles for the CLI: results on stdout, everything else on stderr.

Only the CLI writes to consoles; library code reports progress through callbacks and
problems through exceptions or :mod:`logging`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from rich.console import Console


class _Console(Console):
    """A rich console whose reader going away is a :class:`BrokenPipeError`, which the CLI
    answers with exit 141 like every other write to a closed pipe (rich's own reaction is
    ``SystemExit(1)``, which would pass for a failed command)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


@dataclass
class Consoles:
    """The two output streams of one CLI invocation."""

    out: Console
    err: Console

    @classmethod
    def create(cls, quiet: bool = False) -> "Consoles":
        # highlight=False: numbers in sample ids must not be recoloured; no colour off a TTY
        # is rich's own default (it checks isatty).
        out = _Console(file=sys.stdout, highlight=False, soft_wrap=True)
        # soft_wrap: a long path is printed on one line (copy-pastable), not broken at 80 columns.
        err = _Console(file=sys.stderr, highlight=False, quiet=quiet, soft_wrap=True)
        return cls(out=out, err=err)

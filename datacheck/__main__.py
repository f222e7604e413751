"""``python -m datacheck`` and the ``datacheck`` console script."""

from __future__ import annotations


def main() -> None:
    import signal
    import sys

    from .cli import cli

    try:
        cli(prog_name="datacheck")
    except SystemExit as exc:
        # Click answers a closed stdout in its own code (--help, --version, its usage
        # errors) with status 1, "a gate failed" here, after swapping stdout for a wrapper
        # that swallows the flush: exit as any program whose reader went away, 141.
        if exc.code == 1 and type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):
            raise SystemExit(141) from None
        raise
    finally:
        # The command has finished (its exit status is decided): a Ctrl-C while the
        # interpreter shuts down must not turn into a traceback or change that status.
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    main()

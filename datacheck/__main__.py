"""``python -m datacheck`` and the ``datacheck`` console script."""

from __future__ import annotations


def main() -> None:
    import signal

    from .cli import cli

    try:
        cli(prog_name="datacheck")
    finally:
        # The command has finished (its exit status is decided): a Ctrl-C while the
        # interpreter shuts down must not turn into a traceback or change that status.
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    main()

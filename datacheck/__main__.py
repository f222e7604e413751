"""``python -m datacheck`` and the ``datacheck`` console script."""

from __future__ import annotations


def main() -> None:
    import signal
    import sys

    code: int | None = 0  # click's standalone mode always ends in SystemExit; this is in case not
    try:
        from .cli import cli

        # Ctrl-C is the command's: cli sets a handler that interrupts it while it runs, and
        # gives this one back after. Before it (click parsing, a few ms) and after it (the
        # status decided) a Ctrl-C is ignored: it was click's "Aborted!" and status 1 there.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        cli(prog_name="datacheck")
    except KeyboardInterrupt:
        # A Ctrl-C before the command sets its own handler (while click and rich are
        # imported, the first tenth of a second): one line and 130, as during the command.
        if sys.stderr is not None:
            sys.stderr.write("datacheck: interrupted\n")
        code = 130
    except SystemExit as exc:
        # Click answers a closed stdout in its own code (--help, --version, its usage
        # errors) with status 1, "a gate failed" here, after swapping stdout for a wrapper
        # that swallows the flush: exit as any program whose reader went away, 141.
        if exc.code == 1 and type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):
            code = 141
        else:
            code = exc.code
    finally:
        # The command has finished (its exit status is decided): a Ctrl-C while the
        # interpreter shuts down must not turn into a traceback or change that status.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_without_teardown(code)


def exit_without_teardown(code: int | None) -> None:
    """Exit with ``code`` as ``sys.exit(code)`` would, less the interpreter's teardown.

    Python's teardown frees every object of every module one by one. With pandas and
    pyarrow loaded (every command but ``--help``) that takes 0.10-0.15 s on this project's
    2-core machine, a twentieth of a quick audit of 2,880 images, to give back memory the
    operating system takes back at once anyway. So once the command has finished and its
    files are closed: flush the standard streams, run the ``atexit`` handlers (those of
    multiprocessing, of temporary folders' finalizers, of Ray) as the teardown would, and
    leave with ``os._exit``. Where a thread of the command is still running (the teardown
    would wait for it), a profiler or tracer is active (it reports after the command), a
    stream cannot be flushed (Python then reports it and exits 120), or this Python has no
    ``atexit._run_exitfuncs``, the ordinary exit runs instead.
    """
    import atexit
    import os
    import sys
    import threading

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    others_running = any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread())
    # A profiler or tracer (python -m cProfile -m datacheck, a debugger) writes its results
    # after the command returns: leave it the ordinary exit.
    observed = sys.getprofile() is not None or sys.gettrace() is not None
    if run_exit_handlers is None or others_running or observed or not isinstance(code, (int, type(None))):
        raise SystemExit(code)
    try:
        _flush_standard_streams()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    run_exit_handlers()
    try:
        _flush_standard_streams()
    except (OSError, ValueError):
        pass  # a handler's late output to a reader that went away: the status stands
    os._exit(code or 0)


def _flush_standard_streams() -> None:
    """Flush stdout and stderr; a stream is None where Python started with its descriptor
    closed (``datacheck ... >&-``)."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


if __name__ == "__main__":
    main()

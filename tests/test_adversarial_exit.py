"""The console script's exit (``datacheck.__main__``) against odd standard streams: closed
file descriptors, readers that went away."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest


@pytest.mark.parametrize("closed", [">&-", "2>&-", ">&- 2>&-"])
@pytest.mark.parametrize("args, status", [(["--version"], 0), (["audit", "no-such-dataset"], 3),
                                          (["audit", ".", "--bogus"], 2)])
def test_a_closed_standard_stream_keeps_the_status_without_a_traceback(tmp_path, closed, args, status):
    """``datacheck ... >&-`` (or ``2>&-``): Python starts with that stream as None; the exit
    keeps the command's status (not 1, after a traceback about None having no ``flush``)."""
    command = shlex.join([sys.executable, "-m", "datacheck", *args]) + " " + closed
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == status


def test_a_ctrl_c_while_the_command_line_loads_is_one_line_and_130():
    """A Ctrl-C in the first tenth of a second (click and rich being imported, before the
    command's own handler is set): ``datacheck: interrupted`` and 130, not a traceback."""
    script = ("import builtins, sys\n"
              "real_import = builtins.__import__\n"
              "def interrupted(name, *args, **kwargs):\n"
              "    if name == 'click':\n"
              "        raise KeyboardInterrupt\n"
              "    return real_import(name, *args, **kwargs)\n"
              "builtins.__import__ = interrupted\n"
              "sys.argv = ['datacheck', '--version']\n"
              "from datacheck.__main__ import main\n"
              "main()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (130, "datacheck: interrupted\n")

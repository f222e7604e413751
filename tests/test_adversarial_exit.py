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

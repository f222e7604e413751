"""The console script's exit (``datacheck.__main__``) against odd standard streams: closed
file descriptors, readers that went away."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args, redirect, status", [
    (["--version"], ">", 2),  # click prints it while parsing, outside the command's handler
    (["audit", "no-such-dataset"], "2>", 3),  # the error line itself cannot be written: the status stands
    (["audit", "{tiny}", "--checks", "class_imbalance", "--out", "{run}"], "2>", 2),  # the summary table cannot
])
def test_a_full_disk_behind_stdout_or_stderr_is_its_documented_status(tmp_path, tiny_dataset, args, redirect, status):
    """stdout or stderr on a full device (``> /dev/full``): ENOSPC is the machine refusing an
    output, status 2 (or the command's own status where only its error line is lost), never
    status 1 ("a gate failed") after a traceback."""
    args = [a.format(tiny=tiny_dataset, run=tmp_path / "run") for a in args]
    command = shlex.join([sys.executable, "-m", "datacheck", *args]) + f" {redirect} /dev/full"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == status
    if redirect == ">":
        assert done.stderr == "datacheck: error: No space left on device\n"


@pytest.mark.parametrize("moment", ["parse", "after"])
def test_a_ctrl_c_outside_the_command_neither_aborts_nor_changes_its_status(moment):
    """A Ctrl-C while click parses the command line (before the command sets its handler) or
    once the command has given Ctrl-C back (click's exit, the status decided): click's own
    "Aborted!" and status 1 (a failed gate), or a KeyboardInterrupt traceback where it landed in
    the console script's last lines; now it is ignored there, and the status is the command's."""
    patch = {
        "parse": ("real = cli.DatacheckGroup.parse_args\n"
                  "def parse_args(self, ctx, args):\n"
                  "    os.kill(os.getpid(), signal.SIGINT); time.sleep(0.1)\n"
                  "    return real(self, ctx, args)\n"
                  "cli.DatacheckGroup.parse_args = parse_args\n"),
        "after": ("real = cli._Interrupts.__exit__\n"
                  "def __exit__(self, *exc):\n"
                  "    real(self, *exc); os.kill(os.getpid(), signal.SIGINT); time.sleep(0.1)\n"
                  "cli._Interrupts.__exit__ = __exit__\n"),
    }[moment]
    script = ("import os, signal, sys, time\n"
              "import datacheck.cli as cli\n" + patch +
              "sys.argv = ['datacheck', 'audit', 'no-such-dataset']\n"
              "from datacheck.__main__ import main\n"
              "main()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (3, "datacheck: error: dataset not found: no-such-dataset\n")

"""Exact CLI behaviour: exit statuses, streams, --json, gates, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from datacheck.cli import cli
from datacheck.errors import ExitStatus

from .conftest import JUDGE_AT_CHANCE_TOML, SAMPLE_DATA, assert_one_line_error, invoke


def test_every_command_has_help():
    for name, command in cli.commands.items():
        result = invoke(name, "--help")
        assert result.exit_code == 0, name
        assert command.help and command.help.split()[0] in result.stdout


def test_audit_json_on_stdout_and_summary_on_stderr(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    result = invoke("audit", tiny_dataset, "--out", out, "--json", "--workers", 0)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["run_dir"] == str(out)
    assert summary["samples"] == 16
    assert summary["exit_status"] == 0
    assert set(summary["checks"]) >= {"near_duplicates", "split_leakage", "dark", "corrupt", "class_imbalance"}
    assert "datacheck audit: 16 samples" in result.stderr
    assert f"run written to {out}" in result.stderr
    assert (out / "findings.parquet").exists()


def test_quiet_prints_nothing(tiny_dataset, tmp_path):
    config = tmp_path / "judge.toml"
    config.write_text(JUDGE_AT_CHANCE_TOML)  # else a note says the label checks did not judge (random images)
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "run", "--quiet", "--workers", 0, "--config", config)
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""


def test_gate_exceeded_exits_1_with_reason(tmp_path):
    # Only the gated checks run (a check's findings do not depend on the others): no training.
    result = invoke("audit", SAMPLE_DATA, "--out", tmp_path / "run", "--checks", "near_duplicates,image_properties",
                    "--fail-on", "near_duplicates>0,dark>50%")
    assert result.exit_code == 1
    assert "datacheck: gate failed: near_duplicates>0 (flagged 12 of" in result.stderr
    assert "dark>50%" not in result.stderr.split("gate failed")[-1]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [g["failed"] for g in summary["gates"]] == [True, False]
    assert summary["exit_status"] == 1


def test_gate_not_exceeded_exits_0(tiny_dataset, tmp_path):
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "run", "--fail-on", "split_leakage>0,image_properties>=50%")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fail-on", "near_duplicates>>3"], "bad --fail-on gate 'near_duplicates>>3'"),
        (["--fail-on", "labl_issues>5%"], "unknown check 'labl_issues'"),
        (["--fail-on", "dark>0", "--checks", "exact_duplicates"], "which this audit does not run"),
        (["--checks", "nope"], "unknown check 'nope'"),
        (["--checks", "dark"], "'dark' is a check of the 'image_properties' detector"),
        (["--checks", "zz*"], "matches no check"),
        (["--device", "tpu"], "bad --device 'tpu'"),
        (["--device", "cuda:7"], "--device cuda:7"),
        (["--seed", "x"], "Invalid value for '--seed'"),
    ],
)
def test_usage_errors_exit_2(tiny_dataset, tmp_path, args, message):
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "run", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing written for a bad command line


def test_bad_config_exits_2(tiny_dataset, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[detectors.image_properties]\nz_threshold = 'high'\n")
    result = invoke("audit", tiny_dataset, "--config", config)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"datacheck: error: detectors.image_properties.z_threshold in {config} must be float, got 'high'"
    )


def test_config_file_and_cli_precedence(tiny_dataset, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[audit]\nseed = 7\nchecks = ["class_imbalance"]\n')
    result = invoke("audit", tiny_dataset, "--config", config, "--seed", 3, "--out", tmp_path / "r", "--json", "-q")
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["seed"] == 3  # command line beats the file
    assert list(json.loads(result.stdout)["checks"]) == ["class_imbalance"]  # the file beats the defaults


def test_out_refuses_a_foreign_folder(tiny_dataset, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    result = invoke("audit", tiny_dataset, "--out", foreign)
    assert result.exit_code == 2
    assert "is a non-empty folder that is not a datacheck run" in result.stderr
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_python_dash_m_and_help_does_not_import_torch():
    code = "import sys; from datacheck.cli import cli; sys.argv=['datacheck','--help']\n" \
           "try:\n    cli()\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"
    version = subprocess.run([sys.executable, "-m", "datacheck", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("datacheck, version ")


def test_user_text_is_printed_verbatim_and_paths_unwrapped(tmp_path):
    """Sample ids like "[red]x" are not rich markup; a long run path stays on one line."""
    from .conftest import make_image

    root = tmp_path / "data"
    for i in range(6):
        make_image(root / "[red]x" / f"a{i}.png", i)
        make_image(root / "plain" / f"b{i}.png", 100 + i)
    make_image(root / "[red]x" / "dup.png", 0)  # an exact duplicate: shown among the worst examples
    out = tmp_path / ("a-very-long-run-directory-name-" * 3) / "run"
    result = invoke("audit", root, "--out", out, "--checks", "exact_duplicates", "--workers", 0)
    assert result.exit_code == 0, result.output
    assert "[red]x/" in result.stderr
    assert f"run written to {out}\n" in result.stderr


def test_outputs_never_replace_a_device_or_folder(tmp_path, tiny_dataset):
    """Atomic writes rename into place, which would replace /dev/null itself: refused instead."""
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "run", "--checks", "exact_duplicates",
                    "--junit", "/dev/null", "--workers", 0)
    assert result.exit_code == 2 and "not a regular file" in result.stderr
    assert Path("/dev/null").is_char_device()
    result = invoke("report", tmp_path / "run", "--out", tmp_path, "-q")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "No such option '--bogus'"),
    (["nope"], "No such command 'nope'"),
    (["audit", "--workers", "-5", "x"], "Invalid value for '--workers'"),
    (["relabel"], "Missing argument 'RUN'"),
])
def test_click_usage_errors_are_one_line(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("datacheck: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr and "Usage:" not in result.output


#: Usage errors of every command (Click's parsing, and audit's own DATASET-or-arrays rule), by kind:
#: the command's arguments and a fragment of the error that proves which mistake was caught.
USAGE_ERRORS = {
    "audit": {
        "unknown-option": (["--bogus"], "No such option '--bogus'"),
        "no-dataset": ([], "give a DATASET, or --pred-probs with --labels"),
        "option-without-value": (["--seed"], "Option '--seed' requires an argument"),
        "bad-int": (["data", "--seed", "x"], "Invalid value for '--seed'"),
        "int-out-of-range": (["data", "--workers", "-1"], "Invalid value for '--workers'"),
        "extra-argument": (["data", "more"], "Got unexpected extra argument (more)"),
    },
    "fix": {
        "unknown-option": (["--bogus", "data", "--out", "o"], "No such option '--bogus'"),
        "missing-argument": (["--out", "o"], "Missing argument 'DATASET'"),
        "missing-out": (["data"], "Missing option '--out'"),
        "bad-int": (["data", "--out", "o", "--budget", "x"], "Invalid value for '--budget'"),
        "extra-argument": (["data", "more", "--out", "o"], "Got unexpected extra argument (more)"),
    },
    "relabel": {
        "unknown-option": (["--bogus", "run"], "No such option '--bogus'"),
        "missing-argument": ([], "Missing argument 'RUN'"),
        "option-without-value": (["run", "--out"], "Option '--out' requires an argument"),
        "bad-float": (["run", "--min-confidence", "x"], "Invalid value for '--min-confidence'"),
        "extra-argument": (["run", "more"], "Got unexpected extra argument (more)"),
    },
    "balance": {
        "unknown-option": (["--bogus", "run", "--out", "plan"], "No such option '--bogus'"),
        "missing-argument": (["--out", "plan"], "Missing argument 'RUN'"),
        "missing-option": (["run"], "Missing option '--out'"),
        "bad-choice": (["run", "--out", "plan", "--strategy", "bogus"], "Invalid value for '--strategy'"),
        "bad-int": (["run", "--out", "plan", "--target", "x"], "Invalid value for '--target'"),
        "bad-float": (["run", "--out", "plan", "--budget", "x"], "Invalid value for '--budget'"),
    },
    "augment": {
        "unknown-option": (["--bogus", "plan", "--out", "aug"], "No such option '--bogus'"),
        "missing-argument": (["--out", "aug"], "Missing argument 'PLAN'"),
        "missing-option": (["plan"], "Missing option '--out'"),
        "bad-choice": (["plan", "--out", "aug", "--policy", "bogus"], "Invalid value for '--policy'"),
        "bad-int": (["plan", "--out", "aug", "--num-ops", "x"], "Invalid value for '--num-ops'"),
        "int-out-of-range": (["plan", "--out", "aug", "--seed", "-1"], "Invalid value for '--seed'"),
        "too-few-values": (["plan", "--out", "aug", "--scale", "1"], "Option '--scale' requires 2 arguments"),
    },
    "report": {
        "unknown-option": (["--bogus", "run"], "No such option '--bogus'"),
        "missing-argument": ([], "Missing argument 'RUN'"),
        "bad-int": (["run", "--gallery-size", "x"], "Invalid value for '--gallery-size'"),
        "int-out-of-range": (["run", "--max-thumbnails", "-1"], "Invalid value for '--max-thumbnails'"),
        "extra-argument": (["run", "more"], "Got unexpected extra argument (more)"),
    },
}


def test_usage_errors_cover_every_command():
    assert sorted(USAGE_ERRORS) == sorted(cli.commands)


@pytest.mark.parametrize("command, args, fragment", [
    pytest.param(command, args, fragment, id=f"{command}-{kind}")
    for command, cases in USAGE_ERRORS.items() for kind, (args, fragment) in cases.items()
])
def test_every_usage_error_is_one_line_exit_2(tmp_path, monkeypatch, command, args, fragment):
    monkeypatch.chdir(tmp_path)  # the runs and plans named above do not exist; nothing may be written here
    result = invoke(command, *args)
    assert_one_line_error(result, ExitStatus.USAGE, fragment)
    assert result.stdout == "" and "Usage:" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_reader_that_goes_away_is_exit_141_quietly(tiny_dataset, tmp_path):
    """``datacheck audit --json | true``: the summary cannot be written; the audit still ran,
    and the exit is a quiet 141 (128 + SIGPIPE), as for any program whose reader closed the pipe."""
    process = subprocess.Popen([sys.executable, "-m", "datacheck", "audit", str(tiny_dataset), "--checks",
                                "class_imbalance", "--out", str(tmp_path / "run"), "--json", "-q", "--fail-on", ""],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the command has written anything (its imports alone take longer)
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141 and stderr == b""
    assert (tmp_path / "run" / "findings.parquet").is_file()


def test_a_training_size_past_the_limit_is_refused_before_any_work(tiny_dataset, tmp_path):
    config = tmp_path / "big.toml"
    config.write_text("[train]\nimage_size = 1000000\n")
    result = invoke("audit", tiny_dataset, "--config", config, "--out", tmp_path / "run")
    assert_one_line_error(result, ExitStatus.USAGE, "train.image_size must be an integer in [16, 1024]")
    assert not (tmp_path / "run").exists()


def test_running_out_of_memory_is_one_line_exit_2(tiny_dataset, tmp_path, monkeypatch):
    import datacheck.pipeline

    def too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 54.6 TiB for an array")

    monkeypatch.setattr(datacheck.pipeline, "load_manifest", too_big)
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "run")
    assert_one_line_error(result, ExitStatus.USAGE, "not enough memory (Unable to allocate 54.6 TiB", "smaller")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["audit", "--help"]])
def test_click_output_to_a_closed_pipe_is_exit_141_too(args):
    """--help and --version are printed by click itself, which reports a closed pipe as status 1."""
    process = subprocess.Popen([sys.executable, "-m", "datacheck", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 141 and stderr == b""


def test_quiet_means_no_library_warnings_on_stderr(tmp_path):
    """An image whose EXIF orientation is stored oddly makes Pillow warn as it is read; with -q
    nothing but errors may reach stderr (the report reads every image again for thumbnails)."""
    import struct

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(tmp_path / "data" / cls / f"{i}.png")
    # orientation 6 stored as two SHORTs: Pillow warns "tag 274 had too many entries"
    ifd = struct.pack("<H", 1) + struct.pack("<HHI", 0x0112, 3, 2) + struct.pack("<HH", 6, 6) + struct.pack("<I", 0)
    Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(
        tmp_path / "data" / "a" / "odd.jpg", exif=b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd)
    for args in (["audit", tmp_path / "data", "--checks", "image_properties", "--out", tmp_path / "run", "--fail-on", ""],
                 ["report", tmp_path / "run"]):
        done = subprocess.run([sys.executable, "-m", "datacheck", *map(str, args), "-q"], capture_output=True, timeout=120)
        assert done.returncode == 0 and done.stderr == b"", done.stderr


@pytest.mark.parametrize("code, status", [(None, 0), (0, 0), (3, 3), (141, 141)])
def test_the_exit_without_teardown_keeps_the_status_output_and_exit_handlers(code, status):
    """The console script leaves with os._exit once the command is done (Python's teardown of
    pandas and pyarrow costs 0.1 s): buffered output is still written, atexit handlers still
    run, after the output, and the status is the command's."""
    script = ("import atexit, sys; atexit.register(lambda: print('handler', flush=True)); "
              "from datacheck.__main__ import exit_without_teardown; "
              f"print('out', end=''); print('err', end='', file=sys.stderr); exit_without_teardown({code!r})")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (status, "outhandler\n", "err")


def test_the_exit_waits_for_a_thread_still_running():
    """A non-daemon thread still working when the command ends gets the ordinary exit, which
    waits for it."""
    script = ("import threading, time; from datacheck.__main__ import exit_without_teardown; "
              "threading.Thread(target=lambda: (time.sleep(0.5), print('thread done', flush=True))).start(); "
              "exit_without_teardown(5)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (5, "thread done\n")


def test_a_profiler_still_gets_its_report(tmp_path):
    """``python -m cProfile -o F -m datacheck ...`` writes F after the command returns: a
    profiled (or traced) run takes the ordinary exit."""
    out = tmp_path / "profile.out"
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "datacheck", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "datacheck, version" in done.stdout
    assert out.stat().st_size > 1000

"""The repair commands' safety promises, tested as a hostile but realistic user would break
them: a command run again into its own output, Ctrl-C between two of its files, config values
of the wrong kind. Tiny datasets and checks that train no model, so the file takes seconds."""

from __future__ import annotations

import hashlib

import pytest

from .conftest import assert_one_line_error, invoke, make_tiny_dataset, tree_digest

QUICK = '[audit]\nchecks = ["image_properties", "exact_duplicates"]\n'


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """An audit of a tiny dataset with checks that train no model: (dataset, run folder)."""
    root = tmp_path_factory.mktemp("adversarial")
    data = make_tiny_dataset(root / "tiny")
    config = root / "quick.toml"
    config.write_text(QUICK)
    result = invoke("audit", data, "--out", root / "run", "--config", config, "--workers", 0, "-q")
    assert result.exit_code == 0, result.output
    return data, root / "run"


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_relabel_rewrites_its_own_earlier_output(quick_run, tmp_path):
    """`relabel --out DIR` run twice: the second run was refused, exit 2, "--out's manifest.csv
    DIR/manifest.csv is a file of the datacheck relabel output in DIR; choose another path":
    the guard that keeps other commands off a relabel output's files kept relabel off them too."""
    _, run = quick_run
    out = tmp_path / "relabelled"
    args = ["relabel", run, "--drop", "--out", out, "-q"]
    assert invoke(*args).exit_code == 0
    first = tree_digest(out)
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert tree_digest(out) == first
    # Still refused: a relabel output's files as another command's output, or as another
    # relabel's export.
    assert_one_line_error(invoke("relabel", run, "--drop", "--export-review", out / "changes.parquet"), 2,
                          "is a file of the datacheck relabel output")
    assert_one_line_error(invoke("report", run, "--out", out / "relabel.json", "-q"), 2,
                          "is a file of the datacheck relabel output")


def interrupt(monkeypatch, module, name):
    """Ctrl-C lands while ``module.name`` runs, its first call only (as a SIGINT would)."""
    real = getattr(module, name)
    calls = []

    def once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, once)


@pytest.mark.parametrize("command", ["relabel", "balance"])
def test_ctrl_c_between_two_output_files_then_the_same_command_finishes(quick_run, tmp_path, monkeypatch, command):
    """Ctrl-C after the first file of the output was written but before its marker (relabel:
    manifest.csv then changes.parquet then relabel.json; balance: plan.parquet then
    manifest.csv then plan.json) left a folder that no rerun would take: exit 2, "--out DIR
    exists and is not an empty folder or an earlier relabel output". Now the marker is
    written first, and the rerun's output is byte for byte an uninterrupted run's."""
    import datacheck.manifest
    import datacheck.runs

    _, run = quick_run
    options = ["--drop"] if command == "relabel" else ["--strategy", "classes"]
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert invoke(command, run, *options, "--out", reference, "-q").exit_code == 0
    with monkeypatch.context() as patch:
        if command == "relabel":
            interrupt(patch, datacheck.runs, "write_parquet")  # changes.parquet, after the manifest
        else:
            interrupt(patch, datacheck.manifest, "write_manifest")  # the manifest, after plan.parquet
        stopped = invoke(command, run, *options, "--out", out, "-q")
    assert stopped.exit_code == 130 and stopped.stderr == "datacheck: interrupted\n", stopped.output
    again = invoke(command, run, *options, "--out", out, "-q")
    assert again.exit_code == 0, again.output
    assert tree_digest(out) == tree_digest(reference)


@pytest.mark.parametrize("text, words", [
    ('[fix]\nbudget = "10"\n', "fix.budget in {config} must be an integer >= 0, got '10'"),
    ("[fix]\nbudget = [1]\n", "fix.budget in {config} must be an integer >= 0, got [1]"),
    ("[fix.budget]\nx = 1\n", "fix.budget in {config} must be an integer >= 0, got {{'x': 1}}"),
    ("[fix]\nboost_max_fraction = nan\n", "fix.boost_max_fraction in {config} must be a finite number in [0, 1], got nan"),
    ("[fix]\nmin_confidence = inf\n", "fix.min_confidence in {config} must be a finite number > 0 and <= 1, got inf"),
    ('[fix]\nrelabel = "yes"\n', "fix.relabel in {config} must be true or false, got 'yes'"),
    # [augment] errors name the file's keys (before: "num-ops and --magnitude", "exclude-ops")
    ("[augment]\nmagnitude = true\n", "[augment] in {config}: num_ops and magnitude must be integers, not true/false"),
    ("[augment]\nnum_ops = 0\n", "[augment] in {config}: num_ops must be an integer in [1, 50], got 0"),
    ('[augment]\nexclude_ops = "Solarize"\n', "[augment] in {config}: exclude_ops must be a list of RandAugment"),
])
def test_a_bad_fix_value_names_its_key_and_file(tmp_path, text, words):
    """A [fix] value of the wrong type or range: exit 2 before any work, naming the key and
    the file as every other section's errors do (before: "fix.budget must be an integer >= 0,
    got '10'", which file unsaid)."""
    data = make_tiny_dataset(tmp_path / "tiny")
    config = tmp_path / "fix.toml"
    config.write_text(text)
    out = tmp_path / "out"
    assert_one_line_error(invoke("fix", data, "--out", out, "--config", config, "--workers", 0, "-q"), 2,
                          words.format(config=config))
    assert not out.exists()


def test_a_budget_from_the_config_is_named_as_such(tmp_path):
    """`[fix] budget` past what fix can make was refused as "--budget 1000000 would make ...",
    an option the command line never had; now the message names the key and the file."""
    data = make_tiny_dataset(tmp_path / "tiny")
    config = tmp_path / "fix.toml"
    config.write_text("[fix]\nbudget = 1000000\n")
    out = tmp_path / "out"
    args = ["fix", data, "--out", out, "--config", config, "--workers", 0, "-q"]
    assert_one_line_error(invoke(*args), 2, f"[fix] budget 1000000 of {config} would make 999,996 training rows")
    config.write_text("[fix]\nbudget = 3\n")
    assert_one_line_error(invoke(*args), 2, f"[fix] budget 3 of {config} is below the 4 val/test rows")
    # Given on the command line, it is still --budget.
    assert_one_line_error(invoke(*args, "--budget", 4), 2, "--budget 4 equals the 4 val/test rows")
    assert not out.exists()


SLOW_AUGMENT = """
import importlib, pathlib, sys, time
augment = importlib.import_module("datacheck.actions.augment")  # the module: the package's name is the function
real, started = augment.augment_batch, pathlib.Path(sys.argv[1])
def slow(*args, **kwargs):
    started.touch()  # a worker is making copies
    time.sleep(2)
    return real(*args, **kwargs)
augment.augment_batch = slow
sys.argv = ["datacheck", *sys.argv[2:]]
from datacheck.__main__ import main
main()
"""


def test_sigterm_stops_the_workers_too_and_the_resumed_augment_finishes(quick_run, tmp_path):
    """`kill PID` (or `timeout`, a cancelled CI job) while augment's worker processes made
    copies: the main process died at once and its forked workers lived on, idle for ever,
    holding its stdout and stderr, so `datacheck augment ... | tee log` never ended. Now
    SIGTERM stops the command as Ctrl-C does: workers stopped, one line, exit 143 (128 +
    SIGTERM), and --resume finishes the copies."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _, run = quick_run
    plan = tmp_path / "plan"
    assert invoke("balance", run, "--strategy", "classes", "--target", 20, "--out", plan, "-q").exit_code == 0
    started, out = tmp_path / "started", tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-c", SLOW_AUGMENT, started, "augment", plan, "--out", out,
                                "--workers", "2", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), process.communicate()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)  # before: its workers kept the pipes open for ever
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever is left of its process group
        except ProcessLookupError:
            pass
    assert process.returncode == 143 and stderr == "datacheck: terminated\n", (process.returncode, stderr)
    resumed = invoke("augment", plan, "--out", out, "--resume", "--workers", 0, "-q")
    assert resumed.exit_code == 0, resumed.output
    reference = tmp_path / "reference"
    assert invoke("augment", plan, "--out", reference, "--workers", 0, "-q").exit_code == 0
    assert sha(out / "manifest.csv") == sha(reference / "manifest.csv")


def test_an_error_naming_a_path_with_a_newline_stays_one_line(quick_run, tmp_path):
    """A path holding a newline (or a terminal escape) split the error into two lines on
    stderr; now it is shown escaped, as repr shows it."""
    data, run = quick_run
    (tmp_path / "file").write_text("not a folder")
    line = assert_one_line_error(invoke("fix", data, "--out", tmp_path / "file" / "x\ny", "-q"), 2,
                                 "x\\ny cannot be written", "is a file, not a folder")
    assert "\n" not in line
    assert_one_line_error(invoke("relabel", str(run) + "\x1b[2J", "--drop"), 2, "\\x1b[2J does not exist")


@pytest.mark.parametrize("command", [["relabel", "--drop"], ["balance", "--strategy", "classes", "--out", "plan"],
                                     ["report", "--out", "report.html"]])
def test_findings_listing_a_sample_twice_for_a_check_are_bad_data(quick_run, tmp_path, command):
    """findings.parquet appended to itself (two runs' findings concatenated by a script):
    relabel and balance failed with an internal error (pandas' "Reindexing only valid with
    uniquely valued Index objects", exit 4), report with "int() argument must be ... not
    'Series'". Now it is a damaged run, exit 3, before any work."""
    import shutil

    import pandas as pd

    _, run = quick_run
    damaged = tmp_path / "run"
    shutil.copytree(run, damaged)
    findings = pd.read_parquet(damaged / "findings.parquet")
    pd.concat([findings, findings]).to_parquet(damaged / "findings.parquet", index=False)
    name, *options = command
    options = [str(tmp_path / o) if o in ("plan", "report.html") else o for o in options]
    assert_one_line_error(invoke(name, damaged, *options, "-q"), 3, f"{damaged / 'findings.parquet'}: sample ",
                          "has 2 rows for check", f"({len(findings)} such pair(s)); the run is damaged")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written

"""Bad option values: one line on stderr, the documented exit status (2 usage, 3 bad data),
never a traceback and never exit 4. Each case is a repro found by an adversarial tester."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datacheck.actions.balance import BalanceOptions, plan_balance
from datacheck.errors import UsageError
from datacheck.gates import parse_gates

from .conftest import assert_one_line_error, invoke, make_image


@pytest.fixture
def arrays(tmp_path):
    """``--pred-probs``, ``--labels`` and ``--embeddings`` files of 60 rows, 3 classes: an audit in seconds."""
    rng = np.random.default_rng(0)
    paths = {name: tmp_path / f"{name}.npy" for name in ("P", "L", "E")}
    np.save(paths["P"], rng.dirichlet(np.ones(3), size=60).astype(np.float32))
    np.save(paths["L"], rng.integers(0, 3, 60))
    np.save(paths["E"], rng.normal(size=(60, 8)).astype(np.float32))
    return ["audit", "--pred-probs", paths["P"], "--labels", paths["L"], "--embeddings", paths["E"], "-q"]


# --------------------------------------------------------------------------- audit: seed


@pytest.mark.parametrize("seed", ["-1", "4294967296", "99999999999999999999"])
def test_seed_out_of_range_is_a_usage_error(arrays, tmp_path, seed):
    result = invoke(*arrays, f"--seed={seed}", "--out", tmp_path / "run")
    assert_one_line_error(result, 2, "--seed must be an integer in [0, 4294967295]", seed)
    assert not (tmp_path / "run").exists()


def test_largest_seed_runs_the_seeded_checks(arrays, tmp_path):
    # clusters passes the seed to scikit-learn and numpy, which refused what it was given before
    result = invoke(*arrays, "--seed=4294967295", "--checks", "clusters,outliers", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output


def test_seed_in_a_config_file(arrays, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[audit]\nseed = -1\n")
    assert_one_line_error(invoke(*arrays, "--config", config, "--out", tmp_path / "run"), 2, "audit.seed in", "got -1")


# --------------------------------------------------------------------------- audit: config values


@pytest.mark.parametrize(
    "text, words",
    [
        ("[audit]\nbatch_size = 0\n", ("audit.batch_size", ">= 1", "got 0")),
        ("[audit]\nbatch_size = -3\n", ("audit.batch_size", "got -3")),
        ("[audit]\nworkers = -7\n", ("audit.workers", ">= -1", "got -7")),
        ("[audit]\nmax_missing = -1\n", ("audit.max_missing", ">= 0")),
        ("[detectors.image_properties]\nz_threshold = inf\n", ("z_threshold", "finite", "inf")),
        ("[detectors.image_properties]\nz_threshold = nan\n", ("z_threshold", "finite", "nan")),
    ],
)
def test_bad_config_values_exit_2_before_any_work(tmp_path, text, words):
    root = tmp_path / "data"
    for i in range(4):
        make_image(root / ("a" if i % 2 else "b") / f"{i}.png", i)
    config = tmp_path / "c.toml"
    config.write_text(text)
    result = invoke("audit", root, "--checks", "image_properties", "--config", config, "--out", tmp_path / "run")
    assert_one_line_error(result, 2, *words)
    assert not (tmp_path / "run").exists()


def test_config_that_is_not_utf8_exits_2(arrays, tmp_path):
    config = tmp_path / "b.toml"
    config.write_bytes(b"\xff\xfe")
    assert_one_line_error(invoke(*arrays, "--config", config), 2, f"cannot read config {config}: not UTF-8 text")


def test_config_that_is_a_fifo_exits_2_without_waiting(arrays, tmp_path):
    """Reading a named pipe that nobody writes blocked the audit forever."""
    import os

    config = tmp_path / "c.toml"
    os.mkfifo(config)
    assert_one_line_error(invoke(*arrays, "--config", config, "--out", tmp_path / "run"), 2,
                          f"cannot read config {config}: a named pipe (FIFO), not a regular file")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- audit: --checks


@pytest.mark.parametrize("spec", [",", " , ,"])
def test_checks_naming_no_detector(arrays, tmp_path, spec):
    result = invoke(*arrays, "--checks", spec, "--out", tmp_path / "run")
    assert_one_line_error(result, 2, "--checks names no detector", "label_issues")
    assert not (tmp_path / "run").exists()


def test_empty_checks_string(arrays, tmp_path):
    assert_one_line_error(invoke(*arrays, "--checks", "", "--out", tmp_path / "run"), 2, "--checks names no detector")


# --------------------------------------------------------------------------- audit: --fail-on


def test_unknown_gate_lists_check_names(arrays, tmp_path):
    result = invoke(*arrays, "--fail-on", "DARK>0", "--out", tmp_path / "run")
    assert_one_line_error(result, 2, "'DARK>0'", "did you mean 'dark'?", "dark, exact_duplicates", "blurry",
                          "image_properties")


@pytest.mark.parametrize("spec", ["corrupt>\u0663", "corrupt>\uff11", "corrupt>1e999", "corrupt>-1", "corrupt>>1", ">0",
                                  "corrupt>"])
def test_gate_limits_are_ascii_numbers(spec):
    """An Arabic-Indic or full-width digit was read as a limit by float(); now, as an exponent or a
    sign, it is a malformed gate."""
    with pytest.raises(UsageError, match=r"^bad --fail-on gate .*; expected CHECK>N or CHECK>N%"):
        parse_gates(spec)


def test_gate_names_checks_and_detectors():
    assert [g.check for g in parse_gates("dark>5%,image_properties>0,exact_duplicates>0")] == [
        "dark", "image_properties", "exact_duplicates"]
    with pytest.raises(UsageError, match="unknown check 'nope'; checks: aum, blurry"):
        parse_gates("nope>0")


# --------------------------------------------------------------------------- --pred-probs arrays


@pytest.mark.parametrize("which", ["P", "E"])
def test_complex_arrays_exit_3_in_one_line(arrays, tmp_path, which):
    path = tmp_path / f"{which}.npy"
    np.save(path, np.load(path).astype(np.complex64))
    option = {"P": "--pred-probs", "E": "--embeddings"}[which]
    result = invoke(*arrays, "--out", tmp_path / "run")
    assert_one_line_error(result, 3, f"{option} must hold real numbers", "complex64")
    assert "ComplexWarning" not in result.stderr


def test_complex_labels_exit_3(arrays, tmp_path):
    np.save(tmp_path / "L.npy", np.load(tmp_path / "L.npy").astype(np.complex128))
    assert_one_line_error(invoke(*arrays, "--out", tmp_path / "run"), 3, "--labels must hold integer class ids")


def test_labels_as_class_names_are_matched_to_the_class_names_file(arrays, tmp_path):
    """``--labels`` of class names (text, as the Python API takes them) with ``--class-names``:
    each is the column its name has; without the file, or with a name it lacks, one line, exit 3."""
    import json

    ids = np.load(tmp_path / "L.npy")
    (tmp_path / "names.txt").write_text("cat\ndog\nowl\n")
    by_id = invoke(*arrays, "--class-names", tmp_path / "names.txt", "--out", tmp_path / "ids", "--json")
    np.save(tmp_path / "L.npy", np.array(["cat", "dog", "owl"])[ids])
    by_name = invoke(*arrays, "--class-names", tmp_path / "names.txt", "--out", tmp_path / "names", "--json")
    assert by_id.exit_code == by_name.exit_code == 0, by_name.output
    assert json.loads(by_name.stdout)["checks"] == json.loads(by_id.stdout)["checks"]
    assert_one_line_error(invoke(*arrays, "--out", tmp_path / "run"), 3,
                          "--labels holds class names: name the --pred-probs columns with --class-names FILE")
    (tmp_path / "names.txt").write_text("cat\ndog\nemu\n")
    assert_one_line_error(invoke(*arrays, "--class-names", tmp_path / "names.txt", "--out", tmp_path / "run2"), 3,
                          "--labels has 1 class name(s) that --class-names does not list: 'owl'")


# --------------------------------------------------------------------------- balance


def frame_of(n_train: int, n_val: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A manifest of ``n_train`` training rows of classes a/b (and val rows), and no findings."""
    rows = [(f"t{i}", "ab"[i % 2], "train") for i in range(n_train)] + [(f"v{i}", "a", "val") for i in range(n_val)]
    frame = pd.DataFrame(rows, columns=["sample_id", "label", "split"])
    frame.insert(1, "path", frame["sample_id"])
    findings = pd.DataFrame(columns=["sample_id", "check", "is_issue", "details"])
    return frame.astype("string"), findings.astype({"is_issue": bool})


@pytest.mark.parametrize("seed", [-1, 2**32, True])
def test_balance_seed_must_be_a_seed(seed):
    with pytest.raises(UsageError, match=r"--seed must be an integer in \[0, 4294967295\]"):
        BalanceOptions(strategy="classes", seed=seed).validate()


def test_balance_target_is_bounded_by_the_training_split():
    frame, findings = frame_of(200, n_val=3)  # limit: 100 x 200 = 20,000 training rows
    plan = plan_balance(frame, findings, BalanceOptions(strategy="classes", target=10_000))
    assert plan["copies"].sum() == 20_000 - 200
    with pytest.raises(UsageError) as info:
        plan_balance(frame, findings, BalanceOptions(strategy="classes", target=10_001))
    message = str(info.value)
    assert "--target 10001 would make 20,002 training rows, over the limit of 20,000" in message
    assert "--max-total N (N up to 20,003, all splits included)" in message


def test_balance_small_dataset_may_reach_the_floor():
    frame, findings = frame_of(10)  # 100 x 10 = 1,000, but any dataset may grow to 10,000 rows
    assert plan_balance(frame, findings, BalanceOptions(strategy="classes", target=5_000))["copies"].sum() == 9_990
    with pytest.raises(UsageError, match="over the limit of 10,000"):
        plan_balance(frame, findings, BalanceOptions(strategy="classes", target=5_001))


def test_balance_max_total_bounds_a_huge_target():
    frame, findings = frame_of(10, n_val=2)
    plan = plan_balance(frame, findings, BalanceOptions(strategy="classes", target=10**30, max_total=102))
    assert len(plan) + plan["copies"].sum() == 102
    with pytest.raises(UsageError, match="over the limit"):  # a cap above the limit does not help
        plan_balance(frame, findings, BalanceOptions(strategy="classes", target=10**30, max_total=10**27))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """An audit (no model) of 8 images in two classes."""
    base = tmp_path_factory.mktemp("balance")
    for i in range(8):
        make_image(base / "data" / "ab"[i % 2] / f"{i}.png", i)
    result = invoke("audit", base / "data", "--checks", "class_imbalance", "--workers", 0, "--out", base / "run", "-q")
    assert result.exit_code == 0, result.output
    return base / "run"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--seed", "-1"], ["--seed must be an integer in [0, 4294967295], got -1"]),
        (["--target", "100000000"], ["--target 100000000 would make 200,000,000 training rows", "--max-total"]),
    ],
)
def test_balance_bad_options_exit_2(image_run, tmp_path, args, words):
    result = invoke("balance", image_run, "--strategy", "classes", *args, "--out", tmp_path / "plan")
    assert_one_line_error(result, 2, *words)
    assert not (tmp_path / "plan" / "plan.json").exists()

"""Configuration: defaults from code, TOML file, command-line overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datacheck.config import MAX_CONFIG_BYTES, PRESETS, config_file, default_config, load_config, render_toml
from datacheck.errors import UsageError

from .conftest import REPO_ROOT, SAMPLE_DATA, assert_one_line_error, invoke


def test_committed_default_config_is_current():
    """configs/default.toml must be exactly what the code's defaults render to."""
    committed = (REPO_ROOT / "configs" / "default.toml").read_text()
    assert committed == render_toml(default_config()), "regenerate: python -m datacheck.config > configs/default.toml"


def test_every_example_config_loads():
    paths = sorted((REPO_ROOT / "configs").glob("*.toml")) + sorted((REPO_ROOT / "datacheck" / "presets").glob("*.toml"))
    assert len(paths) == 1 + len(PRESETS)
    for path in paths:
        assert load_config(path)["audit"]


def test_presets_are_named_and_shipped_in_the_package(tmp_path, monkeypatch):
    """``--config quick`` works where datacheck is installed from an index (no checkout of this
    repository, so no configs/ folder): the presets are package data, found by name."""
    import fnmatch

    from datacheck.config import tomllib

    monkeypatch.chdir(tmp_path)
    for name in PRESETS:
        path = config_file(name)
        assert path.is_file() and path.parent.name == "presets" and path.parent.parent.name == "datacheck"
    assert load_config("strict-ci")["audit"]["fail_on"].startswith("corrupt>0,split_leakage>0,exact_duplicates>0")
    assert load_config("quick")["audit"]["checks"] == ["image_properties", "exact_duplicates", "near_duplicates",
                                                       "split_leakage", "class_imbalance"]
    # and the wheel carries them (setuptools' package-data patterns, relative to the package)
    patterns = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["datacheck"]
    assert all(any(fnmatch.fnmatch(f"presets/{name}.toml", pattern) for pattern in patterns) for name in PRESETS)


def test_a_file_named_like_a_preset_is_read_instead(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quick").write_text('[audit]\nfail_on = "dark>0"\n')
    assert config_file("quick") == Path("quick")
    assert load_config("quick")["audit"]["fail_on"] == "dark>0"
    # a folder of that name too (it is not the preset the user meant): an unreadable config
    (tmp_path / "strict-ci").mkdir()
    with pytest.raises(UsageError, match="cannot read config strict-ci"):
        load_config("strict-ci")


def test_a_missing_config_names_the_presets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("audit", SAMPLE_DATA, "--config", "configs/quick.toml", "--out", tmp_path / "run")
    assert_one_line_error(result, 2, "cannot read config configs/quick.toml", "configs that come with datacheck: quick, strict-ci")
    assert not (tmp_path / "run").exists()
    result = invoke("fix", SAMPLE_DATA, "--config", "quik", "--out", tmp_path / "fixed")
    assert_one_line_error(result, 2, "cannot read config quik", "as --config quick")
    assert not (tmp_path / "fixed").exists()


def test_default_config_round_trips(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(render_toml(default_config()))
    assert load_config(path) == default_config()


def test_overrides_apply_on_top_of_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[audit]\nseed = 5\nworkers = 1\n[detectors.near_duplicates]\nmin_similarity = 0.97\n")
    config = load_config(path, {"seed": 9, "workers": None})
    assert config["audit"]["seed"] == 9
    assert config["audit"]["workers"] == 1
    assert config["detectors"]["near_duplicates"]["min_similarity"] == 0.97


def test_int_is_accepted_for_a_float():
    config = load_config(None, None)
    assert isinstance(config["detectors"]["image_properties"]["z_threshold"], float)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[audit]\nsede = 1\n", "unknown option audit.sede"),
        ("[audti]\n", "unknown section [audti]"),
        ("[detectors.nope]\nx = 1\n", "unknown detector [detectors.nope]"),
        ("[detectors.image_properties]\nz = 1\n", "unknown parameter detectors.image_properties.z"),
        ("[audit]\nseed = 'one'\n", "audit.seed in"),
        ("[audit]\nseed = true\n", "must be int"),
        ("[audit\n", "is not valid TOML"),
        # values of the right type that cannot work
        ("[audit]\nseed = -1\n", "audit.seed in"),
        ("[audit]\nseed = 4294967296\n", "must be an integer in [0, 4294967295], got 4294967296"),
        ("[audit]\nbatch_size = 0\n", "audit.batch_size in"),
        ("[audit]\nbatch_size = -3\n", "must be an integer >= 1, got -3"),
        ("[audit]\nworkers = -7\n", "audit.workers in"),
        ("[audit]\nmax_missing = -1\n", "must be an integer >= 0, got -1"),
        ("[audit]\nchecks = []\n", "names no detector"),
        ("[detectors.image_properties]\nz_threshold = inf\n", "must be a finite number, got inf"),
        ("[detectors.outliers]\nz_threshold = nan\n", "must be a finite number, got nan"),
        ("[train]\nlr = inf\n", "train.lr in"),
        # named as the file's key, not as the command-line option that would set it
        ("[audit]\ndevice = 'tpu'\n", "bad audit.device 'tpu' in "),
        ("[audit]\nfail_on = 'dark>>1'\n", "bad audit.fail_on gate 'dark>>1' in "),
        ("[audit]\nfail_on = 'darkk>1'\n", "bad audit.fail_on gate 'darkk>1' in "),
    ],
)
def test_bad_config_is_a_usage_error(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=None) as info:
        load_config(path)
    assert message in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError, match="cannot read config"):
        load_config(tmp_path / "none.toml")


def test_config_that_is_not_utf8(tmp_path):
    path = tmp_path / "b.toml"
    path.write_bytes(b"\xff\xfe[audit]\n")
    with pytest.raises(UsageError, match="not UTF-8 text"):
        load_config(path)


def test_config_that_is_no_regular_file_is_refused_unread(tmp_path):
    """A FIFO (no writer: reading blocks forever), a link to /dev/zero (never ends) and a folder
    are usage errors naming what the path is; so is a file too large to be a config."""
    import os

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.toml"
    zero.symlink_to("/dev/zero")
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    for path, what in ((fifo, "a named pipe (FIFO)"), (zero, "a character device"), (folder, "a folder")):
        with pytest.raises(UsageError, match=None) as info:
            load_config(path)
        assert str(info.value) == f"cannot read config {path}: {what}, not a regular file: not read"
    huge = tmp_path / "huge.toml"
    with open(huge, "wb") as fh:
        fh.truncate(MAX_CONFIG_BYTES + 1)  # sparse: no disk used
    with pytest.raises(UsageError, match=r"is over 16 MiB: not a datacheck config$"):
        load_config(huge)


def test_config_with_a_utf8_byte_order_mark_loads(tmp_path):
    """Windows editors start UTF-8 files with a BOM; tomllib called it an invalid statement at 1:1."""
    path = tmp_path / "bom.toml"
    path.write_bytes("\ufeff[audit]\nseed = 7\n".encode())
    assert load_config(path)["audit"]["seed"] == 7


def test_detector_table_named_after_a_check_names_its_detector(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[detectors.dark]\nz_threshold = 3.0\n")
    with pytest.raises(UsageError, match=r"^unknown detector \[detectors.dark\] in .* \('dark' is a check of "
                                         r"'image_properties': its parameters go in \[detectors.image_properties\]\)"):
        load_config(path)


def test_a_tuple_of_checks_in_a_config_dict_is_a_list():
    """As the checks keyword takes a tuple, so does the config dict (it was 'must be list')."""
    assert load_config({"audit": {"checks": ("image_properties",)}})["audit"]["checks"] == ["image_properties"]
    with pytest.raises(UsageError, match=r"audit.checks in the config dict must be list, got \('a', 1\)"):
        load_config({"audit": {"checks": ("a", 1)}})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"seed": -1}, "--seed must be an integer in [0, 4294967295], got -1"),
        ({"seed": 2**32}, "--seed must be an integer in [0, 4294967295]"),
        ({"seed": 10**20}, "--seed must be an integer in [0, 4294967295]"),
        ({"batch_size": 0}, "--batch-size must be an integer >= 1, got 0"),
        ({"workers": -2}, "--workers must be an integer >= -1, got -2"),
        ({"max_missing": -1}, "--max-missing must be an integer >= 0, got -1"),
        ({"checks": []}, "--checks names no detector; give one or more of: aum, class_imbalance"),
    ],
)
def test_bad_overrides_are_named_as_options(overrides, message):
    """Command-line values go through the same checks as the file, named as the option."""
    with pytest.raises(UsageError) as info:
        load_config(None, overrides)
    assert message in str(info.value)


def test_range_bounds_are_accepted():
    config = load_config(None, {"seed": 2**32 - 1, "workers": -1, "batch_size": 1, "max_missing": 0})
    assert config["audit"]["seed"] == 2**32 - 1


def test_quick_config_gates_sample_data_without_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file named quick here: the preset
    result = invoke("audit", SAMPLE_DATA, "--config", "quick", "--out", tmp_path / "run", "--workers", 0, "--json")
    summary = json.loads(result.stdout)
    assert "label_issues" not in summary["checks"]  # no model was trained
    assert [g["gate"] for g in summary["gates"] if g["failed"]] == ["corrupt>0", "split_leakage>0"]
    assert result.exit_code == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("[train]\nepochs = 0\n", "train.epochs must be an integer in [1, 10000], got 0"),
        ("[train]\nepochs = 100000000000000000\n", "train.epochs must be an integer in [1, 10000]"),
        ("[train]\nfolds = 1\n", "train.folds must be an integer in [2, 100]"),
        ("[train]\nknn_k = -1\n", "train.knn_k must be an integer in [0, 10000]"),
        ("[train]\nlabel_smoothing = 1.0\n", "0 <= label_smoothing < 1"),
        ("[train]\nlr = 0\n", "lr > 0"),
    ],
)
def test_bad_training_settings_exit_2_before_any_work(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    result = invoke("audit", SAMPLE_DATA, "--config", path, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_tiny_z_threshold_scores_without_an_overflow_warning():
    """``[detectors.outliers] z_threshold = 1e-300`` is allowed (> 0): every z above it is
    flagged with a score of 0, and the overflow of ``(z / threshold) ** 2`` on the way is no
    RuntimeWarning on the user's stderr."""
    import warnings

    import numpy as np

    import datacheck

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    probs = np.full((40, 2), 0.5)
    embeddings = rng.normal(size=(40, 8))
    config = {"detectors": {"outliers": {"z_threshold": 1e-300, "fdr": 0.0}}}  # fdr 0: the cut is z_threshold
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, checks="outliers",
                                 config=config)
    flagged = result.issues("outliers")
    assert len(flagged) > 0 and (flagged["score"] == 0).all()


@pytest.mark.parametrize(
    "text, message",
    [
        ("[detectors.clusters]\nn_init = 1000000000000\n", "clusters.n_init must be an integer in [1, 100]"),
        ("[detectors.clusters]\nn_init = 101\n", "clusters.n_init must be an integer in [1, 100], got 101"),
        ("[detectors.clusters]\nk = 1000000000000\n", "clusters.k must be an integer in [0, 1000]"),
        ("[detectors.clusters]\nmax_k = 1000000000000\n", "clusters.max_k must be an integer in [1, 100]"),
        ("[detectors.non_iid]\nn_permutations = 1000000000000\n",
         "non_iid.n_permutations must be an integer in [1, 10000]"),
        ("[detectors.non_iid]\nk = 1000000000000\n", "non_iid.k must be an integer in [1, 1000]"),
        ("[detectors.outliers]\nk = 1000000000000\n", "outliers.k must be an integer in [1, 1000]"),
        ("[detectors.near_duplicates]\ncandidates = 1001\n", "near_duplicates.candidates must be an integer in [1, 1000]"),
    ],
)
def test_parameters_that_size_work_have_upper_bounds(tmp_path, text, message):
    """A huge n_init was an internal error (exit 4, a torch allocation); every parameter that
    sizes an allocation or a loop is bounded, exit 2 before a run folder exists."""
    from .conftest import assert_one_line_error

    path = tmp_path / "c.toml"
    path.write_text(text)
    result = invoke("audit", SAMPLE_DATA, "--config", path, "--checks", "clusters,non_iid,outliers,near_duplicates",
                    "--out", tmp_path / "run")
    assert_one_line_error(result, 2, message)
    assert not (tmp_path / "run").exists()


def test_upper_bounds_of_sizing_parameters_are_accepted():
    from datacheck.detectors import create_detector

    create_detector("clusters", n_init=100, k=1000, max_k=100).validate_params()
    create_detector("non_iid", k=1000, n_permutations=10_000).validate_params()
    create_detector("outliers", k=1000).validate_params()
    create_detector("near_duplicates", candidates=1000).validate_params()


@pytest.mark.parametrize("checks", ['["nope"]', '["label_issues", "outlyers"]', '["*nothing*"]'])
def test_an_unknown_check_in_a_config_file_names_the_file(tmp_path, checks):
    """[audit] checks naming no detector said only "unknown check 'nope'", as if --checks had
    named it: the error names the config file's key and path, exit 2 before a run folder exists."""
    from .conftest import assert_one_line_error

    path = tmp_path / "c.toml"
    path.write_text(f"[audit]\nchecks = {checks}\n")
    result = invoke("audit", SAMPLE_DATA, "--config", path, "--out", tmp_path / "run")
    assert_one_line_error(result, 2, f"audit.checks in {path}: ")
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match="audit.checks in the config dict: unknown check 'nope'"):
        load_config({"audit": {"checks": ["nope"]}})

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

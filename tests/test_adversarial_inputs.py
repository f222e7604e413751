"""Bad and unusual input as users give it: one clear error (exit status, or exception type and
message), no traceback, nothing of theirs modified."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import datacheck
from datacheck.errors import BadDataError, UsageError


@pytest.fixture
def probs():
    rng = np.random.default_rng(0)
    return rng.dirichlet(np.ones(3), 20).astype(np.float32)


@pytest.fixture
def frame():
    return pd.DataFrame({"sample_id": [f"s{i}" for i in range(20)], "label": np.arange(20) % 3})


# --------------------------------------------------------------------------- Python API: keywords, not flags


def test_api_missing_files_name_the_max_missing_keyword(tmp_path):
    listed = pd.DataFrame({"path": ["gone.png"], "label": ["a"]})
    with pytest.raises(BadDataError, match=r"allow some with max_missing \(now 0\)$"):
        datacheck.audit(listed, root=tmp_path)


def test_api_array_errors_name_the_keywords(frame, probs):
    with pytest.raises(BadDataError, match=r"^pred_probs has 19 rows, the manifest 20: they must be row-aligned$"):
        datacheck.audit(frame, pred_probs=probs[:-1])
    with pytest.raises(BadDataError, match=r"^embeddings must have shape \(20, D\), got \(20,\)$"):
        datacheck.audit(frame, embeddings=np.zeros(20))
    with pytest.raises(BadDataError, match=r"^labels has id 7 at row 0, outside 0\.\.2 \(the pred_probs columns\)$"):
        datacheck.audit(pred_probs=probs, labels=np.full(20, 7))
    with pytest.raises(UsageError, match=r"^class_names goes with pred_probs or embeddings$"):
        datacheck.audit(frame.assign(path="x.png"), class_names=["a", "b", "c"])
    with pytest.raises(UsageError, match=r"^root goes with data that is a manifest file$"):
        datacheck.audit(pred_probs=probs, labels=np.zeros(20, int), root=".")


def test_api_option_errors_name_the_keywords(probs):
    labels = np.zeros(20, int)
    with pytest.raises(UsageError, match=r"^workers must be int, got 'x'$"):
        datacheck.audit(pred_probs=probs, labels=labels, workers="x")
    with pytest.raises(UsageError, match=r"^bad fail_on gate 'x>>1'"):
        datacheck.audit(pred_probs=probs, labels=labels, fail_on="x>>1")
    with pytest.raises(UsageError, match=r"^bad device 'tpu'"):
        datacheck.audit(pred_probs=probs, labels=labels, device="tpu")
    with pytest.raises(UsageError, match=r"^junit .* is a folder; give a file path$"):
        datacheck.audit(pred_probs=probs, labels=labels, junit=".")


def test_api_ragged_lists_are_bad_data_naming_the_keyword():
    with pytest.raises(BadDataError, match=r"^pred_probs must be a rectangular array of numbers"):
        datacheck.audit(pred_probs=[[0.5, 0.5], [1.0]], labels=[0, 1])
    with pytest.raises(BadDataError, match=r"^labels must be a rectangular array of numbers"):
        datacheck.audit(pred_probs=[[0.5, 0.5], [0.5, 0.5]], labels=[0, [1]])


def test_in_python_leaves_paths_and_unknown_options_alone():
    from datacheck.api import in_python

    assert in_python("--out /tmp/my--out/x--seed exists") == "out /tmp/my--out/x--seed exists"
    assert in_python("--batch-size must be ...") == "--batch-size must be ..."


# --------------------------------------------------------------------------- report of a damaged run


@pytest.fixture
def array_run(tmp_path, probs):
    """A finished audit run of arrays (seconds; no images, no model)."""
    run = tmp_path / "run"
    datacheck.audit(pred_probs=probs, labels=probs.argmax(axis=1), out=run)
    return run


def test_report_of_a_run_whose_summary_is_a_named_pipe_is_bad_data_not_a_hang(array_run):
    import os
    import subprocess
    import sys

    (array_run / "summary.json").unlink()
    os.mkfifo(array_run / "summary.json")  # nothing ever writes to it: reading it would block for ever
    done = subprocess.run([sys.executable, "-m", "datacheck", "report", str(array_run)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip() == (f"datacheck: error: cannot read {array_run / 'summary.json'}: a named pipe (FIFO), "
                                   "not a regular file: not read")


def test_report_of_a_run_whose_findings_are_a_folder_says_so(array_run):
    from .conftest import assert_one_line_error, invoke

    (array_run / "findings.parquet").unlink()
    (array_run / "findings.parquet").mkdir()  # pyarrow reads it as a dataset without columns
    assert_one_line_error(invoke("report", array_run), 3,
                          f"{array_run / 'findings.parquet'} is a folder, not a regular file: not read; the run is "
                          "damaged")


# --------------------------------------------------------------------------- manifests


def test_a_jsonl_manifest_with_a_broken_line_names_the_line(tmp_path):
    from .conftest import assert_one_line_error, invoke

    lines = [f'{{"sample_id": "s{i}", "label": {i % 2}, "path": "x{i}.png"}}' for i in range(30)]
    lines[20] = '{"sample_id": "s20", "lab'  # a line cut short, as a killed writer leaves it
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    np.save(tmp_path / "P.npy", np.full((30, 2), 0.5, np.float32))
    result = invoke("audit", manifest, "--pred-probs", tmp_path / "P.npy", "--out", tmp_path / "run")
    assert_one_line_error(result, 3, f"cannot read manifest {manifest}: line 21 is not JSON")
    assert not (tmp_path / "run").exists()


def test_report_in_python_names_its_keywords_and_the_cli_its_options(array_run, tmp_path):
    from .conftest import assert_one_line_error, invoke

    with pytest.raises(UsageError, match=r"^max_thumbnails must be an integer >= 0, got -1$"):
        datacheck.report(array_run, max_thumbnails=-1)
    with pytest.raises(UsageError, match=r"^gallery_size must be an integer >= 0, got 'x'$"):
        datacheck.report(array_run, gallery_size="x")  # was a TypeError from '<'
    with pytest.raises(UsageError, match=r"^out .* is a folder; give the HTML file's path$"):
        datacheck.report(array_run, tmp_path)
    with pytest.raises(UsageError, match=r"^csv .*summary\.json is one of the run's own files"):
        datacheck.report(array_run, tmp_path / "r.html", csv=array_run / "summary.json")
    assert datacheck.report(array_run, tmp_path / "r.html", max_thumbnails=np.int64(3)).html.is_file()
    assert_one_line_error(invoke("report", array_run, "--out", tmp_path), 2,
                          f"--out {tmp_path} is a folder; give the HTML file's path")

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

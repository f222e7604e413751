"""``datacheck audit --pred-probs P.npy --labels L.npy``: any modality, and its bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from datacheck.errors import ExitStatus

from .conftest import SHARED_DATA, invoke


def audit(*args):
    return invoke("audit", *args)


@pytest.fixture
def noisy_arrays(tmp_path):
    """600 samples, 3 classes, probabilities from a decent model, 30 labels flipped."""
    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, 600)
    logits = rng.normal(size=(600, 3)) + 4.0 * np.eye(3)[true]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = true.copy()
    flipped = rng.choice(600, 30, replace=False)
    labels[flipped] = (labels[flipped] + 1) % 3
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "l.npy", labels)
    np.save(tmp_path / "e.npy", rng.normal(size=(600, 8)))
    (tmp_path / "names.txt").write_text("ant\nbee\ncat\n")
    return tmp_path, set(flipped.tolist())


def test_audit_from_arrays(noisy_arrays):
    d, flipped = noisy_arrays
    result = audit("--pred-probs", d / "p.npy", "--labels", d / "l.npy", "--embeddings", d / "e.npy",
                   "--class-names", d / "names.txt", "--out", d / "run", "--json", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # every check the arrays allow: duplicates on the embeddings; no splits, so no leakage
    assert set(summary["checks"]) == {"label_issues", "outliers", "off_class", "class_imbalance", "clusters",
                                      "exact_duplicates", "near_duplicates", "split_leakage", "issue_score"}
    assert summary["checks"]["split_leakage"]["scored"] == 0 and summary["checks"]["near_duplicates"]["flagged"] == 0
    findings = pd.read_parquet(d / "run" / "findings.parquet")
    found = set(findings.loc[(findings["check"] == "label_issues") & findings["is_issue"], "sample_id"].astype(int))
    assert len(found & flipped) / len(flipped) >= 0.8
    assert len(found & flipped) / len(found) >= 0.7
    assert set(findings["label"]) == {"ant", "bee", "cat"}
    # Suggestions and details are built column-wise (category codes, Arrow strings): check every row.
    rows = findings[findings["check"] == "label_issues"]
    ids = rows["sample_id"].astype(int).to_numpy()
    probs, labels = np.load(d / "p.npy"), np.load(d / "l.npy")
    names = np.array(["ant", "bee", "cat"])
    assert len(rows) == 600 and (rows["label"].to_numpy() == names[labels[ids]]).all()
    assert (rows["suggested_label"].to_numpy() == names[probs[ids].argmax(axis=1)]).all()
    np.testing.assert_allclose(rows["suggested_confidence"], probs[ids].max(axis=1), rtol=1e-6)
    given = [json.loads(text)["given_probability"] for text in rows["details"]]
    np.testing.assert_allclose(given, probs[ids, labels[ids]], atol=5e-5)


def test_image_checks_need_images(noisy_arrays):
    d, _ = noisy_arrays
    result = audit("--pred-probs", d / "p.npy", "--labels", d / "l.npy", "--checks", "image_properties,label_issues", "--out", d / "r")
    assert result.exit_code == ExitStatus.USAGE
    assert "check 'image_properties' needs images" in result.stderr


def _bad(tmp_path, probs=None, labels=None):
    rng = np.random.default_rng(1)
    good = rng.dirichlet(np.ones(4), size=50)
    np.save(tmp_path / "p.npy", good if probs is None else probs)
    np.save(tmp_path / "l.npy", rng.integers(0, 4, 50) if labels is None else labels)
    return audit("--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "l.npy", "--out", tmp_path / "run")


def _with(values, row, col, value):
    values = values.copy()
    values[row, col] = value
    return values


GOOD = np.random.default_rng(1).dirichlet(np.ones(4), size=50)


@pytest.mark.parametrize(
    "probs, labels, message",
    [
        (_with(GOOD, 3, 1, np.nan), None, "--pred-probs has NaN or infinite values (first in row 3)"),
        (_with(GOOD, 4, 0, np.inf), None, "NaN or infinite"),
        (_with(GOOD, 5, 2, -0.1), None, "negative values (first in row 5)"),
        (GOOD * 3, None, "rows must sum to 1 (row 0 sums to"),
        (GOOD[:, 0], None, "2-D array of shape (N, K)"),
        (GOOD[:0], None, "--pred-probs has no rows (shape (0, 4)): there are no samples to audit"),
        (None, np.arange(49), "1-D array of 50 class ids"),
        (None, np.full(50, 4), "id 4 at row 0, outside 0..3"),
        (None, np.full(50, -1), "id -1 at row 0"),
        (None, np.full(50, 1.5), "integer class ids"),
        (None, np.array(["a"] * 50), "--labels holds class names: name the --pred-probs columns with --class-names"),
        # Cast to int64 these wrapped (-1, INT64_MIN) and numpy warned on stderr.
        (None, np.full(50, 2**64 - 1, dtype=np.uint64), "id 18446744073709551615 at row 0"),
        (None, np.full(50, 1e30), "id 1e+30 at row 0, outside 0..3"),
    ],
    ids=["nan", "inf", "negative", "not_normalised", "one_d", "no_rows", "short_labels", "label_too_big", "label_negative",
         "fractional_labels", "string_labels", "uint64_label", "huge_float_label"],
)
def test_bad_arrays_exit_3(tmp_path, probs, labels, message):
    result = _bad(tmp_path, probs, labels)
    assert result.exit_code == ExitStatus.BAD_DATA, result.output
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.output


def test_float16_rounding_is_renormalised(tmp_path):
    result = _bad(tmp_path, probs=GOOD.astype(np.float16))
    assert result.exit_code == 0, result.output


def test_rounding_below_zero_is_zero_and_the_callers_array_untouched():
    """A last column computed as ``1 - sum(others)`` can come out at -1e-9: rounding, not logits
    (cleanlab refuses it; we read it as 0). -1e-5 is still refused."""
    import datacheck
    from datacheck.errors import BadDataError

    probs = GOOD.astype(np.float64)
    probs[7] = [0.5, 0.3, 0.2 + 1e-9, -1e-9]
    kept = probs.copy()
    result = datacheck.audit(None, pred_probs=probs, labels=probs.argmax(axis=1), checks=["label_issues"])
    assert len(result.issues(check="label_issues", flagged=False)) == 50
    assert np.array_equal(probs, kept)
    probs[7] = [0.5, 0.3, 0.2 + 1e-5, -1e-5]
    with pytest.raises(BadDataError, match=r"pred_probs has negative values \(first in row 7\)"):
        datacheck.audit(None, pred_probs=probs, labels=probs.argmax(axis=1), checks=["label_issues"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--pred-probs", "P"], "give a DATASET, or --pred-probs with --labels"),
        (["DATA", "--pred-probs", "P", "--labels", "L"], "--labels goes without a DATASET"),
        ([], "give a DATASET"),
        (["DATA", "--embeddings", "E"], "go with a manifest file"),
        (["DATA", "--class-names", "P"], "--class-names goes with --pred-probs or --embeddings"),
    ],
)
def test_array_option_usage(tmp_path, tiny_dataset, args, message):
    args = [str(tiny_dataset) if a == "DATA" else str(tmp_path / a) if a in "PLE" else a for a in args]
    result = audit(*args, "--out", tmp_path / "run")
    assert result.exit_code == ExitStatus.USAGE
    assert message in result.stderr


def test_missing_and_unreadable_files(tmp_path):
    (tmp_path / "p.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "l.npy", np.zeros(3, int))
    result = audit("--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "l.npy", "--out", tmp_path / "r")
    assert result.exit_code == ExitStatus.BAD_DATA and "is not a readable .npy array: not in .npy format" in result.stderr
    assert "allow_pickle" not in result.stderr  # numpy's advice to load it unsafely is not passed on
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    result = audit("--pred-probs", tmp_path / "objects.npy", "--labels", tmp_path / "l.npy", "--out", tmp_path / "r")
    assert result.exit_code == ExitStatus.BAD_DATA and "holds Python objects, not numbers" in result.stderr
    result = audit("--pred-probs", tmp_path / "nope.npy", "--labels", tmp_path / "l.npy", "--out", tmp_path / "r")
    assert result.exit_code == ExitStatus.BAD_DATA and "file not found" in result.stderr


@pytest.mark.skipif(not (SHARED_DATA / "label-errors").is_dir(), reason="../shared/data/label-errors is absent")
def test_cifar10_test_set_label_errors(tmp_path):
    """The "pervasive label errors" CIFAR-10 test set: cleanlab's own count, through our CLI."""
    from cleanlab.filter import find_label_issues

    d = SHARED_DATA / "label-errors"
    result = audit("--pred-probs", d / "cifar10_test_pred_probs.npy", "--labels", d / "cifar10_test_labels.npy",
                   "--out", tmp_path / "run", "--json", "-q")
    assert result.exit_code == 0, result.output
    ours = json.loads(result.stdout)["checks"]["label_issues"]["flagged"]
    bare = find_label_issues(np.load(d / "cifar10_test_labels.npy"), np.load(d / "cifar10_test_pred_probs.npy"))
    assert ours == int(bare.sum())

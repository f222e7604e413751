"""Array and manifest audits as a cleanlab / scikit-learn user feeds them (adversarial pass of 2026-12-06, b)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import datacheck
from datacheck.errors import BadDataError


def _probs_for(codes: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Confident out-of-fold probabilities of a model trained on class ids ``codes`` (column i = id i)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(codes), k)) + 5.0 * np.eye(k)[codes]
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _flagged(result) -> int:
    return result.summary["checks"]["label_issues"]["flagged"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
@pytest.mark.parametrize("values", [[-2, -1, 0, 1, 2], [0.5, 2.5, 10.5], ["+1", "-1"]], ids=["negatives", "fractions", "signed"])
def test_numeric_labels_name_the_columns_in_the_order_of_their_values(tmp_path, fmt, values):
    """Labels that are numbers but not column numbers (a sentiment score -2..2, libsvm's +1/-1)
    are sorted by value, as scikit-learn's LabelEncoder sorts the file's number column that the
    model was trained on; sorted as text, "-1" came before "-2" and "+1" before "-1", and every
    sample of those classes was matched to the wrong column (179 and 498 of 500 flagged)."""
    rng = np.random.default_rng(0)
    given = rng.choice(np.array(values, dtype=object), 300)
    by_value = sorted(set(values), key=float)
    codes = np.array([by_value.index(v) for v in given])
    frame = pd.DataFrame({"sample_id": np.arange(300), "label": given if values[0] == "+1" else given.astype(float)})
    path = tmp_path / f"m.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    result = datacheck.audit(path, pred_probs=_probs_for(codes, len(by_value)), checks=["label_issues"])
    assert _flagged(result) <= 3


@pytest.mark.parametrize("values", [["-2", "-1", "0", "1", "2"], ["0.5", "2.5", "10.5"], ["+1", "-1"]],
                         ids=["negatives", "fractions", "signed"])
def test_numeric_label_names_given_as_an_array_name_the_columns_in_the_order_of_their_values(values):
    """The same rule for ``labels=`` names (a numeric array is class ids) as for a manifest's
    label column, one function ordering both: given as an array, "-1" came before "-2"."""
    rng = np.random.default_rng(0)
    given = rng.choice(np.array(values), 300)
    by_value = sorted(values, key=float)
    codes = np.array([by_value.index(v) for v in given])
    result = datacheck.audit(pred_probs=_probs_for(codes, len(values)), labels=given, checks=["label_issues"])
    assert _flagged(result) <= 3


def test_a_categorical_label_column_of_a_manifest_dataframe_names_the_columns_in_its_categories_order():
    """README: in the Python API a pandas Categorical's classes are its categories in order. A
    manifest DataFrame's label column was sorted instead, so the probabilities of a model trained
    on ``df.label.cat.codes`` were read against the wrong classes (201 of 300 flagged)."""
    rng = np.random.default_rng(1)
    labels = pd.Categorical(rng.choice(["ant", "bee", "cat"], 300), categories=["cat", "bee", "ant"])
    frame = pd.DataFrame({"sample_id": np.arange(300), "label": labels})
    probs = _probs_for(labels.codes, 3)
    assert _flagged(datacheck.audit(frame, pred_probs=probs, checks=["label_issues"])) <= 3
    # given class names still decide, and categories that cannot name the columns are told
    swapped = probs[:, [2, 1, 0]]
    assert _flagged(datacheck.audit(frame, pred_probs=swapped, class_names=["ant", "bee", "cat"], checks=["label_issues"])) <= 3
    extra = frame.assign(label=labels.add_categories(["dog"]))
    with pytest.raises(BadDataError, match="Categorical of 4 categories, which cannot name the 3 pred_probs columns"):
        datacheck.audit(extra, pred_probs=probs, checks=["label_issues"])


def test_text_stored_as_bytes_in_a_parquet_manifest_is_read_as_text(tmp_path):
    """A Parquet string column written without its UTF-8 annotation (Hive, Impala, Spark) is
    read by pandas as bytes: its split b'train' was an unknown split, and its labels classes
    named "b'cat'"; bytes that are not UTF-8 are bad data naming their row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datacheck.manifest import load_manifest

    labels = np.random.default_rng(2).choice(["cat", "dog"], 60)
    table = pa.table({"sample_id": pa.array([f"s{i}".encode() for i in range(60)], pa.binary()),
                      "label": pa.array([name.encode() for name in labels], pa.binary()),
                      "split": pa.array([b"train"] * 40 + [b"test"] * 20, pa.binary())})
    pq.write_table(table, tmp_path / "m.parquet")
    frame = load_manifest(tmp_path / "m.parquet", files=False).frame
    assert frame["sample_id"].iloc[0] == "s0" and set(frame["label"]) == {"cat", "dog"}
    assert frame["split"].value_counts().to_dict() == {"train": 40, "test": 20}
    codes = (labels == "dog").astype(int)
    result = datacheck.audit(tmp_path / "m.parquet", pred_probs=_probs_for(codes, 2), checks=["label_issues"])
    assert _flagged(result) <= 2 and set(result.issues("label_issues", flagged=False)["label"]) == {"cat", "dog"}
    pq.write_table(table.set_column(1, "label", pa.array([b"\xff\xfe"] * 60, pa.binary())), tmp_path / "bad.parquet")
    with pytest.raises(BadDataError, match=r"label in .*bad.parquet \(row 1\) is bytes that are not UTF-8 text"):
        load_manifest(tmp_path / "bad.parquet", files=False)


@pytest.mark.parametrize("zeros", [3, 150])
def test_rows_of_zeros_in_the_embeddings_are_exact_duplicates(zeros):
    """README: exact duplicates on embeddings are identical vectors. Rows of zeros (a featuriser
    that failed, a preallocated array left unfilled) are at cosine distance 1 from everything,
    themselves too, so none was a duplicate; with half the rows zero, no check flagged anything."""
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(300, 16))
    embeddings[-zeros:] = 0
    frame = pd.DataFrame({"sample_id": np.arange(300), "label": rng.integers(0, 3, 300)})
    result = datacheck.audit(frame, embeddings=embeddings, checks=["exact_duplicates"])
    flagged = result.issues("exact_duplicates")["sample_id"].astype(int)
    assert sorted(flagged) == list(range(301 - zeros, 300))  # one kept: the first id


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_array_columns_of_a_jsonl_or_csv_manifest_are_told_to_come_as_parquet_or_npy(tmp_path, fmt):
    """A JSONL file holds a list per cell as naturally as Parquet does, but only Parquet's list
    columns are an audit's arrays: the file was read as a manifest of images, refused for having
    no 'path' column, which did not say why its pred_probs were not read or how to give them."""
    from .conftest import invoke

    probs = _probs_for(np.arange(40) % 2, 2)
    frame = pd.DataFrame({"sample_id": np.arange(40), "label": np.arange(40) % 2, "pred_probs": probs.tolist()})
    path = tmp_path / f"m.{fmt}"
    frame.to_json(path, orient="records", lines=True) if fmt == "jsonl" else frame.to_csv(path, index=False)
    result = invoke("audit", path, "--out", tmp_path / "run")
    assert result.exit_code == 3 and result.stderr.count("\n") == 1, result.output
    assert "pred_probs are read as arrays from a Parquet manifest only: write it as Parquet, or give them as .npy files (--pred-probs)" in result.stderr


def test_label_issues_off_for_one_labelled_class_says_it_of_the_labels():
    """Probabilities of three classes with every label the same class: label_issues said "off:
    out-of-fold probabilities for fewer than two classes", blaming the probabilities."""

    probs = np.random.default_rng(0).dirichlet(np.ones(3), 300).astype(np.float32)
    result = datacheck.audit(pred_probs=probs, labels=np.zeros(300, int), checks="label_issues")
    rule = result.summary["checks"]["label_issues"]["threshold"]["rule"]
    assert rule == ("off: the labels of the 300 scored sample(s) name one class: "
                    "confident learning needs labels of two classes or more")


def test_relabel_auto_changes_only_labels_a_label_check_flagged(tmp_path):
    """An audit of cifar10's test probabilities flags 284 label issues (cleanlab's count);
    ``relabel --auto`` changed 551 labels, 267 of them flagged by no check: every scored sample
    carries a suggestion, and only the *other* label checks (none ran) had to agree."""
    from .conftest import SHARED_DATA

    folder = SHARED_DATA / "label-errors"
    if not (folder / "cifar10_test_pred_probs.npy").exists():
        pytest.skip(f"no cifar10 probabilities in {folder}")
    result = datacheck.audit(pred_probs=folder / "cifar10_test_pred_probs.npy",
                             labels=folder / "cifar10_test_labels.npy", checks="label_issues", out=tmp_path / "run")
    flagged = set(result.issues("label_issues")["sample_id"])
    assert len(flagged) == 284
    changes = datacheck.relabel(tmp_path / "run", auto=True, out=tmp_path / "fixed").changes
    relabelled = changes[changes["action"] == "relabel"]
    assert 0 < len(relabelled) <= len(flagged) and set(relabelled["sample_id"]) <= flagged
    assert (relabelled["confidence"] >= 0.6).all()
    # the confident disagreements no check flagged are queued for a person, not changed
    queued = changes[changes["action"] == "review"]
    assert len(queued) > 200 and not (set(queued["sample_id"]) & set(relabelled["sample_id"]))


def test_a_truncated_npy_is_named_truncated(tmp_path):
    """A .npy cut short (a copy or download interrupted) was "mmap length is greater than file
    size", mmap's words; now it says the file is truncated."""
    np.save(tmp_path / "p.npy", np.full((1000, 4), 0.25, np.float32))
    data = (tmp_path / "p.npy").read_bytes()
    (tmp_path / "p.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadDataError, match=r"^pred_probs .*p\.npy is not a readable \.npy array: truncated: shorter "
                                           r"than the shape its header gives \(write it with numpy\.save\)$"):
        datacheck.audit(pred_probs=tmp_path / "p.npy", labels=np.zeros(1000, int))


def test_a_parquet_pred_probs_column_is_renormalised_in_place(tmp_path):
    """Rows off 1 by rounding (probabilities kept to 3 decimals) are renormalised; a manifest's
    column, read into a temporary map of ours, is renormalised there, not copied whole first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datacheck.engine.memory import mapped_file
    from datacheck.features.arrays import load_array_inputs

    rng = np.random.default_rng(0)
    probs = np.round(rng.dirichlet(np.ones(4), 5000), 3)  # sums 0.998-1.002
    table = pa.table({"label": pa.array(rng.integers(0, 4, 5000)),
                      "pred_probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), 4)})
    pq.write_table(table, tmp_path / "m.parquet")
    read = load_array_inputs(tmp_path / "m.parquet").outputs.pred_probs
    np.testing.assert_allclose(read.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(read, probs / probs.sum(axis=1, keepdims=True), rtol=1e-5)
    mapped = mapped_file(read)  # a view of the temporary map, not an in-memory copy of it
    assert mapped is not None and mapped._mmap is not None

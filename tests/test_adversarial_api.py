"""An adversarial pass over the Python API as a notebook uses it, and the repairs on unusual runs.

Each test pins a bug found by feeding the API what a real user has at hand (pandas nullable
dtypes, one-dimensional embeddings, a typo in a target dict); all use tiny in-memory arrays or
the tiny image dataset with checks that train no model, so the file takes seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import datacheck
from datacheck.errors import BadDataError, ExitStatus, UsageError

from .conftest import assert_one_line_error, invoke, label_arrays


@pytest.fixture(scope="module")
def arrays():
    """60 samples of 3 classes; rows 0..5 carry a label the probabilities disagree with."""
    rng = np.random.default_rng(0)
    n = 60
    _, probs, labels = label_arrays(n, wrong=6)
    embeddings = rng.normal(size=(n, 4)).astype(np.float32)
    return probs, labels, embeddings


# --------------------------------------------------------------------------- embeddings of one dimension


def test_one_dimensional_embeddings_are_bad_data_not_all_near_duplicates(arrays, tmp_path):
    """Cosine similarity of 1-D vectors is their sign: 58 of 60 random values were flagged as
    near duplicates, and ``relabel --drop`` then dropped whole classes."""
    probs, labels, embeddings = arrays
    with pytest.raises(BadDataError, match=r"^embeddings has 1 dimension \(shape \(60, 1\)\); cosine"):
        datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings[:, :1])
    frame = pd.DataFrame({"sample_id": [f"s{i}" for i in range(60)], "label": labels.astype(str),
                          "embeddings": list(embeddings[:, :1])})
    with pytest.raises(BadDataError, match=r"^column 'embeddings' of <DataFrame> has 1 dimension"):
        datacheck.audit(frame)
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "l.npy", labels)
    np.save(tmp_path / "e.npy", embeddings[:, :1])
    result = invoke("audit", "--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "l.npy",
                    "--embeddings", tmp_path / "e.npy", "--out", tmp_path / "run")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "--embeddings has 1 dimension")
    assert not (tmp_path / "run").exists()
    # two dimensions are embeddings like any other
    result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings[:, :2], checks="outliers")
    assert result.summary["checks"]["outliers"]["scored"] == 60


# --------------------------------------------------------------------------- pandas' nullable dtypes


@pytest.mark.parametrize("dtype", ["Float64", "float64[pyarrow]", "Float32"])
def test_nullable_float_frames_are_arrays_and_their_missing_values_are_named(arrays, dtype):
    """``pd.read_parquet(..., dtype_backend=...)`` and ``convert_dtypes()`` give nullable
    columns, which numpy sees as objects: refused as "a DataFrame of objects", a missing
    value as well as none."""
    probs, labels, embeddings = arrays
    frame = pd.DataFrame(probs, columns=["a", "b", "c"]).astype(dtype)
    result = datacheck.audit(pred_probs=frame, labels=np.array(["a", "b", "c"])[labels], checks="label_issues")
    assert result.summary["checks"]["label_issues"]["flagged"] == 6
    result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=pd.DataFrame(embeddings).astype(dtype),
                             checks="outliers")
    assert result.summary["checks"]["outliers"]["scored"] == 60
    frame.iloc[7, 1] = pd.NA
    with pytest.raises(BadDataError, match=r"^pred_probs has NaN or infinite values \(first in row 7\)$"):
        datacheck.audit(pred_probs=frame, labels=labels, checks="label_issues")


def test_missing_numeric_labels_are_named_as_missing(arrays):
    """A nullable Int64 label column with a gap (or float labels with NaN) was "labels must
    hold integer class ids", which they do but for the gap."""
    probs, labels, _ = arrays
    gap = pd.array(labels, dtype="Int64")
    gap[9] = pd.NA
    for given in (gap, pd.Series(gap), labels.astype(float) * np.where(np.arange(60) == 9, np.nan, 1)):
        with pytest.raises(BadDataError, match=r"^labels has a missing value \(NaN\) in row 9; every pred_probs row needs its given label$"):
            datacheck.audit(pred_probs=probs, labels=given, checks="label_issues")
    assert datacheck.audit(pred_probs=probs, labels=pd.array(labels, dtype="Int8"),
                           checks="label_issues").summary["checks"]["label_issues"]["flagged"] == 6


# --------------------------------------------------------------------------- a progress hook that is not a function


def test_a_progress_that_is_not_a_function_names_the_keyword_before_any_work(arrays, tiny_dataset, tmp_path):
    """``progress=3`` was a TypeError ("'int' object is not callable") from the first stage,
    and ``fix`` had made its output folder by then."""
    probs, labels, _ = arrays
    with pytest.raises(UsageError, match=r"^progress must be a function progress\(stage, done, total\) or None, "
                                         r"got int 3$"):
        datacheck.audit(pred_probs=probs, labels=labels, progress=3)
    with pytest.raises(UsageError, match=r"^progress must be a function progress\(stage, done, total\) or None, "
                                         r"got str 'bar'$"):
        datacheck.fix(tiny_dataset, tmp_path / "fixed", progress="bar")
    assert not (tmp_path / "fixed").exists()
    with pytest.raises(UsageError, match=r"^progress must be a function progress\(done, total\) or None, got int 3$"):
        datacheck.augment(tmp_path / "plan", tmp_path / "out", progress=3)
    seen = []
    datacheck.audit(pred_probs=probs, labels=labels, checks="label_issues", progress=lambda *a: seen.append(a))


# --------------------------------------------------------------------------- balance settings that were ignored


@pytest.fixture
def tiny_run(tiny_dataset, tmp_path):
    """An audit of the tiny dataset (2 classes x 6 train + 2 val) with a check that trains no model."""
    return datacheck.audit(tiny_dataset, out=tmp_path / "run", checks="exact_duplicates", workers=0).run_dir


def test_a_per_group_target_for_a_group_that_does_not_exist_is_refused(tiny_run, tmp_path):
    """``target={"cta": 10}`` (a typo of cat) planned every group at its own size, as if
    no target had been given, and wrote the plan."""
    with pytest.raises(UsageError, match=r"^target names group\(s\) 'cta' that the plan does not have; "
                                         r"its groups: cat, dog$"):
        datacheck.balance(tiny_run, tmp_path / "plan", strategy="classes", target={"cta": 10, "dog": 8})
    assert not (tmp_path / "plan").exists()
    plan = datacheck.balance(tiny_run, tmp_path / "plan", strategy="classes", target={"cat": 10}).plan
    assert plan.groupby("group")["copies"].sum().to_dict() == {"cat": 4, "dog": 0}


def test_balance_settings_given_twice_are_refused_not_ignored(tiny_run, tmp_path):
    """With ``options`` given, ``strategy="classes"`` was silently not read: the plan used the
    options' default strategy (subclusters), and failed for a check the caller never asked for."""
    with pytest.raises(UsageError, match=r"^give the settings either as options \(a BalanceOptions\) or as keywords, "
                                         r"not both: strategy='classes', target=8$"):
        datacheck.balance(tiny_run, tmp_path / "plan", datacheck.BalanceOptions(), strategy="classes", target=8)
    options = datacheck.BalanceOptions(strategy="classes", target=8)
    assert datacheck.balance(tiny_run, tmp_path / "plan", options).plan["copies"].sum() == 4


# --------------------------------------------------------------------------- outputs written over other outputs


def test_no_report_or_export_replaces_a_file_of_a_plan_relabel_augment_or_fix_output(tiny_run, tmp_path):
    """``report(out="plans/p/plan.json")`` replaced the plan's marker with HTML (the plan
    could no longer be augmented: "cannot read plan.json"); only a run's own files were
    protected."""
    plan = tmp_path / "plan"
    datacheck.balance(tiny_run, plan, strategy="classes", target=8)
    datacheck.relabel(tiny_run, drop=True, out=tmp_path / "rel")
    datacheck.augment(plan, tmp_path / "aug")
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    (fixed / "fix.json").write_text('{"datacheck_version": "0.1.0", "status": "running"}')
    (fixed / "manifest.csv").write_text("sample_id,path,label\n")
    protected = [(plan, "plan.json", "balance plan"), (plan, "plan.parquet", "balance plan"),
                 (plan, "manifest.csv", "balance plan"), (tmp_path / "rel", "relabel.json", "relabel output"),
                 (tmp_path / "rel", "changes.parquet", "relabel output"), (tmp_path / "rel", "manifest.csv", "relabel output"),
                 (tmp_path / "aug", "augment.json", "augment output"), (tmp_path / "aug", "manifest.csv", "augment output"),
                 (fixed, "fix.json", "fix output"), (fixed, "manifest.csv", "fix output")]
    before = {folder / name: (folder / name).read_bytes() for folder, name, _ in protected}
    for folder, name, what in protected:
        with pytest.raises(UsageError, match=rf"^out {folder / name} is a file of the datacheck {what} in {folder}; "
                                             "choose another path$"):
            datacheck.report(tiny_run, out=folder / name)
        result = invoke("relabel", tiny_run, "--export-review", folder / name)
        assert_one_line_error(result, ExitStatus.USAGE, f"is a file of the datacheck {what} in {folder}")
    assert {path: path.read_bytes() for path in before} == before
    assert datacheck.augment(plan, tmp_path / "aug", resume=True).counts["augmented"] == 4
    # beside them, and a folder that merely holds a file of such a name, are fine
    assert datacheck.report(tiny_run, out=plan / "report.html", csv=True).csv == plan / "findings.csv"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "plan.json").write_text('{"my": "own plan"}')
    datacheck.report(tiny_run, out=tmp_path / "mine" / "plan.json")


def test_the_protected_output_markers_are_the_commands_own():
    from datacheck.actions.augment import AUGMENT_MARKER
    from datacheck.actions.fix import FIX_MARKER
    from datacheck.actions.relabel import RELABEL_MARKER
    from datacheck.files.plan import PLAN_FILE, PLAN_MARKER
    from datacheck.runs import OUTPUT_FILES

    assert set(OUTPUT_FILES) == {PLAN_MARKER, RELABEL_MARKER, AUGMENT_MARKER, FIX_MARKER}
    assert PLAN_FILE in OUTPUT_FILES[PLAN_MARKER][1]


# --------------------------------------------------------------------------- the result object's own methods


def test_result_methods_name_their_arguments(arrays, tmp_path):
    """``result.issues(["label_issues"])`` was pandas' "unhashable type: 'list'",
    ``flagged="no"`` passed for True, and ``result.save`` named the command line's ``--out``."""
    probs, labels, _ = arrays
    result = datacheck.audit(pred_probs=probs, labels=labels, checks="label_issues")
    with pytest.raises(UsageError, match=r"^check must be the name of a check or detector \(a str\), "
                                         r"got list \['label_issues'\]$"):
        result.issues(["label_issues"])
    with pytest.raises(UsageError, match=r"^check must be the name of a check or detector \(a str\), got int 3$"):
        result.issues(3)
    with pytest.raises(UsageError, match=r"^flagged must be True or False, got 'no'$"):
        result.issues("label_issues", flagged="no")
    assert len(result.issues("label_issues", flagged=np.bool_(False))) == 60
    (tmp_path / "file").write_text("mine")
    with pytest.raises(UsageError, match=rf"^out {tmp_path / 'file'} exists and is not a folder$"):
        result.save(tmp_path / "file")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"^out .*folder is a non-empty folder that is not a datacheck run; choose"):
        result.save(tmp_path / "folder")
    assert (tmp_path / "file").read_text() == "mine" and (tmp_path / "folder" / "notes.txt").read_text() == "mine"
    assert datacheck.load(result.save(tmp_path / "run")).summary["checks"]["label_issues"]["flagged"] == 6


def test_masked_arrays_read_their_masked_values_as_missing(arrays):
    """A numpy masked array's masked entries are gaps to its user, but np.asarray kept the
    values under the mask and the audit used them silently. They are missing values now:
    refused by row, as pandas' gaps are; a masked array without masked entries is its data."""
    probs, labels, _ = arrays
    masked_probs = np.ma.masked_array(probs, mask=np.zeros_like(probs, dtype=bool))
    masked_probs[7, 1] = np.ma.masked
    with pytest.raises(BadDataError, match=r"pred_probs has NaN or infinite values \(first in row 7\)"):
        datacheck.audit(labels=labels, pred_probs=masked_probs, checks=["label_issues"])
    masked_labels = np.ma.masked_array(labels, mask=np.arange(len(labels)) == 9)
    with pytest.raises(BadDataError, match="labels has a missing value .* in row 9"):
        datacheck.audit(labels=masked_labels, pred_probs=probs, checks=["label_issues"])
    plain = datacheck.audit(labels=labels, pred_probs=probs, checks=["label_issues"])
    unmasked = datacheck.audit(labels=np.ma.masked_array(labels), pred_probs=np.ma.masked_array(probs),
                               checks=["label_issues"])
    assert unmasked.issues()["sample_id"].tolist() == plain.issues()["sample_id"].tolist()

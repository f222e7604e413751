"""The Python API as a notebook user meets it: arrays and DataFrames in, one result object out."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import datacheck
from datacheck.detectors.outliers import Outliers
from datacheck.errors import BadDataError, UsageError

from .conftest import SAMPLE_DATA, label_arrays, tree_digest


@pytest.fixture(scope="module")
def arrays():
    """300 samples of 3 classes; rows 0..29 get a wrong label the probabilities disagree with."""
    rng = np.random.default_rng(0)
    n = 300
    truth, probs, labels = label_arrays(n, wrong=30)
    embeddings = rng.normal(size=(n, 8)).astype(np.float32) * 0.5
    embeddings[np.arange(n), truth] += 5  # one direction per class
    embeddings[-3:] = 0
    embeddings[np.arange(n - 3, n), [5, 6, 7]] = 5  # three samples, each in a direction of its own
    return probs, labels, embeddings


def test_in_memory_audit_of_arrays_writes_nothing(arrays, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    probs, labels, embeddings = arrays
    result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings)
    assert result.run_dir is None and list(tmp_path.iterdir()) == []
    issues = result.issues("label_issues")
    assert set(issues["sample_id"].astype(int)) == set(range(30))
    assert (issues["score"].diff().dropna() >= 0).all()  # worst first
    summary = result.issue_summary().set_index("check")
    assert summary.loc["label_issues", "flagged"] == 30 and summary.loc["label_issues", "scored"] == 300
    assert set(result.issues("outliers")["sample_id"].astype(int)) >= {297, 298, 299}
    # the caller's arrays are not modified (renormalised copies are the library's own)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(axis=1), 1.0)


def test_string_labels_and_class_names(arrays):
    probs, labels, _ = arrays
    names = np.array(["cat", "dog", "emu"])[labels]
    result = datacheck.audit(pred_probs=probs, labels=names, checks="label_issues")
    flagged = result.issues("label_issues")
    assert len(flagged) == 30
    assert set(flagged["label"]) <= {"cat", "dog", "emu"} and set(flagged["suggested_label"]) <= {"cat", "dog", "emu"}
    with pytest.raises(UsageError, match="not among class_names"):
        datacheck.audit(pred_probs=probs, labels=names, class_names=["cat", "dog", "fox"])


def test_configured_detector_instances(arrays):
    probs, labels, embeddings = arrays
    result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, checks=[Outliers(k=5)])
    assert list(result.summary["checks"]) == ["outliers"]
    assert "5 nearest" in result.summary["checks"]["outliers"]["threshold"]["statistic"]
    with pytest.raises(UsageError, match=r"outliers.k must be an integer in \[1, 1000\], got 0"):
        datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, checks=[Outliers(k=0)])


def test_save_load_and_repairs(tmp_path):
    manifest = pd.DataFrame({"path": [p.relative_to(SAMPLE_DATA).as_posix() for p in sorted(SAMPLE_DATA.glob("*/*/*.png"))]})
    manifest["split"] = manifest["path"].str.split("/").str[0]
    manifest["label"] = manifest["path"].str.split("/").str[1]
    result = datacheck.audit(manifest, root=SAMPLE_DATA, checks=["exact_duplicates", "class_imbalance"], workers=0)
    assert result.run_dir is None
    assert result.summary["checks"]["exact_duplicates"]["flagged"] > 0
    with pytest.raises(UsageError, match=r"save\(dir\) first"):
        result.relabel()
    run = result.save(tmp_path / "run")
    loaded = datacheck.load(run)
    pd.testing.assert_frame_equal(loaded.findings.drop(columns="run_id"), result.findings.drop(columns="run_id"),
                                  check_dtype=False)
    plan = result.relabel(drop=True)  # reads the DataFrame manifest kept in the run
    dropped = plan.changes[plan.changes["action"] == "drop"]
    assert len(dropped) == result.summary["checks"]["exact_duplicates"]["flagged"]
    report = result.report()
    assert report.html.exists() and "<html" in report.html.read_text(encoding="utf-8")[:200].lower()


def test_library_errors_name_parameters(arrays):
    probs, labels, _ = arrays
    with pytest.raises(UsageError, match="pred_probs needs labels"):
        datacheck.audit(pred_probs=probs)
    with pytest.raises(UsageError, match="labels go without data"):
        datacheck.audit(SAMPLE_DATA, pred_probs=probs, labels=labels)
    with pytest.raises(UsageError, match="check 'aum' did not run"):
        datacheck.audit(pred_probs=probs, labels=labels, checks="label_issues").issues("aum")


def test_notebook_inputs_get_clear_errors_or_work(arrays, tmp_path, monkeypatch):
    probs, labels, _ = arrays
    with pytest.raises(UsageError, match="data must be .* got a dict: pass pd.DataFrame"):
        datacheck.audit({"path": ["a.png"], "label": ["x"]})
    with pytest.raises(UsageError, match="data must be .* got a list"):
        datacheck.audit([str(SAMPLE_DATA)])
    with pytest.raises(BadDataError, match="has no 'path' column"):
        datacheck.audit(pd.DataFrame({"filepath": ["train/a.png"], "label": ["a"]}), root=SAMPLE_DATA)
    names = np.array(["cat", "dog", "emu"])[np.minimum(labels, 1)]  # 2 of the 3 columns' classes used
    with pytest.raises(UsageError, match="labels name 2 classes but pred_probs has 3 columns; pass class_names"):
        datacheck.audit(pred_probs=probs, labels=names)
    assert len(datacheck.audit(pred_probs=probs, labels=names, class_names=["cat", "dog", "emu"],
                               checks="label_issues").issues()) > 0
    # numpy integers (a value taken from an array) and a config dict, as a notebook passes them
    monkeypatch.chdir(tmp_path)
    result = datacheck.audit(pred_probs=probs, labels=labels, seed=np.int64(3), max_missing=np.int32(0), out=".",
                             config={"audit": {"checks": ["label_issues"]}})
    assert list(result.summary["checks"]) == ["label_issues"]
    assert json.loads((tmp_path / "run.json").read_text())["seed"] == 3  # in-memory arrays: "." is no dataset


def test_a_dataframe_audit_may_write_beside_the_listed_files_not_over_them(tmp_path, monkeypatch):
    frame = pd.DataFrame({"path": ["train/circle/" + p.name for p in sorted((SAMPLE_DATA / "train" / "circle").glob("*.png"))[:3]]})
    monkeypatch.chdir(tmp_path)
    assert datacheck.audit(frame, root=SAMPLE_DATA, checks="exact_duplicates", out=".", workers=0).run_dir is not None
    for inside in (SAMPLE_DATA / "train", SAMPLE_DATA / frame["path"][0]):
        with pytest.raises(UsageError, match="would write into the audited dataset"):
            datacheck.audit(frame, root=SAMPLE_DATA, checks="exact_duplicates", out=inside, workers=0)


def test_balance_takes_its_settings_as_keywords(tmp_path):
    run = datacheck.audit(SAMPLE_DATA, checks=["exact_duplicates", "class_imbalance"], workers=0, out=tmp_path / "run")
    result = datacheck.balance(run.run_dir, tmp_path / "plan", strategy="classes", target=30)
    assert (result.table["after"] == 30).all()
    with pytest.raises(UsageError, match="options must be a BalanceOptions, got dict"):
        datacheck.balance(run.run_dir, tmp_path / "plan2", {"strategy": "classes"})


def test_top_level_exports():
    for name in ("audit", "load", "relabel", "balance", "augment", "report", "list_detectors", "AuditResult",
                 "Detector", "register_detector", "create_detector"):
        assert callable(getattr(datacheck, name)), name
    assert "label_issues" in datacheck.list_detectors()


def test_fix_and_relabel_switches_must_be_booleans(tiny_dataset, tmp_path):
    """relabel="no" is truthy: it was taken for True. A switch is a bool (numpy's too); else
    a UsageError naming the keyword, before anything is written."""
    for bad in ("no", 0, None):
        with pytest.raises(UsageError, match=f"^relabel must be True or False, got {bad!r}$"):
            datacheck.fix(tiny_dataset, tmp_path / "fix", relabel=bad)
    with pytest.raises(UsageError, match="^boost must be True or False, got 'false'$"):
        datacheck.fix(tiny_dataset, tmp_path / "fix", boost="false")
    assert not (tmp_path / "fix").exists()
    config = tmp_path / "quick.toml"
    config.write_text('[audit]\nchecks = ["image_properties"]\n')
    fixed = datacheck.fix(tiny_dataset, tmp_path / "fix", budget=20, config=config, workers=0,
                          relabel=np.bool_(False), boost=np.False_)
    assert fixed.steps["relabel"] == "skipped" and len(fixed.manifest) == 20
    run = fixed.before.run_dir
    for keyword in ("auto", "drop", "hold_out_review"):
        with pytest.raises(UsageError, match=f"^{keyword} must be True or False, got 'no'$"):
            datacheck.relabel(run, **{keyword: "no"})
    assert datacheck.relabel(run, drop=np.True_).changes.empty


def test_path_arguments_of_another_type_name_their_keyword(tiny_dataset, tmp_path, monkeypatch):
    """out=3 reached pathlib, whose TypeError names no argument (and config=3 read file
    descriptor 3): every path keyword of the API says what it accepts, before any work."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = tree_digest(tiny_dataset)
    path, optional = "a str or an os.PathLike", "a str, an os.PathLike or None"
    calls = [
        (lambda: datacheck.audit(tiny_dataset, out=3), f"^out must be {optional}, got int 3$"),
        (lambda: datacheck.audit(tiny_dataset, root=b"x"), f"^root must be {optional}, got bytes b'x'$"),
        (lambda: datacheck.audit(tiny_dataset, config=3), "^config must be a str, an os.PathLike, a dict or None, got int 3$"),
        (lambda: datacheck.load(3), f"^run_dir must be {path}, got int 3$"),
        (lambda: datacheck.report(tiny_dataset, out=3.5), f"^out must be {optional}, got float 3.5$"),
        (lambda: datacheck.report(tiny_dataset, csv=1), "^csv must be True, False, a str or an os.PathLike, got int 1$"),
        (lambda: datacheck.fix(tiny_dataset, out=None), f"^out must be {path}, got None$"),
        (lambda: datacheck.fix([tiny_dataset], "fixed"), rf"^dataset must be {path}, got list \["),
        (lambda: datacheck.relabel(tiny_dataset, dataset=["a"]), rf"^dataset must be {optional}, got list \['a'\]$"),
        (lambda: datacheck.balance(tiny_dataset, 3), f"^out must be {path}, got int 3$"),
        (lambda: datacheck.augment(3, "copies"), f"^plan_dir must be {path}, got int 3$"),
    ]
    for call, message in calls:
        with pytest.raises(UsageError, match=message):
            call()
    in_memory = datacheck.audit(tiny_dataset, checks=["exact_duplicates"], workers=0)
    with pytest.raises(UsageError, match=f"^out must be {path}, got int 3$"):
        in_memory.save(3)
    assert list(work.iterdir()) == [] and tree_digest(tiny_dataset) == before


def test_whole_number_text_labels_are_column_numbers():
    """Labels "0".."11" (a CSV's class ids read as text) were sorted as text, so "10" named
    column 2: 190 of 240 correct labels flagged. As for a manifest's labels, whole numbers
    are column numbers; "²" (a digit to str.isdigit, not to int) is a name, not a crash."""
    k, n = 12, 240
    ids = np.arange(n) % k
    probs = np.full((n, k), 0.01)
    probs[np.arange(n), ids] = 1 - 0.01 * (k - 1)
    for labels in (ids.astype(str), pd.Series(ids.astype(str)), list(ids.astype(str))):
        result = datacheck.audit(pred_probs=probs, labels=labels, checks="label_issues")
        assert result.summary["checks"]["label_issues"]["flagged"] == 0
        assert result.findings["label"].head(3).tolist() == ["0", "1", "2"]
    with pytest.raises(BadDataError, match=r"^labels has id 12 at row 11, outside 0\.\.11"):
        datacheck.audit(pred_probs=probs, labels=(ids + 1).astype(str))
    frame = pd.DataFrame({"sample_id": list("abcd"), "label": ["²", "1", "²", "1"], "pred_probs": [[0.9, 0.1]] * 4})
    judged = {"detectors": {"label_issues": {"judge_at_chance": True}}}  # 4 samples: never beyond chance
    assert len(datacheck.audit(frame, checks="label_issues", config=judged).findings) == 4


def test_labels_as_pandas_arrays_and_class_names_of_another_type(arrays):
    """A Categorical or a StringArray of names was refused as "a numeric array ... of objects"
    (while a Series holding it worked); class_names=3 was numpy's TypeError, and a name listed
    twice was blamed on the labels."""
    probs, labels, _ = arrays
    names = np.array(["cat", "dog", "emu"])[labels]
    for given in (pd.Categorical(names), pd.array(names, dtype="string"), pd.Index(names)):
        assert len(datacheck.audit(pred_probs=probs, labels=given, checks="label_issues").issues()) == 30
    with pytest.raises(UsageError, match="^labels has missing values"):
        datacheck.audit(pred_probs=probs, labels=pd.Categorical([None, *names[1:]]))
    with pytest.raises(UsageError, match=r"^class_names must be a sequence of names or a text file \(str or "
                                         r"os.PathLike\), got int 3$"):
        datacheck.audit(pred_probs=probs, labels=names, class_names=3)
    with pytest.raises(UsageError, match="^class_names lists 'cat' twice; each column needs its own class name$"):
        datacheck.audit(pred_probs=probs, labels=names, class_names=["cat", "cat", "emu"])


def test_a_pred_probs_dataframe_names_its_columns(arrays):
    """Its column names were ignored: labels matched the columns in sorted order, whatever the
    columns said (columns "emu", "dog", "cat" read as "cat", "dog", "emu")."""
    probs, labels, _ = arrays
    names = np.array(["cat", "dog", "emu"])[labels]
    frame = pd.DataFrame(probs[:, ::-1], columns=["emu", "dog", "cat"])
    result = datacheck.audit(pred_probs=frame, labels=names, checks="label_issues")
    assert set(result.issues()["sample_id"].astype(int)) == set(range(30))
    result = datacheck.audit(pred_probs=frame, labels=2 - labels, checks="label_issues")  # ids: column numbers
    assert set(result.findings["label"]) == {"cat", "dog", "emu"} and len(result.issues()) == 30
    with pytest.raises(UsageError, match=r"^class_names differ from the column names of the pred_probs DataFrame"):
        datacheck.audit(pred_probs=frame, labels=names, class_names=["cat", "dog", "emu"])


def test_a_dataframe_with_a_column_name_twice_is_bad_data():
    """data["label"] was then a DataFrame: AttributeError, a traceback."""
    frame = pd.DataFrame([["a.png", "x", "y"]], columns=["path", "label", "label"])
    with pytest.raises(BadDataError, match="^data has the column 'label' twice; each column must have its own name$"):
        datacheck.audit(frame, root=SAMPLE_DATA)


@pytest.mark.parametrize("files", [True, False])
def test_load_manifest_of_a_dataframe_with_doubled_or_multi_level_columns_is_bad_data(files):
    """Both failed as AttributeError ('DataFrame' object has no attribute 'tolist' / 'dtype'):
    load_manifest is public, and datacheck.audit's own check saw only doubled names."""
    doubled = pd.DataFrame([["a.png", "x", "y"]], columns=["path", "label", "label"])
    with pytest.raises(BadDataError, match="^the manifest DataFrame has the column 'label' twice"):
        datacheck.load_manifest(doubled, root=SAMPLE_DATA, files=files)
    nested = pd.DataFrame([["a.png", "x"]], columns=pd.MultiIndex.from_tuples([("path", "a"), ("label", "b")]))
    with pytest.raises(BadDataError, match="^the manifest DataFrame has 2-level columns; flatten them"):
        datacheck.load_manifest(nested, root=SAMPLE_DATA, files=files)
    with pytest.raises(BadDataError, match="2-level columns"):
        datacheck.audit(nested, root=SAMPLE_DATA)


@pytest.mark.parametrize("checks, shown", [
    (123, "got int 123"),
    (b"image_properties", "got bytes b'image_properties'"),
    ({"outliers"}, "got set"),
    ([None], "holds NoneType None"),
    ([1], "holds int 1"),
    (("label_issues", b"outliers"), "holds bytes b'outliers'"),
])
def test_checks_of_another_type_name_the_keyword(arrays, checks, shown):
    """Only a name, a Detector, or a list or tuple of them: a number was a TypeError, bytes
    were split into the checks '105', '109', ..., and [None] was the check 'None'."""
    probs, labels, _ = arrays
    with pytest.raises(UsageError, match="^checks must be a check name") as info:
        datacheck.audit(pred_probs=probs, labels=labels, checks=checks)
    assert shown in str(info.value)


def test_a_wildcard_beside_a_detector_expands_and_names_take_the_config(arrays, tmp_path):
    """README's ``checks=["*dup*", Outliers(k=20)]``: a wildcard in a list with a configured
    detector expands (it was "unknown check '*dup*'"), names take their config section as
    names alone do, and a wildcard does not double a detector the list configures itself."""
    probs, labels, embeddings = arrays
    config = tmp_path / "c.toml"
    config.write_text("[detectors.near_duplicates]\nmin_similarity = 0.9995\n[detectors.outliers]\nk = 7\n")
    result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, config=config,
                             checks=["*dup*", Outliers(k=20)])
    checks = result.summary["checks"]
    assert {"exact_duplicates", "near_duplicates", "outliers"} <= set(checks) and "label_issues" not in checks
    assert checks["near_duplicates"]["threshold"]["min_similarity"] == 0.9995  # above the relative cut (0.998)
    assert "20 nearest" in checks["outliers"]["threshold"]["statistic"]  # the instance, not the config's k = 7
    result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, checks=["out*", Outliers(k=20)])
    assert "20 nearest" in result.summary["checks"]["outliers"]["threshold"]["statistic"]
    with pytest.raises(UsageError, match="matches no check"):
        datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, checks=["nope*", Outliers(k=5)])
    with pytest.raises(UsageError, match="names 'outliers' twice"):
        datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, checks=["outliers", Outliers(k=5)])


def test_checks_as_a_tuple_of_names_and_detectors(arrays):
    probs, labels, embeddings = arrays
    result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings,
                             checks=("label_issues", Outliers(k=5)))
    assert {"label_issues", "outliers"} <= set(result.summary["checks"])

"""An adversarial pass over ``datacheck.audit`` as a notebook user with arrays calls it.

pred_probs, labels and embeddings held in memory as a cleanlab or scikit-learn user has them
(``cross_val_predict(..., method="predict_proba")``, pandas objects, views, one sample); each
test pins a bug found that way. Tiny arrays and checks that train no model: seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import datacheck


# --------------------------------------------------------------------------- one sample


def test_one_sample_with_embeddings_scores_it_and_flags_nothing():
    """A graph of one sample has no neighbours (k = 0): the duplicate checks reshaped its rows
    with ``reshape(-1, 0)``, numpy's ValueError ("cannot reshape array of size 0") was a traceback."""
    probs = np.array([[0.8, 0.1, 0.1]])
    embeddings = np.array([[0.5, -1.0, 2.0, 0.25]])
    result = datacheck.audit(pred_probs=probs, labels=[0], embeddings=embeddings)
    checks = result.summary["checks"]
    for check in ("exact_duplicates", "near_duplicates", "issue_score"):
        assert (checks[check]["flagged"], checks[check]["scored"]) == (0, 1), check
    assert result.issues().empty
    for check in ("exact_duplicates", "near_duplicates"):
        alone = datacheck.audit(pred_probs=probs, labels=[0], embeddings=embeddings, checks=check)
        assert alone.summary["checks"][check]["scored"] == 1


# --------------------------------------------------------------------------- the caller's arrays


class _Subclass(np.ndarray):
    """An ndarray subclass of the user's own (as np.matrix and astropy's Quantity are)."""


def _rounded_probs(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities whose rows sum to 0.995 (renormalised by the audit) and their labels."""
    labels = np.arange(n) % 3
    probs = np.full((n, 3), 0.05, np.float32)
    probs[np.arange(n), labels] = 0.9
    return probs * np.float32(0.995), labels


def test_renormalising_never_writes_to_an_array_subclass_or_the_file_of_an_r_plus_map(tmp_path):
    """Rows off 1 by rounding are renormalised in a copy; a subclass of ndarray arrives as a
    base-class view of the caller's memory, which ``probs is value`` took for a copy: a masked
    array, a subclass of the user's own and an ``np.memmap`` opened "r+" (the file on disk)
    were rewritten."""
    probs, labels = _rounded_probs()
    path = tmp_path / "p.npy"
    np.save(path, probs)
    given = {
        "masked": np.ma.masked_array(probs.copy()),
        "subclass": probs.copy().view(_Subclass),
        "memmap r+": np.load(path, mmap_mode="r+"),
    }
    for name, value in given.items():
        result = datacheck.audit(pred_probs=value, labels=labels, checks="label_issues")
        assert result.summary["checks"]["label_issues"]["scored"] == 60
        np.testing.assert_array_equal(np.asarray(value), probs, err_msg=name)
    del given
    np.testing.assert_array_equal(np.load(path), probs)
    assert np.load(path).sum(axis=1)[0] == pytest.approx(0.995, abs=1e-6)


# --------------------------------------------------------------------------- classes named by numbers


def _flipped(n: int = 90, wrong: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (0.9 on class i % 3, columns 0, 1, 2) and class ids, the first ``wrong`` moved on."""
    truth = np.arange(n) % 3
    probs = np.full((n, 3), 0.05)
    probs[np.arange(n), truth] = 0.9
    labels = truth.copy()
    labels[:wrong] = (truth[:wrong] + 1) % 3
    return probs, labels


def test_numeric_labels_follow_columns_and_class_names_that_are_numbers():
    """Numeric labels were always column numbers: the columns of a pred_probs DataFrame
    reordered to [2, 0, 1] were read as 0, 1, 2 without a word (85 of 90 samples flagged
    instead of the 5 wrong ones), and scikit-learn's ``classes_`` [10, 11, 12] (as columns or
    class_names) had label 10 refused as a column outside 0..2."""
    probs, labels = _flipped()
    wrong = [str(i) for i in range(5)]
    frame = pd.DataFrame(probs, columns=[0, 1, 2])
    given = {
        "reordered columns": (frame[[2, 0, 1]], labels, None),
        "columns classes_": (pd.DataFrame(probs, columns=[10, 11, 12]), labels + 10, None),
        "columns range(1, 4)": (pd.DataFrame(probs, columns=range(1, 4)), pd.Series(labels + 1), None),
        "class_names classes_": (probs, labels + 10, np.array([10, 11, 12])),
        "float columns": (pd.DataFrame(probs, columns=[0.0, 1.0, 2.0]), labels, None),
    }
    for name, (pred_probs, given_labels, class_names) in given.items():
        result = datacheck.audit(pred_probs=pred_probs, labels=given_labels, class_names=class_names,
                                 checks="label_issues")
        assert sorted(result.issues()["sample_id"]) == wrong, name
    result = datacheck.audit(pred_probs=probs, labels=labels + 10, class_names=[10, 11, 12], checks="label_issues")
    assert result.issues()["label"].tolist()[:3] == ["11", "12", "10"]
    assert result.issues()["suggested_label"].tolist()[:3] == ["10", "11", "12"]
    # the same DataFrame, with a manifest's labels, was right already
    result = datacheck.audit(pd.DataFrame({"label": labels}), pred_probs=frame[[2, 0, 1]], checks="label_issues")
    assert sorted(result.issues()["sample_id"]) == wrong
    with pytest.raises(datacheck.BadDataError, match=r"^labels has 1 at row 0, which is not among the class "
                                                     r"names \[10, 11, 12\]: with class names that are numbers"):
        datacheck.audit(pred_probs=probs, labels=labels, class_names=[10, 11, 12])
    # text names keep numeric labels as column numbers (as documented)
    result = datacheck.audit(pred_probs=pd.DataFrame(probs, columns=["a", "b", "c"]), labels=labels, checks="label_issues")
    assert sorted(result.issues()["sample_id"]) == wrong


# --------------------------------------------------------------------------- tensors


def test_a_tensor_numpy_cannot_read_is_bad_data_naming_the_keyword():
    """Embeddings straight from a model (``requires_grad``) or in bfloat16: np.asarray raised
    torch's RuntimeError / TypeError, a traceback that named no argument of audit."""
    torch = pytest.importorskip("torch")
    probs, labels = _flipped()
    with pytest.raises(datacheck.BadDataError, match=r"^embeddings cannot be read as a numpy array \(Tensor\): "
                                                     r"Can't call numpy\(\) on Tensor that requires grad"):
        datacheck.audit(pred_probs=probs, labels=labels, embeddings=torch.ones(90, 4, requires_grad=True))
    with pytest.raises(datacheck.BadDataError, match=r"^pred_probs cannot be read as a numpy array \(Tensor\): "
                                                     r".*BFloat16"):
        datacheck.audit(pred_probs=torch.from_numpy(probs).bfloat16(), labels=labels)
    # a plain CPU tensor is an array like any other
    result = datacheck.audit(pred_probs=torch.from_numpy(probs), labels=torch.from_numpy(labels), checks="label_issues")
    assert sorted(result.issues()["sample_id"]) == [str(i) for i in range(5)]


# --------------------------------------------------------------------------- save and load


def test_a_saved_result_names_its_run_in_the_findings_and_equals_what_load_reads(tmp_path):
    """``save(dir)`` wrote findings whose run_id column said "memory" while summary.json named
    the run (an audit with out= writes the name in both), and the result kept "memory"."""
    probs, labels = _flipped()
    embeddings = np.random.default_rng(0).normal(size=(90, 4))
    result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings)
    assert set(result.findings["run_id"]) == {"memory"}
    result.save(tmp_path / "mine")
    written = pd.read_parquet(tmp_path / "mine" / "findings.parquet")
    assert set(written["run_id"]) == {"mine"}
    again = datacheck.load(tmp_path / "mine")
    assert again.summary["run_id"] == "mine" and set(again.findings["run_id"]) == {"mine"}
    pd.testing.assert_frame_equal(result.findings, again.findings)
    assert result.summary == again.summary
    pd.testing.assert_frame_equal(result.issues("label_issues"), again.issues("label_issues"))
    assert len(again.issues("label_issues")) == 5
    direct = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, out=tmp_path / "direct")
    pd.testing.assert_frame_equal(direct.findings.drop(columns="run_id"), again.findings.drop(columns="run_id"))
    assert set(direct.findings["run_id"]) == {"direct"}


# --------------------------------------------------------------------------- a manifest without labels


@pytest.mark.parametrize("frame, others", [
    (pd.DataFrame({"labels": np.arange(90) % 3}), "labels"),     # the keyword's name, not the column's
    (pd.DataFrame({"label": [None] * 90, "x": 0}), "x"),
])
def test_pred_probs_with_a_manifest_without_labels_is_bad_data_not_an_audit_of_nothing(frame, others):
    """With no label, label_issues and class_imbalance scored 0 samples and the audit passed
    every gate (fail_on="label_issues>0": exit 0)."""
    probs, _ = _flipped()
    with pytest.raises(datacheck.BadDataError, match=rf"^pred_probs needs labels, and the manifest <DataFrame> has "
                                                     rf"none: no 'label' column, or every row's is empty \(other "
                                                     rf"columns: {others}\)$"):
        datacheck.audit(frame, pred_probs=pd.DataFrame(probs, columns=["a", "b", "c"]), fail_on="label_issues>0")
    # embeddings alone need no labels
    result = datacheck.audit(frame, embeddings=np.random.default_rng(0).normal(size=(90, 4)), checks="outliers")
    assert result.summary["checks"]["outliers"]["scored"] == 90


# --------------------------------------------------------------------------- a notebook cell's output


def test_the_result_repr_is_one_line_of_counts_not_every_table(tmp_path):
    """A cell ending in ``result`` printed the dataclass's repr: the findings table, the
    manifest, the whole config and the timings (6 KB for 90 samples)."""
    probs, labels = _flipped()
    result = datacheck.audit(pred_probs=probs, labels=labels)
    assert repr(result) == ("AuditResult(run_dir=None, samples=90, flagged={'class_imbalance': 0, 'label_issues': 5}, "
                            "exit_status=<ExitStatus.OK: 0>)")
    result.save(tmp_path / "run")
    assert repr(datacheck.load(tmp_path / "run")) == repr(result)
    assert repr(result).startswith(f"AuditResult(run_dir={str(tmp_path / 'run')!r}, samples=90,")


# --------------------------------------------------------------------------- embeddings with labels, no pred_probs


def test_labels_and_embeddings_without_pred_probs_are_told_how_to_go_together():
    """``audit(labels=y, embeddings=e)`` (as Datalab takes features and labels) said only
    "audit needs data ... or pred_probs with labels"; the way that works is a manifest frame."""
    labels = np.array(["a", "b", "c"])[np.arange(90) % 3]
    embeddings = np.random.default_rng(0).normal(size=(90, 4))
    embeddings[7] = embeddings[8]
    hint = (r"^labels or embeddings without pred_probs go with data, a manifest of their rows: "
            r"audit\(pd.DataFrame\(\{'label': labels\}\), embeddings=embeddings\)$")
    for given in ({"labels": labels, "embeddings": embeddings}, {"embeddings": embeddings}, {"labels": labels}):
        with pytest.raises(datacheck.UsageError, match=hint):
            datacheck.audit(**given)
    result = datacheck.audit(pd.DataFrame({"label": labels}), embeddings=embeddings)
    assert result.issues("exact_duplicates")["sample_id"].tolist() == ["8"]
    assert result.summary["checks"]["class_imbalance"]["scored"] == 90


# --------------------------------------------------------------------------- a column of vectors


def test_a_series_of_vectors_is_rows_as_a_list_of_them_is():
    """``embeddings=df["embedding"]`` (a column of arrays, as a notebook keeps model outputs
    beside the data) was refused as "a Series of objects", while ``list(df["embedding"])``
    passed; a bad row is named, counted from 0 as for any array given in memory."""
    probs, labels = _flipped(60, wrong=4)
    embeddings = np.random.default_rng(0).normal(size=(60, 4))
    embeddings[9] = embeddings[10]
    frame = pd.DataFrame({"embedding": list(embeddings), "probs": list(probs)}, index=[f"r{i}" for i in range(60)])
    result = datacheck.audit(pred_probs=frame["probs"], labels=labels, embeddings=frame["embedding"])
    expected = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings)
    pd.testing.assert_frame_equal(result.findings, expected.findings)
    assert result.issues("exact_duplicates")["sample_id"].tolist() in (["9"], ["10"])
    assert sorted(result.issues("label_issues")["sample_id"]) == ["0", "1", "2", "3"]
    short = frame["embedding"].copy()
    short.iloc[3] = np.zeros(3)
    with pytest.raises(datacheck.BadDataError, match=r"^embeddings: row 3 has 3 values, row 0 has 4$"):
        datacheck.audit(pred_probs=probs, labels=labels, embeddings=short)
    short.iloc[3] = None
    with pytest.raises(datacheck.BadDataError, match=r"^embeddings must hold a list of numbers per row; row 3 holds None$"):
        datacheck.audit(pred_probs=probs, labels=labels, embeddings=short)


def test_arrays_given_as_data_are_told_to_go_by_keyword():
    """``audit(probs, labels=y)`` (probabilities first, as a cleanlab call takes arrays by
    position) said what data must be, not where the array goes."""
    probs, labels = _flipped()
    hint = r"got a {}: arrays go by keyword, audit\(pred_probs=\.\.\., labels=\.\.\., embeddings=\.\.\.\)$"
    for given in (probs, probs.tolist(), pd.Series(labels)):
        with pytest.raises(datacheck.UsageError, match=hint.format(type(given).__name__)):
            datacheck.audit(given, labels=labels)
    with pytest.raises(datacheck.UsageError, match=r"got a list$"):  # file names: no such hint
        datacheck.audit(["a.png"])
    import pyarrow as pa  # a table of another library is a manifest, not an array

    with pytest.raises(datacheck.UsageError, match=r"got a Table: pass data.to_pandas\(\)$"):
        datacheck.audit(pa.table({"label": labels}), pred_probs=probs)


def test_labels_unknown_to_a_pred_probs_dataframe_name_its_columns_not_class_names():
    """Text labels are matched to a pred_probs DataFrame's column names; one that is none of
    them, or a column name given twice, was blamed on class_names, which the user never passed."""
    probs, ids = _flipped()
    labels = np.array(["cat", "dog", "emu"])[ids]
    labels[4] = "eum"
    frame = pd.DataFrame(probs, columns=["cat", "dog", "emu"])
    with pytest.raises(datacheck.UsageError,
                       match=r"^labels \['eum'\] are not among the pred_probs DataFrame's column names$"):
        datacheck.audit(pred_probs=frame, labels=labels)
    with pytest.raises(datacheck.UsageError, match=r"^labels \['eum'\] are not among class_names$"):
        datacheck.audit(pred_probs=probs, labels=labels, class_names=["cat", "dog", "emu"])
    with pytest.raises(datacheck.UsageError, match=r"^the pred_probs DataFrame has the column 'cat' twice; "
                                                   r"each column needs its own class name$"):
        datacheck.audit(pred_probs=pd.DataFrame(probs, columns=["cat", "cat", "emu"]), labels=labels)


def test_one_probability_per_row_is_told_how_to_give_both_classes():
    """``predict_proba(X)[:, 1]`` of a binary classifier, the usual scikit-learn habit, got only
    "must be a 2-D array of shape (N, K)"; its two-column form is audited as cleanlab does."""
    from cleanlab.filter import find_label_issues

    positive = np.r_[np.full(40, 0.9), np.full(40, 0.1)]
    labels = np.r_[np.ones(40, int), np.zeros(40, int)]
    labels[[0, 1, 50]] = 1 - labels[[0, 1, 50]]
    for given in (positive, positive[:, None]):
        with pytest.raises(datacheck.BadDataError, match=r"got shape \(80,(?: 1)?\); for one class's probability p "
                                                         r"of two, pass both: np.column_stack\(\[1 - p, p\]\)$"):
            datacheck.audit(pred_probs=given, labels=labels)
    both = np.column_stack([1 - positive, positive])
    result = datacheck.audit(pred_probs=both, labels=labels, checks="label_issues")
    assert sorted(result.issues()["sample_id"].astype(int)) == [0, 1, 50]
    assert find_label_issues(labels, both).sum() == 3


# --------------------------------------------------------------------------- numpy numbers as settings


def test_detector_parameters_that_are_numpy_numbers_are_the_numbers_they_hold():
    """``Outliers(k=np.int64(20))`` (k computed from an array) was refused as "outliers.k must
    be an integer in [1, 1000], got np.int64(20)", and a float32 z_threshold as no finite
    number, while the same values in a config dict were taken."""
    from datacheck.detectors.outliers import Outliers

    probs, labels = _flipped()
    embeddings = np.random.default_rng(0).normal(size=(90, 4))
    detector = Outliers(k=np.int64(20), z_threshold=np.float32(2.5))
    result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, checks=[detector])
    threshold = result.summary["checks"]["outliers"]["threshold"]
    assert threshold["statistic"] == "mean cosine distance to 20 nearest" and threshold["z_cut"] <= 2.5
    assert detector.get_params()["k"] == 20 and type(detector.get_params()["k"]) is int
    with pytest.raises(datacheck.UsageError, match=r"^outliers.k must be an integer in \[1, 1000\], got 0$"):
        datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, checks=[Outliers(k=np.int64(0))])
    with pytest.raises(datacheck.UsageError, match=r"^outliers.k must be an integer in \[1, 1000\], got True$"):
        datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, checks=[Outliers(k=np.bool_(True))])


def test_run_json_records_the_configured_detectors_that_ran(tmp_path):
    """With detector instances as checks, run.json's config said the defaults: outliers k = 10
    for an ``Outliers(k=20)``, and every default check (aum and image_properties among them)."""
    import json

    from datacheck.detectors.outliers import Outliers

    probs, labels = _flipped()
    embeddings = np.random.default_rng(0).normal(size=(90, 4))
    result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, out=tmp_path / "run",
                             checks=[Outliers(k=20, z_threshold=2.5), "label_issues"])
    config = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert config["audit"]["checks"] == ["outliers", "label_issues"]
    assert config["detectors"]["outliers"] == {"k": 20, "z_threshold": 2.5, "min_z": 2.0, "fdr": 0.2, "orientation": True}
    assert result.run_info.config == config
    assert len(datacheck.load(tmp_path / "run").issues("label_issues")) == 5
    assert datacheck.report(tmp_path / "run").findings_rows == len(result.findings)


def test_a_numpy_bool_in_a_config_dict_is_the_flag_it_holds():
    """``config={"detectors": {"clusters": {"rare_groups": np.any(...)}}}`` was refused as
    "must be bool, got np.False_", while numpy numbers in the same dict were taken."""
    probs, labels = _flipped()
    embeddings = np.random.default_rng(0).normal(size=(90, 4))
    result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, checks="clusters",
                             config={"detectors": {"clusters": {"rare_groups": np.bool_(False), "max_k": np.int64(4)}}})
    settings = result.run_info.config["detectors"]["clusters"]
    assert settings["rare_groups"] is False and settings["max_k"] == 4
    assert "rare_groups" not in result.summary["checks"]["clusters"]["threshold"]
    with pytest.raises(datacheck.UsageError, match=r"^detectors.clusters.k in the config dict must be int, got True$"):
        datacheck.audit(pred_probs=probs, labels=labels, config={"detectors": {"clusters": {"k": np.True_}}})


# --------------------------------------------------------------------------- pandas indexes


def test_pandas_inputs_whose_indexes_hold_the_same_labels_in_another_order_are_refused():
    """Rows are matched by position: a manifest frame sorted after its probabilities were put
    beside it (``data.sort_values("label")``) was audited against the wrong rows, 40 of 60
    labels flagged instead of the 3 wrong ones."""
    probs, labels = _flipped(60, wrong=3)
    ids = [f"id{i}" for i in range(60)]
    frame = pd.DataFrame({"sample_id": ids, "label": labels}, index=ids)
    table = pd.DataFrame(probs, index=ids)
    assert len(datacheck.audit(frame, pred_probs=table).issues("label_issues")) == 3
    resorted = frame.sort_values("label", kind="stable")
    with pytest.raises(datacheck.BadDataError, match=r"^pred_probs has the index of data in another order; rows are "
                                                     r"matched by position: align them \(pred_probs.loc\[data.index\]\) "
                                                     r"or pass pred_probs.to_numpy\(\)$"):
        datacheck.audit(resorted, pred_probs=table)
    aligned = datacheck.audit(resorted, pred_probs=table.loc[resorted.index])
    assert sorted(aligned.issues("label_issues")["sample_id"]) == ["id0", "id1", "id2"]
    with pytest.raises(datacheck.BadDataError, match=r"^pred_probs has the index of labels in another order"):
        datacheck.audit(pred_probs=table, labels=pd.Series(labels, index=ids).iloc[::-1])
    # indexes that share no order are matched by position, as before
    assert len(datacheck.audit(pred_probs=table, labels=pd.Series(labels)).issues("label_issues")) == 3
    # labels of mixed types, which do not sort (a TypeError from the first version of this check)
    mixed = ["a", *range(1, 60)]
    with pytest.raises(datacheck.BadDataError, match=r"^pred_probs has the index of labels in another order"):
        datacheck.audit(pred_probs=pd.DataFrame(probs, index=mixed[::-1]), labels=pd.Series(labels, index=mixed))


# --------------------------------------------------------------------------- a cell run again


_CELL = '''
import numpy as np
from datacheck import Detector, register_detector
from datacheck.detectors.base import partial_findings

@register_detector
class LongVectors(Detector):
    name = "long_vectors"
    requires = frozenset({"embeddings"})
    checks = ("long_vectors",)
    _parameter_constraints = {}

    def find(self, ctx):
        norms = np.linalg.norm(ctx.get("embeddings"), axis=1)
        return partial_findings(np.arange(len(norms)), self.name, 1 / (1 + norms), norms > CUT, [{}] * len(norms))
'''


def test_a_notebook_cell_that_registers_a_detector_can_run_again(monkeypatch):
    """Running the cell again (the notebook way to edit a detector) defines a new class of the
    same module and name: it was "a detector named 'long_vectors' is already registered" until
    the kernel restarted. The edited class replaces the old one; another module's is refused."""
    from datacheck.detectors import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    probs, labels = _flipped()
    embeddings = np.ones((90, 4))
    embeddings[:7] *= 10
    cell = {"__name__": "__main__"}
    flagged = []
    for cut in (3.0, 30.0):  # the cell edited and run again
        cell["CUT"] = cut
        exec(compile(_CELL, "<cell>", "exec"), cell)
        result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, checks="long_vectors")
        flagged.append(result.summary["checks"]["long_vectors"]["flagged"])
    assert flagged == [7, 0]
    assert datacheck.list_detectors().count("long_vectors") == 1
    other = {"__name__": "somewhere_else", "CUT": 1.0}
    with pytest.raises(ValueError, match="a detector named 'long_vectors' is already registered"):
        exec(compile(_CELL, "<other>", "exec"), other)


_MODEL_CELL = '''
from datacheck.engine.models import register_model

@register_model("cell_net", input_size=SIDE)
def cell_net(num_classes, weights):
    raise NotImplementedError
'''


def test_a_notebook_cell_that_registers_a_model_can_run_again(monkeypatch):
    """As for detectors: ``register_model`` in a cell run again was "a model named 'cell_net'
    is already registered"; the redefined factory (and its input size) replaces the old one."""
    from datacheck.engine import models

    monkeypatch.setattr(models, "_MODELS", dict(models._MODELS))
    monkeypatch.setattr(models, "_INPUT_SIZES", dict(models._INPUT_SIZES))
    cell = {"__name__": "__main__"}
    for side in (64, 96):
        cell["SIDE"] = side
        exec(compile(_MODEL_CELL, "<cell>", "exec"), cell)
    assert models._MODELS["cell_net"] is cell["cell_net"] and models._INPUT_SIZES["cell_net"] == 96
    with pytest.raises(ValueError, match="a model named 'cell_net' is already registered"):
        exec(compile(_MODEL_CELL, "<other>", "exec"), {"__name__": "somewhere_else", "SIDE": 32})
    with pytest.raises(ValueError, match="a model named 'convnet-small' is already registered"):
        models.register_model("convnet-small")(cell["cell_net"])

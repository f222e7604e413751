"""An adversarial pass of 2026-12-05 (third): the Python API in a notebook, config files, and
detectors written by a third party and checked with ``datacheck.testing.check_detector``.
Model outputs in memory, no images and no training: the file takes seconds."""

from __future__ import annotations

import re

import numpy as np
import pytest

from datacheck.detectors import Detector
from datacheck.detectors.base import partial_findings
from datacheck.validation import Interval

from .conftest import detector_context_factory


# Detectors as a plugin author writes them: module-level classes (check_detector pickles them).

class Confidence(Detector):
    """No parameters, so no ``__init__``: what docs/architecture.md lists is all it has."""

    name, checks, requires, tags = "adv_confidence", ("adv_confidence",), frozenset({"pred_probs"}), frozenset({"label_evidence"})

    def find(self, ctx):
        p = ctx.get("pred_probs")
        return partial_findings(np.arange(len(p)), self.name, p.max(1), p.max(1) < 0.4, [{}] * len(p))


class ReturnsNothing(Detector):
    name, checks, requires = "adv_nothing", ("adv_nothing",), frozenset({"pred_probs"})

    def find(self, ctx):
        ctx.get("pred_probs")  # forgot the return


class ReturnsSchemaRows(Detector):
    """Returns rows in the findings schema (sample_id, ...) instead of partial findings (row, ...)."""

    name, checks, requires = "adv_schema", ("adv_schema",), frozenset({"pred_probs"})

    def find(self, ctx):
        import pandas as pd

        p = ctx.get("pred_probs")
        return pd.DataFrame({"sample_id": [str(i) for i in range(len(p))], "check": self.name,
                             "score": p.max(1), "is_issue": False})


class RowsOffByOne(Detector):
    """Row numbers counted from 1 (or -1 for "none"): the last one is past the manifest."""

    name, checks, requires = "adv_rows", ("adv_rows",), frozenset({"pred_probs"})

    def __init__(self, *, shift: int = 1):
        self.shift = shift

    _parameter_constraints = {"shift": [Interval(int, -1, 1)]}

    def find(self, ctx):
        p = ctx.get("pred_probs")
        return partial_findings(np.arange(len(p)) + self.shift, self.name, p.max(1), False, None)


def test_check_detector_passes_a_detector_without_parameters_or_init():
    """A detector with no parameters, written as docs/architecture.md lists it (name, checks,
    requires, tags, find: no ``__init__``), runs in an audit, but check_detector failed it with
    "parameters must be keyword-only with defaults": it read object.__init__'s ``*args,
    **kwargs`` as the detector's parameters. Now a class without ``__init__`` has none."""
    import datacheck
    from datacheck.testing import check_detector

    findings = check_detector(Confidence(), detector_context_factory())
    assert len(findings) == 30 and set(findings["check"]) == {"adv_confidence"}
    assert Confidence().get_params() == {}
    # and it runs in an audit, as before
    result = datacheck.audit(pred_probs=np.full((6, 2), 0.5), labels=[0, 1] * 3, checks=[Confidence()])
    assert result.summary["checks"]["adv_confidence"]["scored"] == 6


@pytest.mark.parametrize("detector, rule", [
    (ReturnsNothing(), "adv_nothing: find must return a DataFrame of partial findings "
                       "(datacheck.detectors.base.partial_findings), got NoneType"),
    (ReturnsSchemaRows(), "adv_schema: find returned no 'row', 'details' column"),
    (RowsOffByOne(), "adv_rows produced row numbers outside 0..29 (the manifest's rows): 30"),
    (RowsOffByOne(shift=-1), "adv_rows produced row numbers outside 0..29 (the manifest's rows): -1"),
])
def test_a_detector_that_returns_the_wrong_frame_is_named_with_the_rule_it_broke(detector, rule):
    """check_detector promises an AssertionError naming the rule broken, and the audit an
    internal error naming the detector. A ``find`` that returned None, rows in the findings
    schema (no ``row``), or row numbers past the manifest failed inside datacheck instead:
    "TypeError: 'NoneType' object is not subscriptable (at base.py:246)", "KeyError: 'row'",
    "IndexError: out of bounds value in 'indices'. (at array.py:2303)" (read as datacheck's
    own bug), and row -1 was silently the last sample's finding."""
    import datacheck
    from datacheck.testing import check_detector

    with pytest.raises(AssertionError) as caught:
        check_detector(detector, detector_context_factory())
    assert rule in str(caught.value)
    # the audit says the same (the CLI: exit 4, naming it)
    with pytest.raises(AssertionError, match=re.escape(rule.split(":")[0])):
        datacheck.audit(pred_probs=np.full((30, 2), 0.5), labels=[0, 1] * 15, checks=[detector])


class SklearnStyleConstraints(Detector):
    """Constraints as scikit-learn writes them (a type, a list of one): not datacheck's."""

    name, checks, requires, tags = "adv_sklearn", ("adv_sklearn",), frozenset({"pred_probs"}), frozenset({"label_evidence"})
    _parameter_constraints = {"k": [int]}

    def __init__(self, *, k: int = 3):
        self.k = k

    def find(self, ctx):
        p = ctx.get("pred_probs")
        return partial_findings(np.arange(len(p)), self.name, p.max(1), False, None)


@pytest.mark.parametrize("constraints", [[int], Interval(int, 1, 10), [None], [], ["boolean"]])
def test_constraints_that_are_not_datacheck_constraints_name_the_detector(tmp_path, monkeypatch, constraints):
    """``_parameter_constraints = {"k": [int]}`` (scikit-learn's style), a bare Interval or
    ``[None]``: every audit that selected the detector failed as datacheck's own bug, "internal
    error: AttributeError: type object 'int' has no attribute 'accepts' (at validation.py:142)",
    and check_detector with an AttributeError. Now registering it (from Python or an entry
    point: exit 2 naming the plugin) refuses it, and check_detector and an audit of an
    unregistered instance name the detector and the parameter."""
    import datacheck
    from datacheck.detectors import register_detector
    from datacheck.errors import ExitStatus
    from datacheck.testing import check_detector

    from .conftest import assert_one_line_error, install_plugin, invoke

    from datacheck.detectors import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # nothing registered here outlives the test
    monkeypatch.setattr(SklearnStyleConstraints, "_parameter_constraints", {"k": constraints})
    what = "adv_sklearn.k's constraints must be a non-empty list of datacheck.validation constraints"
    with pytest.raises(TypeError, match=re.escape(what)):
        register_detector(SklearnStyleConstraints)
    with pytest.raises(AssertionError, match=re.escape(what)):
        check_detector(SklearnStyleConstraints(), detector_context_factory())
    with pytest.raises(AssertionError, match=re.escape(what)):
        datacheck.audit(pred_probs=np.full((6, 2), 0.5), labels=[0, 1] * 3, checks=[SklearnStyleConstraints()])

    # from another package, through the entry point group
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    source = "from tests.test_adversarial_dec05c import SklearnStyleConstraints as Plugin\n"  # as patched above
    install_plugin(tmp_path, monkeypatch, "adv_plugin", source, "datacheck.detectors", "adv_sklearn = adv_plugin:Plugin")
    np.save(tmp_path / "p.npy", np.full((6, 2), 0.5))
    np.save(tmp_path / "l.npy", np.array([0, 1] * 3))
    result = invoke("audit", "--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "l.npy", "--checks", "label_issues",
                    "--out", tmp_path / "run", "--cache-dir", "off", "-q")
    assert_one_line_error(result, ExitStatus.USAGE, "detector plugin 'adv_sklearn' (adv_plugin:Plugin)", what)
    assert not (tmp_path / "run").exists()


def test_saving_a_result_again_leaves_no_scandir_iterator_open(tmp_path):
    """``result.save(dir)`` into an earlier run (a notebook cell run twice), or into a folder
    that is not a run, warned "ResourceWarning: unclosed scandir iterator" (shown by pytest
    and ``python -X dev``): the check whether the folder holds files stopped at its first
    entry and left the directory handle to the garbage collector."""
    import gc
    import warnings

    import datacheck
    from datacheck.errors import UsageError

    result = datacheck.audit(pred_probs=np.full((6, 2), 0.5), labels=[0, 1] * 3, checks="label_issues")
    result.save(tmp_path / "run")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("mine")
    (tmp_path / "other" / "b.txt").write_text("mine")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result.save(tmp_path / "run")
        with pytest.raises(UsageError, match="is a non-empty folder that is not a datacheck run"):
            result.save(tmp_path / "other")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]


def test_a_wildcard_selects_the_checks_that_model_outputs_can_run(tmp_path):
    """``--checks '*'`` is "every one" (README), but on ``--pred-probs`` it failed every time:
    "check 'aum' needs images, which this audit does not have", as did ``'*dup*'`` with
    embeddings ('exact_duplicates' needs images); only a list of names the data can run
    worked. A wildcard now selects the matching detectors this audit can run; a name given
    as such must still run, and a wildcard that selects none that can is refused."""
    import json

    import datacheck
    from datacheck.errors import ExitStatus, UsageError

    from .conftest import assert_one_line_error, invoke

    rng = np.random.default_rng(0)
    np.save(tmp_path / "p.npy", rng.dirichlet(np.ones(3), 60))
    np.save(tmp_path / "l.npy", rng.integers(0, 3, 60))
    np.save(tmp_path / "e.npy", rng.normal(size=(60, 4)))
    arrays = ["--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "l.npy", "--cache-dir", "off", "-q", "--json"]
    result = invoke("audit", *arrays, "--embeddings", tmp_path / "e.npy", "--checks", "*", "--out", tmp_path / "all")
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["checks"]) >= {"label_issues", "outliers", "clusters", "non_iid", "coreset",
                                                         "class_imbalance"}
    result = invoke("audit", *arrays, "--checks", "label_*,*imbalance", "--out", tmp_path / "label")
    assert result.exit_code == 0, result.output
    assert {"label_issues", "class_imbalance"} <= set(json.loads(result.stdout)["checks"])
    # named, it must run; a wildcard of which nothing can run says why its first match cannot
    result = invoke("audit", *arrays, "--checks", "*,aum", "--out", tmp_path / "aum")
    assert_one_line_error(result, ExitStatus.USAGE, "check 'aum' needs images, which this audit does not have")
    result = invoke("audit", *arrays, "--checks", "label_issues,*dup*", "--out", tmp_path / "dup")
    assert_one_line_error(result, ExitStatus.USAGE, "check 'exact_duplicates' needs images")
    assert not (tmp_path / "aum").exists() and not (tmp_path / "dup").exists()
    # the Python API alike, beside configured instances
    from datacheck.detectors.outliers import Outliers

    found = datacheck.audit(pred_probs=np.load(tmp_path / "p.npy"), labels=np.load(tmp_path / "l.npy"),
                            embeddings=np.load(tmp_path / "e.npy"), checks=["*", Outliers(k=5)])
    assert found.summary["checks"]["outliers"]["threshold"] and "label_issues" in found.summary["checks"]
    with pytest.raises(UsageError, match="check 'exact_duplicates' needs images"):
        datacheck.audit(pred_probs=np.load(tmp_path / "p.npy"), labels=np.load(tmp_path / "l.npy"), checks="exact_*")


def test_check_detector_names_its_argument_when_given_a_class_or_a_context():
    """``check_detector(MyCheck, ...)`` (the class, as scikit-learn's check_estimator once took
    it) failed with "AttributeError: type object 'type' has no attribute 'name'", and a context
    where the factory goes (``make_context(...)`` without the lambda) with "'AuditContext'
    object is not callable" once the checks had begun. Both are UsageErrors naming the argument."""
    from datacheck.errors import UsageError
    from datacheck.testing import check_detector

    factory = detector_context_factory()
    with pytest.raises(UsageError, match=r"detector must be a configured Detector instance \(Confidence\(\)\), "
                                         r"got the class Confidence"):
        check_detector(Confidence, factory)
    with pytest.raises(UsageError, match="detector must be a configured Detector instance, got str 'adv_confidence'"):
        check_detector("adv_confidence", factory)
    with pytest.raises(UsageError, match=r"context_factory must be a function context_factory\(only\) -> AuditContext"
                                         r", got AuditContext"):
        check_detector(Confidence(), factory())
    with pytest.raises(UsageError, match="context_factory must be"):
        check_detector(Confidence(), None)


@pytest.mark.parametrize("setting, flag, expected", [
    ('weights = "{missing}"', (), "[audit] weights = {missing}: file not found"),
    ('model = "nope"', (), "[audit] model: unknown model 'nope'"),
    ('weights = "{missing}"', ("--weights", "{missing}"), "error: --weights {missing}: file not found"),
    ('model = "nope"', ("--model", "nope2"), "error: unknown model 'nope2'"),
])
def test_a_model_setting_from_the_config_file_is_named_as_its_key(tmp_path, setting, flag, expected):
    """helper-46: ``[audit] weights`` in a config file was reported as ``--weights PATH``, a
    flag the user never passed; a flag given on the command line is still named as the flag."""
    from .conftest import SAMPLE_DATA, assert_one_line_error, invoke

    missing = str(tmp_path / "nowhere.pt")
    config = tmp_path / "cfg.toml"
    config.write_text(f"[audit]\n{setting.format(missing=missing)}\n")
    flags = [f.format(missing=missing) for f in flag]
    out = tmp_path / "run"
    result = invoke("audit", SAMPLE_DATA, "--config", config, *flags, "--out", out, "--cache-dir", "off")
    line = assert_one_line_error(result, 2, expected.format(missing=missing))
    assert (str(config) in line) == (not flag)
    assert not out.exists()


def test_a_result_whose_run_folder_another_audit_replaced_refuses_to_act_on_it(tmp_path):
    """helper-46: two results saved into one folder (a notebook cell re-run with other data):
    the first one's ``report()`` and ``relabel()`` then read the second audit's files without a
    word. Now they say the folder no longer holds this audit; saved again, they work."""
    import datacheck
    from datacheck.errors import UsageError

    first = datacheck.audit(pred_probs=np.full((6, 2), 0.5), labels=[0, 1] * 3, checks="label_issues")
    second = datacheck.audit(pred_probs=np.eye(2)[[0, 1, 1, 0, 1, 1]] * 0.9 + 0.05, labels=[0, 1] * 3,
                             checks="label_issues")
    run = tmp_path / "run"
    first.save(run)
    first.report()  # its own run: fine
    second.save(run)
    assert second.report().html.is_file()
    for act in (first.report, first.relabel):
        with pytest.raises(UsageError, match=f"{re.escape(str(run))} no longer holds this audit"):
            act()
    loaded = datacheck.load(run)
    assert loaded.report().html.is_file()
    first.save(run)
    with pytest.raises(UsageError, match="no longer holds this audit"):
        loaded.report()
    assert first.report().html.is_file()
    # An audit written with out= is the folder's audit until another one replaces it.
    third = datacheck.audit(pred_probs=np.full((6, 2), 0.5), labels=[0, 1] * 3, checks="label_issues", out=run)
    third.report()
    with pytest.raises(UsageError, match="no longer holds this audit"):
        first.report()

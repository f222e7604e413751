"""Conformance checks that every registered detector passes (scikit-learn's check_estimator idea)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datacheck.detectors import Detector, create_detector, list_detectors, register_detector
from datacheck.detectors.registry import expand_checks, get_detector_class
from datacheck.engine.loader import compute_image_stats
from datacheck.errors import UsageError
from datacheck.manifest import load_manifest
from datacheck.features.model import AumOutputs, ModelOutputs, label_ids
from datacheck.schema import FINDINGS_COLUMNS
from datacheck.testing import check_detector, make_context


@pytest.fixture
def context(tiny_dataset):
    manifest = load_manifest(tiny_dataset)
    stats = compute_image_stats(manifest.abspaths(), workers=0)
    classes, labels = label_ids(manifest)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(classes)), size=len(labels)).astype(np.float32)
    outputs = ModelOutputs(classes, labels, probs, rng.normal(size=(len(labels), 8)).astype(np.float32), "test")
    aum = AumOutputs(rng.normal(size=len(labels)).astype(np.float32), np.full(len(labels), 0.5, np.float32))
    return lambda only=None: make_context(manifest, image_stats=stats, outputs=outputs, aum=aum, only=only)


@pytest.mark.parametrize("name", list_detectors())
def test_detector_conformance(name, context):
    """Every built-in passes the check shipped for plugin authors (datacheck.testing)."""
    findings = check_detector(create_detector(name), context)
    assert list(findings.columns) == FINDINGS_COLUMNS


@pytest.mark.parametrize("name", list_detectors())
def test_invalid_parameters_are_usage_errors_before_any_work(name):
    """create_detector refuses every value the constraints refuse (generated from them)."""
    from datacheck.testing import _invalid_values

    cls = get_detector_class(name)
    for param in cls.param_names():
        for bad in _invalid_values(cls._parameter_constraints[param]):
            with pytest.raises(UsageError, match=f"{name}.{param} must be"):
                create_detector(name, **{param: bad}) if bad is not None else cls(**{param: bad}).validate_params()


def test_reading_an_undeclared_input_fails(context):
    from datacheck.features import UndeclaredInput

    class Sneaky(Detector):
        name, checks, requires = "sneaky", ("sneaky",), frozenset({"labels"})

        def find(self, ctx):
            ctx.get("embeddings")

    with pytest.raises(UndeclaredInput, match="'embeddings' is not among the declared inputs"):
        Sneaky().run(context())


def test_create_detector_drops_none_and_rejects_unknown():
    assert create_detector("near_duplicates", min_similarity=None).min_similarity == 0.95
    with pytest.raises(UsageError, match="unknown parameter"):
        create_detector("near_duplicates", k=3)


def test_registry_rejects_duplicates_and_nameless():
    class Twin(Detector):
        name = "near_duplicates"

    with pytest.raises(ValueError, match="already registered"):
        register_detector(Twin)
    with pytest.raises(TypeError):
        register_detector(type("Nameless", (Detector,), {}))


def test_wildcards_expand_in_order():
    assert expand_checks(["*dup*", "class_imbalance"]) == ["exact_duplicates", "near_duplicates", "class_imbalance"]
    assert set(list_detectors()) - set(list_detectors(default_only=True)) == {"coreset", "non_iid"}


def test_a_single_image_dataset_is_audited(tmp_path):
    from .conftest import make_image

    import datacheck

    make_image(tmp_path / "d" / "cat" / "only.png", seed=1)
    result = datacheck.audit(tmp_path / "d", out=tmp_path / "run", workers=0)
    assert result.summary["samples"] == 1
    assert result.summary["checks"]["near_duplicates"]["flagged"] == 0
    assert np.isfinite(result.findings["score"]).all()


def test_findings_columns_are_assembled_in_sorted_order(context):
    """Every way a detector may hand over checks, details and suggestions gives the same rows."""
    import json

    import pyarrow as pa

    from datacheck.detectors.base import partial_findings

    class Toy(Detector):
        name, checks = "toy", ("a", "b")

    ctx = context()
    rows, checks, score = [2, 0, 1, 3], ["b", "a", "b", "a"], [0.5, 0.5, 0.1, 0.2]
    suggested = pd.Categorical.from_codes([1, -1, 0, 1], ["cat", "dog"])  # -1: no suggestion
    texts = ['{"n": 0}', '{"n": 1}', '{"n": 2}', '{"n": 3}']
    for details in ([{"n": n} for n in range(4)], texts, pa.array(texts)):
        partial = partial_findings(rows, checks, score, [True, False, True, False], details,
                                   suggested_label=suggested, suggested_confidence=[0.9, np.nan, 0.8, 0.7])
        out = Toy()._complete(partial, ctx)
        assert list(out.columns) == FINDINGS_COLUMNS
        # by check, then score, ties by row
        assert out["check"].tolist() == ["a", "a", "b", "b"]
        assert out["sample_id"].tolist() == ctx.manifest.frame["sample_id"].take([3, 0, 1, 2]).tolist()
        assert [json.loads(d)["n"] for d in out["details"]] == [3, 1, 2, 0]
        assert out["suggested_label"].tolist()[0] == "dog" and pd.isna(out["suggested_label"].iloc[1])
        assert out["suggested_label"].tolist()[2:] == ["cat", "dog"]
        np.testing.assert_array_equal(out["suggested_confidence"], [0.7, np.nan, 0.8, 0.9])
    with pytest.raises(AssertionError, match="undeclared checks"):
        Toy()._complete(partial_findings([0], "c", 0.5, False, [{}]), ctx)


def test_json_records_match_one_encoding_per_row():
    """The Arrow-built details read back as the dicts a detector would have encoded one by one."""
    import json

    import pyarrow as pa

    from datacheck.detectors.base import json_records

    z = np.array([0.1235, -19.732, 3.0, np.nan, np.inf, 1e-07, 12345678.9])
    area = pa.array(["[32, 32]", "[1, 2]", "[3, 4]", "[5, 6]", "[7, 8]", "[9, 10]", "[11, 12]"])
    records = json_records({"z": z, "area": area}).to_pylist()
    assert records[0] == '{"area": [32, 32], "z": 0.1235}'  # keys sorted, as the row encoder writes them
    decoded = [json.loads(r) for r in records]
    assert [d["z"] for d in decoded] == [0.1235, -19.732, 3.0, None, None, 1e-07, 12345678.9]
    assert [d["area"] for d in decoded][1] == [1, 2]
    with pytest.raises(ValueError):
        json_records({})


def test_an_installed_package_adds_a_detector_through_an_entry_point(tmp_path, monkeypatch, tiny_dataset):
    """A package declaring ``[project.entry-points."datacheck.detectors"]`` (a real ``.dist-info``
    on sys.path) adds a check that runs like a built-in one; a broken plugin is named."""
    from datacheck.detectors import registry

    from .conftest import install_plugin, invoke

    declared = install_plugin(tmp_path, monkeypatch, "my_checks", (
        "import numpy as np\n"
        "from datacheck.detectors.base import Detector, partial_findings\n"
        "class Odd(Detector):\n"
        "    name, checks, requires, tags = 'odd_rows', ('odd_rows',), frozenset(), frozenset({'dataset'})\n"
        "    def find(self, ctx):\n"
        "        rows = np.arange(len(ctx.manifest))\n"
        "        return partial_findings(rows, 'odd_rows', (rows % 2 == 0).astype(float), rows % 2 == 1,\n"
        "                                [{} for _ in rows])\n"
        "broken = 3\n"), "datacheck.detectors", "odd_rows = my_checks:Odd")
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    assert "odd_rows" in list_detectors()
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "r", "--checks", "odd_rows", "--json", "-q")
    assert result.exit_code == 0, result.output
    findings = pd.read_parquet(tmp_path / "r" / "findings.parquet")
    assert (findings["check"] == "odd_rows").all() and findings["is_issue"].sum() == len(findings) // 2

    declared.write_text("[datacheck.detectors]\nbad = my_checks:broken\n")
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    with pytest.raises(UsageError, match=r"^detector plugin 'bad' \(my_checks:broken\): "):
        list_detectors()

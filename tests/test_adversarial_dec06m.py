"""Adversarial probes of Dec 6's changes: --config presets, outliers' class-size groups,
non_iid within a folder's classes, and a percent gate on a check that scored nothing."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from tests.conftest import assert_one_line_error, invoke


def test_dot_slash_quick_names_a_file_not_the_preset(tiny_dataset, tmp_path, monkeypatch):
    # click turned --config ./quick into Path("quick"), the preset's name: a missing file
    # ./quick silently ran the quick preset (exit 0) instead of being an error, while
    # datacheck.audit(config="./quick") refused it.
    monkeypatch.chdir(tmp_path)
    result = invoke("audit", tiny_dataset, "--config", "./quick", "--out", tmp_path / "run", "--quiet")
    assert_one_line_error(result, 2, "cannot read config ./quick: No such file or directory")
    assert not (tmp_path / "run" / "summary.json").exists()
    result = invoke("fix", tiny_dataset, "--config", "./strict-ci", "--out", tmp_path / "fixed", "--quiet")
    assert_one_line_error(result, 2, "cannot read config ./strict-ci: No such file or directory")


@pytest.mark.parametrize("shadow", ["folder", "dangling link"])
def test_a_path_named_like_a_preset_says_it_is_read_instead_of_the_preset(tmp_path, monkeypatch, shadow):
    # A folder or a dangling link named quick in the current folder is read instead of the
    # preset: "No such file or directory (... as --config quick)" told the user to give the
    # very option they had given.
    from datacheck.config import read_toml
    from datacheck.errors import UsageError

    monkeypatch.chdir(tmp_path)
    if shadow == "folder":
        os.mkdir("quick")
    else:
        os.symlink(tmp_path / "absent.toml", "quick")
    with pytest.raises(UsageError) as raised:
        read_toml("quick")
    message = str(raised.value)
    assert message.startswith("cannot read config quick: ")
    assert message.endswith(f"({tmp_path / 'quick'} is read instead of the config quick that comes with datacheck: "
                            "rename it, or run from another folder)")
    assert "as --config quick" not in message


def test_a_percent_gate_on_a_check_that_scored_nothing_passes_untested():
    # --config strict-ci's label_issues>2% on data where label_issues was off (0 scored, a
    # Python int) raised ZeroDivisionError: datacheck.fix(DATASET, OUT, config="strict-ci")
    # on a small folder crashed in its first audit.
    from datacheck.gates import Gate, gate_result

    gate = Gate("label_issues", ">", 2.0, True)
    assert gate.exceeded(0, 0) is False and gate.exceeded(3, 100) is True and gate.exceeded(2, 100) is False
    checks = {"label_issues": {"flagged": 0, "scored": 0, "threshold": {"rule": "off: the model is at chance"}}}
    assert gate_result(gate, pd.DataFrame(columns=["check", "is_issue", "sample_id"]), checks) == {
        "gate": "label_issues>2%", "flagged": 0, "scored": 0, "percent": 0.0, "failed": False, "judged": False,
        "off": ["label_issues"]}


def test_a_long_tail_of_one_sample_classes_is_pooled_at_k_1_too():
    # Classes of n <= k samples are measured about the median of all members of classes of
    # their size; at k = 1 they were not (a guard for k > 1 left them about the data's
    # median), and 153 of 390 real one-sample classes were flagged beside the 10 junk.
    # The data of test_model_checks' test at k = 10.
    import datacheck

    from tests.test_model_checks import long_tail

    x, labels, junk = long_tail()
    result = datacheck.audit(pd.DataFrame({"label": labels}), embeddings=x, checks=["outliers"],
                             config={"detectors": {"outliers": {"k": 1}}})
    found = result.issues("outliers")["sample_id"].astype(int).to_numpy()
    assert set(3000 + junk) <= set(found)
    assert ((found >= 3000) & ~np.isin(found, 3000 + junk)).sum() <= 3 and len(found) <= 20  # measured 1 and 12
    assert set(result.summary["checks"]["outliers"]["threshold"]["above_by_class_size"]) == {"1"}


def test_non_iid_on_a_folder_of_classes_too_small_to_test_is_off_not_passed():
    # Within-class testing needs a class of 3 or more; a folder of 20 classes of 2 images
    # reported non_iid False at p 1.0 "within each of 0 classes", and a non_iid gate counted
    # it as judged.
    from datacheck.detectors import create_detector
    from datacheck.gates import Gate, gate_result
    from tests.test_non_iid import folder_context

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(20), 2)
    detector = create_detector("non_iid")
    findings = detector.run(folder_context(rng.standard_normal((40, 16)).astype(np.float32), labels))
    threshold = detector.thresholds_["non_iid"]
    assert threshold == {"rule": "off: a folder's order is tested within each class, and none has 3 or more "
                                 "embedded samples"}
    assert len(findings) == 0
    checks = {"non_iid": {"flagged": 0, "scored": 0, "threshold": threshold}}
    assert gate_result(Gate("non_iid", ">", 0.0, False), findings, checks)["judged"] is False

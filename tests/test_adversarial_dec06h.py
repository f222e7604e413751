"""Adversarial pass on the label checks' at-chance gate (helper-59, 6 December): the test of the
model against chance, its wording, and how gates, JUnit and the report show a check that did
not judge."""

from __future__ import annotations

import json

import numpy as np

import datacheck
from datacheck.features.model import agreement_beyond_chance, at_chance_reason

from .conftest import invoke


def _weak_imbalanced(n: int = 2000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """95/5 labels and a real but weak model: the minority's score shifted by 0.8 SD (AUC
    about 0.7), its probability above 0.5 for few samples."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.05).astype(int)
    p1 = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 0.8 * labels - 2.2)))
    return labels, np.c_[1 - p1, p1]


def test_a_weak_model_of_imbalanced_classes_is_judged_though_its_accuracy_is_near_chance():
    """Its most probable class agrees with 0.943 of the labels against 0.936 by chance (p > 0.001):
    the label check was off. Its probabilities rank the labels far beyond chance, and confident
    learning's thresholds are per class: it judges (71 flagged)."""
    labels, probs = _weak_imbalanced()
    predicted = probs.argmax(axis=1)
    measured = agreement_beyond_chance(labels, predicted)  # the most probable class alone
    assert measured == {"out_of_fold_accuracy": 0.9425, "chance_accuracy": 0.9361, "samples": 2000}
    assert agreement_beyond_chance(labels, predicted, probs) is None
    result = datacheck.audit(pred_probs=probs, labels=labels, checks="label_issues")
    check = result.summary["checks"]["label_issues"]
    assert check["threshold"]["rule"].startswith("cleanlab") and (check["flagged"], check["scored"]) == (71, 2000)
    # A model that always predicts the majority (every probability of the minority below 0.5)
    # but ranks the minority first: accuracy = chance = 0.95, judged.
    rng = np.random.default_rng(0)
    labels = (rng.random(2000) < 0.05).astype(int)
    p1 = 0.4 / (1 + np.exp(-(rng.normal(0, 1, 2000) + 2 * labels - 1)))
    probs = np.c_[1 - p1, p1]
    assert probs.argmax(axis=1).max() == 0 and agreement_beyond_chance(labels, probs.argmax(axis=1), probs) is None


def test_the_probability_test_is_exact_where_a_normal_approximation_is_not():
    """One minority sample among 50 given probability 1: z = 7 under the permutation variance,
    but any of the 50 rows holding it would score so (p = 1/50); constant rows tie every
    permutation."""
    labels = np.zeros(50, dtype=int)
    labels[7] = 1
    probs = np.tile([1.0, 0.0], (50, 1))
    probs[7] = [0.0, 1.0]
    assert agreement_beyond_chance(labels, probs.argmax(axis=1), probs) == {
        "out_of_fold_accuracy": 1.0, "chance_accuracy": 0.9608, "samples": 50, "too_few": True}  # 0.9608^50 = 0.14
    labels = np.random.default_rng(0).integers(0, 2, 100)
    constant = np.tile([0.6, 0.4], (100, 1))
    assert agreement_beyond_chance(labels, constant.argmax(axis=1), constant)["chance_accuracy"] == 0.44
    # two samples, both right: no evidence either way
    two = np.array([[0.9, 0.1], [0.1, 0.9]])
    assert agreement_beyond_chance(np.array([0, 1]), np.array([0, 1]), two)["samples"] == 2


def test_a_model_below_chance_is_called_so_and_a_column_reordering_is_named():
    """Columns shifted by one (class k's probability in column k + 1): accuracy 0.000 against
    0.100. The reason said "not clearly above chance (... too few samples per class?)"; it now
    says below chance, and that the columns in another order agree with every label."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1000)
    probs = np.full((1000, 10), 0.02)
    probs[np.arange(1000), (labels + 1) % 10] = 0.82
    result = datacheck.audit(pred_probs=probs, labels=labels, checks="label_issues")
    threshold = result.summary["checks"]["label_issues"]["threshold"]
    assert threshold["out_of_fold_accuracy"] == 0.0 and threshold["chance_accuracy"] == 0.1
    assert threshold["below_chance"] is True and threshold["reordered_accuracy"] == 1.0
    assert threshold["rule"] == (
        "off: the model is below chance (out-of-fold accuracy 0.000, 0.100 by chance, 1,000 samples): its "
        "disagreements with the labels are systematic, no evidence of wrong ones (its columns in another order would "
        "agree with 1.000 of the labels: are the probabilities' columns in class order?)")
    assert result.summary["notes"] == [f"label_issues did not judge the labels: {threshold['rule'][5:]}"]
    # Random probabilities: at chance, not below; no order fits; the hint names rows and columns.
    random = rng.dirichlet(np.ones(10), 1000)
    measured = agreement_beyond_chance(labels, random.argmax(axis=1), random, trained=False)
    assert measured == {"out_of_fold_accuracy": 0.094, "chance_accuracy": 0.0998, "samples": 1000, "model": "given"}
    assert at_chance_reason(measured).endswith(
        "no evidence of wrong ones (are the probabilities' rows in the labels' order, and their columns in class order?)")
    # A model datacheck trained: the hint is its samples per class.
    trained = agreement_beyond_chance(labels[:16] % 2, random[:16, :2].argmax(axis=1), trained=True)
    assert trained["samples_per_class"] == 8.0
    assert at_chance_reason(trained).endswith(
        "(8 labeled samples per class: too few to learn from, or labels unrelated to the images?)")


def _random_arrays(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "labels.npy", rng.integers(0, 10, 1000))
    np.save(tmp_path / "probs.npy", rng.dirichlet(np.ones(10), 1000).astype(np.float32))
    return tmp_path / "probs.npy", tmp_path / "labels.npy"


def test_a_gate_on_a_check_that_did_not_judge_passes_untested_and_says_so(tmp_path):
    """--fail-on label_issues>0 with the model at chance: exit 0 as before (nothing was exceeded,
    and exit 1 means a gate was), but the gate is marked untested in summary.json, in a note past
    -q, in JUnit (the check's case is skipped, where it passed) and in the report."""
    import xml.etree.ElementTree as ET

    probs, labels = _random_arrays(tmp_path)
    result = invoke("audit", "--pred-probs", probs, "--labels", labels, "--out", tmp_path / "run", "-q",
                    "--fail-on", "label_issues>0,class_imbalance>5", "--junit", tmp_path / "junit.xml")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["gates"] == [
        {"gate": "label_issues>0", "flagged": 0, "scored": 0, "percent": 0.0, "failed": False, "judged": False,
         "off": ["label_issues"]},
        {"gate": "class_imbalance>5", "flagged": 0, "scored": 1000, "percent": 0.0, "failed": False, "judged": True}]
    note = "gate label_issues>0 was not tested: label_issues was off (see its rule), so it passed without a judgment"
    assert summary["notes"][1:] == [note] and result.stderr.splitlines()[1] == f"datacheck: note: {note}"
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "0", "1")
    skipped = suite.find("testcase[@name='label_issues']/skipped")
    assert skipped.get("message") == summary["checks"]["label_issues"]["threshold"]["rule"] + " (gate label_issues>0 not tested)"
    assert suite.find("testcase[@name='class_imbalance']/skipped") is None
    assert invoke("report", tmp_path / "run", "-q").exit_code == 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert '<span class="untested">label_issues&gt;0 untested</span>' in page
    assert ('Exit status 0: no gate exceeded; <span class="untested">untested: label_issues&gt;0</span> (every check '
            'it counts was off).') in page
    assert '<span class="untested">untested (label_issues off: passed without a judgment)</span>' in page
    # the relabel section said "The label_issues check did not run."
    assert '<p class="note warn">label_issues was off: the model is not clearly above chance' in page


def test_a_label_fused_gate_counts_the_one_label_check_that_judged():
    """aum off (no threshold samples) and label_issues judging: label_fused is not made, and the
    gate label_fused>0 read it as a detector of no findings: passed at 0 of 0 while label_issues
    flagged 4. With one label check, its flags are the label flag. Both off: untested."""
    import pandas as pd

    from datacheck.gates import gate_result, parse_gates

    findings = pd.DataFrame({"sample_id": [f"s{i}" for i in range(10)] + ["s0"], "check": ["label_issues"] * 10 + ["dark"],
                             "is_issue": [True] * 4 + [False] * 6 + [True]})
    judged = {"rule": "cleanlab find_label_issues(filter_by='prune_by_noise_rate')"}
    checks = {"label_issues": {"detector": "label_issues", "flagged": 4, "scored": 10, "threshold": judged},
              "aum": {"detector": "aum", "flagged": 0, "scored": 0, "threshold": {"rule": "off: no threshold samples"}},
              "dark": {"detector": "image_properties", "flagged": 1, "scored": 1, "threshold": {"rule": "z > 3"}},
              "issue_score": {"detector": "issue_score", "flagged": 5, "scored": 10,
                              "threshold": {"rule": "any", "checks": ["label_issues", "aum", "dark"]}}}
    fused, score = parse_gates("label_fused>0,issue_score>0")
    assert gate_result(fused, findings, checks) == {"gate": "label_fused>0", "flagged": 4, "scored": 10,
                                                     "percent": 40.0, "failed": True, "judged": True}
    checks["label_issues"]["threshold"] = {"rule": "off: the model is not clearly above chance"}
    untested = gate_result(fused, findings[findings["check"] == "dark"], checks)
    assert (untested["failed"], untested["judged"], untested["off"]) == (False, False, ["label_issues", "aum"])
    # issue_score is judged while one of the checks it fuses is: here dark
    assert gate_result(score, findings, checks)["judged"] is True
    checks["dark"]["threshold"] = {"rule": "off: no images"}
    assert gate_result(score, findings, checks)["off"] == ["label_issues", "aum", "dark"]


def test_a_label_check_that_calls_most_labels_wrong_has_a_note():
    """10 classes, a weak model above chance (out-of-fold accuracy 0.245): cleanlab calls 1,058
    of 2,000 labels wrong, without a word. 55 % random labels under a good model give as many
    flags: the note asks, it does not decide."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 2000)
    logits = rng.normal(0, 1, (2000, 10))
    logits[np.arange(2000), labels] += 0.7
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = datacheck.audit(pred_probs=probs, labels=labels, checks="label_issues")
    assert result.summary["checks"]["label_issues"]["flagged"] == 1058
    assert result.summary["notes"] == [
        "label_issues calls 1,058 of 2,000 labels wrong (52.9 %): are most labels wrong, or is the model too weak to "
        "judge them (out-of-fold accuracy 0.245)? Look at some before relabelling"]
    logits[np.arange(2000), labels] += 0.3  # accuracy 0.338: 951 flagged, no note
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = datacheck.audit(pred_probs=probs, labels=labels, checks="label_issues")
    assert result.summary["checks"]["label_issues"]["flagged"] < 1000 and "notes" not in result.summary


def test_too_few_samples_to_tell_say_so_and_a_huge_class_count_skips_the_reordering():
    """2 samples, both right: off, and the hint asked about the rows' order; even all right,
    0.5^2 = 0.25 is no evidence. 3,000 classes: no 3,000 x 3,000 confusion matrix (72 MB) for
    the reordering hint."""
    two = agreement_beyond_chance(np.array([0, 1]), np.array([0, 1]), np.array([[0.9, 0.1], [0.1, 0.9]]), trained=False)
    assert two == {"out_of_fold_accuracy": 1.0, "chance_accuracy": 0.5, "samples": 2, "too_few": True, "model": "given"}
    assert at_chance_reason(two) == (
        "the model is not clearly above chance (out-of-fold accuracy 1.000, 0.500 by chance, 2 samples): its "
        "disagreements with the labels are no evidence of wrong ones (too few samples to tell: all 2 right would not "
        "be beyond chance)")
    ten = np.arange(10) % 2  # 0.5^10 < 0.001: enough, and judged
    assert agreement_beyond_chance(ten, ten) is None
    labels = np.arange(30_000) % 3000
    shifted = (labels + 1) % 3000
    measured = agreement_beyond_chance(labels, shifted)
    assert measured["below_chance"] is True and "reordered_accuracy" not in measured
    assert agreement_beyond_chance(labels[:20_000] % 1000, shifted[:20_000] % 1000)["reordered_accuracy"] == 1.0


def test_judge_at_chance_asked_for_has_no_note_on_many_flags(tmp_path):
    """judge_at_chance: the user asked for cleanlab's verdict on a model at chance (636 of 1,000
    flagged); the threshold says it was asked, and the majority note stays out."""
    probs, labels = _random_arrays(tmp_path)
    result = datacheck.audit(pred_probs=probs, labels=labels, checks="label_issues",
                             config={"detectors": {"label_issues": {"judge_at_chance": True}}})
    check = result.summary["checks"]["label_issues"]
    assert check["flagged"] == 636 and check["threshold"]["judge_at_chance"] is True and "notes" not in result.summary


def test_two_swapped_columns_are_judged_and_the_whole_classes_flagged_are_named():
    """Two lines of a class-names file swapped: the model agrees with 0.799 of the labels (judged,
    rightly), and label_issues flags 199 samples, 116 of the 117 'c5' as 'c2' and 83 of the 84
    'c2' as 'c5', without a word: relabel --auto would swap both classes. A note names them."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1000)
    probs = np.full((1000, 10), 0.02)
    probs[np.arange(1000), labels] = 0.82
    order = np.arange(10)
    order[[2, 5]] = [5, 2]
    names = np.array([f"c{i}" for i in range(10)])
    result = datacheck.audit(pred_probs=probs[:, order], labels=names[labels], checks="label_issues")
    check = result.summary["checks"]["label_issues"]
    assert check["flagged"] == 199 and check["threshold"]["out_of_fold_accuracy"] == 0.799
    assert check["threshold"]["classes_moved"] == [{"class": "c5", "to": "c2", "flagged": 116, "samples": 117},
                                                   {"class": "c2", "to": "c5", "flagged": 83, "samples": 84}]
    assert result.summary["notes"] == [
        "label_issues flags nearly whole classes, each with one suggestion: 'c5' as 'c2' (116 of 117), 'c2' as 'c5' "
        "(83 of 84): labelled wrong as a whole, classes the model confuses, or probabilities' columns out of order? "
        "Look before relabel --auto moves them"]
    # the columns in order: nothing flagged, no note
    result = datacheck.audit(pred_probs=probs, labels=names[labels], checks="label_issues")
    assert result.summary["checks"]["label_issues"]["flagged"] == 0 and "notes" not in result.summary


def test_a_rare_class_is_kept_whole_in_the_rows_the_permutation_test_draws():
    """200,000 rows, 202 of a class of 0.1 %, a weak model (its score shifted 0.8 SD, always the
    majority predicted): the 10,000 rows drawn at random held about 10 of it, and the check was off
    (accuracy 0.999 = chance); drawn class by class, all 202 are kept and the model is judged."""
    from datacheck.features.model import _balanced_rows

    rng = np.random.default_rng(0)
    labels = (rng.random(200_000) < 0.001).astype(int)
    p1 = 0.3 / (1 + np.exp(-(rng.normal(0, 1, 200_000) + 0.8 * labels - 2)))
    probs = np.c_[1 - p1, p1]
    assert labels.sum() == 202 and probs.argmax(axis=1).max() == 0
    rows = _balanced_rows(labels, 10_000, np.random.default_rng(0))
    assert len(rows) == 10_000 and labels[rows].sum() == 202 and np.all(np.diff(rows) > 0)
    assert agreement_beyond_chance(labels, probs.argmax(axis=1), probs) is None
    # smallest classes first, the rest shared evenly: 3 classes of 10, 10 rows → 3, 3, 4
    assert np.bincount((np.arange(30) % 3)[_balanced_rows(np.arange(30) % 3, 10, rng)]).tolist() == [3, 3, 4]

"""What README.md and docs/*.md promise, checked where a literal walk through the docs found the
product doing otherwise."""

from __future__ import annotations

from datacheck.config import load_config
from datacheck.detectors.registry import get_detector_class, list_detectors
from datacheck.fusion import FUSED_TAGS


def issue_detectors() -> set[str]:
    """The default detectors with a check that describes a problem with the sample itself (the
    checks ``issue_score`` ranks: README, "One ranking to review by")."""
    return {name for name in list_detectors(default_only=True)
            if any(set(get_detector_class(name).tags_of(check)) & FUSED_TAGS
                   for check in get_detector_class(name).checks)}


def test_strict_ci_runs_every_issue_check():
    # docs/ci.md and README: strict-ci runs "every issue check, AUM included". off_class became
    # a default issue check after the preset was written, and strict-ci had left it out: the
    # "strict" CI audit ran fewer checks than a plain `datacheck audit`.
    checks = set(load_config("strict-ci")["audit"]["checks"])
    assert issue_detectors() == {"aum", "exact_duplicates", "image_properties", "label_issues",
                                 "near_duplicates", "off_class", "outliers", "split_leakage"}
    assert issue_detectors() <= checks


def test_strict_ci_gates_are_the_ones_docs_ci_lists():
    # docs/ci.md's table: zero corrupt files, leaks and exact duplicates; <= 1 % near
    # duplicates, <= 2 % label issues, <= 5 % AUM, <= 2 % image problems; CPU, fixed seed.
    audit = load_config("strict-ci")["audit"]
    assert audit["fail_on"].split(",") == ["corrupt>0", "split_leakage>0", "exact_duplicates>0", "near_duplicates>1%",
                                           "label_issues>2%", "aum>5%", "image_properties>2%"]
    assert (audit["device"], audit["seed"], audit["max_missing"]) == ("cpu", 0, 0)
    assert load_config("quick")["audit"]["fail_on"] == "corrupt>0,split_leakage>0"

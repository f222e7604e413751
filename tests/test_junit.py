"""`audit --junit`: one JUnit test case per check; gated checks fail."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .conftest import SAMPLE_DATA, invoke


def test_junit_one_case_per_check_failures_from_gates(tmp_path):
    junit = tmp_path / "reports" / "datacheck.xml"
    result = invoke(
        "audit", SAMPLE_DATA, "--out", tmp_path / "run", "--checks", "exact_duplicates,split_leakage,imag*",
        "--fail-on", "split_leakage>0,exact_duplicates>100,image_properties>50%", "--junit", junit, "-q",
        "--workers", 0)
    assert result.exit_code == 1, result.output
    suite = ET.parse(junit).getroot()
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"exact_duplicates", "split_leakage", "corrupt", "dark", "light", "blurry", "noisy",
                          "low_information", "odd_size", "odd_aspect_ratio", "grayscale", "issue_score"}
    assert suite.get("tests") == "12" and suite.get("failures") == "1"
    failure = cases["split_leakage"].find("failure")
    assert failure is not None and failure.get("message") == "split_leakage>0: flagged 6 of 563 (1.1%)"
    assert cases["exact_duplicates"].find("failure") is None  # under its gate
    assert cases["dark"].get("classname") == "datacheck.image_properties"
    assert cases["dark"].find("system-out").text == "flagged 5 of 559 (0.9%)"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["exit_status"] == "1" and properties["samples"] == "564"


def test_junit_detector_gate_fails_the_checks_that_flagged(tmp_path):
    junit = tmp_path / "datacheck.xml"
    result = invoke(
        "audit", SAMPLE_DATA, "--out", tmp_path / "run", "--checks", "image_properties",
        "--fail-on", "image_properties>0", "--junit", junit, "-q", "--workers", 0)
    assert result.exit_code == 1
    suite = ET.parse(junit).getroot()
    failed = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert failed == {"corrupt", "dark", "light", "blurry", "noisy", "low_information", "odd_size", "odd_aspect_ratio",
                      "grayscale"}

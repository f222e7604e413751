"""Adversarial pass (dec05b): hand-edited reviews, changed plan sources, damaged run files, odd arrays."""

from __future__ import annotations

import shutil

import pandas as pd

from datacheck.errors import ExitStatus
from tests.conftest import assert_one_line_error, invoke, make_image


def _quick_run(tmp_path, name="ds"):
    root = tmp_path / name
    seed = 0
    for label in ("cat", "dog"):
        for i in range(6):
            make_image(root / label / f"{label}{i}.png", seed)
            seed += 1
    run = tmp_path / f"run-{name}"
    result = invoke("audit", root, "--checks", "image_properties,exact_duplicates,class_imbalance",
                    "--out", run, "-q", "--cache-dir", "off", "--workers", "0")
    assert result.exit_code == 0, result.output
    return run


def test_report_of_a_run_whose_findings_were_truncated_or_replaced_is_bad_data(tmp_path):
    """A findings.parquet cut to fewer rows, emptied of rows, or copied from another run was
    reported with exit 0: galleries of other samples beside summary.json's counts."""
    run = _quick_run(tmp_path)
    other = _quick_run(tmp_path, "other")
    assert invoke("report", run, "-q").exit_code == 0
    findings = pd.read_parquet(run / "findings.parquet")

    damaged = tmp_path / "truncated"
    shutil.copytree(run, damaged)
    findings.iloc[: len(findings) // 2].to_parquet(damaged / "findings.parquet", index=False)
    assert_one_line_error(invoke("report", damaged, "-q"), ExitStatus.BAD_DATA,
                          "findings.parquet has", "summary.json", "run datacheck audit again")

    empty = tmp_path / "empty"
    shutil.copytree(run, empty)
    findings.iloc[:0].to_parquet(empty / "findings.parquet", index=False)
    assert_one_line_error(invoke("report", empty, "-q"), ExitStatus.BAD_DATA, "has 0 row(s) for check")

    # another run's findings, of other checks (a quick audit over a model run's folder)
    replaced = tmp_path / "replaced"
    shutil.copytree(run, replaced)
    frame = pd.read_parquet(other / "findings.parquet")
    frame = frame[frame["check"] != "class_imbalance"]
    frame.to_parquet(replaced / "findings.parquet", index=False)
    assert_one_line_error(invoke("report", replaced, "-q"), ExitStatus.BAD_DATA, "'class_imbalance'")

    import datacheck
    from datacheck.errors import BadDataError
    import pytest

    with pytest.raises(BadDataError, match="findings.parquet has"):
        datacheck.load(damaged)

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


def test_augment_of_a_source_damaged_after_the_audit_says_to_audit_again(sample_copy, tmp_path):
    """A source image overwritten with junk of the same size and modification time after
    ``balance`` (the fingerprint reads sizes and times only): the copies cannot be made, exit 3,
    and the message no longer only says "balance with --drop-flagged", which cannot leave out a
    file the audit read well."""
    import os

    import datacheck

    run, plan = tmp_path / "run", tmp_path / "plan"
    datacheck.audit(sample_copy, out=run, checks=["exact_duplicates"], workers=0)
    assert invoke("balance", run, "--strategy", "classes", "--target", "30", "--out", plan).exit_code == 0
    stars = sorted((sample_copy / "train" / "star").iterdir())
    for source in stars:  # every star is a source of the copies that fill its class
        stat = source.stat()
        source.write_bytes(b"\0" * stat.st_size)
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    result = invoke("augment", plan, "--out", tmp_path / "out", "--workers", 0)
    assert_one_line_error(result, ExitStatus.BAD_DATA, "source image(s) could not be decoded",
                          "a file damaged since the audit needs the audit run again")

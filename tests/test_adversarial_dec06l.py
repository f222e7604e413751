"""Adversarial pass with scikit-learn's handwritten digits (variants of a class-folder dataset)."""
from datacheck.reporting.html import _table_html


def test_class_named_0_is_not_greyed_as_a_zero_count():
    # Digits' class "0" (a name, first column) was styled "zero" like a count of 0 in the per-class table.
    html = _table_html(["class", "samples", "flagged"], [["0", "177", "0"]])
    assert "<td>0</td>" in html  # the class name: plain text
    assert '<td class="num zero">0</td>' in html  # the count of 0 stays greyed


def test_report_of_an_arrays_audit_names_no_trained_model(tmp_path):
    # The digits' --pred-probs audit trained nothing, yet the report's Run table said "model convnet-small".
    import numpy as np
    import datacheck

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    probs = np.full((60, 3), 0.05)
    probs[np.arange(60), labels] = 0.9
    np.save(tmp_path / "P.npy", probs)
    np.save(tmp_path / "L.npy", labels)
    np.save(tmp_path / "E.npy", rng.normal(size=(60, 8)).astype(np.float32))
    run = tmp_path / "run"
    datacheck.audit(pred_probs=tmp_path / "P.npy", labels=tmp_path / "L.npy", out=run)
    datacheck.report(run)
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "<code>convnet-small</code>" not in html
    assert "(none: audited from arrays)" in html


def test_relabel_materialize_of_an_arrays_audit_is_refused_before_writing(tmp_path):
    # relabel --auto --out O --materialize M --export-review R of the digits' --pred-probs audit
    # wrote O's manifest, changes and marker and R, then said exit 2 "--materialize needs image files".
    import numpy as np
    import pytest
    import datacheck

    labels = np.repeat(np.arange(3), 20)
    probs = np.full((60, 3), 0.05)
    probs[np.arange(60), labels] = 0.9
    probs[[0, 1], :] = [[0.05, 0.9, 0.05], [0.05, 0.05, 0.9]]  # two labels the model disputes
    np.save(tmp_path / "P.npy", probs)
    np.save(tmp_path / "L.npy", labels)
    run = tmp_path / "run"
    datacheck.audit(pred_probs=tmp_path / "P.npy", labels=tmp_path / "L.npy", out=run)
    out, review = tmp_path / "out", tmp_path / "review.csv"
    with pytest.raises(datacheck.UsageError, match="needs image files"):
        datacheck.relabel(run, out=out, materialize_to=tmp_path / "mat", export_review=review, auto=True)
    assert not (out / "manifest.csv").exists() and not (out / "changes.parquet").exists()
    assert not review.exists()

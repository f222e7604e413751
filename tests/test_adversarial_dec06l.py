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

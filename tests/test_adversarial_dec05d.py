"""An adversarial pass of 2026-12-05 (d), as a demanding user meets image folders and the
repair commands: odd but real image files, odd folder layouts, `fix` interrupted and re-run.
Tiny generated datasets and checks that train no model where the bug allows."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from .conftest import invoke


def test_fix_table_shows_the_model_checks_counts_as_whole_numbers(tmp_path, monkeypatch):
    """`datacheck fix`'s "Samples flagged per check" table showed the counts of the checks that
    need a model as `label_issues 23.0 | 10.0 | -` beside `exact_duplicates 13 | 0 | 0`: their
    `after` is null (the final audit trains no model), and the table, built column by column
    then transposed, made those rows floats. Counts are whole numbers, as summary.json has them."""
    import datacheck.actions.fix as fix_module

    summary = {
        "steps": {"audit": {"status": "done", "seconds": 1.0}},
        "checks": {"label_issues": {"before": 23, "repaired": 10, "after": None},
                   "aum": {"before": 0, "repaired": 0, "after": None},
                   "exact_duplicates": {"before": 13, "repaired": 0, "after": 0}},
        "rows": 10, "budget": 10, "changes": {"actions": {"keep": 10}, "review_queue": 0},
    }
    fake = SimpleNamespace(summary=summary, table=pd.DataFrame({"before": [10]}, index=pd.Index(["cat"], name="class")),
                           out=tmp_path / "out", notes=[], exit_status=0)
    monkeypatch.setattr(fix_module, "fix", lambda *args, **kwargs: fake)
    result = invoke("fix", tmp_path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]]
            for line in result.stderr.splitlines() if line.count("│") == 5}
    assert rows["label_issues"] == ["23", "10", "-"], result.stderr
    assert rows["exact_duplicates"] == ["13", "0", "0"], result.stderr
    assert rows["aum"] == ["0", "0", "-"], result.stderr

"""An adversarial pass of 2026-12-05 (d), as a demanding user meets image folders and the
repair commands: odd but real image files, odd folder layouts, `fix` interrupted and re-run.
Tiny generated datasets and checks that train no model where the bug allows."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from .conftest import REPO_ROOT, invoke


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


def test_a_class_folder_a_level_too_high_is_named_in_a_note(tmp_path):
    """helper-47: ``DATA/animals/{cat,dog}`` was audited as one class, ``animals``, without a
    word but the label checks' "off" (no label check can run on one class). A note on stderr
    (past --quiet) and in summary.json now says which folder the user may have meant; a folder
    that reads as expected, or a class with images of its own beside a subfolder, gets none."""
    import json

    from .conftest import make_image

    quick = ["--config", REPO_ROOT / "datacheck" / "presets" / "quick.toml", "--cache-dir", "off", "-q", "--fail-on", ""]
    for k in range(4):
        make_image(tmp_path / "nested" / "animals" / ("cat", "dog")[k % 2] / f"{k}.png", seed=k)
        make_image(tmp_path / "flat" / ("cat", "dog")[k % 2] / f"{k}.png", seed=k)
        make_image(tmp_path / "own" / "cat" / ("", "sub/")[k % 2] / f"{k}.png", seed=k)
    result = invoke("audit", tmp_path / "nested", "--out", tmp_path / "r1", *quick)
    note = (f"every image lies under one class folder, 'animals', in 2 subfolders (cat, dog), so no label check "
            f"can run: if those are the classes, audit {tmp_path / 'nested' / 'animals'} instead")
    assert result.exit_code == 0 and result.stderr == f"datacheck: note: {note}\n"
    assert json.loads((tmp_path / "r1" / "summary.json").read_text())["notes"] == [note]
    for name in ("flat", "own"):
        result = invoke("audit", tmp_path / name, "--out", tmp_path / f"r-{name}", *quick)
        assert result.exit_code == 0 and result.stderr == ""
        assert "notes" not in json.loads((tmp_path / f"r-{name}" / "summary.json").read_text())


def test_a_dataset_changed_while_fix_runs_is_refused_with_fixs_remedy(tmp_path, monkeypatch):
    """helper-47: a source image changed between fix's first audit and its relabel step was
    refused with "run datacheck audit on it again", an audit that is fix's own to make. The
    remedy is a fix into a new --out (as a rerun into the same --out says)."""
    import datacheck.actions.fix as fix_module

    from .conftest import assert_one_line_error, make_image, make_tiny_dataset

    data = make_tiny_dataset(tmp_path / "tiny")
    config = tmp_path / "fix.toml"
    config.write_text('[audit]\nchecks = ["image_properties", "exact_duplicates"]\n')
    relabel = fix_module._Context.relabel

    def changed_first(self, *args, **kwargs):
        make_image(next((data / "train" / "cat").iterdir()), seed=999)  # edited in place by the user
        return relabel(self, *args, **kwargs)

    monkeypatch.setattr(fix_module._Context, "relabel", changed_first)
    out = tmp_path / "out"
    result = invoke("fix", data, "--out", out, "--budget", 40, "--config", config, "--no-boost", "--workers", 0)
    line = assert_one_line_error(result, 3, f"dataset {data} changed while the fix in {out} ran",
                                 "fix it into a new --out")
    assert "datacheck audit" not in line

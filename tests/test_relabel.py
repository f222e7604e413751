"""`datacheck relabel`: measured fixes on sample_data, the review round-trip, outputs, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import datacheck
from datacheck.actions.relabel import relabel
from datacheck.audit_run import open_run
from datacheck.errors import BadDataError
from datacheck.manifest import load_manifest

from .conftest import SAMPLE_DATA, assert_one_line_error, invoke, tree_digest


@pytest.fixture(scope="module")
def run_dir(sample_audit):
    return sample_audit.run_dir


@pytest.fixture(scope="module")
def mislabeled(truth) -> pd.Series:
    rows = truth[truth["issue"] == "mislabeled"]
    return rows.set_index("sample_id")["true_label"]


def _quick_audit(dataset: Path, out: Path) -> tuple[Path, Path]:
    datacheck.audit(dataset, out=out, checks=["exact_duplicates", "image_properties"], workers=0)
    return dataset, out


@pytest.fixture
def quick_run(sample_copy, tmp_path):
    """A fast audit (no model) of a private copy of sample_data, which a test may then change."""
    return _quick_audit(sample_copy, tmp_path / "quick-run")


@pytest.fixture(scope="module")
def read_only_quick_run(tmp_path_factory):
    """:func:`quick_run` made once for the tests that only read the run and its dataset (a review
    imported without --out, a refused command): a copy and an audit per test were a third of a
    second each, 17 times. Checked unchanged, every file of both, after the last of them."""
    base = tmp_path_factory.mktemp("relabel-quick")
    dataset = base / "sample"
    shutil.copytree(SAMPLE_DATA, dataset)
    dataset, run = _quick_audit(dataset, base / "quick-run")
    before = tree_digest(base)
    yield dataset, run
    assert tree_digest(base) == before, "a test changed the shared quick run or its dataset: give it quick_run"


def test_auto_fixes_planted_mislabels_and_leaves_clean_samples_alone(run_dir, truth, mislabeled):
    before = tree_digest(SAMPLE_DATA)
    result = relabel(run_dir, auto=True)
    changed = result.changes[result.changes["action"] == "relabel"].set_index("sample_id")["new_label"]
    fixed = (changed.reindex(mislabeled.index) == mislabeled).sum()
    clean = set(result.manifest["sample_id"]) - set(truth["sample_id"])  # no planted issue of any kind
    clean_changed = len(set(changed.index) & clean)
    not_mislabeled_changed = len(set(changed.index) - set(mislabeled.index))
    assert fixed / len(mislabeled) >= 0.8, (fixed, len(mislabeled))  # measured: 21 of 24
    assert clean_changed / len(clean) <= 0.02, clean_changed  # measured: 1 of 456
    assert not_mislabeled_changed / (564 - len(mislabeled)) <= 0.02, not_mislabeled_changed
    new = result.manifest.set_index("sample_id")["label"]
    assert (new[changed.index] == changed).all()
    assert len(result.manifest) == 564 and result.written == {}  # a dry run writes nothing
    assert tree_digest(SAMPLE_DATA) == before


def test_drop_removes_corrupt_surplus_duplicates_and_leaks(run_dir, truth):
    result = relabel(run_dir, drop=True)
    dropped = set(result.changes.loc[result.changes["action"] == "drop", "sample_id"])
    corrupt = set(truth.loc[truth["issue"] == "corrupt", "sample_id"])
    assert corrupt <= dropped
    exact = truth[truth["issue"] == "exact_duplicate"]
    for _, group in exact.groupby("group"):  # exactly one copy of each planted group survives
        assert len(set(group["sample_id"]) - dropped) == 1
    leaks = truth[truth["issue"] == "split_leakage"]
    assert set(leaks.loc[leaks["sample_id"].str.startswith("val/"), "sample_id"]) <= dropped
    assert len(result.manifest) == 564 - len(dropped)
    assert not result.changes["action"].eq("relabel").any()


def test_outputs_changes_manifest_and_materialized_folder_that_audits(run_dir, tmp_path):
    out, folder = tmp_path / "fixed", tmp_path / "clean"
    result = invoke("relabel", run_dir, "--auto", "--drop", "--out", out, "--materialize", folder, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["written"]["manifest"] == str(out / "manifest.csv")
    changes = pd.read_parquet(out / "changes.parquet")
    assert list(changes.columns) == ["sample_id", "action", "old_label", "new_label", "reason", "checks", "confidence"]
    assert report["counts"] == changes["action"].value_counts().reindex(
        ["relabel", "drop", "review", "keep"], fill_value=0).to_dict()
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) == 564 - report["counts"]["drop"]
    assert "Changes per class" in result.stderr

    audited = datacheck.audit(folder, out=tmp_path / "re-audit", checks=["exact_duplicates"], workers=0)
    assert audited.summary["samples"] == len(manifest)
    again = load_manifest(folder).frame.set_index("path")["label"]
    relabelled = changes[changes["action"] == "relabel"].iloc[0]
    sample = manifest.set_index("sample_id").loc[relabelled["sample_id"]]
    name = sample["path"].rsplit("/", 1)[-1]
    assert again[f"{sample['split']}/{relabelled['new_label']}/{name}"] == relabelled["new_label"]
    assert audited.summary["checks"]["exact_duplicates"]["flagged"] == 0  # surplus copies were dropped


def test_review_csv_round_trip(run_dir, tmp_path):
    review = tmp_path / "review.csv"
    relabel(run_dir, export_review=review)
    queue = pd.read_csv(review, dtype=str, keep_default_na=False)
    assert list(queue.columns) == ["sample_id", "path", "split", "label", "suggested_label", "confidence", "checks",
                                   "reason", "decision", "new_label"]
    assert len(queue) >= 20
    with_suggestion = queue[queue["suggested_label"] != ""]
    accept, explicit, drop, keep, same = (with_suggestion.iloc[i] for i in range(5))
    other = next(c for c in ("circle", "square", "triangle") if c not in (explicit["label"], explicit["suggested_label"]))
    queue.loc[accept.name, "decision"] = "relabel"
    queue.loc[explicit.name, ["decision", "new_label"]] = ["relabel", other]
    queue.loc[drop.name, "decision"] = "drop"
    queue.loc[keep.name, "decision"] = "Keep"
    queue.loc[same.name, ["decision", "new_label"]] = ["relabel", same["label"]]  # to the label it has: a keep
    queue.to_csv(review, index=False)

    result = relabel(run_dir, import_review=review)
    new = result.manifest.set_index("sample_id")["label"]
    assert new[accept["sample_id"]] == accept["suggested_label"]
    assert new[explicit["sample_id"]] == other
    assert drop["sample_id"] not in new.index
    assert new[keep["sample_id"]] == keep["label"]
    actions = result.changes.set_index("sample_id")["action"]
    assert actions[keep["sample_id"]] == "keep" and actions[drop["sample_id"]] == "drop"
    assert actions[same["sample_id"]] == "keep" and new[same["sample_id"]] == same["label"]
    assert (actions == "review").sum() == len(queue) - 5  # undecided rows stay queued
    assert len(result.manifest) == 563


def test_accepting_a_suggestion_the_review_file_does_not_show_is_refused(run_dir, tmp_path):
    """A blank new_label accepts the suggestion the reviewer saw; where the file shows none,
    the decision is an error, not a silent keep (the model's own top label may be the given one)."""
    review = tmp_path / "review.csv"
    relabel(run_dir, export_review=review)
    queue = pd.read_csv(review, dtype=str, keep_default_na=False)
    queue.loc[queue.index[0], ["decision", "suggested_label", "new_label"]] = ["relabel", "", ""]
    queue.to_csv(review, index=False)
    with pytest.raises(BadDataError, match="names no new_label and has no suggestion"):
        relabel(run_dir, import_review=review)


def test_hold_out_review_leaves_the_queue_out_until_decided(run_dir, tmp_path):
    out, review = tmp_path / "held", tmp_path / "review.csv"
    result = invoke("relabel", run_dir, "--drop", "--hold-out-review", "--out", out, "--export-review", review, "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)["counts"]
    assert counts["review"] >= 10
    manifest = pd.read_csv(out / "manifest.csv")
    changes = pd.read_parquet(out / "changes.parquet")
    queued = set(changes.loc[changes["action"] == "review", "sample_id"])
    assert len(manifest) == 564 - counts["drop"] - counts["review"]
    assert not queued & set(manifest["sample_id"])
    assert json.loads((out / "relabel.json").read_text())["hold_out_review"] is True

    # A decided sample comes back (kept or relabelled); the undecided stay out.
    queue = pd.read_csv(review, dtype=str, keep_default_na=False)
    queue.loc[queue.index[0], "decision"] = "keep"
    queue.to_csv(review, index=False)
    again = relabel(run_dir, drop=True, hold_out_review=True, import_review=review)
    assert queue["sample_id"].iloc[0] in set(again.manifest["sample_id"])
    assert len(again.manifest) == len(manifest) + 1
    table = again.table
    assert int(table["after"].sum()) == len(again.manifest)


def test_label_studio_round_trip(run_dir, tmp_path):
    tasks_path = tmp_path / "tasks.json"
    relabel(run_dir, export_label_studio=tasks_path)
    tasks = json.loads(tasks_path.read_text())
    config = (tmp_path / "tasks.label_config.xml").read_text()
    assert '<Choice value="(drop)"/>' in config and '<Choice value="triangle"/>' in config
    first = tasks[0]
    assert first["data"]["image"].startswith("/data/local-files/?d=")
    assert first["predictions"][0]["result"][0]["value"]["choices"]

    def annotate(task, choice, cancelled=False):
        return {**task, "id": 1, "annotations": [{"was_cancelled": cancelled, "result": [
            {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]}]}

    suggested = first["predictions"][0]["result"][0]["value"]["choices"][0]
    export = [annotate(first, suggested), annotate(tasks[1], "(drop)"), annotate(tasks[2], tasks[2]["data"]["label"]),
              annotate(tasks[3], "star", cancelled=True), *tasks[4:]]
    exported = tmp_path / "export.json"
    exported.write_text(json.dumps(export))
    result = relabel(run_dir, import_review=exported)
    actions = result.changes.set_index("sample_id")["action"]
    ids = [t["data"]["sample_id"] for t in tasks]
    assert [actions[i] for i in ids[:4]] == ["relabel", "drop", "keep", "review"]
    assert result.manifest.set_index("sample_id").loc[ids[0], "label"] == suggested


def test_other_manifest_formats_round_trip(sample_copy, tmp_path):
    frame = load_manifest(sample_copy).frame
    frame["annotator"] = "a"  # a user column survives
    frame.to_parquet(sample_copy / "manifest.parquet", index=False)
    run = datacheck.audit(sample_copy / "manifest.parquet", out=tmp_path / "run", checks=["exact_duplicates"],
                          workers=0)
    out = tmp_path / "cleaned"
    result = invoke("relabel", run.run_dir, "--drop", "--out", out)
    assert result.exit_code == 0, result.output
    cleaned = pd.read_parquet(out / "manifest.parquet")  # same format as the audited manifest
    surplus = run.findings.query("check == 'exact_duplicates' and is_issue")
    assert len(surplus) >= 6 and len(cleaned) == 564 - len(surplus)
    assert list(cleaned.columns) == ["sample_id", "path", "label", "split", "annotator"]
    assert (cleaned["annotator"] == "a").all()
    # Outside the dataset root, paths are absolute, so a training script finds the files...
    assert all((sample_copy / sid).resolve() == Path(p) for sid, p in zip(cleaned["sample_id"], cleaned["path"]))
    # ...and datacheck audits it again when told the root the paths must stay inside.
    refused = invoke("audit", out / "manifest.parquet", "--out", tmp_path / "again", "--checks", "exact_duplicates")
    assert refused.exit_code == 3 and "escapes the dataset root" in refused.stderr
    again = invoke("audit", out / "manifest.parquet", "--root", sample_copy, "--out", tmp_path / "again",
                   "--checks", "exact_duplicates", "--workers", 0)
    assert again.exit_code == 0, again.output
    assert relabel(tmp_path / "again", drop=True).changes.empty  # and the re-audit reloads with its root
    folder = invoke("audit", sample_copy, "--root", tmp_path, "--out", tmp_path / "x")
    assert folder.exit_code == 2 and "--root applies to a manifest file" in folder.stderr


def test_not_a_run_and_incomplete_run_are_usage_errors(tmp_path, sample_copy):
    result = invoke("relabel", tmp_path / "nope")
    assert result.exit_code == 2 and "datacheck: error: run" in result.stderr and "does not exist" in result.stderr
    result = invoke("relabel", sample_copy)
    assert result.exit_code == 2 and "not a datacheck run directory" in result.stderr
    run = tmp_path / "half"
    run.mkdir()
    (run / "run.json").write_text('{"status": "running"}')
    result = invoke("relabel", run)
    assert result.exit_code == 2 and "did not complete" in result.stderr
    (run / "run.json").write_text("{not json")
    result = invoke("relabel", run)
    assert result.exit_code == 3 and len(result.stderr.strip().splitlines()) == 1


def test_changed_dataset_and_other_dataset_are_refused(quick_run, tiny_dataset, tmp_path):
    dataset, run = quick_run
    result = invoke("relabel", run, "--dataset", tiny_dataset, "--out", tmp_path / "x")
    assert result.exit_code == 3, result.output
    assert "is not the dataset audited in" in result.stderr
    victim = next((dataset / "train" / "circle").iterdir())
    victim.write_bytes(victim.read_bytes() + b"\0")  # the dataset changes after the audit
    result = invoke("relabel", run, "--drop", "--out", tmp_path / "y")
    assert result.exit_code == 3 and "changed since the audit" in result.stderr
    assert not (tmp_path / "y").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ("sample_id,decision,new_label\ntrain/circle/nope.png,drop,\n", "not in the audited dataset"),
        ("sample_id,decision\nx,drop\n", "lacks column(s) new_label"),
        ("sample_id,decision,new_label\n{id},maybe,\n", "decision 'maybe' is not one of"),
        ("sample_id,decision,new_label\n{id},relabel,giraffe\n", "'giraffe'"),
        ("sample_id,decision,new_label\n{id},drop,\n{id},keep,\n", "more than once"),
    ],
)
def test_malformed_review_csv(read_only_quick_run, tmp_path, content, message):
    dataset, run = read_only_quick_run
    sample_id = open_run(run).findings["sample_id"].iloc[0]
    review = tmp_path / "review.csv"
    review.write_text(content.format(id=sample_id))
    result = invoke("relabel", run, "--import-review", review)
    assert result.exit_code == 3, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("sep, encoding", [(";", "cp1252"), (";", "utf-8-sig"), ("\t", "utf-8"), (",", "cp1252")],
                         ids=["excel-europe", "excel-utf8-semicolon", "tab", "comma-cp1252"])
def test_review_csv_saved_by_a_spreadsheet_is_read(read_only_quick_run, tmp_path, sep, encoding):
    """Excel in a decimal-comma locale saves `;`-separated CSV, as Windows-1252 unless told
    UTF-8 (with a byte-order mark): the decisions are read all the same (before: "lacks
    column(s) sample_id, ...", or "'utf-8' codec can't decode byte 0xe9")."""
    _, run = read_only_quick_run
    ids = open_run(run).findings["sample_id"].drop_duplicates().head(3).tolist()
    rows = [["sample_id", "reason", "decision", "new_label"], [ids[0], "tache sombre, café", "drop", ""],
            [ids[1], "déjà vu", "keep", ""], [ids[2], "", "", ""]]
    review = tmp_path / "review.csv"
    review.write_bytes("\r\n".join(sep.join(f'"{v}"' if sep in v else v for v in row) for row in rows)
                      .encode(encoding))
    result = invoke("relabel", run, "--import-review", review, "--json", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"] == {"relabel": 0, "drop": 1, "review": 0, "keep": 1}


def test_review_csv_in_no_known_encoding_is_one_line_naming_it(read_only_quick_run, tmp_path):
    _, run = read_only_quick_run
    review = tmp_path / "review.csv"
    review.write_bytes(b"sample_id,decision,new_label\n\x81\x8d,drop,\n")  # undefined in Windows-1252 too
    line = assert_one_line_error(invoke("relabel", run, "--import-review", review), 3,
                                 f"cannot read review file {review}", "neither UTF-8 nor Windows-1252")
    assert "0x81" in line


def test_label_studio_export_most_recent_annotation_by_sample_id(read_only_quick_run, tmp_path):
    """Tasks in another order than exported, several annotations per task: the most recent
    annotation (updated_at, else created_at; else the last listed) that was not cancelled
    decides; one submitted without a choice (empty result) leaves the task in review instead
    of failing the import; a task for a sample the audit does not have is refused by number."""
    _, run = read_only_quick_run
    frame = open_run(run).manifest().frame.set_index("sample_id")
    ids = frame.index[:4].tolist()
    other = {i: sorted(set(frame["label"]) - {frame.loc[i, "label"]})[0] for i in ids}

    def ann(choice, cancelled=False, **times):
        return {"was_cancelled": cancelled, **times, "result": [] if choice is None else [
            {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]}

    tasks = [
        # listed last but older: the drop made on May 2nd decides
        {"data": {"sample_id": ids[0]}, "annotations": [ann("(drop)", updated_at="2024-05-02T10:00:00.000000Z"),
                                                        ann(other[ids[0]], updated_at="2024-05-01T10:00:00Z")]},
        # the most recent one was cancelled: the earlier relabel decides
        {"data": {"sample_id": ids[1]}, "annotations": [ann(other[ids[1]], created_at="2024-01-01T00:00:00Z"),
                                                        ann("(drop)", True, created_at="2024-06-01T00:00:00Z")]},
        # submitted without a choice: not reviewed
        {"data": {"sample_id": ids[2]}, "annotations": [ann(None, created_at="2024-01-01T00:00:00Z")]},
        # no times: the last listed decides
        {"data": {"sample_id": ids[3]}, "annotations": [ann("(drop)"), ann(frame.loc[ids[3], "label"])]},
    ][::-1]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    changes = relabel(run, import_review=export).changes.set_index("sample_id")
    assert changes.loc[ids[0], "action"] == "drop"
    assert changes.loc[ids[1], "action"] == "relabel" and changes.loc[ids[1], "new_label"] == other[ids[1]]
    assert ids[2] not in changes.index  # undecided, as before the review
    assert changes.loc[ids[3], "action"] == "keep"
    export.write_text(json.dumps([*tasks, {"data": {"sample_id": "elsewhere/x.png"}, "annotations": []}]))
    assert_one_line_error(invoke("relabel", run, "--import-review", export), 3,
                          "task 5 is for sample 'elsewhere/x.png', which is not in the audited dataset")


@pytest.mark.parametrize("content", ["{not json", '{"tasks": []}', '[{"data": {}}]',
                                     '[{"data": {"sample_id": "a"}, "annotations": [{"result": []}]}]',
                                     '[{"data": {"sample_id": "a"}}]'])
def test_malformed_label_studio_export(read_only_quick_run, tmp_path, content):
    _, run = read_only_quick_run
    export = tmp_path / "export.json"
    export.write_text(content)
    result = invoke("relabel", run, "--import-review", export)
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("datacheck: error:") and len(result.stderr.strip().splitlines()) == 1


def test_usage_errors(read_only_quick_run, tmp_path):
    dataset, run = read_only_quick_run
    result = invoke("relabel", run, "--auto")
    assert result.exit_code == 2 and "--auto needs label suggestions" in result.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    for option in ("--out", "--materialize"):
        result = invoke("relabel", run, "--drop", option, busy)
        assert result.exit_code == 2 and "choose another" in result.stderr
    assert (busy / "mine.txt").read_text() == "keep me"
    result = invoke("relabel", run, "--min-confidence", 1.5)
    assert result.exit_code == 2
    result = invoke("relabel", run, "--import-review", tmp_path / "review.txt")
    assert result.exit_code == 2


def test_auto_needs_every_label_check_that_ran_to_agree():
    """--auto relabels a sample a label check flagged, when every other label check that scored
    it flags it too; a confident suggestion no check flagged is queued, not applied (every
    scored sample carries one: cifar10's test set had 267 such labels changed)."""
    from datacheck.actions.relabel import plan_changes

    frame = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "path": ["a", "b", "c", "d"],
                          "label": ["cat", "cat", "cat", "cat"], "split": [None] * 4})

    def row(sample_id, check, is_issue, suggested=None, confidence=None):
        return {"sample_id": sample_id, "check": check, "is_issue": is_issue, "suggested_label": suggested,
                "suggested_confidence": confidence}

    findings = pd.DataFrame([
        row("a", "label_issues", True, "dog", 0.9), row("a", "aum", True),    # both agree: relabel
        row("b", "label_issues", True, "dog", 0.9), row("b", "aum", False),   # AUM disagrees: review
        row("c", "label_issues", False, "dog", 0.7),                          # confident but unflagged: review
        row("d", "label_issues", False, "dog", 0.9), row("d", "outliers", True),  # off-class image: review
    ])
    changes = plan_changes(frame, findings, auto=True).set_index("sample_id")
    assert changes["action"].to_dict() == {"a": "relabel", "b": "review", "c": "review", "d": "review"}
    assert changes.loc["a", "new_label"] == "dog" and changes.loc["b", "new_label"] == "dog"
    assert changes.loc["a", "checks"] == "aum,label_issues"
    low = plan_changes(frame, findings, auto=True, min_confidence=0.8).set_index("sample_id")
    assert "c" not in low.index  # neither flagged nor confident enough: left alone


def test_drop_queues_an_outlier_of_a_rare_sub_cluster_for_review():
    """--drop removes an off-distribution outlier, but one that is also in a rare sub-cluster
    of its class (clusters) may be a style the class holds a few of: it is queued for review.
    Another drop reason (a leaked copy, a corrupt file) or an image problem still drops it."""
    from datacheck.actions.relabel import plan_changes

    frame = pd.DataFrame({"sample_id": list("abcde"), "path": list("abcde"), "label": ["cat"] * 5, "split": [None] * 5})
    findings = pd.DataFrame([
        {"sample_id": s, "check": c, "is_issue": True, "suggested_label": None, "suggested_confidence": None}
        for s, c in [("a", "outliers"), ("b", "outliers"), ("b", "clusters"), ("c", "clusters"),
                     ("d", "outliers"), ("d", "clusters"), ("d", "split_leakage"),
                     ("e", "outliers"), ("e", "clusters"), ("e", "odd_aspect_ratio")]])
    changes = plan_changes(frame, findings, drop=True).set_index("sample_id")
    assert changes["action"].to_dict() == {"a": "drop", "b": "review", "d": "drop", "e": "drop"}
    assert changes.loc["b", "reason"] == "outliers"


def test_drop_never_leaves_a_class_without_training_rows_for_being_unusual():
    """A class of 3 scans is too small for its own median: its members were measured against
    the whole data, all three flagged outliers, and --drop removed the class from the training
    set. Those drops are queued for review; corrupt files and surplus copies are still dropped,
    and a class that keeps a training row loses its outliers as before."""
    from datacheck.actions.relabel import plan_changes

    ids = ["r1", "r2", "r3", "rv", "c1", "c2", "k1", "k2", "k3"]
    frame = pd.DataFrame({"sample_id": ids, "path": ids,
                          "label": ["rare"] * 4 + ["junk"] * 2 + ["cat"] * 3,
                          "split": ["train", "train", "train", "val", "train", "train", "train", "train", "train"]})
    flags = [("r1", "outliers"), ("r2", "outliers"), ("r3", "outliers"), ("r3", "off_class"),
             ("c1", "corrupt"), ("c2", "outliers"), ("k1", "outliers")]
    findings = pd.DataFrame([{"sample_id": s, "check": c, "is_issue": True, "suggested_label": None,
                              "suggested_confidence": None} for s, c in flags])
    changes = plan_changes(frame, findings, drop=True).set_index("sample_id")
    assert changes["action"].to_dict() == {"r1": "review", "r2": "review", "r3": "review",
                                           "c1": "drop", "c2": "review", "k1": "drop"}
    assert changes.loc["r1", "reason"] == "outliers (dropping them would leave the class without training rows)"


def test_pred_probs_run_relabels_from_its_recorded_inputs(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    probs = np.full((300, 3), 0.05)
    probs[np.arange(300), labels] = 0.9
    labels[:15] = (labels[:15] + 1) % 3  # 15 confident disagreements
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "l.npy", labels)
    run = datacheck.audit(None, out=tmp_path / "run", pred_probs=tmp_path / "p.npy", labels=tmp_path / "l.npy")
    assert not (run.run_dir / "artifacts" / "model_outputs.npz").exists()  # the inputs are not copied
    result = invoke("relabel", run.run_dir, "--auto", "--out", tmp_path / "fixed")
    assert result.exit_code == 0, result.output
    changes = pd.read_parquet(tmp_path / "fixed" / "changes.parquet")
    assert set(changes.loc[changes["action"] == "relabel", "sample_id"].astype(int)) == set(range(15))
    # rows of arrays have no files: the manifest's path stays the row number (was "<cwd>/0", ...)
    manifest = pd.read_csv(tmp_path / "fixed" / "manifest.csv", dtype=str)
    assert manifest["path"].tolist() == [str(i) for i in range(300)] == manifest["sample_id"].tolist()
    listed = invoke("relabel", run.run_dir, "--auto", "--out", tmp_path / "again", "--json")
    assert json.loads(listed.stdout)["written"]["relabel"] == str(tmp_path / "again" / "relabel.json")
    result = invoke("relabel", run.run_dir, "--materialize", tmp_path / "m")
    assert result.exit_code == 2 and "needs image files" in result.stderr
    np.save(tmp_path / "l.npy", np.roll(labels, 1))  # the labels change after the audit
    result = invoke("relabel", run.run_dir, "--auto")
    assert result.exit_code == 3 and "changed since the audit" in result.stderr


def test_run_of_a_relative_dataset_path_works_from_another_folder(sample_copy, tmp_path, monkeypatch):
    monkeypatch.chdir(sample_copy.parent)
    run = datacheck.audit(sample_copy.name, out=tmp_path / "run", checks=["exact_duplicates"], workers=0)
    monkeypatch.chdir(tmp_path)
    result = invoke("relabel", run.run_dir, "--drop")
    assert result.exit_code == 0, result.output


def test_python_errors_name_the_keywords_and_the_cli_the_options(tiny_dataset, tmp_path):
    """datacheck.relabel names its keywords (min_confidence, materialize_to, out), not the CLI's
    options; a non-number min_confidence is a UsageError, not a TypeError; numpy numbers pass."""
    import numpy as np

    from datacheck.errors import UsageError

    run = datacheck.audit(tiny_dataset, out=tmp_path / "run", checks=["image_properties"], workers=0).run_dir
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    for kwargs, message in [
        ({"min_confidence": "x"}, r"^min_confidence must be in \(0, 1\], got 'x'$"),  # was a TypeError from '<'
        ({"min_confidence": 1.5}, r"^min_confidence must be in \(0, 1\], got 1\.5$"),
        ({"auto": True}, r"^auto needs label suggestions; audit with the label_issues check$"),
        ({"out": busy}, r"^out .*busy exists and is not an empty folder or an earlier relabel output; choose another$"),
        ({"materialize_to": busy}, r"^materialize_to .*busy exists and is not an empty folder; choose another$"),
        ({"import_review": tmp_path / "r.csv"}, r"^import_review .*r\.csv: file not found$"),
        ({"import_review": busy}, r"^import_review .*busy: is a folder; give the review file in it$"),
        ({"export_review": run / "summary.json"}, r"^export_review .*summary\.json is one of the run's own files"),
    ]:
        with pytest.raises(UsageError, match=message):
            datacheck.relabel(run, **kwargs)
    assert (busy / "mine.txt").read_text() == "keep me"
    datacheck.relabel(run, min_confidence=np.float32(0.7), out=tmp_path / "fixed")
    assert json.loads((tmp_path / "fixed" / "relabel.json").read_text())["min_confidence"] == pytest.approx(0.7)
    assert_one_line_error(invoke("relabel", run, "--min-confidence", 1.5), 2, "--min-confidence must be in (0, 1], got 1.5")
    assert_one_line_error(invoke("relabel", run, "--auto"), 2, "error: --auto needs label suggestions")
    assert_one_line_error(invoke("relabel", run, "--materialize", busy), 2, f"error: --materialize {busy} exists")


def test_materialize_onto_an_empty_mount_point_is_a_usage_error(tiny_dataset, tmp_path, monkeypatch):
    """An empty mount point passed the empty-folder check, then its rmdir failed with EBUSY:
    exit 4 (internal error). Refused before anything is written instead (simulated: mounting
    needs root)."""
    import errno
    import os

    run = datacheck.audit(tiny_dataset, out=tmp_path / "run", checks=["image_properties"], workers=0).run_dir
    mount = tmp_path / "volume"
    mount.mkdir()
    is_mount, rmdir = os.path.ismount, Path.rmdir
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == mount or is_mount(p))

    def busy_rmdir(self):
        if self == mount:
            raise OSError(errno.EBUSY, "Device or resource busy", str(self))
        rmdir(self)

    monkeypatch.setattr(Path, "rmdir", busy_rmdir)
    result = invoke("relabel", run, "--materialize", mount, catch_exceptions=True)
    assert_one_line_error(result, 2, f"error: --materialize {mount} is a mount point")
    assert list(mount.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["run", "tiny", "volume"]


def test_a_class_left_without_training_rows_is_a_note(tmp_path):
    """Relabelling every sample of a class away empties it: said on stderr, in --json and in
    relabel.json (before, the class vanished from the result silently)."""
    import numpy as np

    labels = np.repeat([0, 1, 2], [40, 40, 4])
    probs = np.full((84, 3), 0.05)
    probs[np.arange(84), labels] = 0.9
    probs[80:] = [0.9, 0.05, 0.05]  # the 4 samples of class 2 all look like class 0
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "l.npy", labels)
    run = datacheck.audit(None, out=tmp_path / "run", pred_probs=tmp_path / "p.npy", labels=tmp_path / "l.npy")
    # label_issues (cleanlab) flags 3 of the 4, keeping one per class: --auto moves those 3, and
    # a person moves the fourth (queued: a confident suggestion no check flagged).
    review = tmp_path / "review.csv"
    assert invoke("relabel", run.run_dir, "--auto", "--export-review", review, "--out", tmp_path / "first").exit_code == 0
    queue = pd.read_csv(review, dtype=str, keep_default_na=False)
    assert queue["sample_id"].tolist() == ["83"]
    queue["decision"] = "relabel"
    queue.to_csv(review, index=False)
    result = invoke("relabel", run.run_dir, "--auto", "--import-review", review, "--out", tmp_path / "fixed", "--json")
    assert result.exit_code == 0, result.output
    note = "class 2 left without training rows: relabel moved or dropped every one"
    assert f"datacheck: note: {note}" in result.stderr.splitlines()
    assert json.loads(result.stdout)["notes"] == [note]
    assert json.loads((tmp_path / "fixed" / "relabel.json").read_text())["notes"] == [note]
    kept = invoke("relabel", run.run_dir, "--out", tmp_path / "dry")  # no --auto: nothing moves, no note
    assert kept.exit_code == 0 and "note:" not in kept.stderr

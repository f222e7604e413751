"""Damaged or hand-edited run and plan folders: exit 3 with one clear line, never a traceback.

Every command that reads an audit run (relabel, balance, augment, report) opens it through
``datacheck.audit_run.open_run``, which checks run.json, summary.json, findings.parquet and
artifacts/model_outputs.npz; augment also checks the balance plan it executes.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import datacheck
from datacheck.errors import ExitStatus

from .conftest import JUDGE_AT_CHANCE_TOML, assert_one_line_error, invoke, make_image, make_tiny_dataset

#: A model that trains in seconds on 16 images.
# Random images: the model is at chance, and its suggestions (what relabel reads) are asked for anyway.
QUICK_TRAIN = "[train]\nimage_size = 16\nfolds = 2\nepochs = 1\n" + JUDGE_AT_CHANCE_TOML


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """One :func:`make_tiny_dataset` for the module (its runs are only read)."""
    return make_tiny_dataset(tmp_path_factory.mktemp("damaged") / "tiny")


@pytest.fixture(scope="module")
def model_run(dataset, tmp_path_factory) -> Path:
    """An audit that trained a model, so it has artifacts/model_outputs.npz."""
    base = tmp_path_factory.mktemp("model-run")
    config = base / "quick.toml"
    config.write_text(QUICK_TRAIN)
    out = base / "run"
    datacheck.audit(dataset, out=out, config=config, checks=["label_issues"], workers=0, cache_dir="off")
    assert (out / "artifacts" / "model_outputs.npz").is_file()
    return out


@pytest.fixture(scope="module")
def quick_run(dataset, tmp_path_factory) -> Path:
    """An audit without a model (seconds)."""
    out = tmp_path_factory.mktemp("quick-run") / "run"
    datacheck.audit(dataset, out=out, checks=["class_imbalance", "exact_duplicates"], workers=0)
    return out


@pytest.fixture(scope="module")
def plan(model_run, tmp_path_factory) -> Path:
    """A balance plan of ``model_run`` that schedules copies (target 8 for 6 training images per class)."""
    out = tmp_path_factory.mktemp("plan") / "plan"
    result = invoke("balance", model_run, "--strategy", "classes", "--target", 8, "--out", out, "-q")
    assert result.exit_code == 0, result.output
    return out


def copy_of(folder: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def edit_npz(run: Path, edit) -> None:
    path = run / "artifacts" / "model_outputs.npz"
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    edit(arrays)
    np.savez(path, **arrays)


# --------------------------------------------------------------------------- 1. unreadable model_outputs.npz


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_unreadable_model_outputs_are_bad_data(model_run, plan, tmp_path, damage):
    run = copy_of(model_run, tmp_path)
    npz = run / "artifacts" / "model_outputs.npz"
    data = npz.read_bytes()
    npz.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a zip file at all")
    words = (f"{npz} is damaged", "rerun the audit")
    assert_one_line_error(invoke("relabel", run), ExitStatus.BAD_DATA, *words)
    assert_one_line_error(invoke("balance", run, "--strategy", "classes", "--out", tmp_path / "p"),
                          ExitStatus.BAD_DATA, *words)
    assert_one_line_error(invoke("augment", plan, "--out", tmp_path / "aug", "--boost-from", run, "--workers", 0),
                          ExitStatus.BAD_DATA, *words)


# --------------------------------------------------------------------------- 2. model outputs not row-aligned


@pytest.mark.parametrize("member", ["pred_probs", "labels", "embeddings", "softmax"])
def test_model_outputs_with_wrong_row_count_are_bad_data(model_run, plan, tmp_path, member):
    run = copy_of(model_run, tmp_path)
    edit_npz(run, lambda arrays: arrays.update({member: arrays[member][:-3]}))
    words = ("model_outputs.npz is damaged", member, "13 rows", "16 samples")
    assert_one_line_error(invoke("relabel", run), ExitStatus.BAD_DATA, *words)
    assert_one_line_error(invoke("balance", run, "--strategy", "classes", "--out", tmp_path / "p"),
                          ExitStatus.BAD_DATA, *words)
    assert_one_line_error(invoke("augment", plan, "--out", tmp_path / "aug", "--boost-from", run, "--workers", 0),
                          ExitStatus.BAD_DATA, *words)
    assert_one_line_error(invoke("report", run, "-q"), ExitStatus.BAD_DATA, *words)


def test_model_outputs_missing_array_wrong_columns_or_label_ids_are_bad_data(model_run, plan, tmp_path):
    run = copy_of(model_run, tmp_path, "no-probs")
    edit_npz(run, lambda arrays: arrays.pop("pred_probs"))
    assert_one_line_error(invoke("relabel", run), ExitStatus.BAD_DATA,
                          "model_outputs.npz is damaged", "no pred_probs array")
    run = copy_of(model_run, tmp_path, "columns")
    edit_npz(run, lambda arrays: arrays.update(pred_probs=np.hstack([arrays["pred_probs"]] * 2)))
    assert_one_line_error(invoke("relabel", run), ExitStatus.BAD_DATA,
                          "model_outputs.npz is damaged", "4 columns for 2 classes")
    run = copy_of(model_run, tmp_path, "label-ids")
    edit_npz(run, lambda arrays: arrays.update(labels=np.full_like(arrays["labels"], 7)))
    # Shapes are right, so only the command that reads the arrays notices.
    assert_one_line_error(invoke("augment", plan, "--out", tmp_path / "aug", "--boost-from", run, "--workers", 0),
                          ExitStatus.BAD_DATA, "model_outputs.npz is damaged", "class ids outside -1..1")


# --------------------------------------------------------------------------- 3. run.json keys


@pytest.mark.parametrize("edit, words", [
    (lambda info: info.pop("dataset"), ("lacks the key 'dataset'",)),
    (lambda info: info.update(dataset=5), ("key 'dataset' must be a string", "int 5")),
    (lambda info: info.pop("manifest_fingerprint"), ("lacks the key 'manifest_fingerprint'",)),
    (lambda info: info.update(samples="16"), ("key 'samples' must be an integer",)),
    (lambda info: info.update(seed=True), ("key 'seed' must be an integer",)),
    (lambda info: info.update(seed=-1), ("key 'seed' must be in [0, 4294967295]",)),
    (lambda info: info.update(config={"audit": []}), ("'config.audit' must be an object",)),
    (lambda info: info["config"]["audit"].update(max_missing="x"), ("'config.audit.max_missing'",)),
    (lambda info: info["config"]["audit"].update(device=5), ("'config.audit.device' must be a string",)),
    (lambda info: info.update(findings_schema_version=99), ("findings schema version 99 is newer",)),
], ids=["no-dataset", "int-dataset", "no-fingerprint", "str-samples", "bool-seed", "negative-seed", "list-config", "str-max-missing", "int-device",
        "newer-findings-schema"])
def test_run_json_without_a_key_or_with_a_wrong_type_is_bad_data(quick_run, tmp_path, edit, words):
    run = copy_of(quick_run, tmp_path)
    edit_json(run / "run.json", edit)
    commands = [["relabel", run], ["balance", run, "--strategy", "classes", "--out", tmp_path / "p"], ["report", run]]
    if "manifest_fingerprint" in words[0]:
        commands.pop()  # the report does not reload the dataset, so it needs no fingerprint
    for args in commands:
        assert_one_line_error(invoke(*args), ExitStatus.BAD_DATA, str(run / "run.json"), *words)


# --------------------------------------------------------------------------- 4. findings and summary


def rewrite_findings(run: Path, edit) -> None:
    path = run / "findings.parquet"
    pq.write_table(edit(pq.read_table(path)), path)


@pytest.mark.parametrize("edit, words", [
    (lambda table: table.drop_columns(["score"]), ("lacks the findings column(s) score",)),
    (lambda table: table.drop_columns(["check", "details"]), ("column(s) check, details",)),
    (lambda table: table.set_column(table.schema.get_field_index("score"), "score",
                                    pc_cast(table["score"], pa.string())), ("column 'score' has type string",)),
    (lambda table: table.set_column(table.schema.get_field_index("sample_id"), "sample_id",
                                    pa.nulls(len(table), pa.string())), ("column 'sample_id' has", "missing value")),
    (lambda table: table.set_column(table.schema.get_field_index("score"), "score",
                                    pa.array([float("inf")] * len(table))), ("'score' has", "outside [0, 1] (first inf)")),
    (lambda table: table.set_column(table.schema.get_field_index("score"), "score",
                                    pa.array([-0.5] + [0.5] * (len(table) - 1))), ("1 value(s) outside [0, 1]",)),
], ids=["no-score", "no-check-details", "str-score", "null-sample-id", "inf-score", "negative-score"])
def test_findings_without_a_column_or_of_a_wrong_type_are_bad_data(quick_run, tmp_path, edit, words):
    run = copy_of(quick_run, tmp_path)
    rewrite_findings(run, edit)
    for args in (["report", run], ["relabel", run], ["balance", run, "--strategy", "classes", "--out", tmp_path / "p"]):
        assert_one_line_error(invoke(*args), ExitStatus.BAD_DATA, "findings.parquet", *words)


def pc_cast(column, kind):
    import pyarrow.compute as pc

    return pc.cast(column, kind)


def test_findings_rewritten_by_pandas_are_still_read(quick_run, tmp_path):
    """pandas writes large_string columns and all-null columns as type null: same kind, accepted."""
    run = copy_of(quick_run, tmp_path)
    frame = pd.read_parquet(run / "findings.parquet").assign(suggested_label=None, suggested_confidence=None)
    frame.to_parquet(run / "findings.parquet")
    result = invoke("report", run, "-q")
    assert result.exit_code == 0, result.output


def test_a_run_missing_its_findings_says_so(quick_run, tmp_path):
    run = copy_of(quick_run, tmp_path)
    (run / "findings.parquet").unlink()
    assert_one_line_error(invoke("report", run), ExitStatus.BAD_DATA, "findings.parquet: missing")


def test_findings_details_that_are_not_json_are_bad_data(quick_run, tmp_path):
    run = copy_of(quick_run, tmp_path)
    frame = pd.read_parquet(run / "findings.parquet")
    frame.loc[frame["check"] == "exact_duplicates", "details"] = '{"group": '
    frame.to_parquet(run / "findings.parquet")
    assert_one_line_error(invoke("report", run, "-q"), ExitStatus.BAD_DATA,
                          "findings.parquet", "details value is not a JSON object")


def test_findings_naming_a_sample_the_dataset_lacks_are_bad_data(quick_run, tmp_path):
    """A repair would act on a sample that is not there: every command that reloads the dataset refuses."""
    run = copy_of(quick_run, tmp_path)
    frame = pd.read_parquet(run / "findings.parquet")
    frame.loc[frame.index[-1], "sample_id"] = "train/star/ghost.png"
    frame.to_parquet(run / "findings.parquet")
    for args in (["relabel", run], ["balance", run, "--strategy", "classes", "--out", tmp_path / "p"]):
        assert_one_line_error(invoke(*args), ExitStatus.BAD_DATA, "findings.parquet",
                              "'train/star/ghost.png' is not in the audited dataset", "1 such id")
    assert not (tmp_path / "p").exists()
    assert invoke("report", run, "-q").exit_code == 0  # the report shows the findings as they are


def test_findings_suggesting_a_label_the_audit_never_had_are_bad_data(model_run, tmp_path):
    """relabel --auto must never invent a class from a hand-edited suggestion."""
    run = copy_of(model_run, tmp_path)
    frame = pd.read_parquet(run / "findings.parquet")
    suggesting = frame.index[frame["suggested_label"].notna()]
    frame.loc[suggesting[0], ["suggested_label", "suggested_confidence"]] = ["zebra", 0.99]
    frame.to_parquet(run / "findings.parquet")
    for args in (["relabel", run, "--auto"], ["balance", run, "--strategy", "classes", "--out", tmp_path / "p"]):
        assert_one_line_error(invoke(*args), ExitStatus.BAD_DATA, "findings.parquet",
                              "suggested label 'zebra' is not a class of the audit")


def test_run_files_read_back_what_was_written_and_tolerate_newer_keys(quick_run, tmp_path):
    """run.json and plan.json round-trip through their dataclasses; keys a newer datacheck adds are no error."""
    from datacheck.files.run_info import RunInfo

    run = copy_of(quick_run, tmp_path)
    info = RunInfo.read(run / "run.json")
    assert info.samples == 16 and info.status == "complete" and info.exit_status == 0
    assert RunInfo.from_dict(info.to_dict()) == info
    assert json.loads((run / "run.json").read_text()) == info.to_dict()
    edit_json(run / "run.json", lambda data: data.update(written_by_a_newer_datacheck={"x": 1}))
    assert RunInfo.read(run / "run.json") == info
    assert invoke("report", run, "-q").exit_code == 0


def test_run_json_inputs_that_are_not_paths_are_bad_data(quick_run, tmp_path):
    run = copy_of(quick_run, tmp_path)
    edit_json(run / "run.json", lambda info: info.update(inputs={"pred_probs": 3}))
    assert_one_line_error(invoke("report", run, "-q"), ExitStatus.BAD_DATA, "run.json", "'inputs' must map names")


def test_a_duplicate_representative_that_is_not_a_sample_id_is_bad_data(quick_run, tmp_path):
    run = copy_of(quick_run, tmp_path)
    frame = pd.read_parquet(run / "findings.parquet")
    frame.loc[frame["check"] == "exact_duplicates", "details"] = '{"group": 5, "representative": ["x"]}'
    frame.to_parquet(run / "findings.parquet")
    result = invoke("balance", run, "--strategy", "classes", "--drop-flagged", "--out", tmp_path / "plan")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "findings.parquet is damaged", "representative is list")


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.update(checks=[]), ("'checks' must be an object",)),
    (lambda s: s["checks"].update(dark=3), ("checks['dark'] must be an object",)),
    (lambda s: s.update(samples="many"), ("'samples' must be an integer",)),
    (lambda s: s.update(gates=[{"gate": "dark>0"}]), ("gates[0]['failed']",)),
    (lambda s: s.update(splits={"train": "12"}), ("splits['train'] must be an integer",)),
    (lambda s: s["checks"]["exact_duplicates"].update(percent=10**400), ("summary['checks']['exact_duplicates']"
                                                                         "['percent'] is a number",)),
    (lambda s: s.update(notes=["a note", None]), ("notes[1] must be a string",)),  # the page showed an empty note
], ids=["list-checks", "int-check", "str-samples", "gate-without-failed", "str-split-count", "huge-percent",
        "null-note"])
def test_summary_with_values_of_a_wrong_type_is_bad_data(quick_run, tmp_path, edit, words):
    run = copy_of(quick_run, tmp_path)
    edit_json(run / "summary.json", edit)
    assert_one_line_error(invoke("report", run, "-q"), ExitStatus.BAD_DATA, str(run / "summary.json"), *words)


def test_a_threshold_of_an_unknown_shape_is_shown_as_json(quick_run, tmp_path):
    run = copy_of(quick_run, tmp_path)
    edit_json(run / "summary.json",
              lambda s: s["checks"]["class_imbalance"].update(threshold={"median_class_size": "x"}))
    result = invoke("report", run, "-q")
    assert result.exit_code == 0, result.output
    assert "median_class_size" in (run / "report.html").read_text()


# --------------------------------------------------------------------------- 5. plan.json keys


def test_plan_json_reads_back_what_balance_wrote(plan, model_run):
    from datacheck.files.plan import PlanInfo, read_plan

    info, rows = read_plan(plan)
    assert info == PlanInfo.read(plan / "plan.json")
    assert Path(info.run) == model_run.resolve() and info.counts["copies"] == int(rows["copies"].sum()) > 0
    assert json.loads((plan / "plan.json").read_text())["options"]["strategy"] == "classes"


@pytest.mark.parametrize("edit, words", [
    (lambda info: info.pop("run"), ("lacks the key 'run'",)),
    (lambda info: info.pop("manifest_fingerprint"), ("lacks the key 'manifest_fingerprint'",)),
    (lambda info: info.update(run=3), ("key 'run' must be a string",)),
    (lambda info: info.update(seed="zero"), ("key 'seed' must be an integer",)),
    (lambda info: info.update(seed=10**30), ("key 'seed' must be in [0, 4294967295]",)),
    (lambda info: info.update(transform="both"), ("key 'transform' must be an object",)),
    (lambda info: info.update(transform={"degrees": "big"}), ("transform: degrees must be in [0, 180]",)),
], ids=["no-run", "no-fingerprint", "int-run", "str-seed", "huge-seed", "str-transform", "bad-degrees"])
def test_plan_json_without_a_key_or_with_a_wrong_type_is_bad_data(plan, tmp_path, edit, words):
    damaged = copy_of(plan, tmp_path)
    edit_json(damaged / "plan.json", edit)
    assert_one_line_error(invoke("augment", damaged, "--out", tmp_path / "aug", "--workers", 0),
                          ExitStatus.BAD_DATA, str(damaged / "plan.json"), *words)


# --------------------------------------------------------------------------- 6. hand-edited plan rows


def set_first(column: str, value, where: str | None = None):
    """An edit of plan.parquet: ``column`` of the first row (with action ``where``) set to ``value``."""
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        rows = frame.index if where is None else frame.index[frame["action"] == where]
        frame[column] = frame[column].astype(object)
        frame.loc[rows[0], column] = value
        return frame
    return edit


@pytest.mark.parametrize("edit, words", [
    (set_first("copies", -3), ("is -3, not a non-negative integer",)),
    (set_first("copies", 1.5), ("is 1.5, not a non-negative integer",)),
    (set_first("copies", None), ("not a non-negative integer",)),
    (set_first("action", "explode"), ("unknown action(s) 'explode'", "keep, drop, augment")),
    (set_first("copies", 10**12, where="augment"), ("copies of 16 samples", "more than 1000 per sample")),
    (set_first("copies", 2, where="keep"), ("action 'keep'", "copies need action 'augment'")),
    (set_first("transform", "{not json", where="augment"), ("is not a JSON object",)),
    (set_first("transform", '{"policy": "sharpen"}', where="augment"), ("policy must be one of",)),
    (lambda frame: pd.concat([frame, frame.iloc[:1]]), ("twice",)),
    # The transform parsed into a struct (or a list) column: exit 4, "unhashable type", before.
    (lambda frame: frame.assign(transform=[{"policy": "both"}] * len(frame)), ("transform {'policy': 'both'} is not text",)),
    (lambda frame: frame.assign(transform=[["both"]] * len(frame)), ("is not text",)),
    (lambda frame: frame.assign(sample_id=range(len(frame))), ("sample_id 0 is not text",)),
], ids=["negative", "fraction", "null", "explode", "huge", "keep-with-copies", "transform-not-json", "bad-policy",
        "duplicate-id", "struct-transform", "list-transform", "int-sample-id"])
def test_hand_edited_plan_rows_are_bad_data(plan, tmp_path, edit, words):
    damaged = copy_of(plan, tmp_path)
    frame = edit(pd.read_parquet(damaged / "plan.parquet"))
    frame.to_parquet(damaged / "plan.parquet")
    started = time.monotonic()
    assert_one_line_error(invoke("augment", damaged, "--out", tmp_path / "aug", "--workers", 0),
                          ExitStatus.BAD_DATA, str(damaged / "plan.parquet"), *words)
    assert time.monotonic() - started < 60  # refused up front, not after making copies
    assert not (tmp_path / "aug").exists()


# --------------------------------------------------------------------------- 7. user columns named like augment's


def test_user_columns_named_like_augments_own_are_kept(tmp_path):
    root = tmp_path / "data"
    lines = ["path,label,action,copies,source_id,transform,user_source_id"]
    for label, n in (("cat", 6), ("dog", 3)):
        for i in range(n):
            make_image(root / f"{label}{i}.png", 100 * (label == "dog") + i)
            lines.append(f"{label}{i}.png,{label},explode,-3,src-{label}{i},tr-{label}{i},u-{label}{i}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    run, plan_dir, out = tmp_path / "run", tmp_path / "plan", tmp_path / "aug"
    assert invoke("audit", root / "manifest.csv", "--checks", "class_imbalance", "--out", run, "--workers", 0,
                  "-q").exit_code == 0
    result = invoke("balance", run, "--strategy", "classes", "--target", 8, "--out", plan_dir, "-q")
    assert result.exit_code == 0, result.output
    result = invoke("augment", plan_dir, "--out", out, "--workers", 0, "-q")
    assert result.exit_code == 0, result.output

    written = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert len(written) == 16  # 6 + 3 originals, 2 + 5 copies
    # augment's provenance keeps its documented meaning ...
    copies = written[written["transform"] != ""]
    assert len(copies) == 7 and set(copies["source_id"]) <= {f"{c}{i}.png" for c in ("cat", "dog") for i in range(6)}
    assert all(json.loads(t)["policy"] == "both" for t in copies["transform"])
    # ... and every user column is kept: under its own name, or as user_<name> where it collides.
    source = written["source_id"].str.removesuffix(".png")
    assert (written["action"] == "explode").all() and (written["copies"] == "-3").all()
    assert (written["user_transform"] == "tr-" + source).all()
    assert (written["user_source_id"] == "u-" + source).all()  # the user's own, not renamed
    assert (written["user_user_source_id"] == "src-" + source).all()  # user_source_id was taken
    info = json.loads((out / "augment.json").read_text())
    assert info["renamed_columns"] == {"source_id": "user_user_source_id", "transform": "user_transform"}


# --------------------------------------------------------------------------- found on the way


def test_relabel_of_a_moved_dataset_without_model_outputs(dataset, tmp_path):
    """--dataset is where the audited dataset is now: the class names must not be looked up
    where it was audited (it used to fail with "dataset not found" there)."""
    before = tmp_path / "before"
    shutil.copytree(dataset, before)
    run = tmp_path / "run"
    datacheck.audit(before, out=run, checks=["class_imbalance"], workers=0)
    before.rename(tmp_path / "after")
    result = invoke("relabel", run, "--dataset", tmp_path / "after", "-q")
    assert result.exit_code == 0, result.output


def test_a_json_file_saved_with_a_byte_order_mark_reads_as_without(tmp_path):
    """A run or plan file edited by hand and saved as "UTF-8 with BOM" (Windows editors) is the
    same JSON object: it was refused as damaged ("Unexpected UTF-8 BOM")."""
    from datacheck.errors import BadDataError
    from datacheck.files.json_object import read_json

    path = tmp_path / "plan.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"strategy": "classes", "seed": 0}).encode())
    assert read_json(path) == {"strategy": "classes", "seed": 0}
    path.write_bytes(b"\xef\xbb\xbf[1, 2]")
    with pytest.raises(BadDataError, match="is not a JSON object"):
        read_json(path)

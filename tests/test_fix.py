"""`datacheck fix`: the budget filled exactly, provenance of every row, the planted problems of
sample_data repaired, the source untouched, reruns byte-identical, Ctrl-C then rerun completes,
a changed dataset refused. One fix of sample_data is shared by the module (about 100 s cold on
2 cores: three audits, boosting and the copies); the interrupted rerun reuses its cached models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import datacheck
from datacheck.actions import augment as augment_module
from datacheck.actions import boost as boost_module
from datacheck.actions.budget import budget_targets, fill_counts, proportional_counts
from datacheck.actions.transforms import RANDAUGMENT_OPS

from .conftest import SAMPLE_DATA, assert_one_line_error, invoke, tree_digest

BUDGET = 800
#: sample_data's val split, of which `relabel --drop` removes the 6 leaked copies (and any val outlier).
VAL_ROWS = 120
LEAKED_VAL = 6


@pytest.fixture(scope="module")
def source_digest():
    return tree_digest(SAMPLE_DATA)


@pytest.fixture(scope="module", autouse=True)
def boosting_has_val_errors():
    """At least two val samples for boosting, whatever the repaired set's model gets wrong.

    Which samples the model gets wrong depends on every step before (which samples the audit
    drops, the threads training ran on): sample_data's repaired model got 0 to 3 wrong, and
    with 0 there is nothing to boost toward, so the tests of the boosting copies, their
    provenance and their resumption would test nothing. The model's own errors are kept, and
    the val samples it gives the lowest probability of their label are added up to two: the
    same every run, as the model is."""
    real = boost_module.validation_errors

    def at_least_two(frame, outputs):
        wrong = real(frame, outputs)
        if len(wrong) >= 2:
            return wrong
        val = np.flatnonzero((frame["split"] == "val").to_numpy() & outputs.scored)
        given = np.nan_to_num(outputs.pred_probs[val, outputs.labels[val]])
        hardest = val[np.argsort(given, kind="stable")]
        return np.union1d(wrong, hardest[~np.isin(hardest, wrong)][: 2 - len(wrong)])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(boost_module, "validation_errors", at_least_two)
        yield


@pytest.fixture(scope="module")
def fixed(tmp_path_factory, source_digest):
    out = tmp_path_factory.mktemp("fix") / "out"
    return datacheck.fix(SAMPLE_DATA, out, budget=BUDGET, workers=2)


def relabel_changes(fixed) -> pd.DataFrame:
    """What the fix's relabel step changed (its ``changes.parquet``)."""
    return pd.read_parquet(fixed.out / "steps" / "2-relabel" / "changes.parquet")


# --------------------------------------------------------------------------- the budget rule


def test_fill_counts_raises_the_smallest_groups_first_and_trims_the_largest_first():
    assert fill_counts({"a": 10, "b": 3, "c": 5}, 30, seed=0) == {"a": 10, "b": 10, "c": 10}
    grown = fill_counts({"a": 10, "b": 3, "c": 5}, 31, seed=0)
    assert sum(grown.values()) == 31 and sorted(grown.values()) == [10, 10, 11]
    assert fill_counts({"a": 10, "b": 3, "c": 5}, 12, seed=0) == {"a": 5, "b": 3, "c": 4}  # cap_counts
    # a group without a readable source keeps its size; the others take its share
    assert fill_counts({"a": 10, "b": 3, "c": 5}, 30, seed=0, growable={"a", "c"}) == {"a": 14, "b": 3, "c": 13}
    assert proportional_counts({"a": 10, "b": 3, "c": 5}, 36, seed=0) == {"a": 20, "b": 6, "c": 10}


def test_budget_targets_fill_classes_then_their_subclusters():
    groups = pd.DataFrame({"group": ["t/0", "t/1", "s/0", "c/0"], "label": ["t", "t", "s", "c"],
                           "size": [48, 4, 23, 57]})
    classes, targets = budget_targets(groups, 300, 0, set(groups["group"]))
    assert classes == {"c": 100, "s": 100, "t": 100}  # a class with two sub-clusters gets no more rows
    assert targets == {"c/0": 100, "s/0": 100, "t/0": 50, "t/1": 50}
    classes, targets = budget_targets(groups, 150, 0, set(groups["group"]))
    assert classes == {"c": 57, "s": 41, "t": 52} and targets["t/1"] == 4  # no real sample dropped
    # the rare sub-cluster is raised first within its class
    classes, targets = budget_targets(groups, 180, 0, set(groups["group"]))
    assert classes == {"c": 60, "s": 60, "t": 60} and targets["t/0"] == 48 and targets["t/1"] == 12
    # below the data: the largest group is trimmed first, the rare ones are kept
    classes, targets = budget_targets(groups, 100, 0, set(groups["group"]))
    assert targets == {"c/0": 39, "s/0": 23, "t/0": 34, "t/1": 4}
    # without copies the groups keep their sizes
    assert budget_targets(groups, 300, 0, set(groups["group"]), grow=False)[1] == dict(zip(groups["group"], groups["size"]))


# --------------------------------------------------------------------------- one fix of sample_data


def test_budget_is_filled_exactly(fixed):
    manifest = fixed.manifest
    assert len(manifest) == BUDGET and fixed.summary["rows"] == BUDGET and fixed.summary["filled"]
    files = [p for p in (fixed.out / "dataset").rglob("*") if p.is_file()]
    assert len(files) == BUDGET
    assert sorted(p.relative_to(fixed.out).as_posix() for p in files) == sorted(manifest["path"])
    # val is only ever dropped from, by the relabel step: its 6 leaked copies and whatever outliers it
    # flagged there (one on some CPUs, none on others: a val sample sits at the outliers cut)
    changes = relabel_changes(fixed)
    val_drops = changes[(changes["action"] == "drop") & changes["sample_id"].str.startswith("val/")]
    assert (val_drops["reason"].str.contains("split_leakage")).sum() == LEAKED_VAL
    assert (manifest["split"] == "val").sum() == VAL_ROWS - len(val_drops)
    # the final audit read the same rows
    assert fixed.audit.summary["samples"] == BUDGET
    # no class drowned: each class's training rows are its water-filled target plus its boosting copies
    train = manifest[manifest["split"] == "train"]
    targets = fixed.summary["choices"]["targets"]["class_targets"]
    boost = train[train["action"] == "boost"]["label"].value_counts()
    for label, n in train["label"].value_counts().items():
        assert n == targets[label] + boost.get(label, 0), label
    assert max(targets.values()) - min(targets.values()) <= 1  # measured: 84-85 per class
    val_errors = fixed.summary["choices"]["boost"]["val_errors"]
    assert fixed.summary["choices"]["boost"]["copies"] == 5 * len(val_errors) == boost.sum() > 0  # measured: 2 val errors


def test_every_row_has_provenance(fixed, truth):
    m = fixed.manifest
    source_ids = set(datacheck.load_manifest(SAMPLE_DATA).frame["sample_id"])
    assert m["source_id"].notna().all() and set(m["source_id"]) <= source_ids
    assert m["source_label"].notna().all() and m["reason"].notna().all()
    assert set(m["action"]) == {"keep", "relabel", "copy", "boost"}
    made = m["action"].isin(["copy", "boost"])
    assert (m.loc[made, "transform"] != "").all() and (m.loc[~made, "transform"] == "").all()
    for transform, action in zip(m.loc[made, "transform"], m.loc[made, "action"]):
        spec = json.loads(transform)
        assert {"policy", "seed", "affine", "randaugment"} <= set(spec)
        assert ("boost" in spec) == (action == "boost")
    relabelled = m[m["action"] == "relabel"]
    assert (relabelled["label"] != relabelled["source_label"]).all() and 17 <= len(relabelled) <= 23  # measured 20 (2 torch threads), 21 (1)
    kept = m[m["action"] == "keep"]
    assert (kept["label"] == kept["source_label"]).all()
    assert (m.loc[m["split"] == "train", "group"].notna()).all()
    counts = fixed.summary["changes"]["actions"]
    originals = counts["keep"] + counts["relabel"]
    boosted = fixed.summary["choices"]["boost"]["copies"]
    assert counts["boost"] == boosted > 0 and counts["copy"] == BUDGET - boosted - originals
    # 564 less relabel's drops (43-46: how many samples sit past the outliers cut varies with
    # the CPU's float arithmetic), less what balancing leaves out (measured: 0)
    drops = (relabel_changes(fixed)["action"] == "drop").sum()
    assert 40 <= drops <= 49 and 564 - drops - 3 <= originals <= 564 - drops
    assert m["sample_id"].is_unique and (m["path"] == "dataset/" + m["sample_id"]).all()


def test_planted_mislabels_are_fixed_or_queued(fixed, truth):
    mislabeled = truth[truth["issue"] == "mislabeled"].set_index("sample_id")["true_label"]
    m = fixed.manifest
    originals = m[m["action"].isin(["keep", "relabel"])].set_index("source_id")["label"]
    review = pd.read_csv(fixed.out / "review.csv", dtype=str)
    now = originals.reindex(mislabeled.index)
    fixed_ = now == mislabeled
    queued = mislabeled.index.isin(review["sample_id"])
    assert fixed_.sum() >= 18, fixed_.sum()  # measured: 19 of 24 relabelled to the drawn class
    assert (fixed_ | queued).all(), mislabeled[~(fixed_ | queued)]
    # nothing is left in the result with a wrong label unless a person is asked about it
    assert not (now.notna() & ~fixed_ & ~queued).any()
    # the queue: relabel's few, and the samples dropped as outliers that a label check doubted
    # too (samples near a cut fall on one side or the other by CPU and torch thread count)
    parts = fixed.summary["changes"]["review_queue_parts"]
    # measured relabel 2-5 and dropped 6-11 (CPU with 1 or 2 torch threads, and CUDA on an H200)
    assert 1 <= parts["relabel"] <= 6 and 4 <= parts["dropped_doubted"] <= 14
    assert len(review) == parts["relabel"] + parts["dropped_doubted"]


def test_rare_subclusters_grow_the_most(fixed, truth):
    """Balancing fills each class's rare sub-clusters (the re-audit's ``clusters``: every one but
    the class's largest, ``/0``) before its main one, so they grow the most.

    Whether the re-audit finds sample_data's planted sub-group (6 down-pointing triangles) at all
    depends on the trained model: found at seed 0 with 2 CPU torch threads (triangle/1: 5 -> 40
    rows); not found with 1 thread on some CPUs, on CUDA (H200), or at seeds 1 and 2 (where the
    first audit's ``outliers`` flags all six and relabel drops them). That is a limit of the
    detection (benchmarks/RESULTS.md); this test checks what balancing does with what was found.
    """
    sub = fixed.summary["subclusters"]
    for group, counts in sub.items():  # every group reaches its target (boosting copies come on top)
        assert counts["target"] is not None and counts["after"] >= counts["target"], (group, counts)
    rare = [group for group in sub if not group.endswith("/0")]
    if not rare:
        pytest.skip("the re-audit found no rare sub-cluster in this run (see the docstring)")
    for group in rare:
        main = sub[group.split("/")[0] + "/0"]
        assert sub[group]["growth"] > main["growth"], (group, sub[group], main)
    assert max(sub, key=lambda g: sub[g]["growth"]) in rare
    if "triangle/1" in rare:  # the planted sub-group: its members are the ones in it
        planted = set(truth.loc[truth["issue"] == "subgroup", "sample_id"])
        train = fixed.manifest[(fixed.manifest["split"] == "train") & fixed.manifest["action"].isin(["keep", "relabel"])]
        in_group = set(train.loc[train["group"] == "triangle/1", "source_id"])
        assert in_group and in_group <= planted, in_group - planted


def test_summary_counts_before_and_after(fixed):
    checks = fixed.summary["checks"]
    assert 18 <= checks["label_issues"]["before"] <= 26 and checks["label_issues"]["repaired"] <= 2  # measured 19-23
    for check in ("corrupt", "exact_duplicates", "split_leakage"):
        assert checks[check]["before"] > 0 and checks[check]["repaired"] == 0
    table = fixed.table
    assert table["after"].sum() == BUDGET and table["before"].sum() == 564
    assert (table["after"] == table["before"] - table["relabel_out"] + table["relabel_in"] - table["removed"]
            + table["copies"] + table["boost"]).all()
    assert fixed.before.summary["samples"] == 564
    assert set(fixed.steps.values()) == {"done"}
    # the final audit runs the checks that need no model: the model checks end at the re-audit
    assert checks["label_issues"]["after"] is None and checks["dark"]["after"] is not None
    assert "label_issues" not in set(fixed.audit.findings["check"])


def test_augmentation_screen_is_recorded_and_applied(fixed):
    choice = fixed.summary["choices"]["augmentation"]
    screen = choice["screen"]
    assert screen["sample"] == 100 and set(screen["flagged"]) == set(RANDAUGMENT_OPS)
    assert choice["spec"]["exclude_ops"] == screen["exclude_ops"]
    assert all(screen["flagged"][op] > screen["originals_flagged"] + screen["tolerance"] for op in screen["exclude_ops"])
    drawn = {d["op"] for t in fixed.manifest["transform"] if t for d in json.loads(t).get("randaugment", [])}
    assert drawn and not drawn & set(screen["exclude_ops"])


def test_source_is_untouched(fixed, source_digest):
    assert tree_digest(SAMPLE_DATA) == source_digest


def test_interrupted_rerun_completes_byte_identical(fixed, tmp_path, monkeypatch):
    out = tmp_path / "again"
    real = augment_module.link_or_copy
    calls = []

    def ctrl_c_during_augment(source, target):
        if "5-augment" in str(target):
            calls.append(target)
            if len(calls) > 40:
                raise KeyboardInterrupt
        return real(source, target)

    monkeypatch.setattr(augment_module, "link_or_copy", ctrl_c_during_augment)
    with pytest.raises(KeyboardInterrupt):
        datacheck.fix(SAMPLE_DATA, out, budget=BUDGET, workers=2)
    assert json.loads((out / "fix.json").read_text())["status"] == "running"
    assert not (out / "manifest.csv").exists() and not (out / "steps" / "5-augment" / "fix-step.json").exists()
    monkeypatch.undo()
    marker = json.loads((out / "steps" / "5-augment" / "augment.json").read_text())
    assert marker["status"] == "running" and len(marker["boost_choice"]["rows"]["source_id"]) > 0

    def train_again(*args, **kwargs):
        raise AssertionError("the boosting copies were chosen before Ctrl-C: the rerun reuses them")

    monkeypatch.setattr(boost_module, "select_boost", train_again)
    result = datacheck.fix(SAMPLE_DATA, out, budget=BUDGET, workers=2)
    assert result.steps == {"audit": "reused", "relabel": "reused", "reaudit": "reused", "balance": "reused",
                            "augment": "done", "output": "done", "final_audit": "done"}
    assert result.summary["changes"]["augment"]["skipped_existing"] == 40  # the files made before Ctrl-C
    # same dataset and seed, another folder: the same bytes
    assert (out / "manifest.csv").read_bytes() == (fixed.out / "manifest.csv").read_bytes()
    assert (out / "review.csv").read_bytes() == (fixed.out / "review.csv").read_bytes()
    assert json.loads((out / "fix.json").read_text())["status"] == "complete"


def test_a_rerun_restores_deleted_outputs(fixed, tmp_path):
    """A complete fix whose manifest, review queue or dataset folder was deleted makes them again
    (it was an internal error, or a success that left them missing)."""
    out = tmp_path / "copy"
    shutil.copytree(fixed.out, out, symlinks=True)
    (out / "manifest.csv").unlink()
    (out / "review.csv").unlink()
    result = datacheck.fix(SAMPLE_DATA, out, budget=BUDGET, workers=2)
    assert result.steps["balance"] == "reused" and result.steps["output"] == "done"
    assert (out / "manifest.csv").read_bytes() == (fixed.out / "manifest.csv").read_bytes()
    assert (out / "review.csv").read_bytes() == (fixed.out / "review.csv").read_bytes()


def test_a_rerun_restores_a_deleted_image_of_the_result(fixed, tmp_path):
    """One image deleted from a complete fix's dataset folder: the rerun notices and makes it again."""
    out = tmp_path / "copy"
    shutil.copytree(fixed.out, out, symlinks=True)
    listed = pd.read_csv(out / "manifest.csv", dtype=str)["path"]
    victim = out / listed.iloc[len(listed) // 2]
    original = victim.read_bytes()
    victim.unlink()
    result = datacheck.fix(SAMPLE_DATA, out, budget=BUDGET, workers=2)
    assert result.steps["augment"] == "reused" and result.steps["output"] == "done"
    assert victim.read_bytes() == original
    assert (out / "manifest.csv").read_bytes() == (fixed.out / "manifest.csv").read_bytes()
    assert sum(1 for p in (out / "dataset").rglob("*") if p.is_file()) == len(listed)


def test_a_rerun_redoes_an_edited_manifest_and_a_final_audit_missing_its_findings(fixed, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(fixed.out, out, symlinks=True)
    lines = (out / "manifest.csv").read_text().splitlines(keepends=True)
    (out / "manifest.csv").write_text("".join(lines[:100]))  # cut short: every listed file still there
    (out / "steps" / "7-final_audit" / "findings.parquet").unlink()
    result = datacheck.fix(SAMPLE_DATA, out, budget=BUDGET, workers=2)
    assert result.steps["augment"] == "reused" and result.steps["output"] == "done" and result.steps["final_audit"] == "done"
    assert (out / "manifest.csv").read_bytes() == (fixed.out / "manifest.csv").read_bytes()
    assert len(result.manifest) == BUDGET and (out / "steps" / "7-final_audit" / "findings.parquet").is_file()


def test_cli_reuses_a_complete_fix(fixed):
    result = invoke("fix", SAMPLE_DATA, "--out", fixed.out, "--budget", BUDGET, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == BUDGET and {s["status"] for s in summary["steps"].values()} == {"reused"}
    assert "Rows per class" in result.stderr and f"800 rows for a budget of {BUDGET}" in result.stderr


# --------------------------------------------------------------------------- refusals


def test_changed_dataset_and_other_settings_are_refused(sample_copy, tmp_path):
    out = tmp_path / "fix"

    def ctrl_c(stage, done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # interrupted before the first audit: fix.json is written
        datacheck.fix(sample_copy, out, budget=BUDGET, progress=ctrl_c)
    assert json.loads((out / "fix.json").read_text())["status"] == "running"
    assert_one_line_error(invoke("fix", sample_copy, "--out", out, "--budget", 900), 2, "other settings",
                          "budget 800, now 900")
    moved = next((sample_copy / "train" / "circle").iterdir())
    shutil.move(moved, sample_copy / "train" / "square" / moved.name)
    assert_one_line_error(invoke("fix", sample_copy, "--out", out, "--budget", BUDGET), 3, "changed since the fix")


def test_usage_errors(sample_copy, tmp_path):
    assert_one_line_error(invoke("fix", sample_copy, "--out", sample_copy / "fixed"), 2, "into the audited dataset")
    assert_one_line_error(invoke("fix", sample_copy, "--out", tmp_path / "a", "--budget", 100), 2,
                          "below the 120 val/test rows")
    assert_one_line_error(invoke("fix", sample_copy, "--out", tmp_path / "b", "--budget", 0), 2, "--budget")
    # refused before the audit trains anything, and nothing is written
    assert_one_line_error(invoke("fix", sample_copy, "--out", tmp_path / "huge", "--budget", 10**8), 2,
                          "over the limit of 44,400")
    assert not (tmp_path / "huge").exists()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    assert_one_line_error(invoke("fix", sample_copy, "--out", tmp_path / "c"), 2, "not an empty folder")
    config = tmp_path / "fix.toml"
    config.write_text("[fix]\nbudget = -3\n")
    assert_one_line_error(invoke("fix", sample_copy, "--out", tmp_path / "d", "--config", config), 2, "fix.budget")
    config.write_text("[augment]\nmagnitude = 99\n")
    assert_one_line_error(invoke("fix", sample_copy, "--out", tmp_path / "e", "--config", config), 2, "magnitude")
    config.write_text("[nope]\n")
    assert_one_line_error(invoke("fix", sample_copy, "--out", tmp_path / "f", "--config", config), 2, "[nope]")
    # refused before --out is made, so the corrected command can use it (it once held the bad settings)
    assert_one_line_error(invoke("fix", sample_copy, "--out", tmp_path / "g", "--device", "cuda:7"), 2, "cuda:7")
    config.write_text('[audit]\nmodel = "nope"\n')
    assert_one_line_error(invoke("fix", sample_copy, "--out", tmp_path / "h", "--config", config), 2, "unknown model")
    config.write_text(f'[audit]\nmodel = "resnet18"\nweights = "{tmp_path / "none.pth"}"\n')
    assert_one_line_error(invoke("fix", sample_copy, "--out", tmp_path / "i", "--config", config), 2, "none.pth")
    assert not any((tmp_path / name).exists() for name in "abdefghi")


def test_a_result_short_of_the_budget_says_why(tiny_dataset, tmp_path, monkeypatch):
    """Boosting that cannot make every copy reserved for it (too few candidates: unreadable or
    screened out) leaves the result short of the budget: a note says by how much and why
    (before, only the summary's ``filled`` said so)."""

    real_select = boost_module.select_boost
    # one misclassified val sample, and one candidate fewer than asked for
    monkeypatch.setattr(boost_module, "validation_errors",
                        lambda frame, outputs: np.flatnonzero((frame["split"] == "val").to_numpy())[:1])
    monkeypatch.setattr(boost_module, "select_boost", lambda *args, **kwargs: real_select(*args, **kwargs).iloc[:-1])
    config = tmp_path / "fix.toml"
    config.write_text('[audit]\nchecks = ["image_properties"]\n\n[train]\nepochs = 2\n')
    result = datacheck.fix(tiny_dataset, tmp_path / "out", budget=40, config=config, workers=0)
    assert result.summary["choices"]["boost"]["copies"] == 3  # 5 per error, at most 10 % of the 36 training rows
    assert result.summary["rows"] == 39 and not result.summary["filled"]
    assert "the result has 39 rows, 1 short of the budget of 40: boosting made 2 of the 3 copies reserved for it" \
        in result.notes


def test_steps_turned_off_and_config_sections(tiny_dataset, tmp_path):
    """No relabelling, balancing or boosting, and audit checks that train no model (seconds):
    the classes grow by the same factor to the budget, with the [augment] policy of the config."""
    before = tree_digest(tiny_dataset)
    config = tmp_path / "fix.toml"
    config.write_text('[fix]\nbalance = false\n\n[augment]\npolicy = "affine"\ndegrees = 5\n\n'
                      '[audit]\nchecks = ["image_properties", "exact_duplicates"]\n')
    out = tmp_path / "out"
    result = invoke("fix", tiny_dataset, "--out", out, "--budget", 40, "--config", config, "--no-relabel",
                    "--no-boost", "--workers", 0, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {k: s["status"] for k, s in summary["steps"].items()} == {
        "audit": "done", "relabel": "skipped", "reaudit": "skipped", "balance": "done", "augment": "done",
        "output": "done", "final_audit": "done"}
    m = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert len(m) == 40 and (m["split"] == "val").sum() == 4
    assert m[m["split"] == "train"]["label"].value_counts().to_dict() == {"cat": 18, "dog": 18}  # 6 -> 18 each
    originals = m[m["action"] == "keep"]
    assert len(originals) == 16 and (originals["source_id"] == originals["sample_id"]).all()
    copies = m[m["action"] == "copy"]
    assert len(copies) == 24 and all(json.loads(t)["policy"] == "affine" and json.loads(t)["degrees"] == 5.0
                                     for t in copies["transform"])
    assert not (out / "review.csv").exists() and summary["choices"]["boost"]["copies"] == 0
    assert set(summary["checks"]) == {"corrupt", "dark", "light", "blurry", "noisy", "low_information", "odd_size",
                                      "odd_aspect_ratio", "grayscale", "exact_duplicates", "issue_score"}
    assert tree_digest(tiny_dataset) == before


def test_manifest_kept_apart_from_its_images_with_root(tiny_dataset, tmp_path):
    """A manifest file elsewhere with absolute paths (as the downstream benchmark writes one):
    without --root its paths leave its folder (exit 3); with --root the fix reads the images.
    Balancing is on and the audit is too small for sub-clusters: classes are balanced instead."""
    frame = datacheck.load_manifest(tiny_dataset).frame
    listed = tmp_path / "lists" / "subset.csv"
    listed.parent.mkdir()
    subset = frame[frame["label"] == "cat"].assign(path=lambda f: [str(tiny_dataset / p) for p in f["path"]])
    subset.to_csv(listed, index=False)
    config = tmp_path / "fix.toml"
    config.write_text('[audit]\nchecks = ["image_properties"]\n')
    args = ["fix", listed, "--budget", 20, "--config", config, "--no-relabel", "--no-boost", "--workers", 0]
    refused = invoke(*args, "--out", tmp_path / "refused")
    assert_one_line_error(refused, 3, "escapes")
    result = invoke(*args, "--out", tmp_path / "out", "--root", tiny_dataset, "--json")
    assert result.exit_code == 0, result.output
    m = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype=str, keep_default_na=False)
    assert len(m) == 20 and set(m["label"]) == {"cat"}
    assert set(m.loc[m["action"] == "keep", "source_id"]) == set(subset["sample_id"])
    assert json.loads((tmp_path / "out" / "fix.json").read_text())["root"] == str(tiny_dataset.resolve())
    # 12 training images: the clusters check splits no class, so fix balances by class and says so
    targets = json.loads(result.stdout)["choices"]["targets"]
    assert targets["strategy"] == "classes" and "scored no sample" in targets["strategy_rule"]


def test_the_final_audit_keeps_the_gates_it_can_apply():
    """Without the model checks, gates on them (and on label_fused, made from them) are left to
    the re-audit; issue_score is still fused from the image checks, so its gate stays."""
    from datacheck.actions.fix import _final_audit_config
    from datacheck.config import default_config

    cfg = default_config()
    cfg["audit"]["fail_on"] = "issue_score>5%,label_fused>0,aum>1,dark>0,image_properties>10%"
    assert _final_audit_config(cfg, False)["audit"]["fail_on"] == "issue_score>5%,dark>0,image_properties>10%"
    assert _final_audit_config(cfg, True)["audit"]["fail_on"] == cfg["audit"]["fail_on"]


def test_an_out_that_cannot_be_a_folder_is_a_usage_error(tmp_path):
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")  # a link to a folder that does not exist
    assert_one_line_error(invoke("fix", SAMPLE_DATA, "--out", dangling), 2, "is a broken symlink, not a folder")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert_one_line_error(invoke("fix", SAMPLE_DATA, "--out", loop), 2, "is a broken symlink, not a folder")


def test_the_final_audit_judges_image_properties_by_the_reaudits_cuts(fixed):
    """The result is measured with the ruler the repaired set was: cuts learned again on the
    result would move with its copies (here one more image counted dark after than before)."""
    final = json.loads((fixed.out / "steps" / "7-final_audit" / "summary.json").read_text())["checks"]
    reaudit = json.loads((fixed.out / "steps" / "3-reaudit" / "summary.json").read_text())["checks"]
    for check in ("dark", "light", "blurry", "noisy", "low_information", "odd_size", "odd_aspect_ratio"):
        cut, learned = final[check]["threshold"], reaudit[check]["threshold"]
        assert Path(cut["learned_in"]).resolve() == (fixed.out / "steps" / "3-reaudit").resolve()
        assert (cut["center"], cut["scale"]) == (learned["center"], learned["scale"])
    # Copies are screened against these very cuts, so the result has no more such images than the repaired set.
    counts = fixed.summary["checks"]
    for check in ("dark", "light", "blurry", "noisy", "low_information"):
        assert counts[check]["after"] <= counts[check]["repaired"], (check, counts[check])

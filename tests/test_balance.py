"""`datacheck balance`: group targets, the cap, flagged drops, coreset plans, outputs, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import datacheck
from datacheck.actions.balance import BalanceOptions, apply_plan, cap_counts, group_sizes, plan_balance
from datacheck.detectors.coreset import NEAR
from datacheck.detectors.registry import list_detectors
from datacheck.errors import UsageError
from datacheck.manifest import load_manifest

from .conftest import SAMPLE_DATA, assert_one_line_error, invoke, tree_digest


def frame_of(rows):
    """A manifest frame from ``(sample_id, label, split)`` tuples."""
    frame = pd.DataFrame(rows, columns=["sample_id", "label", "split"])
    frame.insert(1, "path", frame["sample_id"])
    return frame.astype("string")


def finding(sample_id, check, is_issue=False, **details):
    return {"sample_id": sample_id, "check": check, "is_issue": is_issue, "details": json.dumps(details)}


@pytest.fixture
def clustered():
    """Class a: sub-cluster 0 of 10 samples, sub-cluster 1 of 2; class b: one of 5; 3 val rows."""
    rows = [(f"a0-{i}", "a", "train") for i in range(10)] + [(f"a1-{i}", "a", "train") for i in range(2)]
    rows += [(f"b0-{i}", "b", "train") for i in range(5)] + [(f"v{i}", "a", "val") for i in range(3)]
    frame = frame_of(rows)
    findings = pd.DataFrame([finding(s, "clusters", cluster=int(s[1]) if s[0] != "v" else 0)
                             for s in frame["sample_id"]])
    return frame, findings


def test_subclusters_reach_the_target_by_downsampling_and_copies(clustered):
    frame, findings = clustered
    plan = plan_balance(frame, findings, BalanceOptions(strategy="subclusters", target=4, seed=3))
    assert group_sizes(plan).to_dict() == {"a/0": 4, "a/1": 4, "b/0": 4}
    by = plan.set_index("sample_id")
    assert (by.loc[[f"a0-{i}" for i in range(10)], "action"] == "drop").sum() == 6
    assert by.loc[["a1-0", "a1-1"], "copies"].tolist() == [1, 1]  # 2 copies spread over 2 sources
    assert by.loc[[f"b0-{i}" for i in range(5)], "action"].value_counts().to_dict() == {"keep": 4, "drop": 1}
    assert (by.loc[["v0", "v1", "v2"], "action"] == "keep").all()  # val is never balanced
    assert by.loc["a1-0", "reason"] == "a/1: 2 below the target 4"
    assert json.loads(by.loc["a1-0", "transform"]) == {} and by.loc["a0-0", "transform"] == ""
    assert len(apply_plan(frame, plan)) == 4 + 2 + 4 + 3


def test_plan_is_deterministic_per_seed_and_ignores_row_order(clustered):
    frame, findings = clustered
    options = BalanceOptions(strategy="subclusters", target=3, seed=7)
    plan = plan_balance(frame, findings, options).set_index("sample_id")
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    again = plan_balance(shuffled, findings, options).set_index("sample_id").loc[plan.index]
    assert plan["action"].equals(again["action"]) and plan["copies"].equals(again["copies"])
    other = plan_balance(frame, findings, BalanceOptions(strategy="subclusters", target=3, seed=8))
    assert set(other.loc[other["action"] == "drop", "sample_id"]) != set(plan.index[plan["action"] == "drop"])


def test_cap_spreads_by_water_filling():
    assert cap_counts({"a": 10, "b": 3, "c": 10}, 15, seed=0) == {"a": 6, "b": 3, "c": 6}
    capped = cap_counts({"a": 10, "b": 3, "c": 10}, 16, seed=0)
    assert sum(capped.values()) == 16 and capped["b"] == 3 and sorted([capped["a"], capped["c"]]) == [6, 7]
    assert cap_counts({"a": 2}, 5, seed=0) == {"a": 2}


def test_max_total_counts_every_split_and_copies(clustered):
    frame, findings = clustered
    plan = plan_balance(frame, findings, BalanceOptions(strategy="subclusters", target=4, max_total=12, seed=0))
    sizes = group_sizes(plan)
    assert sizes.sum() + 3 == 12 and sizes.to_dict() == {"a/0": 3, "a/1": 3, "b/0": 3}
    assert plan["reason"].str.startswith("over the --max-total cap").sum() == 1 + 1  # a/0 and b/0 trimmed below 4
    with pytest.raises(UsageError, match="below the 3 rows"):
        plan_balance(frame, findings, BalanceOptions(strategy="subclusters", target=4, max_total=2))


def test_drop_flagged_keeps_one_copy_per_duplicate_group():
    frame = frame_of([("t1", "a", "train"), ("t2", "a", "train"), ("t3", "a", "train"), ("t4", "a", "train"),
                      ("t5", "a", "train"), ("v1", "a", "val")])
    findings = pd.DataFrame([
        finding("t1", "exact_duplicates", False, representative="t1"),
        finding("t2", "exact_duplicates", True, representative="t1"),
        finding("t3", "near_duplicates", True, representative="t2"),  # joins the exact group
        finding("t1", "label_issues", True),  # the representative itself is a label issue
        finding("t5", "corrupt", True),
        finding("v1", "label_issues", True),  # val: left alone
    ])
    plan = plan_balance(frame, findings, BalanceOptions(strategy="classes", drop_flagged=True, target=2))
    by = plan.set_index("sample_id")
    assert by.loc["t1", "reason"] == "flagged: label_issues" and by.loc["t5", "reason"] == "flagged: corrupt"
    assert by.loc["t2", "action"] != "drop"  # the group's surviving copy
    assert by.loc["t3", "reason"] == "flagged: duplicate of t2"
    assert by.loc["v1", "action"] == "keep"
    assert group_sizes(plan).to_dict() == {"a": 2}  # t2, t4 kept


def test_corrupt_files_are_never_augmentation_sources():
    frame = frame_of([("t1", "a", "train"), ("t2", "a", "train"), ("t3", "b", "train")])
    findings = pd.DataFrame([finding("t2", "corrupt", True)])
    plan = plan_balance(frame, findings, BalanceOptions(strategy="classes", target=5)).set_index("sample_id")
    assert plan.loc["t1", "copies"] == 3 and plan.loc["t2", "copies"] == 0 and plan.loc["t3", "copies"] == 4


def test_with_drop_flagged_copies_come_from_images_no_check_doubts():
    """Class a: a dark, an odd-sized and a doubted-label image of four, so the clean one makes
    every copy; class b has only a blurry image, which still grows (rather than not at all).
    Without --drop-flagged the flags do not choose the sources."""
    frame = frame_of([("a1", "a", "train"), ("a2", "a", "train"), ("a3", "a", "train"), ("a4", "a", "train"),
                      ("b1", "b", "train")])
    findings = pd.DataFrame([finding("a1", "dark", True), finding("a2", "odd_size", True), finding("a3", "dark"),
                             finding("a4", "aum", True), finding("a4", "label_issues"), finding("b1", "blurry", True)])
    # a4: one label check of two doubts it, so it is kept (not dropped) but not copied
    plan = plan_balance(frame, findings, BalanceOptions(strategy="classes", target=7, drop_flagged=True))
    assert plan.set_index("sample_id")["copies"].to_dict() == {"a1": 0, "a2": 0, "a3": 3, "a4": 0, "b1": 6}
    plain = plan_balance(frame, findings, BalanceOptions(strategy="classes", target=9)).set_index("sample_id")
    assert (plain.loc[["a1", "a2", "a3", "a4"], "copies"] > 0).all()


def coreset_rows(medoid_of, near=None):
    """Coreset findings as the check writes them: ``medoid_of`` maps every scored sample (of
    every split) to its medoid, a medoid to itself; a medoid's ``weight`` counts the samples
    assigned to it, and ``near`` (sample id -> ids) gives some medoids their nearest."""
    weights, near = pd.Series(medoid_of).value_counts(), near or {}
    return pd.DataFrame([finding(s, "coreset", s not in weights, selected=s in weights, medoid=m,
                                 weight=int(weights.get(s, 0)), **({"near": near[s]} if s in near else {}))
                         for s, m in medoid_of.items()])


@pytest.fixture
def coreset_findings():
    """Class a: medoids a0 (4 samples), a1 (3), a2 (1) of 8; class b: b0 (3), b1 (1) of 4."""
    frame = frame_of([(f"a{i}", "a", "train") for i in range(8)] + [(f"b{i}", "b", "train") for i in range(4)])
    medoid_of = {"a0": "a0", "a1": "a1", "a2": "a2", "a3": "a0", "a4": "a0", "a5": "a0", "a6": "a1", "a7": "a1",
                 "b0": "b0", "b1": "b1", "b2": "b0", "b3": "b0"}
    return frame, coreset_rows(medoid_of)


def test_coreset_keeps_the_selection_with_weights(coreset_findings):
    frame, findings = coreset_findings
    plan = plan_balance(frame, findings, BalanceOptions(strategy="coreset", budget=0.4, seed=0)).set_index("sample_id")
    kept = plan.index[plan["action"] == "keep"].tolist()
    assert kept == ["a0", "a1", "a2", "b0", "b1"]
    assert plan.loc[kept, "weight"].tolist() == [4, 3, 1, 3, 1]
    assert plan.loc["a4", "reason"] == "outside the coreset"
    manifest = apply_plan(frame.reset_index(drop=True), plan.reset_index())
    assert manifest["weight"].tolist() == [4, 3, 1, 3, 1]
    # A smaller budget keeps the heaviest medoids: ceil(0.25 * 8) = 2 of a, 1 of b.
    small = plan_balance(frame, findings, BalanceOptions(strategy="coreset", budget=0.25, seed=0))
    assert small.loc[small["action"] == "keep", "sample_id"].tolist() == ["a0", "a1", "b0"]
    with pytest.raises(UsageError, match="above the audit's coreset"):
        plan_balance(frame, findings, BalanceOptions(strategy="coreset", budget=0.9))


def test_a_smaller_budget_gives_each_dropped_medoids_weight_to_its_nearest_kept_one():
    """The audit kept a third of class a (4 medoids of 12); a budget of a sixth keeps the two
    heaviest. The kept medoids kept their own weights (5 + 4 of the class's 12), so the weighted
    loss forgot a quarter of the class; now a2's weight goes to a0 (its nearest kept medoid: a3
    is dropped too) and a3's to a1, and the weights sum to the class's size again."""
    frame = frame_of([(f"a{i}", "a", "train") for i in range(12)])
    medoid_of = dict(zip(frame["sample_id"], ["a0", "a1", "a2", "a3"] + ["a0"] * 4 + ["a1"] * 3 + ["a2"]))
    findings = coreset_rows(medoid_of, near={"a0": ["a1", "a2"], "a1": ["a3", "a0"], "a2": ["a3", "a0", "a1"],
                                             "a3": ["a2", "a1", "a0"]})
    options = BalanceOptions(strategy="coreset", budget=1 / 6, seed=0)
    plan = plan_balance(frame, findings, options).set_index("sample_id")
    kept = plan[plan["action"] == "keep"]
    assert kept["weight"].to_dict() == {"a0": 7, "a1": 5} and kept["weight"].sum() == 12
    assert plan.loc["a2", "reason"] == ("coreset trimmed to the budget (2 kept in a); its weight 2 moved to its "
                                        "nearest kept medoid a0")
    assert plan.loc["a3", "reason"].endswith("its weight 1 moved to its nearest kept medoid a1")
    assert plan.loc[["a2", "a3"], "weight"].tolist() == [0, 0]
    assert apply_plan(frame, plan.reset_index())["weight"].sum() == 12


def test_an_audit_without_nearest_medoids_spreads_a_dropped_weight_in_proportion(coreset_findings):
    """Runs audited before the details named each medoid's nearest (``near``): a dropped medoid's
    weight is spread over the kept ones in proportion to their weights, whole numbers by largest
    remainders, so a class's weights still sum to its size."""
    frame, findings = coreset_findings
    assert not any("near" in json.loads(d) for d in findings["details"])
    plan = plan_balance(frame, findings, BalanceOptions(strategy="coreset", budget=0.25, seed=0)).set_index("sample_id")
    kept = plan[plan["action"] == "keep"]
    # a: a2's 1 over a0 (4) and a1 (3): 4/7 and 3/7, the larger remainder a0's; b: b1's 1 to b0
    assert kept["weight"].to_dict() == {"a0": 5, "a1": 3, "b0": 4}
    assert plan.loc["a2", "reason"] == ("coreset trimmed to the budget (2 kept in a); its weight 1 spread over the 2 "
                                        "kept medoids of a in proportion to their weights (the audit recorded no "
                                        "nearest medoids)")


def test_coreset_weights_count_the_training_samples_of_val_and_test_medoids():
    """The check selects over every split: a0's audit weight 4 counts a val sample, and the 3
    training samples of the val medoid v0 and the 2 of the test medoid t0 were carried by no
    kept medoid (a's weights summed 4 + 3 = 7 of its 10 training samples). Weights are now
    counted over the training split, and a val/test medoid's training samples go to its
    nearest kept medoid (``near``), else spread in proportion (b's w0, recorded without)."""
    frame = frame_of([(f"a{i}", "a", "train") for i in range(10)] + [(f"v{i}", "a", "val") for i in range(4)]
                     + [(f"t{i}", "a", "test") for i in range(3)] + [(f"b{i}", "b", "train") for i in range(4)]
                     + [("w0", "b", "val")])
    medoid_of = {"a0": "a0", "a2": "a0", "a3": "a0", "v1": "a0", "a1": "a1", "a4": "a1", "v2": "a1",
                 "v0": "v0", "a5": "v0", "a6": "v0", "a7": "v0", "v3": "v0",
                 "t0": "t0", "a8": "t0", "a9": "t0", "t1": "t0", "t2": "t0",
                 "b0": "b0", "b1": "b0", "w0": "w0", "b2": "w0", "b3": "w0"}
    findings = coreset_rows(medoid_of, near={"a0": ["a1", "v0", "t0"], "a1": ["v0", "a0", "t0"],
                                             "v0": ["t0", "a1", "a0"], "t0": ["v0", "a0", "a1"]})
    plan = plan_balance(frame, findings, BalanceOptions(strategy="coreset", budget=0.25, seed=0)).set_index("sample_id")
    kept = plan[(plan["split"] == "train") & (plan["action"] == "keep")]
    assert kept["weight"].to_dict() == {"a0": 3 + 2, "a1": 2 + 3, "b0": 2 + 2}
    assert plan.loc["v0", "reason"] == ("not in the training split: kept as is; the weight of its 3 training samples "
                                        "moved to its nearest kept medoid a1")
    assert plan.loc["t0", "reason"].endswith("the weight of its 2 training samples moved to its nearest kept medoid a0")
    assert plan.loc["w0", "reason"].endswith("spread over the 1 kept medoid of b in proportion to their weights "
                                             "(the audit recorded no nearest medoids)")
    assert plan.loc[plan["split"] != "train", "weight"].isna().all()
    # A tenth keeps only a0 (the heaviest by the audit): a1's, v0's and t0's training samples follow.
    tenth = plan_balance(frame, findings, BalanceOptions(strategy="coreset", budget=0.1, seed=0)).set_index("sample_id")
    assert tenth.loc["a0", "weight"] == 10 and tenth.loc["a1", "weight"] == 0
    assert tenth.loc["v0", "reason"].endswith("moved to its nearest kept medoid a0")  # t0, a1 not kept


def test_drop_flagged_passes_a_flagged_medoid_s_training_samples_on():
    """a1, a medoid, and a5, one of its samples, are label issues: with --drop-flagged both leave
    the training set and no weight stands for them, but a1's other samples (a6, a7) go to its
    nearest kept medoid; a0 kept its own 4 and the class summed 4 of the 6 it keeps standing."""
    frame = frame_of([(f"a{i}", "a", "train") for i in range(8)])
    medoid_of = {"a0": "a0", "a2": "a0", "a3": "a0", "a4": "a0", "a1": "a1", "a5": "a1", "a6": "a1", "a7": "a1"}
    findings = pd.concat([coreset_rows(medoid_of, near={"a0": ["a1"], "a1": ["a0"]}),
                          pd.DataFrame([finding(s, "label_issues", s in ("a1", "a5")) for s in medoid_of])])
    options = BalanceOptions(strategy="coreset", budget=0.25, drop_flagged=True, seed=0)
    plan = plan_balance(frame, findings, options).set_index("sample_id")
    assert plan.loc["a0", "weight"] == 6 and plan.loc[plan["action"] == "keep"].index.tolist() == ["a0"]
    assert plan.loc["a1", "reason"] == ("flagged: label_issues; the weight of its 2 training samples moved to its "
                                        "nearest kept medoid a0")
    assert plan.loc[["a1", "a5"], "weight"].isna().all()


@pytest.mark.parametrize("options, message", [
    (BalanceOptions(strategy="subclusters", target=3), "needs the clusters check"),
    (BalanceOptions(strategy="coreset"), "needs the coreset check"),
    (BalanceOptions(strategy="classes", target=0), "--target must be a positive integer"),
    (BalanceOptions(strategy="coreset", target=3), "does not apply"),
    (BalanceOptions(strategy="coreset", budget=1.5), "--budget must be in"),
    (BalanceOptions(strategy="classes", budget=0.5), "--budget applies only to --strategy coreset"),
    (BalanceOptions(strategy="other"), "--strategy must be one of"),
])
def test_bad_options(options, message):
    frame = frame_of([("t1", "a", "train")])
    with pytest.raises(UsageError, match=message):
        plan_balance(frame, pd.DataFrame([finding("t1", "corrupt")]), options)


# --------------------------------------------------------------------------- on sample_data


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """An audit of sample_data without a model (duplicates and image checks): seconds."""
    out = tmp_path_factory.mktemp("balance") / "quick"
    datacheck.audit(SAMPLE_DATA, out=out, checks=["exact_duplicates", "near_duplicates", "image_properties"], workers=0)
    return out


def test_classes_plan_on_sample_data_writes_plan_manifest_and_table(quick_run, tmp_path):
    before = tree_digest(SAMPLE_DATA)
    out = tmp_path / "plan"
    result = invoke("balance", quick_run, "--strategy", "classes", "--target", "40", "--drop-flagged",
                    "--max-total", "400", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"] == {"keep": 376, "drop": 176, "augment": 12, "copies": 12}
    assert "Training samples per class" in result.stderr and "star" in result.stderr
    plan = pd.read_parquet(out / "plan.parquet")
    sizes = group_sizes(plan)
    assert sizes.tolist() == [35] * 8  # 400 - 120 val rows = 280 = 8 classes x 35
    assert (plan.loc[plan["split"] == "val", "action"] == "keep").all()
    info = json.loads((out / "plan.json").read_text())
    assert info["options"]["max_total"] == 400 and info["seed"] == 0 and info["run"] == str(quick_run.resolve())
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) == 376 + 12 and set(manifest["sample_id"]) == set(plan.loc[plan["action"] != "drop", "sample_id"])
    assert tree_digest(SAMPLE_DATA) == before
    again = invoke("balance", quick_run, "--strategy", "classes", "--target", "30", "--out", out)  # an earlier plan
    assert again.exit_code == 0, again.output


def test_bad_input_exit_statuses(quick_run, tmp_path, sample_copy):
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    result = invoke("balance", quick_run, "--strategy", "classes", "--out", user)
    assert result.exit_code == 2 and "not an empty folder or an earlier balance plan" in result.stderr
    assert (user / "notes.txt").read_text() == "mine"
    assert invoke("balance", tmp_path / "nope", "--out", tmp_path / "p").exit_code == 2
    result = invoke("balance", quick_run, "--out", tmp_path / "p")  # subclusters without the clusters check
    assert result.exit_code == 2 and "needs the clusters check" in result.stderr
    assert invoke("balance", quick_run, "--strategy", "classes", "--target", "0", "--out", tmp_path / "p").exit_code == 2
    assert invoke("balance", quick_run, "--strategy", "classes", "--max-total", "50", "--out", tmp_path / "p").exit_code == 2
    assert invoke("balance", quick_run, "--strategy", "bogus", "--out", tmp_path / "p").exit_code == 2
    # A dataset changed since its audit: exit 3, nothing written.
    run = tmp_path / "copy-run"
    datacheck.audit(sample_copy, out=run, checks=["exact_duplicates"], workers=0)
    (sample_copy / "train" / "star" / "015374b3.png").unlink()
    result = invoke("balance", run, "--strategy", "classes", "--out", tmp_path / "p2")
    assert result.exit_code == 3 and "changed since the audit" in result.stderr
    assert not (tmp_path / "p2").exists()


def test_budget_without_coreset_is_refused_not_ignored(tmp_path):
    # --budget with --strategy classes was silently ignored (the plan kept every sample), while
    # --target with --strategy coreset is refused: both are usage errors now, before any work.
    for strategy in ("classes", "subclusters"):
        result = invoke("balance", tmp_path / "run", "--strategy", strategy, "--budget", "0.3", "--out", tmp_path / "p")
        assert_one_line_error(result, 2, f"--budget applies only to --strategy coreset, not {strategy}")
        with pytest.raises(UsageError, match=f"^budget applies only to strategy coreset, not {strategy}"):
            datacheck.balance(tmp_path / "run", tmp_path / "p", strategy=strategy, budget=0.3)  # the API too
    assert not (tmp_path / "p").exists()


# --------------------------------------------------------------------------- with the clusters detector

needs_clusters = pytest.mark.skipif("clusters" not in list_detectors(), reason="the clusters detector is not registered")
needs_coreset = pytest.mark.skipif("coreset" not in list_detectors(), reason="the coreset detector is not registered")


@pytest.fixture(scope="module")
def cluster_run(subgroup_audit):
    """sample_data audited with clusters, coreset (where registered), duplicates, image and label checks."""
    return subgroup_audit.run_dir


@needs_clusters
def test_subclusters_on_sample_data_reach_the_target_in_every_group(cluster_run, tmp_path, truth):
    before = tree_digest(SAMPLE_DATA)
    out = tmp_path / "plan"
    # A target above the planted sub-cluster's size (4-12 samples as measured, after the drops)
    # and far below the classes' typical ones (about 40-75).
    result = invoke("balance", cluster_run, "--strategy", "subclusters", "--target", "16", "--drop-flagged", "--out", out)
    assert result.exit_code == 0, result.output
    plan = pd.read_parquet(out / "plan.parquet")
    sizes = group_sizes(plan)
    assert (sizes == 16).all(), sizes[sizes != 16]
    train = plan[plan["split"] == "train"]
    scored = train[train["group"].notna()]
    assert scored["group"].nunique() == len(sizes) >= 8
    assert plan["copies"].sum() > 0 and (plan["action"] == "drop").sum() > 0
    # The planted rare style (triangles pointing down) is one thin sub-cluster, kept and copied.
    # The model may doubt a few of its 8 samples (label_issues flags them: they are left out
    # of the sub-clusters and dropped; measured 2 of the 6 in train at seed 1).
    planted = plan.set_index("sample_id").loc[truth.loc[truth["issue"] == "subgroup", "sample_id"]]
    kept = planted[planted["action"] != "drop"]
    assert kept["group"].nunique() == 1 and len(kept) >= len(planted) / 2
    assert plan.loc[plan["group"] == kept["group"].iloc[0], "copies"].sum() > 0  # measured: 12 copies (4 -> 16)
    assert tree_digest(SAMPLE_DATA) == before
    # The cap: 200 rows in all, 120 of them val: 80 spread evenly over the groups (sizes differ by at most one).
    capped = tmp_path / "capped"
    assert invoke("balance", cluster_run, "--target", "12", "--drop-flagged", "--max-total", "200",
                  "--out", capped).exit_code == 0
    capped_sizes = group_sizes(pd.read_parquet(capped / "plan.parquet"))
    assert capped_sizes.sum() == 200 - 120 and capped_sizes.max() - capped_sizes.min() <= 1


@needs_clusters
@needs_coreset
def test_coreset_plan_on_sample_data(cluster_run, tmp_path):
    out = tmp_path / "core"
    result = invoke("balance", cluster_run, "--strategy", "coreset", "--budget", "0.5", "--out", out)
    assert result.exit_code == 0, result.output
    plan = pd.read_parquet(out / "plan.parquet")
    train = plan[plan["split"] == "train"]
    kept = train[train["action"] == "keep"]
    assert abs(len(kept) / len(train) - 0.5) <= 0.05
    unscored = kept["reason"] == "not scored by coreset: kept as is"  # the corrupt file: no model output
    assert kept["weight"].isna().sum() == unscored.sum() <= 1 and (kept.loc[~unscored, "weight"] >= 1).all()
    reasons = train.loc[train["action"] == "drop", "reason"]
    assert (reasons.eq("outside the coreset") | reasons.str.startswith("coreset trimmed to the budget")).all()
    manifest = load_manifest(SAMPLE_DATA).frame
    assert len(pd.read_csv(out / "manifest.csv")) == len(manifest) - (plan["action"] == "drop").sum()
    assert np.isin(plan.loc[plan["split"] == "val", "action"], ["keep"]).all()


@needs_clusters
@needs_coreset
@pytest.mark.parametrize("options", [["--budget", "0.5"], ["--budget", "0.25"],
                                     ["--budget", "0.5", "--max-total", "300"], ["--budget", "0.25", "--drop-flagged"]])
def test_coreset_weights_sum_to_each_class_s_training_samples_on_sample_data(cluster_run, tmp_path, options):
    """sample_data has a val split, where the check selects medoids too: in the plan and in the
    written manifest, a class's weights sum to its training samples scored by the check less
    those dropped as flagged (before, at a budget of 0.5: circle 52 of 59, ring 55 of 60)."""
    out = tmp_path / "core"
    assert invoke("balance", cluster_run, "--strategy", "coreset", *options, "--out", out).exit_code == 0
    plan = pd.read_parquet(out / "plan.parquet")
    train = plan[plan["split"] == "train"]
    stands = train[~train["reason"].str.startswith(("not scored by coreset", "flagged"))]
    expected = stands.groupby("label").size()
    assert plan.groupby("label")["weight"].sum().to_dict() == expected.to_dict()
    written = pd.read_csv(out / "manifest.csv")
    assert written[written["split"] == "train"].groupby("label")["weight"].sum().to_dict() == expected.to_dict()
    assert plan.loc[plan["split"] == "val", "reason"].str.contains("training sample").any()  # val medoids carried
    if "--max-total" in options:
        assert train["reason"].str.startswith("over the --max-total cap").any()


@needs_coreset
def test_a_halved_budget_carries_every_class_s_weights_on_the_audited_features():
    """The coreset check on planted gradients (two classes of 300 and 200), its budget halved by
    balance: each class's kept weights sum to its size, and a dropped medoid's weight moves to
    its nearest kept medoid (by the features, brute force) whenever one of its 8 recorded
    nearest is kept, which is almost all of them."""
    from datacheck.detectors import create_detector
    from datacheck.features.arrays import manifest_for_outputs
    from datacheck.features.model import ModelOutputs
    from datacheck.testing import make_context

    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1], [300, 200])
    probs = rng.dirichlet(np.full(4, 0.5), size=500).astype(np.float32)
    outputs = ModelOutputs(["a", "b", "c", "d"], labels, probs, None, "test")
    ctx = make_context(manifest_for_outputs(outputs, "arrays"), outputs=outputs, seed=0)
    findings = create_detector("coreset", budget=0.5).run(ctx)
    details = findings.set_index("sample_id")["details"].map(json.loads)
    medoid_ids = details.index[details.map(lambda d: d["selected"])]
    assert all(len(details[m]["near"]) == NEAR for m in medoid_ids) and "near" not in details.drop(medoid_ids).iloc[0]
    frame = ctx.manifest.frame
    plan = plan_balance(frame, findings, BalanceOptions(strategy="coreset", budget=0.25, seed=0)).set_index("sample_id")
    moved = 0
    for c, name in enumerate("ab"):
        rows = np.flatnonzero(labels == c)
        ids = frame["sample_id"].to_numpy()[rows]
        gradient = probs[rows] - np.eye(4, dtype=np.float32)[c]
        is_medoid, kept = np.isin(ids, medoid_ids), (plan.loc[ids, "action"] == "keep").to_numpy()
        assert kept.sum() == np.ceil(0.25 * len(rows)) and plan.loc[ids[kept], "weight"].sum() == len(rows)
        for i in np.flatnonzero(is_medoid & ~kept):
            reason = plan.loc[ids[i], "reason"]
            if "moved to its nearest kept medoid" in reason:
                nearest = ids[kept][np.linalg.norm(gradient[kept] - gradient[i], axis=1).argmin()]
                assert reason.endswith(f"moved to its nearest kept medoid {nearest}")
                moved += 1
            else:
                assert "none of its nearest medoids is kept" in reason
    assert moved >= 0.9 * (len(medoid_ids) - plan["action"].eq("keep").sum())


def test_python_errors_name_the_keywords_and_the_cli_the_options(tiny_dataset, tmp_path):
    """datacheck.balance names its keywords (max_total, budget, strategy, out, checks), not the
    CLI's options; a non-number budget or max_total, or a drop_flagged that is no bool, is a
    UsageError, not a TypeError; numpy numbers pass."""
    run = datacheck.audit(tiny_dataset, out=tmp_path / "run", checks=["image_properties"], workers=0).run_dir
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    for kwargs, message in [
        ({"max_total": "x"}, r"^max_total must be a positive integer, got 'x'$"),  # was a TypeError from '<'
        ({"max_total": 1.5}, r"^max_total must be a positive integer, got 1\.5$"),  # was 'below the 4 rows'
        ({"strategy": "coreset", "budget": "x"}, r"^budget must be in \(0, 1\], got 'x'$"),  # was a TypeError
        ({"drop_flagged": "no"}, r"^drop_flagged must be True or False, got 'no'$"),  # was numpy's TypeError
        ({"target": 0}, r"^target must be a positive integer, got 0$"),
        ({"max_total": 3}, r"^max_total 3 is below the 4 rows balancing does not touch"),
        ({"target": 10**6}, r"^target 1000000 would make .* choose a smaller target, or cap the result with max_total N "),
        ({"strategy": "coreset", "target": 3}, r"^target does not apply to strategy coreset \(use budget\)$"),
        ({"strategy": "subclusters"}, r"^strategy subclusters needs the clusters check; audit with checks including "),
        ({"seed": -1}, r"^seed must be an integer in \[0, 4294967295\], got -1$"),
    ]:
        with pytest.raises(UsageError, match=message):
            datacheck.balance(run, tmp_path / "plan", **{"strategy": "classes", **kwargs})
    with pytest.raises(UsageError, match=r"^out .*busy exists and is not an empty folder or an earlier balance plan"):
        datacheck.balance(run, busy, strategy="classes")
    assert not (tmp_path / "plan").exists() and (busy / "mine.txt").read_text() == "keep me"
    datacheck.balance(run, tmp_path / "plan", strategy="classes", target=np.int64(8), max_total=np.int32(40),
                      seed=np.int64(3), drop_flagged=np.True_)
    info = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert info["seed"] == 3 and info["options"]["target"] == 8 and info["options"]["drop_flagged"] is True
    assert_one_line_error(invoke("balance", run, "--strategy", "classes", "--max-total", 3, "--out", tmp_path / "p"), 2,
                          "error: --max-total 3 is below the 4 rows")
    assert_one_line_error(invoke("balance", run, "--strategy", "coreset", "--budget", 2, "--out", tmp_path / "p"), 2,
                          "error: --budget must be in (0, 1], got 2.0")
    assert_one_line_error(invoke("balance", run, "--out", tmp_path / "p"), 2,
                          "error: --strategy subclusters needs the clusters check; audit with --checks including")


def test_drop_flagged_says_which_classes_it_leaves_without_training_rows(tmp_path):
    """Class b is three exact copies of class a's images: --drop-flagged keeps a's copies and
    drops all of b. The plan is still written (not an error), and one note line on stderr (past
    --quiet, as fix's) and the JSON's notes name b; from Python, ``notes`` names the keyword."""
    from PIL import Image

    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    for name in ("a", "b", "c"):
        (data / name).mkdir(parents=True)
    for name in ("a", "c"):
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(data / name / f"{i}.png")
    for i in range(3):
        (data / "b" / f"{i}.png").write_bytes((data / "a" / f"{i}.png").read_bytes())
    run = datacheck.audit(data, out=tmp_path / "run", checks=["exact_duplicates"], workers=0, cache_dir="off").run_dir
    before = tree_digest(data)

    result = invoke("balance", run, "--strategy", "classes", "--drop-flagged", "--out", tmp_path / "plan", "-q", "--json")
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("datacheck: note: class b left without training rows: "), lines
    assert "--drop-flagged dropped all its training samples, flagged by the audit (duplicates)" in lines[0]
    assert json.loads(result.stdout)["notes"] == [lines[0].removeprefix("datacheck: note: ")]
    assert (tmp_path / "plan" / "plan.parquet").exists() and (tmp_path / "plan" / "manifest.csv").exists()
    assert tree_digest(data) == before

    plan = datacheck.balance(run, tmp_path / "plan2", strategy="classes", drop_flagged=True)
    assert len(plan.notes) == 1 and "drop_flagged dropped all its training samples" in plan.notes[0]
    assert datacheck.balance(run, tmp_path / "plan3", strategy="classes").notes == []
    assert invoke("balance", run, "--strategy", "classes", "--out", tmp_path / "plan4").stderr.count("note:") == 0

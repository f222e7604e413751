"""`datacheck augment`: planned copies, provenance, byte-identical reruns, resume, bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import datacheck
from datacheck.actions.transforms import DEFAULT_SPEC, augment_image, validate_spec
from datacheck.actions.augment_screen import MAX_DRAWS, CopyScreen, audit_cuts, screen_operations, screened_copy
from datacheck.actions.transforms import RANDAUGMENT_OPS
from datacheck.errors import UsageError
from datacheck.manifest import load_manifest

from .conftest import SAMPLE_DATA, assert_one_line_error, invoke, make_image, tree_digest


def copies_of(folder) -> dict[str, str]:
    """Digest of every augmented file under ``folder``."""
    return {p: d for p, d in tree_digest(folder).items() if "-aug" in p}


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    """A small classes plan of sample_data: every class to 30 training samples; star (24) gets 6 copies."""
    base = tmp_path_factory.mktemp("augment")
    run = base / "run"
    datacheck.audit(SAMPLE_DATA, out=run, checks=["exact_duplicates", "image_properties"], workers=0)
    result = invoke("balance", run, "--strategy", "classes", "--target", "30", "--out", base / "plan")
    assert result.exit_code == 0, result.output
    return base / "plan"


@pytest.fixture(scope="module")
def augmented(plan, tmp_path_factory):
    before = tree_digest(SAMPLE_DATA)
    out = tmp_path_factory.mktemp("augment-out") / "data"
    result = invoke("augment", plan, "--out", out, "--workers", "2", "--json")
    assert result.exit_code == 0, result.output
    assert tree_digest(SAMPLE_DATA) == before  # sources untouched
    return out, json.loads(result.stdout)


def test_writes_exactly_the_planned_copies_with_provenance(plan, augmented):
    out, report = augmented
    planned = pd.read_parquet(plan / "plan.parquet")
    n_copies = int(planned["copies"].sum())
    assert n_copies == 6  # star: 24 training samples + 6 copies = 30; the other classes are trimmed to 30
    made = copies_of(out)
    assert len(made) == n_copies and report["counts"]["augmented"] == n_copies == report["counts"]["written"]
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    kept = planned[planned["action"] != "drop"]
    assert len(manifest) == len(kept) + n_copies
    copies = manifest[manifest["transform"] != ""]
    assert sorted(copies["path"]) == sorted(made)
    sources = planned.set_index("sample_id")
    for row in copies.itertuples():
        with Image.open(out / row.path) as im:
            im.load()
            with Image.open(SAMPLE_DATA / row.source_id) as src:
                assert im.size == src.size
        assert sources.loc[row.source_id, "action"] == "augment" and row.label == sources.loc[row.source_id, "label"]
        params = json.loads(row.transform)
        assert params["policy"] == "both" and isinstance(params["seed"], int) and 1 <= params["draws"] <= MAX_DRAWS
        assert set(params["affine"]) == {"angle", "translate", "scale", "shear"} and len(params["randaugment"]) == 2
    per_source = copies["source_id"].value_counts()
    assert (per_source == sources.loc[per_source.index, "copies"]).all()
    originals = manifest[manifest["transform"] == ""]
    assert (originals["source_id"] == originals["path"]).all()  # same layout as sample_data: same relative paths
    # The folder is a complete dataset: it audits again, and its manifest loads.
    assert len(load_manifest(out)) == len(manifest) == len(load_manifest(out / "manifest.csv"))


def test_rerun_with_the_same_seed_is_byte_identical(plan, augmented, tmp_path):
    out, _ = augmented
    again = tmp_path / "again"
    assert invoke("augment", plan, "--out", again, "--workers", "0").exit_code == 0  # other worker count too
    assert copies_of(again) == copies_of(out)
    other = tmp_path / "other-seed"
    assert invoke("augment", plan, "--out", other, "--workers", "0", "--seed", "1").exit_code == 0
    assert set(copies_of(other).values()).isdisjoint(copies_of(out).values())


def test_resume_skips_finished_files_and_makes_the_missing_ones(plan, tmp_path):
    out = tmp_path / "data"
    assert invoke("augment", plan, "--out", out, "--workers", "0").exit_code == 0
    first = copies_of(out)
    gone = sorted(first)[0]
    (out / gone).unlink()
    # what a SIGKILL leaves while a copy is being written: atomic_write's temporary file
    killed = (out / gone).parent / f".{(out / gone).name}.k1ll3d_x.tmp"
    killed.write_bytes(b"half a PNG")
    user_file = (out / gone).parent / "notes.tmp"  # not ours: kept
    user_file.write_text("mine")
    result = invoke("augment", plan, "--out", out, "--workers", "0", "--resume", "--json")
    assert result.exit_code == 0, result.output
    assert not killed.exists() and user_file.read_text() == "mine"
    user_file.unlink()
    counts = json.loads(result.stdout)["counts"]
    assert counts["written"] == 1 and counts["skipped_existing"] == counts["originals"] + len(first) - 1
    assert copies_of(out) == first
    result = invoke("augment", plan, "--out", out, "--resume", "--seed", "5")
    assert_one_line_error(result, 2, f"--resume: {out} was made with other settings (seed 0, now 5)")


def test_resume_with_other_settings_names_the_first_that_differs_and_both_values(plan, tmp_path):
    out = tmp_path / "data"
    assert invoke("augment", plan, "--out", out, "--workers", "0", "--magnitude", "9").exit_code == 0
    assert_one_line_error(invoke("augment", plan, "--out", out, "--resume", "--magnitude", "12"), 2,
                          "(magnitude 9, now 12); rerun with the same ones to continue it, or use a new folder")
    # a setting left to the plan is shown with the plan's value
    assert_one_line_error(invoke("augment", plan, "--out", out, "--resume", "--magnitude", "9", "--policy", "affine"),
                          2, '(policy "both", now "affine")')
    assert_one_line_error(invoke("augment", plan, "--out", out, "--resume", "--magnitude", "9", "--scale", "0.5", "2"),
                          2, "(scale [0.9, 1.1], now [0.5, 2.0])")
    assert_one_line_error(invoke("augment", plan, "--out", out, "--resume", "--magnitude", "9", "--boost-from", plan),
                          2, f'(boost_from null, now "{plan.resolve()}")')
    # settings given with the plan's own values, then left to the plan: the same in effect
    result = invoke("augment", plan, "--out", out, "--workers", "0", "--resume", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["written"] == 0
    again = tmp_path / "again"
    assert invoke("augment", plan, "--out", again, "--workers", "0", "--policy", "both", "--num-ops", "2",
                  "--magnitude", "9", "--scale", "0.9", "1.1").exit_code == 0
    assert invoke("augment", plan, "--out", again, "--workers", "0", "--resume").exit_code == 0
    assert copies_of(again) == copies_of(out)


def test_policies_and_a_grey_image(tmp_path):
    image = Image.open(make_image(tmp_path / "grey.png", 3, mode="L"))
    spec = validate_spec({"policy": "affine"})
    out, params = augment_image(image, spec, seed=11)
    again, _ = augment_image(image, spec, seed=11)
    assert out.mode == "L" and out.size == image.size and np.array_equal(np.asarray(out), np.asarray(again))
    assert "affine" in params and "randaugment" not in params
    _, params = augment_image(image, validate_spec({"policy": "randaugment", "num_ops": 3}), seed=11)
    assert "affine" not in params and len(params["randaugment"]) == 3
    assert not np.array_equal(np.asarray(augment_image(image, spec, seed=12)[0]), np.asarray(out))


@pytest.mark.parametrize("spec, message", [
    ({"policy": "mixup"}, "--policy must be one of"),
    ({"num_ops": 0}, "--num-ops"),
    ({"magnitude": 31}, "--magnitude"),
    ({"degrees": 200.0}, "--degrees"),
    ({"translate": 1.5}, "--translate"),
    ({"scale": [1.2, 0.8]}, "--scale"),
    ({"exclude_ops": ["Invert"]}, "unknown RandAugment operation 'Invert'"),
    ({"exclude_ops": "Solarize"}, "--exclude-ops must be a list"),
    ({"exclude_ops": list(RANDAUGMENT_OPS)}, "leaves RandAugment no operation"),
])
def test_bad_settings(spec, message):
    with pytest.raises(UsageError, match=message):
        validate_spec(spec)
    assert validate_spec({}) == DEFAULT_SPEC


def test_bad_input_exit_statuses(plan, augmented, tmp_path, sample_copy):
    out, _ = augmented
    result = invoke("augment", plan, "--out", out)
    assert result.exit_code == 2 and "is not empty" in result.stderr
    user = tmp_path / "user"
    user.mkdir()
    (user / "x.txt").write_text("mine")
    result = invoke("augment", plan, "--out", user, "--resume")
    assert result.exit_code == 2 and "not an augment output" in result.stderr
    assert invoke("augment", tmp_path / "no-plan", "--out", tmp_path / "o").exit_code == 2
    assert invoke("augment", plan, "--out", tmp_path / "o", "--magnitude", "40").exit_code == 2
    assert invoke("augment", plan, "--out", tmp_path / "o", "--scale", "1.2", "0.8").exit_code == 2
    assert invoke("augment", plan, "--out", tmp_path / "o", "--policy", "mixup").exit_code == 2
    # A plan whose dataset changed after the audit: exit 3, no copies made.
    run, plan2 = tmp_path / "run", tmp_path / "plan2"
    datacheck.audit(sample_copy, out=run, checks=["exact_duplicates"], workers=0)
    assert invoke("balance", run, "--strategy", "classes", "--target", "25", "--out", plan2).exit_code == 0
    with open(sample_copy / "train" / "star" / "015374b3.png", "ab") as fh:
        fh.write(b"\0")
    result = invoke("augment", plan2, "--out", tmp_path / "o2")
    assert result.exit_code == 3 and "changed since the audit" in result.stderr
    assert not (tmp_path / "o2").exists()


# --------------------------------------------------------------------------- data boosting


@pytest.fixture(scope="module")
def boost_inputs(plan):
    """The plan's run and manifest, with model outputs that get 3 val samples wrong (2 star, 1 ring)."""

    from datacheck.audit_run import open_run
    from datacheck.features.model import ModelOutputs, label_ids
    from datacheck.files.plan import read_plan

    info, planned = read_plan(plan)
    run = open_run(info.run)
    manifest = run.manifest()
    frame = manifest.frame
    classes, labels = label_ids(manifest)
    probs = np.eye(len(classes), dtype=np.float32)[labels]  # right everywhere ...
    val = frame["split"] == "val"
    wrong = [frame.index[val & (frame["label"] == c)][i] for c, i in (("star", 0), ("star", 1), ("ring", 0))]
    probs[wrong] = np.roll(probs[wrong], 1, axis=1)  # ... except these
    outputs = ModelOutputs(classes, labels, probs, None, "cross-validation")
    # Two epochs are enough to test the mechanics (the audit's config trains 20). The audit ran
    # on a GPU that this machine lacks: boosting trains where it can.
    config = {**run.info.config, "audit": {**run.info.config["audit"], "device": "cuda:7"}, "train": {"epochs": 2}}
    stub = SimpleNamespace(path=run.path, outputs=lambda: outputs, info=replace(run.info, config=config),
                           findings=run.findings)
    kept = frame.merge(planned[["sample_id", "action", "copies"]], on="sample_id")
    kept = kept[kept["action"] != "drop"]
    return stub, manifest, kept, frame.loc[wrong, "sample_id"].tolist()


def test_boost_adds_the_nearest_candidates_of_the_wrong_val_samples_classes(boost_inputs):
    from datacheck.actions.boost import select_boost

    run, manifest, kept, wrong = boost_inputs
    first = dict(zip(kept["sample_id"], kept["copies"]))
    chosen = select_boost(run, manifest, kept, first, seed=0, spec=DEFAULT_SPEC, pool=2, budget=7, workers=0)
    assert len(chosen) == 7 and set(chosen["val_id"]) == set(wrong)
    assert len(set(chosen["val_id"].iloc[:3])) == 3  # round-robin: each wrong sample's nearest first
    labels = kept.set_index("sample_id")["label"]
    val_label = dict(zip(wrong, ["star", "star", "ring"]))
    assert (labels[chosen["source_id"]].to_numpy() == chosen["val_id"].map(val_label).to_numpy()).all()
    assert chosen["source_id"].str.startswith("train/").all()
    assert (chosen["copy"].to_numpy() >= chosen["source_id"].map(first).to_numpy()).all()  # never a planned copy
    assert not chosen.duplicated(["source_id", "copy"]).any() and chosen["cosine"].between(-1, 1).all()
    again = select_boost(run, manifest, kept, first, seed=0, spec=DEFAULT_SPEC, pool=2, budget=7, workers=0)
    assert again.equals(chosen)


def test_boost_copies_no_flagged_or_doubted_source_while_its_class_has_others(boost_inputs):
    """A boosting copy of a light scan stayed light (seen on a GPU, where the audit's model
    chose such a source): like balance's copies, boosting multiplies neither junk nor doubt."""
    from datacheck.actions.boost import select_boost

    run, manifest, kept, _ = boost_inputs
    train = kept[kept["split"] == "train"]
    star, ring = (train.loc[train["label"] == label, "sample_id"] for label in ("star", "ring"))
    # every star source but one is dark, every ring source doubted by label_issues
    flagged = [*star.iloc[1:], *ring]
    extra = pd.DataFrame({"sample_id": flagged, "check": ["dark"] * (len(star) - 1) + ["label_issues"] * len(ring),
                          "is_issue": True})
    run = SimpleNamespace(path=run.path, outputs=run.outputs, info=run.info,
                          findings=pd.concat([run.findings, extra], ignore_index=True))
    first = dict(zip(kept["sample_id"], kept["copies"]))
    chosen = select_boost(run, manifest, kept, first, seed=0, spec=DEFAULT_SPEC, pool=2, budget=7, workers=0)
    by_class = kept.set_index("sample_id").loc[chosen["source_id"], "label"]
    assert set(chosen.loc[(by_class == "star").to_numpy(), "source_id"]) == {star.iloc[0]}  # the one clean star
    assert (by_class == "ring").any()  # ring has only doubted sources: it grows from them


@pytest.mark.parametrize("audit_device, asked", [("cpu", ["cpu"]), ("cuda:7", ["cuda:7", "auto"])])
def test_boost_trains_on_the_audits_device_where_this_machine_has_it(boost_inputs, monkeypatch, audit_device, asked):
    """``fix --device cpu`` on a GPU machine boosts on the CPU too; an audit's GPU that this
    machine lacks falls back to the best device here (before, boosting always took ``auto``)."""
    import datacheck.engine.device as device_module
    import datacheck.engine.loader as loader_module
    from datacheck.actions.boost import select_boost

    run, manifest, kept, _ = boost_inputs
    config = {**run.info.config, "audit": {**run.info.config["audit"], "device": audit_device}}
    run = SimpleNamespace(path=run.path, outputs=run.outputs, info=replace(run.info, config=config), findings=run.findings)
    seen, resolve = [], device_module.resolve_device

    def spy(spec):
        seen.append(spec)
        return resolve(spec) if spec in ("cpu", "auto") else resolve("cuda:7")  # no such GPU here or in CI

    class Chosen(Exception):
        pass

    def stop(*args, **kwargs):
        raise Chosen

    monkeypatch.setattr(device_module, "resolve_device", spy)
    monkeypatch.setattr(loader_module, "load_pixels", stop)  # the device is chosen: stop before training
    with pytest.raises(Chosen):
        select_boost(run, manifest, kept, {}, seed=0, spec=DEFAULT_SPEC, pool=2, budget=7, workers=0)
    assert seen == asked


def test_boost_needs_a_run_with_a_model(plan, tmp_path):
    info = json.loads((plan / "plan.json").read_text())
    result = invoke("augment", plan, "--out", tmp_path / "o", "--boost-from", info["run"])
    assert result.exit_code == 2 and "trained no model" in result.stderr
    assert invoke("augment", plan, "--out", tmp_path / "o", "--boost-from", tmp_path / "none").exit_code == 2
    # every candidate is an image made and embedded: an unbounded pool ran for ever
    result = invoke("augment", plan, "--out", tmp_path / "o", "--boost-from", info["run"], "--boost-pool", 1000)
    assert result.exit_code == 2 and "--boost-pool must be at most 64" in result.stderr


@pytest.mark.parametrize("option, keyword", [("--boost-budget", "boost_budget"), ("--boost-pool", "boost_pool")])
def test_boost_options_without_boost_from_are_refused(plan, tmp_path, option, keyword):
    """Before, they were silently ignored: no boosting copies, exit 0."""
    out = tmp_path / "o"
    assert_one_line_error(invoke("augment", plan, "--out", out, option, 3), 2, f"{option} needs --boost-from")
    with pytest.raises(UsageError, match=f"^{keyword} needs boost_from"):
        datacheck.augment(plan, out, **{keyword: 3})
    assert not out.exists()


def test_excluded_operations_are_never_drawn(tmp_path):
    image = Image.open(make_image(tmp_path / "a.png", 5))
    keep = ["Rotate", "Equalize"]
    spec = validate_spec({"policy": "randaugment", "num_ops": 4,
                          "exclude_ops": [op for op in reversed(RANDAUGMENT_OPS) if op not in keep]})
    assert spec["exclude_ops"] == [op for op in RANDAUGMENT_OPS if op not in keep]  # canonical order
    drawn = {d["op"] for seed in range(20) for d in augment_image(image, spec, seed)[1]["randaugment"]}
    assert drawn == set(keep)


def _drawings(folder, n=40):
    """Dark strokes on white paper, like scanned handwriting: ``n`` files."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    paths = []
    for i in range(n):
        page = np.full((48, 48), 255, np.uint8)
        for _ in range(3):
            r, c = rng.integers(4, 40, size=2)
            page[r : r + 8, c : c + 2] = 20
            page[r : r + 2, c : c + 8] = 20
        paths.append(str(folder / f"{i}.png"))
        Image.fromarray(page).save(paths[-1])
    return paths


def test_screen_leaves_out_the_operations_that_make_junk_of_drawings(tmp_path):
    """Solarize turns white paper black: every copy is past the audit's own dark cut, so it is
    left out; operations that keep the page white stay. The record holds the evidence and is
    the same for the same ids wherever the files lie."""
    paths = _drawings(tmp_path / "a")
    checks = {"dark": {"threshold": {"statistic": "brightness_high", "below": 170.0}},
              "light": {"threshold": {"statistic": "brightness_low", "above": 84.0}},
              "blurry": {"threshold": {}}}
    cuts = audit_cuts(checks)
    assert cuts == {"dark": ("brightness_high", "below", 170.0), "light": ("brightness_low", "above", 84.0)}
    ids = [f"train/x/{i}.png" for i in range(len(paths))]
    record = screen_operations(ids, paths, validate_spec({}), cuts, seed=0, sample=30)
    assert record["sample"] == 30 and record["originals_flagged"] == 0.0
    assert record["flagged"]["Solarize"] == 1.0 and "Solarize" in record["exclude_ops"]
    for op in ("Identity", "Rotate", "ShearX", "TranslateY"):
        assert record["flagged"][op] <= 0.05 and op not in record["exclude_ops"]
    moved = [str(p).replace(str(tmp_path / "a"), str(tmp_path / "b")) for p in paths]
    (tmp_path / "a").rename(tmp_path / "b")
    assert screen_operations(ids, moved, validate_spec({}), cuts, seed=0, sample=30) == record
    # an operation the user left out stays out and is not tried
    again = screen_operations(ids, moved, validate_spec({"exclude_ops": ["Equalize"]}), cuts, seed=0, sample=30)
    assert "Equalize" in again["exclude_ops"] and "Equalize" not in again["flagged"]


def test_screen_off_without_cuts_or_randaugment(tmp_path):
    paths = _drawings(tmp_path / "a", n=3)
    ids = list(map(str, range(3)))
    cuts = {"dark": ("brightness_high", "below", 170.0)}
    assert screen_operations(ids, paths, validate_spec({}), {}, seed=0)["rule"].startswith("not screened")
    affine = screen_operations(ids, paths, validate_spec({"policy": "affine"}), cuts, seed=0)
    assert affine["exclude_ops"] == [] and "no RandAugment" in affine["rule"]


def _only(*ops: str) -> dict:
    return validate_spec({"policy": "randaugment", "num_ops": 1, "exclude_ops": [o for o in RANDAUGMENT_OPS if o not in ops]})


def test_a_copy_the_audit_would_flag_is_drawn_again(tmp_path):
    """A copy past a cut its source is not past (Solarize: white paper turns black, past the
    dark cut) is drawn again from a derived seed until one passes; the seed used and the
    draws are recorded, and the same seed gives the same copy. When no draw can pass, the
    last one is kept with its faults."""
    from datacheck.engine.image_stats import measure_image

    paths = _drawings(tmp_path / "a", n=12)
    screen = CopyScreen({"dark": ("brightness_high", "below", 170.0)})
    redrawn = 0
    for i, path in enumerate(paths):
        image = Image.open(path).convert("L")
        copy, params = screened_copy(image, _only("Solarize", "Rotate"), 1000 + i, screen)
        assert screen.faults(measure_image(image), measure_image(copy)) == [] and "faults" not in params
        unscreened, first = screened_copy(image, _only("Solarize", "Rotate"), 1000 + i, None)
        assert first["draws"] == 1 and first["seed"] == 1000 + i
        if params["draws"] > 1:
            redrawn += 1
            assert params["seed"] != 1000 + i and first["randaugment"][0]["op"] == "Solarize"
            assert measure_image(unscreened)["brightness_high"] < 170.0
        again, same = screened_copy(image, _only("Solarize", "Rotate"), 1000 + i, screen)
        assert same == params and np.array_equal(np.asarray(again), np.asarray(copy))
    assert 3 <= redrawn <= 9  # about half of the first draws are Solarize
    image = Image.open(paths[0]).convert("L")
    _, hopeless = screened_copy(image, _only("Solarize"), 7, screen)
    assert hopeless["draws"] == MAX_DRAWS and hopeless["faults"] == ["dark"]


def test_a_copy_that_is_a_near_duplicate_of_its_source_is_drawn_again(tmp_path):
    """Identity makes a copy equal to its source: by the audit's near-duplicate cut it is one,
    so it is rejected; a rotated or sheared one is not. Without a near-duplicate cut (the audit
    ran no such check) the identical copy passes."""
    from datacheck.engine.image_stats import measure_image

    image = Image.open(_drawings(tmp_path / "a", n=1)[0]).convert("L")
    source = measure_image(image)
    same, _ = screened_copy(image, _only("Identity"), 3, None)
    assert CopyScreen({}, near_cut=0.95).faults(source, measure_image(same)) == ["near_duplicates"]
    assert CopyScreen({}, near_cut=None).faults(source, measure_image(same)) == []
    _, params = screened_copy(image, _only("Identity", "ShearX", "Rotate"), 3, CopyScreen({}, near_cut=0.95))
    assert params["randaugment"][0]["op"] != "Identity" and "faults" not in params
    assert CopyScreen.from_summary({"near_duplicates": {"threshold": {"min_similarity": 0.97}}}) == CopyScreen({}, 0.97)
    on_embeddings = {"min_similarity": 0.42, "on": "embeddings (cosine)"}  # a cosine cut: not a pixel similarity
    assert CopyScreen.from_summary({"near_duplicates": {"threshold": on_embeddings}}) == CopyScreen({}, None)


def test_a_copy_that_is_a_near_duplicate_of_a_sibling_is_drawn_again(tmp_path):
    """Solarize at one magnitude is one picture: a second copy equals the first. The second is
    rejected as a near duplicate of its sibling, and augment_batch gives every copy the same
    draws however the copies are split into batches (a sibling made in an earlier batch is
    drawn again, identically)."""
    from datacheck.actions.augment import SIBLING_RUN, _earlier_siblings, augment_batch

    path = _drawings(tmp_path / "a", n=1)[0]
    image = Image.open(path).convert("L")
    screen = CopyScreen({}, near_cut=0.95)
    first, params, measured = screened_copy(image, _only("Solarize"), 1, screen, measure=True)
    assert params["draws"] == 1 and "faults" not in params
    _, second = screened_copy(image, _only("Solarize"), 2, screen, siblings=[measured])
    assert second["draws"] == MAX_DRAWS and second["faults"] == ["near_duplicates"]

    made = pd.DataFrame({"out_path": [f"c{k}.png" for k in range(SIBLING_RUN + 2)] + ["boost.png"],
                         "source_id": "s", "copy": list(range(SIBLING_RUN + 2)) + [SIBLING_RUN + 2]})
    earlier = _earlier_siblings(made, {"boost.png": {}})
    # every planned copy is also compared with its source's boosting copy, which is compared with nothing
    assert earlier[0] == ("boost.png",) and earlier[2] == ("boost.png", "c0.png", "c1.png")
    assert len(earlier[SIBLING_RUN - 1]) == SIBLING_RUN
    assert earlier[SIBLING_RUN] == ("boost.png",) and earlier[SIBLING_RUN + 1] == ("boost.png", f"c{SIBLING_RUN}.png")
    assert earlier[-1] == ()
    other = _earlier_siblings(made.assign(source_id=["s"] * (SIBLING_RUN + 2) + ["t"]), {"boost.png": {}})
    assert other[0] == () and other[2] == ("c0.png", "c1.png")  # another source's boosting copy is not a sibling
    # a planned copy that repeats its source's boosting copy is drawn again
    boost_then_copy = {"b.png": (path, 1, _only("Solarize"), {}, ()), "c.png": (path, 2, _only("Solarize"), {}, ("b.png",))}
    drawn = augment_batch({"path": ["c.png"]}, boost_then_copy, str(tmp_path / "boost"), screen)
    assert json.loads(drawn["transform"][0])["faults"] == ["near_duplicates"]
    spec = _only("Identity", "Solarize", "Rotate", "ShearX")
    jobs = {f"c{k}.png": (path, 100 + k, spec, {}, tuple(f"c{j}.png" for j in range(k))) for k in range(6)}
    whole = augment_batch({"path": list(jobs)}, jobs, str(tmp_path / "one"), screen)
    split = [augment_batch({"path": part}, jobs, str(tmp_path / "two"), screen) for part in (list(jobs)[:4], list(jobs)[4:])]
    assert whole["transform"] == split[0]["transform"] + split[1]["transform"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "one").iterdir()} == {p.name: p.read_bytes() for p in (tmp_path / "two").iterdir()}
    assert any(json.loads(t)["draws"] > 1 for t in whole["transform"])  # Identity and repeated Solarize draws


def test_python_errors_name_the_keywords_and_the_cli_the_options(tiny_dataset, tmp_path):
    """datacheck.augment names its keywords (out, resume, seed, workers, spec['magnitude'],
    boost_pool), not the CLI's options; a bad type is a UsageError, not a TypeError or
    AttributeError (or a seed silently taken); numpy integers pass."""
    run = datacheck.audit(tiny_dataset, out=tmp_path / "run", checks=["image_properties"], workers=0).run_dir
    plan = tmp_path / "plan"
    datacheck.balance(run, plan, strategy="classes", target=8)  # 2 copies per class
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    out = tmp_path / "out"
    for kwargs, message in [
        ({"spec": {"magnitude": 40}}, r"^spec\['magnitude'\] must be an integer in \[0, 30\], got 40$"),
        ({"spec": {"num_ops": True}}, r"^spec\['num_ops'\] and spec\['magnitude'\] must be integers, not true/false$"),
        ({"spec": "magnitude=9"}, r"^spec must be a dict of augmentation settings \(policy, .*\), got a str$"),
        ({"seed": "x"}, r"^seed must be an integer in \[0, 4294967295\], got 'x'$"),  # was taken as a seed
        ({"seed": 1.5}, r"^seed must be an integer in \[0, 4294967295\], got 1\.5$"),
        ({"workers": "x"}, r"^workers must be an integer >= 0, got 'x'$"),  # was an AttributeError
        ({"boost_from": run, "boost_pool": "x"}, r"^boost_pool must be an integer >= 1, got 'x'$"),  # was a TypeError
        ({"boost_from": run}, r"^boost_from .*run: the audit trained no model"),
        ({"resume": "no"}, r"^resume must be True or False, got 'no'$"),
    ]:
        with pytest.raises(UsageError, match=message):
            datacheck.augment(plan, out, **kwargs)
    assert not out.exists()
    with pytest.raises(UsageError, match=r"^out .*busy is not empty; choose another folder, or resume an interrupted"):
        datacheck.augment(plan, busy)
    with pytest.raises(UsageError, match=r"^resume: .*busy is not an augment output"):
        datacheck.augment(plan, busy, resume=True)
    with pytest.raises(UsageError, match=r"^out .*mine\.txt exists and is not a folder$"):
        datacheck.augment(plan, busy / "mine.txt")
    result = datacheck.augment(plan, out, seed=np.int64(2), workers=np.int64(0), spec={"magnitude": np.int64(9)})
    assert result.counts["augmented"] == 4 and json.loads((out / "augment.json").read_text())["seed"] == 2
    with pytest.raises(UsageError, match=r"^resume: .* was made with other settings \(magnitude 9, now 12\)"):
        datacheck.augment(plan, out, seed=2, resume=True, spec={"magnitude": 12})
    assert_one_line_error(invoke("augment", plan, "--out", busy), 2,
                          f"error: --out {busy} is not empty; choose another folder, or --resume an interrupted augment")
    assert_one_line_error(invoke("augment", plan, "--out", busy, "--resume"), 2, f"error: --resume: {busy} is not an")
    assert_one_line_error(invoke("augment", plan, "--out", tmp_path / "o", "--magnitude", 40), 2,
                          "error: --magnitude must be an integer in [0, 30], got 40")
    assert (busy / "mine.txt").read_text() == "keep me"


def test_a_saved_boost_choice_is_reused_only_for_the_same_audit_run(plan, monkeypatch):
    """A resumed augment reuses the boosting copies chosen before the interruption (choosing
    them trains a model), unless the audit run they were chosen from has changed since."""
    from datacheck.actions import augment as augment_module
    from datacheck.actions import boost as boost_module
    from datacheck.audit_run import open_run
    from datacheck.files.plan import read_plan
    from datacheck.actions.augment import _add_boost, layout

    info, planned = read_plan(plan)
    run = open_run(info.run)
    manifest = run.manifest()
    rows = manifest.frame.merge(planned[["sample_id", "action", "copies", "transform"]], on="sample_id")
    rows = rows[rows["action"] != "drop"].reset_index(drop=True)
    source = rows[rows["split"] == "train"]["sample_id"].iloc[0]
    choice = pd.DataFrame({"source_id": [source], "copy": [7], "val_id": ["val/x"], "cosine": [0.5]})
    calls = []
    monkeypatch.setattr(boost_module, "select_boost", lambda *a, **k: calls.append(1) or choice)

    def boost(saved=None):
        return _add_boost(layout(rows), rows, manifest, run, 0, DEFAULT_SPEC, None, 2, 0, None, saved)

    files, extra, kept = boost()
    assert calls == [1] and len(files) == len(layout(rows)) + 1 and len(extra) == 1
    assert kept["boost_choice"]["rows"]["copy"] == [7]
    again = boost(json.loads(json.dumps(kept["boost_choice"])))  # as the marker reads back
    assert calls == [1] and again[0].equals(files) and again[1] == extra  # reused: no model trained
    stale = {**kept["boost_choice"], "run_sha256": "0" * 64}  # the run was audited again since
    boost(stale)
    assert calls == [1, 1]
    broken = {**kept["boost_choice"], "rows": {"source_id": ["nobody"], "copy": [1], "val_id": ["v"], "cosine": [0.1]}}
    boost(broken)  # a hand-edited marker naming an unknown source: chosen again, not a KeyError
    assert calls == [1, 1, 1]
    assert augment_module._run_digest(run) == kept["boost_choice"]["run_sha256"]


def test_boost_without_a_kept_training_sample_of_the_wrong_classes_adds_nothing(boost_inputs):
    """The plan dropped every training sample of the classes the model gets wrong (star and
    ring; in fix, a class whose training rows drop_flagged all left out): no candidate, no
    boosting copy (before: KeyError 'ok', exit 4)."""
    from datacheck.actions.boost import select_boost

    run, manifest, kept, _ = boost_inputs
    kept = kept[~((kept["split"] == "train") & kept["label"].isin(["star", "ring"]))]
    first = dict(zip(kept["sample_id"], kept["copies"]))
    chosen = select_boost(run, manifest, kept, first, seed=0, spec=DEFAULT_SPEC, pool=2, budget=7, workers=0)
    assert chosen.empty and list(chosen.columns) == ["source_id", "copy", "val_id", "cosine"]

"""Smoke test of the fixed downstream protocol (benchmarks/downstream.py) on a tiny, easy
generated dataset, so the benchmark script cannot rot: it must learn, find leaked copies,
read manifests with absolute paths and refuse bad input with exit 2/3."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "downstream.py"


@pytest.fixture(scope="module")
def downstream():
    import torch

    # main() pins torch's CPU threads (its --threads) for the process; training numerics depend
    # on the thread count, so later tests in this process must get the count back.
    threads = torch.get_num_threads()
    spec = importlib.util.spec_from_file_location("downstream", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["downstream"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("downstream", None)
    torch.set_num_threads(threads)


def _draw(kind: str, rng: np.random.Generator) -> Image.Image:
    """A 24 px grey image: a horizontal bar, a vertical bar or a small square, jittered and noisy."""
    image = rng.integers(0, 40, size=(24, 24)).astype(np.uint8)
    a, b = rng.integers(4, 16, size=2)
    if kind == "h":
        image[a : a + 4, 2:22] = 230
    elif kind == "v":
        image[2:22, b : b + 4] = 230
    else:
        image[a : a + 6, b : b + 6] = 230
    return Image.fromarray(image, mode="L")


@pytest.fixture(scope="module")
def easy_dataset(tmp_path_factory) -> Path:
    """root/{train,val}/{h,v,s}/*.png: 40 train and 15 val images per class; one val file is a
    byte copy of a train file (a leaked copy)."""
    root = tmp_path_factory.mktemp("easy")
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 40), ("val", 15)):
        for kind in "hvs":
            folder = root / split / kind
            folder.mkdir(parents=True)
            for i in range(per_class):
                _draw(kind, rng).save(folder / f"{i}.png")
    shutil.copyfile(root / "train" / "h" / "0.png", root / "val" / "h" / "copy.png")
    return root


def test_learns_easy_dataset_and_counts_leaks(downstream, easy_dataset, tmp_path, capsys):
    out = tmp_path / "result.json"
    code = downstream.main(["--train", f"easy={easy_dataset}", "--eval", str(easy_dataset), "--seeds", "1",
                            "--epochs", "12", "--image-size", "16", "--cache-dir", "off", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["eval"] == {"source": str(easy_dataset), "split": "val", "samples": 46, "leaked_copies": 1,
                              "unreadable": 0}
    (condition,) = result["conditions"]
    assert condition["train_samples"] == 120
    assert condition["per_class"] == {"h": 40, "s": 40, "v": 40}
    # Chance is 1/3; bars and squares are easy even for 12 short epochs at 16 px.
    assert condition["accuracy"][0] >= 0.9
    assert condition["accuracy_no_leak"][0] >= 0.9
    table = capsys.readouterr().out
    assert "easy" in table and "w/o leaked copies (n=45)" in table and "non-default protocol" in table


def test_rows_every_model_gets_wrong_are_listed_and_drawn(downstream, easy_dataset, tmp_path):
    """A vertical bar filed under ``h`` in the evaluation set: both conditions' models answer
    ``v``, so it is among the rows no model gets right (the bound on what cleaning can gain)."""
    evaluation = tmp_path / "eval"
    shutil.copytree(easy_dataset / "val", evaluation / "val")
    shutil.copyfile(easy_dataset / "train" / "v" / "3.png", evaluation / "val" / "h" / "mislabeled.png")
    out = tmp_path / "result.json"
    code = downstream.main(["--train", f"one={easy_dataset}", "--train", f"two={easy_dataset}", "--eval", str(evaluation),
                            "--seeds", "2", "--epochs", "12", "--image-size", "16", "--cache-dir", "off", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    missed = result["missed_by_every_model"]
    assert {"path": str(evaluation / "val" / "h" / "mislabeled.png"), "label": "h", "voted": "v", "models_wrong": 4} in missed
    most = result["missed_by_most_models"]  # more than 2 of the 4 models wrong, the most missed first
    assert all(row in most for row in missed) and all(row["models_wrong"] > 2 for row in most)
    assert [row["models_wrong"] for row in most] == sorted((row["models_wrong"] for row in most), reverse=True)
    # Never more than the best model's errors, and each one answered otherwise by the models' vote.
    best = max(max(c["accuracy"]) for c in result["conditions"])
    assert len(missed) <= round((1 - best) * result["eval"]["samples"])
    assert all(row["label"] != row["voted"] for row in missed)
    by_models = result["rows_by_models_wrong"]  # 2 conditions x 2 seeds: 0 to 4 models wrong
    assert len(by_models) == 5 and sum(by_models) == result["eval"]["samples"] and by_models[-1] == len(missed)
    wrong = sum(round((1 - a) * result["eval"]["samples"]) for c in result["conditions"] for a in c["accuracy"])
    assert sum(k * n for k, n in enumerate(by_models)) == wrong
    sheet = downstream.missed_sheet(most, 4, tmp_path / "sheet.png", side=32, columns=4)
    with Image.open(sheet) as im:
        assert im.size == (4 * 32, -(-len(most) // 4) * (32 + 14))


def test_same_seed_same_predictions(downstream, easy_dataset):
    protocol = downstream.Protocol(epochs=2, image_size=16)
    data = downstream.load_dataset(easy_dataset, "train", protocol, 0, None, 0)
    labels = np.unique(data.labels, return_inverse=True)[1]
    first = downstream.train_and_predict(data.pixels, labels, data.pixels, 3, 7, protocol)
    again = downstream.train_and_predict(data.pixels, labels, data.pixels, 3, 7, protocol)
    assert first.shape == (120,) and np.array_equal(first, again)


def test_equal_steps_gives_every_condition_the_first_ones_steps(downstream, easy_dataset, tmp_path):
    """A 15-image subset trained for the steps of the 120-image set (12 epochs x 1 batch of 128)."""
    subset = tmp_path / "subset.csv"
    rows = [f"train/{k}/{i}.png" for k in "hvs" for i in range(5)]
    pd.DataFrame({"path": [str(easy_dataset / r) for r in rows], "label": [r.split("/")[1] for r in rows],
                  "split": "train"}).to_csv(subset, index=False)
    out = tmp_path / "result.json"
    code = downstream.main(["--train", f"all={easy_dataset}", "--train", f"subset={subset}", "--eval", str(easy_dataset),
                            "--seeds", "1", "--epochs", "12", "--image-size", "16", "--cache-dir", "off",
                            "--equal-steps", "--json", str(out)])
    assert code == 0
    full, small = json.loads(out.read_text())["conditions"]
    assert (full["train_samples"], full["steps"]) == (120, 12)
    assert (small["train_samples"], small["steps"]) == (15, 12)


def test_manifest_with_absolute_paths_outside_its_folder(downstream, easy_dataset, tmp_path):
    """A plan manifest written elsewhere lists the original files by absolute path."""
    files = sorted((easy_dataset / "train" / "v").glob("*.png"))[:5]
    manifest = tmp_path / "plan" / "manifest.csv"
    manifest.parent.mkdir()
    pd.DataFrame({"path": [str(f) for f in files], "label": "v", "split": "train"}).to_csv(manifest, index=False)
    loaded = downstream.load_any_manifest(manifest, max_missing=0)
    assert loaded.root == easy_dataset / "train" / "v"
    assert sorted(loaded.frame["path"]) == sorted(f.name for f in files)
    data = downstream.load_dataset(manifest, "train", downstream.Protocol(image_size=16), 0, None, 0)
    assert data.pixels.shape == (5, 3, 16, 16) and data.ok.all()


def test_bad_input_exit_status(downstream, easy_dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        downstream.main(["--train", "no-name-given", "--eval", str(easy_dataset)])
    assert exc.value.code == 2
    code = downstream.main(["--train", f"x={tmp_path / 'absent'}", "--eval", str(easy_dataset), "--cache-dir", "off"])
    assert code == 3
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("datacheck: error: dataset not found")


def test_roman_mode_runs_the_datacheck_chain_and_skips_what_is_missing(downstream, tmp_path, monkeypatch):
    """--roman's builder, with the datacheck commands recorded instead of run: relabel, then
    balance + augment per strategy, then the coreset plan; a missing command skips its condition."""
    calls = []

    def fake(*args, log):
        calls.append([str(a) for a in args])
        out = Path(args[args.index("--out") + 1])
        if args[0] == "audit":
            out.mkdir(parents=True)
            (out / "run.json").write_text("{}")
        elif args[0] == "augment":
            out.mkdir(parents=True)
            (out / "augment.json").write_text("{}")
        elif args[0] == "relabel":
            Path(args[args.index("--materialize") + 1]).mkdir(parents=True)
        else:
            out.mkdir(parents=True)
            (out / "manifest.csv").write_text("path,label\n")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(downstream, "_datacheck", fake)
    monkeypatch.setattr(downstream, "_has_command", lambda name: name != "augment")
    monkeypatch.setattr("datacheck.detectors.list_detectors",
                        lambda default_only=False: ["label_issues"] + ([] if default_only else ["clusters", "coreset"]))
    data = tmp_path / "roman"
    conditions, skipped = downstream.build_roman_conditions(data, tmp_path / "work", log=lambda m: None)
    base = tmp_path / "work" / "audit+clusters+coreset"
    assert conditions == {"a original": data, "b relabel+drop": base / "relabelled",
                          "d coreset": base / "plan-coreset" / "manifest.csv"}
    assert skipped == {"c balance(subclusters)+augment": "`datacheck augment` does not exist yet",
                       "c balance(classes)+augment": "`datacheck augment` does not exist yet"}
    assert [c[0] for c in calls] == ["audit", "relabel", "balance"]
    assert calls[0][calls[0].index("--checks") + 1] == "label_issues,clusters,coreset"
    # A second call reuses everything already built.
    calls.clear()
    downstream.build_roman_conditions(data, tmp_path / "work", log=lambda m: None)
    assert calls == []


@pytest.mark.parametrize("args, message", [
    (["--fix-variant", "a=datacheck/presets/quick.toml"], "--fix-variant goes with --fix-yardstick"),
    (["--fix-yardstick", "--fix-variant", "a=/no/such.toml"], "no config file at /no/such.toml"),
    (["--fix-yardstick", "--fix-variant", "../up=datacheck/presets/quick.toml"], "names are distinct"),
    (["--fix-yardstick", "--fix-variant", "a=datacheck/presets/quick.toml", "--fix-variant", "a=datacheck/presets/quick.toml"],
     "names are distinct"),
])
def test_fix_variants_are_checked_before_any_work(downstream, args, message, capsys, monkeypatch):
    monkeypatch.chdir(SCRIPT.parents[1])
    with pytest.raises(SystemExit) as exit_info:
        downstream.main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err

"""An adversarial pass of 2026-12-06: small shortcomings a scikit-learn or cleanlab user meets
(plugin authors' checks, the Python API's edges, class folder names, balance's exit status).
Model outputs in memory or a few tiny images: the file takes seconds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from datacheck.detectors import Detector
from datacheck.detectors.base import partial_findings

from .conftest import detector_context_factory


_calls = itertools.count()


class Unseeded(Detector):
    """Scores that change from one run to the next: random numbers not drawn from ctx.seed."""

    name, checks, requires = "adv_unseeded", ("adv_unseeded",), frozenset({"pred_probs"})

    def find(self, ctx):
        p = ctx.get("pred_probs")
        rng = np.random.default_rng(next(_calls))  # a new seed per call, as an unseeded generator has
        return partial_findings(np.arange(len(p)), self.name, rng.random(len(p)), False, None)


def test_check_detector_names_the_determinism_rule_for_a_nondeterministic_detector():
    """check_detector promises an AssertionError naming the rule broken; a detector whose
    scores differ between two runs on the same input and seed failed with pandas' frame diff
    ('DataFrame.iloc[:, 2] (column name="score") are different ...'), which names neither
    the rule nor the detector."""
    from datacheck.testing import check_detector

    with pytest.raises(AssertionError) as caught:
        check_detector(Unseeded(), detector_context_factory())
    message = str(caught.value)
    assert message.startswith("adv_unseeded: two runs on the same input and seed gave different findings; "
                              "a detector must be deterministic")
    assert "\n" not in message and len(message) < 400


def test_an_entry_point_named_otherwise_than_its_detector_is_refused_naming_both(tmp_path, monkeypatch, tiny_dataset):
    """A package declaring ``odd = my_checks:Odd`` for a detector whose ``name`` is
    ``odd_rows`` registered it as ``odd_rows`` silently: ``--checks odd`` (the name pip's
    metadata shows) was "unknown check". Models register under their entry point's name; a
    detector cannot (its name is its config section and its findings' check), so the two
    names must agree, and a plugin where they do not is a usage error naming both, as any
    other broken plugin is."""
    from datacheck.detectors import registry
    from datacheck.errors import ExitStatus, UsageError

    from .conftest import assert_one_line_error, install_plugin, invoke

    install_plugin(tmp_path, monkeypatch, "dec06_checks", (
        "from datacheck.detectors.base import Detector\n"
        "class Odd(Detector):\n"
        "    name, checks, requires = 'odd_rows', ('odd_rows',), frozenset()\n"), "datacheck.detectors",
        "odd = dec06_checks:Odd")
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    what = ("detector plugin 'odd' (dec06_checks:Odd): the entry point 'odd' declares the detector named "
            "'odd_rows'; name the entry point 'odd_rows' (odd_rows = dec06_checks:Odd)")
    with pytest.raises(UsageError) as caught:
        registry.list_detectors()
    assert str(caught.value) == what
    assert "odd_rows" not in registry._REGISTRY
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "r", "--checks", "odd", "-q")
    assert_one_line_error(result, ExitStatus.USAGE, what)


def test_a_progress_hook_of_the_wrong_arity_names_the_keyword_before_any_work(tiny_dataset, tmp_path):
    """``progress=lambda done: ...`` (a tqdm-style hook) failed at the first stage with the
    user's own "TypeError: <lambda>() takes 1 positional argument but 3 were given", naming
    neither ``progress`` nor what it is called with, and ``fix`` had made its output folder."""
    import datacheck
    from datacheck.errors import UsageError

    probs, labels = np.full((6, 2), 0.5), [0, 1] * 3
    with pytest.raises(UsageError) as caught:
        datacheck.audit(pred_probs=probs, labels=labels, progress=lambda done: None)
    assert str(caught.value) == ("progress must be a function progress(stage, done, total) or None, "
                                 "called with 3 arguments; got <lambda>(done)")
    with pytest.raises(UsageError, match=r"^progress must be a function progress\(stage, done, total\) .*"
                                         r"got <lambda>\(done, total\)$"):
        datacheck.fix(tiny_dataset, tmp_path / "fixed", progress=lambda done, total: None)
    assert not (tmp_path / "fixed").exists()
    with pytest.raises(UsageError, match=r"^progress must be a function progress\(done, total\) or None, "
                                         r"called with 2 arguments; got <lambda>\(stage, done, total\)$"):
        datacheck.augment(tmp_path / "plan", tmp_path / "out", progress=lambda stage, done, total: None)
    # what takes the arguments passes: *args, a parameter with a default, a bound method
    seen = []
    for hook in (lambda *a: seen.append(a), lambda stage, done, total, extra=None: None, _Bar().update):
        datacheck.audit(pred_probs=probs, labels=labels, checks="label_issues", progress=hook)
    assert seen


class _Bar:
    def update(self, stage, done, total):
        pass


def test_class_folders_read_as_one_class_are_a_note_naming_them(tiny_dataset, tmp_path):
    """``train/cat`` and ``train/cat `` (a trailing space, typed when the folder was made) were
    merged into the class 'cat' without a word, as were ``1`` and ``1.0``; a folder named
    ``' '`` made its images unlabeled. Merging is what the names most likely mean (a manifest's
    cells are read so too), so the audit goes on, and says so as the layout notes do:
    summary["notes"] and a ``datacheck: note:`` line on stderr, past --quiet."""
    import json
    import shutil

    from datacheck.manifest import layout_notes, load_manifest

    from .conftest import invoke, make_image

    for i in range(2):
        make_image(tiny_dataset / "train" / "cat " / f"more{i}.png", 100 + i)
    note = ("the class folders 'cat', 'cat ' are read as one class, 'cat' (a class name is read without "
            "surrounding spaces): rename them if they are different classes")
    assert layout_notes(load_manifest(tiny_dataset)) == [note]
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "run", "--checks", "exact_duplicates", "-q")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"datacheck: note: {note}\n"
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["notes"] == [note]

    numbers = tmp_path / "numbers"
    for i, folder in enumerate(["1", "1.0", "2"]):
        make_image(numbers / folder / "a.png", i)
    assert layout_notes(load_manifest(numbers)) == [
        "the class folders '1', '1.0' are read as one class, '1' (a class name is read without surrounding "
        "spaces, and 1.0 as 1): rename them if they are different classes"]
    shutil.rmtree(tiny_dataset / "train" / "cat ")
    assert layout_notes(load_manifest(tiny_dataset)) == []
    make_image(tiny_dataset / "val" / " " / "a.png", 200)
    assert layout_notes(load_manifest(tiny_dataset)) == [
        "the class folder name(s) ' ' are blank, so their images are read as unlabeled: rename them after their class"]


def test_balance_of_a_dataset_with_only_a_val_split_is_bad_data(tiny_dataset, tmp_path):
    """A run whose dataset has no train rows: ``datacheck balance`` exited 2 ("there is no
    labeled training row to balance"), a usage error, though no option could change it; the
    README's exit statuses make a dataset without what the command needs (no images) bad
    data, exit 3, as balance already said of a train split whose every row is flagged. Said
    before the strategy's needs (no audit with clusters would give train rows), and by the
    Python API as a BadDataError."""
    import shutil

    import datacheck
    from datacheck.errors import BadDataError, ExitStatus

    from .conftest import assert_one_line_error, invoke

    shutil.rmtree(tiny_dataset / "train")
    assert invoke("audit", tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "run", "-q").exit_code == 0
    what = (f"{tiny_dataset} has no training rows (every row is val/test, which balance keeps as they are); "
            "balance plans the train split only")
    for strategy in ("classes", "subclusters"):
        result = invoke("balance", tmp_path / "run", "--strategy", strategy, "--out", tmp_path / "plan")
        assert_one_line_error(result, ExitStatus.BAD_DATA, what)
    assert not (tmp_path / "plan").exists()
    with pytest.raises(BadDataError, match="has no training rows"):
        datacheck.balance(tmp_path / "run", tmp_path / "plan", strategy="classes")
    # train rows without a label: the same, from the library's planner too
    import pandas as pd

    from datacheck.actions.balance import BalanceOptions, plan_balance

    frame = pd.DataFrame({"sample_id": ["a", "b"], "path": ["a.png", "b.png"], "label": [None, "cat"],
                          "split": ["train", "val"]})
    with pytest.raises(BadDataError, match=r"^the audited dataset has no labeled training row \(every train row's "):
        plan_balance(frame, datacheck.load(tmp_path / "run").findings, BalanceOptions(strategy="classes"))


def test_result_issues_takes_the_wildcards_checks_takes():
    """``result.issues("label_*")`` matched nothing ("did not run") while ``--checks`` takes
    the same fnmatch wildcards; now it selects every check or detector the pattern matches."""
    import datacheck
    from datacheck.errors import UsageError
    from .conftest import label_arrays

    _, probs, labels = label_arrays(60, wrong=6)
    embeddings = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings,
                             checks=["label_issues", "outliers"])
    everything = result.issues(flagged=False)
    assert set(everything["check"]) >= {"label_issues", "outliers"}
    label_rows = result.issues("label_*", flagged=False)
    assert set(label_rows["check"]) == {"label_issues"} and len(label_rows) == 60
    assert len(result.issues("*", flagged=False)) == len(everything)
    assert set(result.issues("out?iers", flagged=False)["check"]) == {"outliers"}
    with pytest.raises(UsageError, match=r"^check 'nothing_\*' did not run in this audit; ran: "):
        result.issues("nothing_*")


def test_a_damaged_tiff_is_reported_corrupt_without_libtiff_printing(tmp_path):
    """libtiff (Pillow's TIFF decoder) wrote "ZIPDecode: Decoding error at scanline 0, ..." to
    the process's stderr itself, past ``-q``; the file is still reported corrupt, in one finding."""
    import subprocess
    import sys

    import pandas as pd
    from PIL import Image, features

    if not features.check_codec("libtiff"):
        pytest.skip("this Pillow decodes TIFF without libtiff")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(tmp_path / "data" / name / f"{i}.png")
    damaged = tmp_path / "data" / "a" / "scan.tif"
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(damaged, compression="tiff_adobe_deflate")
    data = bytearray(damaged.read_bytes())
    for k in range(200, 2000, 7):  # inside the deflate stream: the header still reads
        data[k] ^= 0x5A
    damaged.write_bytes(bytes(data))
    done = subprocess.run([sys.executable, "-m", "datacheck", "audit", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                           "--checks", "image_properties", "-q", "--fail-on", ""], capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stderr) == (0, "")
    findings = pd.read_parquet(tmp_path / "run" / "findings.parquet")
    corrupt = findings[(findings["check"] == "corrupt") & findings["is_issue"]]
    assert corrupt["sample_id"].tolist() == ["a/scan.tif"]

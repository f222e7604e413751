"""Bad input: one clear line on stderr, the documented exit status, no traceback, no file touched."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from datacheck.errors import ExitStatus

from .conftest import assert_one_line_error, invoke, make_image, tree_digest


def audit(*args):
    return invoke("audit", *args, "--workers", 0)


def write_manifest(root, rows, name="manifest.csv"):
    path = root / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_missing_files_exit_3_unless_tolerated(tiny_dataset, tmp_path):
    rows = [{"path": "train/cat/cat0.png", "label": "cat"}, {"path": "train/cat/gone.png", "label": "cat"},
            {"path": "train/dog/dog0.png", "label": "dog"}]
    manifest = write_manifest(tiny_dataset, rows)
    before = tree_digest(tiny_dataset)
    result = audit(manifest, "--out", tmp_path / "r1")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "1 of 3 files listed in")
    assert "'train/cat/gone.png'" in result.stderr and "--max-missing" in result.stderr
    ok = audit(manifest, "--out", tmp_path / "r2", "--max-missing", "1", "--json", "-q")
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["missing_files"] == ["train/cat/gone.png"]
    assert tree_digest(tiny_dataset) == before


@pytest.mark.parametrize(
    "content, error",
    [
        (None, "truncated"),  # a PNG cut short
        (b"", "UnidentifiedImageError"),  # zero bytes
        (b"this is not an image at all\n" * 10, "UnidentifiedImageError"),  # text with a .png name
    ],
    ids=["corrupt_png", "zero_byte", "not_an_image"],
)
def test_undecodable_image_is_reported_not_fatal(tiny_dataset, tmp_path, content, error):
    bad = tiny_dataset / "train" / "cat" / "bad.png"
    if content is None:
        good = (tiny_dataset / "train" / "cat" / "cat0.png").read_bytes()
        content = good[: len(good) // 2]
    bad.write_bytes(content)
    before = tree_digest(tiny_dataset)
    result = audit(tiny_dataset, "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.output
    assert "1 image(s) could not be decoded" in result.stderr
    assert "Traceback" not in result.output
    findings = pd.read_parquet(tmp_path / "run" / "findings.parquet")
    row = findings[(findings["check"] == "corrupt") & (findings["sample_id"] == "train/cat/bad.png")].iloc[0]
    assert row["is_issue"] and row["score"] == 0.0
    assert error in json.loads(row["details"])["error"]
    assert tree_digest(tiny_dataset) == before
    gated = audit(tiny_dataset, "--out", tmp_path / "run2", "--fail-on", "corrupt>0")
    assert gated.exit_code == ExitStatus.GATE_FAILED


@pytest.mark.parametrize(
    "path",
    ["../outside.png", "train/../../outside.png", "ABSOLUTE"],
    ids=["dotdot", "nested_dotdot", "absolute_elsewhere"],
)
def test_path_traversal_in_manifest_is_refused(tiny_dataset, tmp_path, path):
    outside = make_image(tmp_path / "outside.png", seed=99)
    path = str(outside) if path == "ABSOLUTE" else path
    manifest = write_manifest(tiny_dataset, [{"path": "train/cat/cat0.png", "label": "cat"}, {"path": path, "label": "cat"}])
    result = audit(manifest, "--out", tmp_path / "run")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "path escapes the dataset root")
    assert "(row 2 of" in result.stderr


def test_symlink_out_of_the_dataset_is_refused(tiny_dataset, tmp_path):
    outside = make_image(tmp_path / "secret" / "x.png", seed=98)
    os.symlink(outside, tiny_dataset / "train" / "cat" / "link.png")
    result = audit(tiny_dataset, "--out", tmp_path / "run")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "path escapes the dataset root")


def test_absolute_path_inside_the_root_is_accepted(tiny_dataset, tmp_path):
    inside = tiny_dataset / "train" / "cat" / "cat1.png"
    manifest = write_manifest(tiny_dataset, [{"path": str(inside), "label": "cat"}, {"path": "train/dog/dog0.png", "label": "dog"}])
    result = audit(manifest, "--out", tmp_path / "run", "--json", "-q")
    assert result.exit_code == 0, result.output


def test_duplicate_sample_ids_exit_3(tiny_dataset, tmp_path):
    rows = [{"sample_id": "a", "path": "train/cat/cat0.png", "label": "cat"},
            {"sample_id": "a", "path": "train/cat/cat1.png", "label": "cat"}]
    result = audit(write_manifest(tiny_dataset, rows), "--out", tmp_path / "run")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "1 duplicate sample id(s)")
    assert "'a'" in result.stderr


def test_duplicate_paths_are_duplicate_ids(tiny_dataset, tmp_path):
    rows = [{"path": "train/cat/cat0.png", "label": "cat"}, {"path": "./train/cat/cat0.png", "label": "dog"}]
    result = audit(write_manifest(tiny_dataset, rows), "--out", tmp_path / "run")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "duplicate sample id")


def test_empty_folder_exit_3(tmp_path):
    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    (empty / "cat" / "notes.txt").write_text("no images here")
    result = audit(empty, "--out", tmp_path / "run")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "no images found in")
    assert "skipped 1 non-image file(s)" in result.stderr


def test_missing_dataset_exit_3(tmp_path):
    result = audit(tmp_path / "nope", "--out", tmp_path / "run")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "dataset not found")


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("m.csv", b"\xff\xfe\x00garbage\x00\x01", "cannot read manifest"),
        ("m.csv", b"", "cannot read manifest"),
        ("m.csv", b"file,klass\na.png,cat\n", "has no 'path' column"),
        ("m.parquet", b"PAR1 not really parquet", "cannot read manifest"),
        ("m.jsonl", b'{"path": "a.png"}\n{broken\n', "cannot read manifest"),
        ("m.xlsx", b"whatever", "unsupported manifest type '.xlsx'"),
    ],
    ids=["binary_csv", "empty_csv", "no_path_column", "bad_parquet", "bad_jsonl", "unknown_type"],
)
def test_unreadable_manifest_exit_3(tmp_path, name, content, fragment):
    manifest = tmp_path / name
    manifest.write_bytes(content)
    result = audit(manifest, "--out", tmp_path / "run")
    assert_one_line_error(result, ExitStatus.BAD_DATA, fragment)
    assert manifest.read_bytes() == content


def test_unknown_split_name_exit_3(tiny_dataset, tmp_path):
    rows = [{"path": "train/cat/cat0.png", "label": "cat", "split": "holdout"}]
    result = audit(write_manifest(tiny_dataset, rows), "--out", tmp_path / "run")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "unknown split name(s) 'holdout'")


def test_mixed_folder_layout_exit_3(tiny_dataset, tmp_path):
    make_image(tiny_dataset / "extras" / "x.png", seed=5)
    result = audit(tiny_dataset, "--out", tmp_path / "run")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "mixed folder layout")


def test_no_file_in_the_dataset_is_changed_by_an_audit(sample_copy, tmp_path):
    before = tree_digest(sample_copy)
    mtimes = {p: p.stat().st_mtime_ns for p in sample_copy.rglob("*")}
    # Every default check, on a short training: the same code paths as the default audit, not
    # a second 5 x 20-epoch cross-validation (which another test of the session trains).
    config = tmp_path / "short.toml"
    config.write_text("[train]\nepochs = 2\n")
    result = audit(sample_copy, "--out", tmp_path / "run", "-q", "--config", config)
    assert result.exit_code == 0
    assert tree_digest(sample_copy) == before
    assert {p: p.stat().st_mtime_ns for p in sample_copy.rglob("*")} == mtimes
    assert not (sample_copy / "runs").exists()
    shutil.rmtree(tmp_path / "run")


# --------------------------------------------------------------------------- outputs never land in the dataset


def test_no_output_is_written_into_a_folder_dataset(tiny_dataset, tmp_path):
    before = tree_digest(tiny_dataset)
    image = tiny_dataset / "train" / "cat" / "cat0.png"
    result = audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tiny_dataset / "runs" / "r", "-q")
    assert_one_line_error(result, ExitStatus.USAGE, "would write into the audited dataset")
    result = audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "run", "--junit", image, "-q")
    assert_one_line_error(result, ExitStatus.USAGE, f"--junit {image} would write into the audited dataset")
    assert not (tmp_path / "run").exists()
    assert audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "run", "-q").exit_code == 0
    for args in (["--export-review", image], ["--export-label-studio", tiny_dataset / "train" / "dog" / "tasks.json"],
                 ["--materialize", tiny_dataset / "clean"], ["--out", tiny_dataset / "val"],
                 ["--export-review", tmp_path / "run" / "findings.parquet"]):
        result = invoke("relabel", tmp_path / "run", *args)
        assert result.exit_code == ExitStatus.USAGE and result.stderr.count("\n") == 1, (args, result.output)
    result = invoke("balance", tmp_path / "run", "--strategy", "classes", "--out", tiny_dataset / "plan")
    assert_one_line_error(result, ExitStatus.USAGE, "would write into the audited dataset")
    assert tree_digest(tiny_dataset) == before


def test_report_csv_never_replaces_a_file_the_manifest_lists(tiny_dataset, tmp_path):
    """A manifest dataset is its manifest and the files it lists, wherever they lie."""
    listed = tiny_dataset / "findings.csv"
    listed.write_bytes((tiny_dataset / "train" / "cat" / "cat1.png").read_bytes())
    manifest = write_manifest(tiny_dataset, [{"path": "findings.csv", "label": "cat"},
                                             {"path": "train/dog/dog1.png", "label": "dog"}])
    before = tree_digest(tiny_dataset)
    assert audit(manifest, "--checks", "exact_duplicates", "--out", tmp_path / "run", "-q").exit_code == 0
    result = invoke("report", tmp_path / "run", "--out", tiny_dataset / "report.html", "--csv")
    assert_one_line_error(result, ExitStatus.USAGE, f"--csv {listed} would write into the audited dataset")
    assert tree_digest(tiny_dataset) == before


def test_relabel_never_overwrites_the_manifest_it_audited(tiny_dataset, tmp_path):
    """Iterating (audit a relabel output, relabel it again into the same folder) would replace the source."""
    assert audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "run1", "-q").exit_code == 0
    first = invoke("relabel", tmp_path / "run1", "--out", tmp_path / "iter", "-q")
    assert first.exit_code == 0, first.output
    manifest = tmp_path / "iter" / "manifest.csv"
    text = manifest.read_bytes()
    assert audit(manifest, "--root", tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "run2", "-q").exit_code == 0
    result = invoke("relabel", tmp_path / "run2", "--out", tmp_path / "iter")
    assert_one_line_error(result, ExitStatus.USAGE, "would write into the audited dataset")
    assert manifest.read_bytes() == text
    # Beside the manifest (not into it) is fine: runs/ next to manifest.csv is the usual layout.
    result = invoke("relabel", tmp_path / "run2", "--out", tmp_path / "iter2", "-q")
    assert result.exit_code == 0, result.output


def test_a_users_run_json_does_not_make_a_folder_a_run(tiny_dataset, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "run.json").write_text('{"my": "settings"}')
    result = audit(tiny_dataset, "--checks", "exact_duplicates", "--out", folder)
    assert_one_line_error(result, ExitStatus.USAGE, "not a datacheck run")
    assert sorted(p.name for p in folder.iterdir()) == ["run.json"]


# --------------------------------------------------------------------------- Ctrl-C


def test_an_interrupt_swallowed_by_a_library_still_exits_130(monkeypatch, tiny_dataset, tmp_path):
    """Ctrl-C inside a finaliser (where Python only prints "Exception ignored") or caught by a
    library must not let the command pass for a success, nor print a traceback."""
    import signal

    import datacheck.pipeline

    class Finalised:
        def __del__(self):
            raise KeyboardInterrupt

    def interrupted_audit(*args, **kwargs):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass  # a library that swallows it
        Finalised()  # garbage at once: __del__ raises, Python ignores it
        return real_audit(*args, **kwargs)

    real_audit = datacheck.pipeline.audit
    monkeypatch.setattr(datacheck.pipeline, "audit", interrupted_audit)
    # What the process had before (the default handler; SIG_IGN where a shell started the
    # tests in the background without job control).
    before = signal.getsignal(signal.SIGINT)
    result = audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "run", "-q")
    assert result.exit_code == ExitStatus.INTERRUPTED, result.output
    assert result.stderr == "datacheck: interrupted\n"
    assert signal.getsignal(signal.SIGINT) == before  # restored


def test_palette_images_with_other_colours_are_not_exact_duplicates(tmp_path):
    """Same palette indices, different palettes: different pictures, so not duplicates."""
    from PIL import Image

    index = Image.new("P", (32, 32), 0)
    index.paste(1, (8, 8, 24, 24))
    (tmp_path / "d" / "a").mkdir(parents=True)
    for name, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255)), ("red_again", (255, 0, 0))):
        image = index.copy()
        image.putpalette([255, 255, 255, *colour] + [0] * 762)
        image.save(tmp_path / "d" / "a" / f"{name}.png")
    make_image(tmp_path / "d" / "b" / "other.png", seed=3)
    result = audit(tmp_path / "d", "--checks", "exact_duplicates", "--out", tmp_path / "run", "-q")
    assert result.exit_code == 0, result.output
    findings = pd.read_parquet(tmp_path / "run" / "findings.parquet")
    assert sorted(findings.loc[findings["is_issue"], "path"]) == ["a/red_again.png"]


@pytest.mark.parametrize("args, fragment", [(["--model", "nope"], "unknown model 'nope'"),
                                            (["--model", "resnet18", "--weights", "absent.pt"], "file not found")])
@pytest.mark.parametrize("checks", ["label_issues", "image_properties"])
def test_a_bad_model_fails_before_a_run_folder_exists(tiny_dataset, tmp_path, args, fragment, checks):
    """Also when no check selected trains: a model named for nothing is a mistake to say."""
    result = audit(tiny_dataset, "--checks", checks, "--out", tmp_path / "run", *args)
    assert_one_line_error(result, ExitStatus.USAGE, fragment)
    assert not (tmp_path / "run").exists()


def test_report_and_augment_never_write_into_the_dataset_or_the_run(tiny_dataset, tmp_path):
    before = tree_digest(tiny_dataset)
    assert audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "run", "-q").exit_code == 0
    findings = (tmp_path / "run" / "findings.parquet").read_bytes()
    for args in (["--out", tiny_dataset / "train" / "cat" / "cat1.png"], ["--out", tmp_path / "run" / "findings.parquet"],
                 ["--out", tiny_dataset / "report.html"], ["--out", tmp_path / "run" / "run.json"]):
        result = invoke("report", tmp_path / "run", *args, "-q")
        assert_one_line_error(result, ExitStatus.USAGE, str(args[1]))
    plan = invoke("balance", tmp_path / "run", "--strategy", "classes", "--target", 8, "--out", tmp_path / "plan", "-q")
    assert plan.exit_code == 0, plan.output
    result = invoke("augment", tmp_path / "plan", "--out", tiny_dataset / "train" / "more")
    assert_one_line_error(result, ExitStatus.USAGE, "would write into the audited dataset")
    assert tree_digest(tiny_dataset) == before
    assert (tmp_path / "run" / "findings.parquet").read_bytes() == findings


# --------------------------------------------------------------------------- second adversarial pass


def _relabel(*args):
    return invoke("relabel", *args)


def test_outputs_never_overwrite_each_other_or_the_imported_review(tiny_dataset, tmp_path):
    assert audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "run", "-q").exit_code == 0
    review = tmp_path / "review.csv"
    assert _relabel(tmp_path / "run", "--export-review", review, "-q").exit_code == 0
    text = review.read_bytes()
    result = _relabel(tmp_path / "run", "--import-review", review, "--export-review", review)
    assert_one_line_error(result, ExitStatus.USAGE, "is the review being imported")
    assert review.read_bytes() == text
    for args in (["--export-review", tmp_path / "m" / "r.csv", "--materialize", tmp_path / "m"],
                 ["--out", tmp_path / "o", "--materialize", tmp_path / "o"],
                 ["--out", tmp_path / "o", "--export-review", tmp_path / "o" / "manifest.csv"],
                 ["--export-review", tmp_path / "same.json", "--export-label-studio", tmp_path / "same.json"]):
        assert_one_line_error(_relabel(tmp_path / "run", *args), ExitStatus.USAGE, "overlap")
    assert not (tmp_path / "m").exists() and not (tmp_path / "o").exists() and not (tmp_path / "same.json").exists()


def test_a_reused_run_folder_keeps_no_stale_model_outputs(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    assert audit(tiny_dataset, "--checks", "exact_duplicates", "--out", run, "-q").exit_code == 0
    (run / "artifacts" / "model_outputs.npz").write_bytes(b"from an earlier audit")
    (run / "report.html").write_text("an earlier report")
    (run / "artifacts" / "image_stats.parquet").write_text("an earlier datacheck's statistics")
    part = run / "artifacts" / "image_stats" / "rows-000000000000.parquet"
    part.write_bytes(b"damaged")  # recomputed, not a crash
    assert audit(tiny_dataset, "--checks", "exact_duplicates", "--out", run, "-q").exit_code == 0
    assert sorted(p.name for p in (run / "artifacts").iterdir()) == ["image_stats"]
    assert pq.read_table(part).num_rows == 16
    assert not (run / "report.html").exists()


def test_cache_and_junit_are_checked_before_the_audit(tiny_dataset, tmp_path):
    for checks in ("label_issues", "image_properties"):  # also where no selected check reads the cache
        result = audit(tiny_dataset, "--checks", checks, "--cache-dir", tiny_dataset / "cache", "--out", tmp_path / "r")
        assert_one_line_error(result, ExitStatus.USAGE, "--cache-dir")
    result = audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "r", "--junit", tmp_path / "r" / "run.json")
    assert_one_line_error(result, ExitStatus.USAGE, "one of the run's own files")
    result = audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "r", "--junit", tmp_path)
    assert_one_line_error(result, ExitStatus.USAGE, "is a folder")
    if Path("/dev/null").exists():  # a CI idiom, but outputs are written to a temporary file and renamed
        result = audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "r", "--junit", "/dev/null")
        assert_one_line_error(result, ExitStatus.USAGE, "/dev/null exists and is not a regular file")
    result = audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "r", "--junit", tmp_path / "r")
    assert_one_line_error(result, ExitStatus.USAGE, "is the run folder (--out)")
    assert not (tmp_path / "r").exists() and not (tiny_dataset / "cache").exists()


def test_no_output_replaces_a_file_of_another_run(tiny_dataset, tmp_path):
    assert audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "a", "-q").exit_code == 0
    before = {name: (tmp_path / "a" / name).read_bytes() for name in ("run.json", "summary.json", "findings.parquet")}
    result = audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "b", "--junit", tmp_path / "a" / "run.json")
    assert_one_line_error(result, ExitStatus.USAGE, "is a file of the datacheck run in")
    assert not (tmp_path / "b").exists()
    assert audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "b", "-q").exit_code == 0
    result = invoke("report", tmp_path / "b", "--out", tmp_path / "a" / "summary.json", "-q")
    assert_one_line_error(result, ExitStatus.USAGE, "is a file of the datacheck run in")
    assert {name: (tmp_path / "a" / name).read_bytes() for name in before} == before


def test_a_file_output_that_is_a_symlink_is_refused_not_replaced(tiny_dataset, tmp_path):
    """Outputs are written beside themselves and renamed into place: a symlink given as
    --export-review, --junit or report --out was replaced by a regular file (the link lost,
    its target untouched; as root, --export-review /dev/stdout replaced /dev/stdout)."""
    run = tmp_path / "run"
    assert invoke("audit", tiny_dataset, "--out", run, "--checks", "image_properties", "-q").exit_code == 0
    target = tmp_path / "target.txt"
    target.write_text("precious")
    for args in (["relabel", run, "--export-review"], ["report", run, "--out"],
                 ["audit", tiny_dataset, "--out", tmp_path / "r2", "--checks", "image_properties", "--junit"]):
        link = tmp_path / "link"
        link.symlink_to(target)
        result = invoke(*args, link)
        assert_one_line_error(result, 2, f"{link} is a symbolic link")
        assert link.is_symlink() and target.read_text() == "precious"
        link.unlink()
    assert not (tmp_path / "r2").exists()



@pytest.mark.parametrize("text, fragment", [
    ("audit = 5\n", "must be a table"),
    ("a = " + "[" * 2000 + "]" * 2000 + "\n", "not valid TOML"),
])
def test_config_that_is_not_tables_exits_2(tiny_dataset, tmp_path, text, fragment):
    (tmp_path / "c.toml").write_text(text)
    result = audit(tiny_dataset, "--config", tmp_path / "c.toml", "--out", tmp_path / "r")
    assert_one_line_error(result, ExitStatus.USAGE, fragment)


@pytest.mark.parametrize("annotations", [5, [{"result": 7}], [{"result": [{"value": ["cat"]}]}],
                                         [{"result": [{"value": "cat"}]}]])
def test_malformed_label_studio_exports_exit_3(tiny_dataset, tmp_path, annotations):
    assert audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "run", "-q").exit_code == 0
    export = tmp_path / "ls.json"
    export.write_text(json.dumps([{"data": {"sample_id": "train/cat/cat0.png"}, "annotations": annotations}]))
    assert_one_line_error(_relabel(tmp_path / "run", "--import-review", export), ExitStatus.BAD_DATA, "task 1")


def test_balance_without_training_rows_and_a_huge_threshold(tiny_dataset, tmp_path):
    shutil.rmtree(tiny_dataset / "train")
    (tmp_path / "c.toml").write_text("[detectors.image_properties]\nz_threshold = 5000.0\n")
    result = audit(tiny_dataset, "--checks", "image_properties,class_imbalance", "--config", tmp_path / "c.toml",
                   "--out", tmp_path / "run", "-q")
    assert result.exit_code == 0, result.output  # a check turned off by a huge threshold
    result = invoke("balance", tmp_path / "run", "--strategy", "classes", "--out", tmp_path / "p")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "has no training rows")


def test_report_of_a_missing_dataset_folder_exits_3(tiny_dataset, tmp_path):
    assert audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "run", "-q").exit_code == 0
    result = invoke("report", tmp_path / "run", "--dataset", tmp_path / "absent")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "no such dataset folder")


def test_a_manifest_datasets_listed_files_are_protected(tiny_dataset, tmp_path):
    """For a manifest, the listed files (and folders holding them) are the dataset; files beside them are not."""
    manifest = write_manifest(tmp_path, [{"path": "train/cat/cat0.png", "label": "cat"},
                                         {"path": "train/dog/dog0.png", "label": "dog"}])
    assert audit(manifest, "--root", tiny_dataset, "--checks", "class_imbalance", "--out", tmp_path / "run", "-q").exit_code == 0
    for target in (tiny_dataset / "train" / "dog" / "dog0.png", tiny_dataset / "train", tiny_dataset):
        assert_one_line_error(_relabel(tmp_path / "run", "--export-review", target), ExitStatus.USAGE,
                              "would write into the audited dataset")
    assert _relabel(tmp_path / "run", "--export-review", tiny_dataset / "val" / "review.csv", "-q").exit_code == 0


def test_a_full_disk_is_one_line_exit_2_not_an_internal_error(tiny_dataset, tmp_path, monkeypatch):
    import errno

    import datacheck.runs

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(datacheck.runs, "atomic_write", full)
    result = audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "run", "-q")
    assert_one_line_error(result, ExitStatus.USAGE, "run.json: No space left on device")


def test_a_disk_filling_up_while_writing_names_the_output(tiny_dataset, tmp_path, monkeypatch):
    """The disk fills up inside a write: Python's file objects raise ENOSPC without a file name,
    Arrow with the errno only in its message. The line names the output, not the temporary file
    (before: "datacheck: error: No space left on device", which file?)."""
    import errno
    import pathlib

    import pyarrow.parquet as pq

    def full_text(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(pathlib.Path, "write_text", full_text)
        result = audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "run", "-q")
    line = assert_one_line_error(result, ExitStatus.USAGE, f"{tmp_path / 'run' / 'run.json'}: No space left on device")
    assert ".tmp" not in line

    def full_arrow(*args, **kwargs):
        raise OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(pq, "write_table", full_arrow)
    result = audit(tiny_dataset, "--checks", "exact_duplicates", "--out", tmp_path / "run2", "-q")
    assert_one_line_error(result, ExitStatus.USAGE, str(tmp_path / "run2"), ".parquet: No space left on device")
    assert not [p for p in (tmp_path / "run2").rglob("*.tmp")]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes as on POSIX")
@pytest.mark.parametrize("name", ["findings.parquet", "artifacts/model_outputs.npz"])
@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_a_run_file_that_is_a_pipe_or_a_device_is_named_not_read(tiny_dataset, tmp_path, name, special):
    """findings.parquet linked to /dev/zero was said to be "missing"; a pipe there blocked the
    read for ever, and model_outputs.npz read from /dev/zero filled the memory. Each is refused
    before it is opened (in a subprocess with a timeout, so a regression fails instead of hanging)."""
    import subprocess
    import sys

    run = tmp_path / "run"
    assert audit(tiny_dataset, "--out", run, "--checks", "class_imbalance", "-q").exit_code == 0
    target = run / name
    target.unlink(missing_ok=True)
    target.parent.mkdir(exist_ok=True)
    if special == "fifo":
        os.mkfifo(target)
    else:
        os.symlink(special, target)
    kind = "a named pipe (FIFO)" if special == "fifo" else "a character device"
    done = subprocess.run([sys.executable, "-m", "datacheck", "report", str(run)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == ExitStatus.BAD_DATA, done.stderr
    assert done.stderr == (f"datacheck: error: {target} is {kind}, not a regular file: not read; the run is damaged, "
                           "run datacheck audit again\n")
    assert not (run / "report.html").exists()

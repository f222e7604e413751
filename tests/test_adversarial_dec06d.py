"""What a real user's file system does to datacheck: permissions, a home without a cache,
long names.

Root ignores permission bits, so where the suite runs as root the command runs in a
subprocess without the capabilities that bypass them (``setpriv``: no CAP_DAC_OVERRIDE or
CAP_DAC_READ_SEARCH), and is then refused by the mode bits as any user is; as a normal user
plain ``chmod`` does it. Every mode a test takes away is given back in a ``finally``, so pytest
can remove its temporary folders.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from .conftest import make_tiny_dataset

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")

_DAC = "-dac_override,-dac_read_search"
QUICK = Path(__file__).resolve().parents[1] / "datacheck" / "presets" / "quick.toml"


def run_as_user(*args, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m datacheck ARGS`` in a subprocess that permission bits apply to."""
    command = [sys.executable, "-m", "datacheck", *map(str, args)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root, which ignores permission bits, and no setpriv to drop that")
        command = [setpriv, f"--inh-caps={_DAC}", f"--bounding-set={_DAC}", *command]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@contextlib.contextmanager
def mode(path: Path, bits: int):
    """``path`` chmod-ed to ``bits`` for the block, its mode restored after."""
    before = path.stat().st_mode & 0o7777
    path.chmod(bits)
    try:
        yield path
    finally:
        path.chmod(before)


def one_error_line(proc: subprocess.CompletedProcess, status: int, *fragments: str) -> str:
    assert proc.returncode == status, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("datacheck: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize("folder", ["train/dog", "val", "train/cat/more"])
def test_a_folder_of_the_dataset_that_cannot_be_listed_is_named_not_left_out(tmp_path, folder):
    # os.walk passed over a class folder it could not list: the audit said "12 samples" of a
    # 16-image dataset, a whole class missing without a word (a split folder crashed as exit 2)
    data = make_tiny_dataset(tmp_path / "tiny")
    (data / "train/cat/more").mkdir()
    shutil.copy(data / "train/cat/cat0.png", data / "train/cat/more/extra.png")
    with mode(data / folder, 0o000):
        proc = run_as_user("audit", data, "--config", QUICK, "--out", tmp_path / "run", "-q")
    one_error_line(proc, 3, f"cannot list the folder '{folder}'", "Permission denied")
    assert not (tmp_path / "run").exists()


def test_an_image_that_cannot_be_read_is_reported_corrupt_with_the_reason(tmp_path):
    data = make_tiny_dataset(tmp_path / "tiny")
    with mode(data / "train/cat/cat1.png", 0o000):
        proc = run_as_user("audit", data, "--config", QUICK, "--fail-on", "", "--out", tmp_path / "run", "-q")
    assert proc.returncode == 0, proc.stderr
    import pandas as pd

    findings = pd.read_parquet(tmp_path / "run/findings.parquet")
    corrupt = findings[(findings["check"] == "corrupt") & findings["is_issue"]]
    assert corrupt["path"].tolist() == ["train/cat/cat1.png"]
    assert "Permission denied" in corrupt["details"].iloc[0]


def test_copies_of_an_image_named_near_the_255_byte_limit_are_written(tmp_path):
    # augment named a copy <stem>-<tag>-aug<k>.png whatever the stem's length: a source named
    # near the file system's 255 bytes stopped the output half-written with an internal error
    # (exit 4, OSError: File name too long)
    from datacheck.actions.augment import copy_name

    from .conftest import invoke

    data = make_tiny_dataset(tmp_path / "tiny")
    long_stem = "é" + "L" * 249  # 251 bytes: with ".png", a name of 255
    (data / "train/cat/cat0.png").rename(data / f"train/cat/{long_stem}.png")
    assert invoke("audit", data, "--config", QUICK, "--fail-on", "", "--out", tmp_path / "run", "-q").exit_code == 0
    assert invoke("balance", tmp_path / "run", "--strategy", "classes", "--target", 12, "--out", tmp_path / "plan",
                  "-q").exit_code == 0
    result = invoke("augment", tmp_path / "plan", "--out", tmp_path / "aug", "-q")
    assert result.exit_code == 0, result.output
    names = [p.name for p in (tmp_path / "aug/train/cat").iterdir()]
    copies = [n for n in names if n.startswith("éLLL") and "-aug" in n]
    assert copies and all(len(n.encode()) <= 255 for n in names)
    # cut at a character, never inside one; the id tag keeps the copies of two sources apart
    assert copy_name(PurePosixPath("c"), "c/" + "é" * 200 + ".png", "a", 0).endswith("-aug0.png")
    assert len(copy_name(PurePosixPath("c"), "c/" + "é" * 200 + ".png", "a", 0)[2:].encode()) <= 255
    assert copy_name(PurePosixPath("c"), f"c/{long_stem}.png", "a", 0) != copy_name(
        PurePosixPath("c"), f"c/{long_stem}x.png", "b", 0)


def test_an_output_named_at_the_255_byte_limit_is_written_atomically(tmp_path):
    # atomic_write's temporary name ".<name>.XXXXXXXX.tmp" passed 255 bytes for such a name
    from datacheck.runs import atomic_write, remove_temporaries, temporary_folder

    path = tmp_path / ("ü" + "n" * 249 + ".csv")  # 255 bytes
    atomic_write(path, lambda tmp: tmp.write_text("x"))
    assert path.read_text() == "x"
    folder = temporary_folder(tmp_path / ("d" * 255))
    assert folder.is_dir() and len(folder.name.encode()) <= 255
    assert remove_temporaries(tmp_path) == 0 and sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, folder.name])


TRAIN_FAST = '[audit]\nchecks = ["label_issues"]\n[train]\nepochs = 1\nfolds = 2\nbatch_size = 16\n'


@pytest.mark.parametrize("home", ["read-only", "a file", "unset"])
def test_a_default_cache_that_cannot_be_written_is_left_out_with_a_note(tmp_path, home):
    # the default cache (~/.cache/datacheck) in a read-only home failed the audit with exit 2
    # once the images were decoded, and a user with no $HOME and no password entry (a
    # container's --user 1234) got an internal error (exit 4: "Could not determine home
    # directory"); the cache only saves time, and the user did not choose it
    data = make_tiny_dataset(tmp_path / "tiny")
    config = tmp_path / "fast.toml"
    config.write_text(TRAIN_FAST)
    place = tmp_path / "home"
    env = {"XDG_CACHE_HOME": ""}
    if home == "a file":
        place.write_text("")
        env["HOME"] = str(place)
    elif home == "read-only":
        place.mkdir()
        env["HOME"] = str(place)
    with mode(place, 0o555) if home == "read-only" else contextlib.nullcontext():
        if home == "unset":
            import datacheck.pipeline as pipeline

            with pytest.MonkeyPatch.context() as patch:
                patch.delenv("HOME", raising=False)
                patch.delenv("XDG_CACHE_HOME", raising=False)
                patch.setattr(Path, "home", classmethod(lambda cls: (_ for _ in ()).throw(RuntimeError("no home"))))
                assert pipeline._cache_dir("") is None
                assert pipeline._default_cache_usable(None) == (None, "no home folder for the cache ($HOME is not set)")
                import datacheck

                result = datacheck.audit(data, config=str(config), out=tmp_path / "run")
            assert result.summary["notes"][0].startswith("no home folder for the cache")
            return
        proc = run_as_user("audit", data, "--config", config, "--out", tmp_path / "run", "-q", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith(f"datacheck: note: the cache folder {place}/.cache/datacheck cannot be written ("), proc.stderr
    assert "audited without a cache" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "run/artifacts/model_outputs.npz").is_file()
    if home == "read-only":
        assert list(place.iterdir()) == []


@pytest.mark.parametrize("option", ["--junit", "--out"])
def test_an_output_in_a_folder_the_user_cannot_write_is_refused_before_any_work(tmp_path, option):
    # --junit in a read-only folder failed after the whole audit (its training too), with the
    # run written; every output's folder is now checked with the others, before any work
    data = make_tiny_dataset(tmp_path / "tiny")
    config = tmp_path / "fast.toml"
    config.write_text(TRAIN_FAST)
    locked = tmp_path / "locked"
    locked.mkdir()
    outputs = {"--junit": ["--junit", locked / "j.xml", "--out", tmp_path / "run"],
               "--out": ["--out", locked / "run"]}[option]
    with mode(locked, 0o555):
        proc = run_as_user("audit", data, "--config", config, "--cache-dir", "off", *outputs, "-q")
    one_error_line(proc, 2, f"{option} ", f"cannot be written: {locked}: Permission denied")
    assert not (tmp_path / "run").exists() and list(locked.iterdir()) == []
    if option == "--out":  # the same gate for the other commands' outputs
        from .conftest import invoke

        assert invoke("audit", data, "--config", QUICK, "--fail-on", "", "--out", tmp_path / "quick", "-q").exit_code == 0
        for command, named in ((["report", tmp_path / "quick", "--out", locked / "r.html"], "--out"),
                               (["relabel", tmp_path / "quick", "--materialize", locked / "m"], "--materialize")):
            with mode(locked, 0o555):
                proc = run_as_user(*command, "-q")
            one_error_line(proc, 2, f"{named} ", f"cannot be written: {locked}: Permission denied")
            assert list(locked.iterdir()) == []


def test_a_class_folder_named_in_decomposed_unicode_is_its_composed_namesake(tmp_path):
    # "café" from a Mac (NFD: e + U+0301) and "café" typed elsewhere (NFC) were two classes
    # that print alike: the 1 image of the one flagged as a class far smaller than the other
    import json
    import unicodedata

    from .conftest import invoke, make_image

    composed, decomposed = "café", unicodedata.normalize("NFD", "café")
    for i in range(6):
        make_image(tmp_path / "data" / composed / f"a{i}.png", i)
        make_image(tmp_path / "data" / "dog" / f"d{i}.png", 10 + i)
    make_image(tmp_path / "data" / decomposed / "b0.png", 20)
    result = invoke("audit", tmp_path / "data", "--config", QUICK, "--fail-on", "", "--out", tmp_path / "run", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["classes"] == 2 and summary["checks"]["class_imbalance"]["flagged"] == 0
    note = "the class folders 'cafe\\u0301', 'café' are read as one class, 'café' (a class name is read without " \
           "surrounding spaces, in Unicode's composed form (NFC))"
    assert any(n.startswith(note) for n in summary["notes"]), summary["notes"]
    assert f"datacheck: note: {note}" in result.stderr
    # a manifest's labels too; its paths are file names, kept as they are
    (tmp_path / "m.csv").write_text(f"path,label\ndata/{composed}/a0.png,{decomposed}\ndata/dog/d0.png,dog\n"
                                    f"data/{decomposed}/b0.png,{composed}\n", encoding="utf-8")
    from datacheck.manifest import load_manifest

    assert load_manifest(tmp_path / "m.csv").frame["label"].tolist() == [composed, "dog", composed]


def test_a_source_that_cannot_be_read_for_a_copy_is_bad_data_named_as_an_input(tmp_path, monkeypatch):
    # a dataset file of another user's, unreadable (the audit reported it corrupt), cannot be
    # hard-linked (fs.protected_hardlinks) nor copied: relabel --materialize and augment said
    # "SOURCE: Permission denied", exit 2, as if an output could not be written
    import errno

    from datacheck.actions import augment
    from datacheck.errors import BadDataError

    source = tmp_path / "data/cat/a.png"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"x")

    def refuse_link(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(src), None, str(dst))

    def refuse_read(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(src))

    monkeypatch.setattr(augment.os, "link", refuse_link)
    monkeypatch.setattr(augment.shutil, "copyfile", refuse_read)
    with pytest.raises(BadDataError, match=r"cannot read .*a\.png to copy it: Permission denied; make it readable"):
        augment.link_or_copy(source, tmp_path / "out/cat/a.png")
    assert list((tmp_path / "out/cat").iterdir()) == []  # no temporary file left
    monkeypatch.undo()
    assert augment.link_or_copy(source, tmp_path / "out/cat/a.png") == "linked"


@pytest.mark.parametrize("command", ["audit", "fix"])
@pytest.mark.parametrize("what", ["folder", "manifest"])
def test_a_dataset_the_user_cannot_read_is_bad_data(tmp_path, command, what):
    # click's readable check refused it first as a usage error (exit 2, "Invalid value for
    # '[DATASET]'"), where the README gives an unreadable manifest exit 3, as a class folder's is
    data = make_tiny_dataset(tmp_path / "tiny")
    target = data
    if what == "manifest":
        target = tmp_path / "m.csv"
        target.write_text("path,label\ntiny/train/cat/cat0.png,cat\n")
    with mode(target, 0o000):
        proc = run_as_user(command, target, "--config", QUICK, "--out", tmp_path / "out", "-q")
    expected = f"cannot list the dataset folder {data}" if what == "folder" else f"cannot read manifest {target}"
    one_error_line(proc, 3, expected, "Permission denied")
    assert not (tmp_path / "out").exists()


def test_no_writable_temporary_folder_is_one_line_not_an_internal_error(tmp_path, monkeypatch):
    # $TMPDIR, /tmp, /var/tmp and the working folder all read-only (a container's read-only
    # root): tempfile's FileNotFoundError, raised where a float64 --pred-probs is converted (or
    # while torch imports dill, for an image audit), was an internal error, exit 4
    import errno
    import tempfile

    import numpy as np

    from .conftest import assert_one_line_error, invoke, label_arrays

    _, probs, labels = label_arrays(60, 3)
    np.save(tmp_path / "p.npy", probs.astype(np.float64))
    np.save(tmp_path / "l.npy", labels)

    def nowhere():
        raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found in ['/nonexist', '/tmp', '/']")

    monkeypatch.setattr(tempfile, "gettempdir", nowhere)
    result = invoke("audit", "--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "l.npy",
                    "--out", tmp_path / "run", "-q")
    assert_one_line_error(result, 2, "no folder for temporary files can be written", "set TMPDIR")

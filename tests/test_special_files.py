"""Special files in a dataset, and outputs that can never be written.

A named pipe, socket or device where an image should be is reported as unreadable (check
``corrupt``) and never opened: opening a pipe without a writer blocks forever, and a device
such as ``/dev/zero`` never ends. A symlink loop leads to no file: it is a missing file, like
a dangling symlink. An ``--out`` or ``--junit`` below a regular file is a usage error found
before any work. Audits that could hang run in a subprocess with a timeout, and in-process
reads run under an alarm, so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datacheck.engine.image_stats import SpecialFileError, analyze_image, open_image
from datacheck.engine.loader import decode_resize_batch, file_digest, load_pixels
from datacheck.errors import ExitStatus
from datacheck.manifest import load_manifest

from .conftest import assert_one_line_error, invoke, make_image, tree_digest

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes and symlinks as on POSIX")


def run_cli(*args, timeout: int = 120) -> subprocess.CompletedProcess:
    """``python -m datacheck ARGS`` in a subprocess that is killed (failing the test) if it hangs."""
    return subprocess.run([sys.executable, "-m", "datacheck", *map(str, args)], check=False,
                          capture_output=True, text=True, timeout=timeout)


def audit(*args):
    return invoke("audit", *args, "--workers", 0)


@contextmanager
def no_hang(seconds: int = 30):
    """Fail (rather than block forever) if the body has not finished within ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a special file was opened")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def make_socket(path: Path) -> socket.socket:
    """A bound UNIX socket at ``path`` (bound by a relative name: AF_UNIX paths are short)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        sock.bind(path.name)
    finally:
        os.chdir(cwd)
    return sock


def corrupt_errors(run: Path) -> dict[str, str]:
    """Sample id → error of every sample the run flagged as corrupt."""
    findings = pd.read_parquet(run / "findings.parquet")
    rows = findings[(findings["check"] == "corrupt") & findings["is_issue"]]
    return {row.sample_id: json.loads(row.details)["error"] for row in rows.itertuples()}


# --------------------------------------------------------------------------- pipes, sockets, devices


def test_pipe_socket_and_device_in_a_folder_dataset_are_corrupt_never_opened(tiny_dataset, tmp_path):
    cat = tiny_dataset / "train" / "cat"
    os.mkfifo(cat / "pipe.png")
    os.symlink("pipe.png", cat / "link_to_pipe.png")  # followed: the link's target is what counts
    sock = make_socket(cat / "socket.png")
    expected = {"train/cat/pipe.png": "named pipe", "train/cat/link_to_pipe.png": "named pipe",
                "train/cat/socket.png": "a socket"}
    try:
        os.mknod(cat / "zero.png", 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # a character device, as /dev/zero
        expected["train/cat/zero.png"] = "a character device"
    except (PermissionError, AttributeError):  # mknod needs privileges (or is not there): checked below
        pass
    before = tree_digest(tiny_dataset)
    try:
        result = run_cli("audit", tiny_dataset, "--checks", "image_properties", "--out", tmp_path / "run",
                         "--workers", "0")
    finally:
        sock.close()
    assert result.returncode == ExitStatus.OK, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{len(expected)} image(s) could not be decoded" in result.stdout + result.stderr
    errors = corrupt_errors(tmp_path / "run")
    assert set(errors) == set(expected)
    for sample_id, kind in expected.items():
        assert errors[sample_id].startswith("SpecialFileError: ") and kind in errors[sample_id]
        assert "not a regular file" in errors[sample_id]
    assert tree_digest(tiny_dataset) == before
    assert (cat / "pipe.png").is_fifo()


def test_a_manifest_listing_a_pipe_or_devices_reports_them_corrupt(tiny_dataset, tmp_path):
    os.mkfifo(tiny_dataset / "train" / "cat" / "pipe.png")
    manifest = tiny_dataset / "manifest.csv"
    pd.DataFrame([{"path": "train/cat/cat0.png", "label": "cat"}, {"path": "train/cat/pipe.png", "label": "cat"},
                  {"path": "train/dog/dog0.png", "label": "dog"}]).to_csv(manifest, index=False)
    result = run_cli("audit", manifest, "--checks", "image_properties", "--out", tmp_path / "run", "--workers", "0")
    assert result.returncode == ExitStatus.OK, result.stderr
    assert list(corrupt_errors(tmp_path / "run")) == ["train/cat/pipe.png"]

    # /dev/zero never ends and /dev/null is empty: devices named by a manifest whose root holds them.
    devices = tmp_path / "devices.csv"
    pd.DataFrame([{"path": "zero", "label": "a"}, {"path": "null", "label": "b"}]).to_csv(devices, index=False)
    result = run_cli("audit", devices, "--root", "/dev", "--checks", "image_properties", "--out", tmp_path / "dev",
                     "--workers", "0")
    assert result.returncode == ExitStatus.OK, result.stderr
    errors = corrupt_errors(tmp_path / "dev")
    assert set(errors) == {"zero", "null"}
    assert all("a character device, not a regular file" in e for e in errors.values())


def test_a_symlink_to_dev_zero_leaves_the_dataset_and_is_refused_unread(tiny_dataset, tmp_path):
    # A link to a device outside the dataset is refused as any link out of the dataset is
    # (exit 3, before any file is read); inside the dataset, a device is reported corrupt (above).
    os.symlink("/dev/zero", tiny_dataset / "train" / "cat" / "zero.png")
    result = run_cli("audit", tiny_dataset, "--checks", "image_properties", "--out", tmp_path / "run", "--workers", "0")
    assert result.returncode == ExitStatus.BAD_DATA, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("datacheck: error: path escapes the dataset root")
    assert "'train/cat/zero.png'" in result.stderr
    assert not (tmp_path / "run").exists()


def test_readers_of_every_file_never_open_a_pipe_or_a_device(tmp_path):
    good = str(make_image(tmp_path / "good.png", seed=1))
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    with no_hang():
        for special, kind in ((str(pipe), "a named pipe (FIFO)"), ("/dev/zero", "a character device")):
            row = analyze_image(special)
            assert row["error"] == f"SpecialFileError: {kind}, not a regular file: not read"
            assert row["pixel_hash"] == "" and row["width"] == 0
            with pytest.raises(SpecialFileError, match="not a regular file"):
                open_image(special)
            batch = decode_resize_batch({"path": [good, special]}, side=8)
            assert batch["ok"] == [True, False] and not batch["pixels"][1].any()
        # The content key of the decoded-pixel cache: a pipe or device counts as unreadable.
        assert file_digest([good, str(pipe)]) == file_digest([good, "/dev/zero"])
        assert file_digest([good, str(pipe)]) != file_digest([good, good])
        for cache_dir in (None, tmp_path / "cache"):  # the pixels models train on, cached or not
            pixels, ok, _ = load_pixels([good, str(pipe)], side=8, workers=0, cache_dir=cache_dir)
            assert ok.tolist() == [True, False] and pixels.shape == (2, 3, 8, 8)
            assert np.asarray(pixels[0]).any() and not np.asarray(pixels[1]).any()


# --------------------------------------------------------------------------- symlink loops


@pytest.mark.parametrize("links", [{"loop.png": "loop.png"}, {"a.png": "b.png", "b.png": "a.png"}],
                         ids=["self_loop", "two_link_loop"])
def test_a_symlink_loop_is_a_missing_file_not_an_internal_error(tiny_dataset, tmp_path, links):
    # A loop, like a dangling symlink, leads to no file: the manifest counts it as missing
    # (exit 3 unless --max-missing allows it), which is how it treats every file it cannot find.
    for name, target in links.items():
        os.symlink(target, tiny_dataset / "train" / "cat" / name)
    names = sorted(f"train/cat/{name}" for name in links)
    result = audit(tiny_dataset, "--checks", "image_properties", "--out", tmp_path / "r1")
    assert_one_line_error(result, ExitStatus.BAD_DATA, f"{len(links)} of {16 + len(links)} files listed in")
    assert repr(names[0]) in result.stderr and "--max-missing" in result.stderr
    assert not (tmp_path / "r1").exists()

    ok = audit(tiny_dataset, "--checks", "image_properties", "--out", tmp_path / "r2", "--max-missing",
               len(links), "--json", "-q")
    assert ok.exit_code == ExitStatus.OK, ok.output
    summary = json.loads(ok.stdout)
    assert sorted(summary["missing_files"]) == names and summary["samples"] == 16
    assert not corrupt_errors(tmp_path / "r2")


def test_a_manifest_listing_a_symlink_loop_counts_it_missing(tiny_dataset):
    os.symlink("loop.png", tiny_dataset / "train" / "cat" / "loop.png")
    manifest = tiny_dataset / "manifest.csv"
    pd.DataFrame([{"path": "train/cat/cat0.png", "label": "cat"}, {"path": "train/cat/loop.png", "label": "cat"},
                  {"path": "train/dog/dog0.png", "label": "dog"}]).to_csv(manifest, index=False)
    loaded = load_manifest(manifest, max_missing=1)
    assert loaded.missing == ["train/cat/loop.png"] and len(loaded) == 2


# --------------------------------------------------------------------------- outputs below a file


@pytest.mark.parametrize("option", ["--out", "--junit"])
@pytest.mark.parametrize("below", ["run", "deeper/run"])
def test_an_output_below_a_regular_file_exits_2_before_any_work(tiny_dataset, tmp_path, option, below):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a user's file\n")
    stamp = blocker.stat().st_mtime_ns
    target = blocker / below if option == "--out" else blocker / below / "report.xml"
    out = target if option == "--out" else tmp_path / "run"
    args = ["--out", out] + (["--junit", target] if option == "--junit" else [])
    result = audit(tiny_dataset, "--checks", "image_properties", *args)
    assert_one_line_error(result, ExitStatus.USAGE, f"{option} {target} cannot be written")
    assert f"{blocker} is a file, not a folder" in result.stderr
    assert blocker.read_text() == "a user's file\n" and blocker.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "tiny"]  # no run folder either


def test_writing_below_a_file_names_the_file(tmp_path):
    from datacheck.errors import UsageError
    from datacheck.runs import RunDir, write_json

    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    with pytest.raises(UsageError, match=r"--out .* cannot be written: .*notes\.txt is a file, not a folder"):
        RunDir(blocker / "run")
    with pytest.raises(UsageError, match=r"cannot write .*: .*notes\.txt is a file, not a folder"):
        write_json(blocker / "a" / "b.json", {})  # not "File exists", as mkdir would say
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    with pytest.raises(UsageError, match="dangling is a broken symlink, not a folder"):
        RunDir(tmp_path / "dangling" / "run")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("role", ["manifest", "--pred-probs", "--labels", "--class-names"])
def test_a_pipe_given_as_an_input_file_is_refused_never_read(tmp_path, role):
    """Every file the user names is checked before it is opened: a named pipe without a writer
    would block the audit for ever."""
    pipe = tmp_path / ("pipe.csv" if role in ("manifest", "--class-names") else "pipe.npy")
    os.mkfifo(pipe)
    np.save(tmp_path / "probs.npy", np.full((6, 2), 0.5))
    np.save(tmp_path / "labels.npy", np.array([0, 1] * 3))
    args = {"--pred-probs": tmp_path / "probs.npy", "--labels": tmp_path / "labels.npy"}
    if role == "manifest":
        command = ["audit", pipe]
    else:
        args[role] = pipe
        command = ["audit", *[str(x) for pair in args.items() for x in pair]]
    result = invoke(*command, "--out", tmp_path / "run", "-q")
    assert_one_line_error(result, ExitStatus.BAD_DATA, str(pipe), "named pipe (FIFO), not a regular file")

"""Audits of arrays with a manifest: any modality gets the duplicate and leakage checks."""

from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import datacheck
from datacheck.audit_run import open_run
from datacheck.errors import BadDataError, ExitStatus, UsageError
from datacheck.features.arrays import load_array_inputs

from .conftest import assert_one_line_error, invoke, make_image

NAMES = ["ant", "bee", "cat"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """400 samples (3 classes, 32-d embeddings in two sub-clusters per class, 75 % train), with
    planted near-duplicate copies within a split, train->test leaks and exact copies."""
    d = tmp_path_factory.mktemp("arrays")
    rng = np.random.default_rng(7)
    n = 400
    true = rng.integers(0, 3, n)
    centres = rng.normal(size=(6, 32)) * 3
    emb = centres[true * 2 + rng.integers(0, 2, n)] + rng.normal(size=(n, 32))
    split = np.where(rng.random(n) < 0.75, "train", "test").astype(object)
    rows = rng.permutation(n)
    dup_src, dup_copy = rows[0:4], rows[4:8]
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    leak_src = np.setdiff1d(train, rows[:20])[:3]
    leak_copy = np.setdiff1d(test, rows[:20])[:3]
    exact_src, exact_copy = rows[10:12], rows[12:14]
    split[dup_copy] = split[dup_src]
    true[dup_copy], true[leak_copy], true[exact_copy] = true[dup_src], true[leak_src], true[exact_src]
    emb[dup_copy] = emb[dup_src] + rng.normal(size=(4, 32)) * 1e-3
    emb[leak_copy] = emb[leak_src] + rng.normal(size=(3, 32)) * 1e-3
    emb[exact_copy] = emb[exact_src]
    logits = 4.0 * np.eye(3)[true] + rng.normal(size=(n, 3))
    probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    labels = true.copy()
    flipped = np.setdiff1d(rows[20:], np.concatenate([leak_src, leak_copy]))[:20]
    labels[flipped] = (labels[flipped] + 1) % 3
    frame = pd.DataFrame({"sample_id": [f"s{i:03d}" for i in range(n)], "label": np.array(NAMES)[labels],
                          "split": split, "text": [f"utterance {i}" for i in range(n)]})
    frame.to_csv(d / "manifest.csv", index=False)
    np.save(d / "probs.npy", probs)
    np.save(d / "emb.npy", emb.astype(np.float32))
    ids = frame["sample_id"].to_numpy()
    return {"dir": d, "frame": frame, "probs": probs, "emb": emb.astype(np.float32), "ids": ids,
            "dup": set(ids[dup_copy]) | set(ids[dup_src]), "leak_copy": set(ids[leak_copy]),
            "leak": set(ids[leak_copy]) | set(ids[leak_src]), "exact": set(ids[exact_copy]) | set(ids[exact_src]),
            "flipped": set(ids[flipped])}


def _flagged(result, check: str) -> set:
    return set(result.issues(check)["sample_id"])


def test_manifest_with_arrays_finds_duplicates_and_leaks(planted, tmp_path):
    d = planted["dir"]
    result = invoke("audit", d / "manifest.csv", "--pred-probs", d / "probs.npy", "--embeddings", d / "emb.npy",
                    "--out", tmp_path / "run", "--json", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {"label_issues", "outliers", "exact_duplicates", "near_duplicates", "split_leakage"} <= set(summary["checks"])
    assert summary["splits"] == {"train": int((planted["frame"]["split"] == "train").sum()),
                                 "test": int((planted["frame"]["split"] == "test").sum())}
    run = datacheck.load(tmp_path / "run")
    # one member of each planted pair is flagged (the other is its group's representative), nothing else
    near = _flagged(run, "near_duplicates")
    assert len(near) == 7 and near <= planted["dup"] | planted["leak"]
    assert _flagged(run, "split_leakage") == planted["leak_copy"]  # the test-side copy of each leak
    exact = _flagged(run, "exact_duplicates")
    assert len(exact) == 2 and exact <= planted["exact"]
    labels = _flagged(run, "label_issues")
    assert len(labels & planted["flipped"]) >= 16 and len(labels & planted["flipped"]) / len(labels) >= 0.7
    # the manifest's ids, labels and columns are the findings' own
    findings = run.findings
    assert set(findings["label"].dropna()) == set(NAMES) and findings["sample_id"].str.startswith("s").all()
    thresholds = run.summary["checks"]["near_duplicates"]["threshold"]
    assert thresholds["on"] == "embeddings (cosine)" and 0.9 < thresholds["min_similarity"] < 1


@pytest.mark.parametrize("dimensions", [2, 3, 5])
def test_low_dimensional_embeddings_are_not_near_duplicates_by_chance(dimensions):
    """2,000 random embeddings of a few dimensions: unrelated samples are near duplicates no
    more often than the designed 0.1 % chance (Datalab's 0.13 x median radius flagged 240, 103
    and 15 of them in 2, 3 and 5 dimensions), while rescaled copies (x 1.5, jittered by 1e-7) still are."""
    rng = np.random.default_rng(dimensions)
    n = 2000
    emb = rng.normal(size=(n, dimensions)).astype(np.float32)
    emb[n - 3 :] = emb[:3] * 1.5 + rng.normal(size=(3, dimensions)).astype(np.float32) * 1e-7
    probs = np.full((n, 2), 0.5, np.float32)
    result = datacheck.audit(None, labels=rng.integers(0, 2, n), pred_probs=probs, embeddings=emb,
                             checks=["near_duplicates"])
    near = set(result.issues("near_duplicates")["sample_id"].astype(int))
    assert all(near & {i, n - 3 + i} for i in range(3))  # one member of each copied pair
    assert len(near - {0, 1, 2, n - 3, n - 2, n - 1}) <= 4
    radius = result.summary["checks"]["near_duplicates"]["threshold"]["relative_radius"]
    assert radius == pytest.approx({2: 2.1e-6, 3: 0.00144, 5: 0.038}[dimensions], rel=0.05)


def test_parquet_list_columns_equal_npy_files(planted, tmp_path):
    d = planted["dir"]
    table = pa.Table.from_pandas(planted["frame"], preserve_index=False)
    table = table.append_column("pred_probs", pa.FixedSizeListArray.from_arrays(pa.array(planted["probs"].ravel()), 3))
    table = table.append_column("embeddings", pa.array(list(planted["emb"]), type=pa.list_(pa.float32())))
    pq.write_table(table, tmp_path / "m.parquet")
    from_columns = datacheck.audit(tmp_path / "m.parquet", seed=1)
    from_files = datacheck.audit(d / "manifest.csv", pred_probs=d / "probs.npy", embeddings=d / "emb.npy", seed=1)
    columns = ["sample_id", "check", "score", "is_issue"]
    pd.testing.assert_frame_equal(from_columns.findings[columns], from_files.findings[columns])
    with pytest.raises(UsageError, match="given twice"):
        datacheck.audit(tmp_path / "m.parquet", embeddings=d / "emb.npy")


def test_embeddings_alone_run_every_check_they_allow(planted):
    d = planted["dir"]
    result = datacheck.audit(d / "manifest.csv", embeddings=d / "emb.npy")
    assert set(result.summary["checks"]) == {"class_imbalance", "outliers", "exact_duplicates", "near_duplicates",
                                             "split_leakage", "issue_score"}
    assert _flagged(result, "split_leakage") == planted["leak_copy"]
    with pytest.raises(UsageError, match="needs pred_probs"):
        datacheck.audit(d / "manifest.csv", embeddings=d / "emb.npy", checks=["label_issues"])


def test_rerun_commands_read_the_arrays_again(planted, tmp_path):
    d = planted["dir"]
    datacheck.audit(d / "manifest.csv", pred_probs=d / "probs.npy", embeddings=d / "emb.npy", out=tmp_path / "run")
    run = open_run(tmp_path / "run")
    assert run.manifest().frame["sample_id"].tolist() == planted["ids"].tolist()
    assert run.classes() == NAMES and run.outputs().pred_probs.shape == (400, 3)
    report = invoke("report", tmp_path / "run")
    assert report.exit_code == 0, report.output


def test_class_columns(tmp_path):
    probs = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]] * 0.9 + 0.1 / 3
    frame = pd.DataFrame({"label": [0, 1, 2, 2]})
    # whole-number labels are column numbers, even when a class never occurs
    inputs = load_array_inputs(pd.DataFrame({"label": [0, 2, 2, 2]}), pred_probs=probs)
    assert inputs.labels.classes == ["0", "1", "2"] and inputs.labels.ids.tolist() == [0, 2, 2, 2]
    named = load_array_inputs(frame.assign(label=["c", "a", "b", "b"]), pred_probs=probs)
    assert named.labels.classes == ["a", "b", "c"] and named.labels.ids.tolist() == [2, 0, 1, 1]
    ordered = load_array_inputs(frame.assign(label=["c", "a", "b", "b"]), pred_probs=probs, class_names=["c", "a", "b"])
    assert ordered.labels.ids.tolist() == [0, 1, 2, 2]
    with pytest.raises(BadDataError, match="give --class-names"):
        load_array_inputs(frame.assign(label=["a", "a", "b", "b"]), pred_probs=probs)
    with pytest.raises(BadDataError, match="label 5 is not a column"):
        load_array_inputs(frame.assign(label=[0, 1, 5, 2]), pred_probs=probs)
    with pytest.raises(BadDataError, match="4 rows, the manifest 3"):
        load_array_inputs(frame.head(3), pred_probs=probs)


@pytest.mark.parametrize("args, message, status", [
    (["M", "--pred-probs", "P", "--labels", "P"], "--labels goes without a DATASET", 2),
    (["DIR", "--pred-probs", "P"], "go with a manifest file", 2),
    (["M", "--embeddings", "BAD"], "--embeddings must have shape (400, D)", 3),
    (["M", "--pred-probs", "BAD"], "--pred-probs has 5 rows, the manifest 400", 3),
    (["M", "--pred-probs", "E"], "--pred-probs has negative values", 3),
])
def test_bad_array_manifest_input(planted, tmp_path, args, message, status):
    d = planted["dir"]
    np.save(tmp_path / "bad.npy", np.zeros((5, 4), np.float32))
    paths = {"M": d / "manifest.csv", "P": d / "probs.npy", "E": d / "emb.npy", "DIR": d, "BAD": tmp_path / "bad.npy"}
    result = invoke("audit", *[paths.get(a, a) for a in args], "--out", tmp_path / "run")
    assert_one_line_error(result, status, message)


def _traced_load(folder, n: int):
    """``load_array_inputs`` of ``folder``'s ``p.npy`` and ``emb.npy`` with a manifest of ``n``
    rows of 4 classes, and the peak of the memory Python and numpy allocated meanwhile (bytes)."""
    pd.DataFrame({"label": np.arange(n) % 4}).to_parquet(folder / "m.parquet")
    tracemalloc.start()
    try:
        inputs = load_array_inputs(folder / "m.parquet", pred_probs=folder / "p.npy", embeddings=folder / "emb.npy")
        return inputs, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_mapped_inputs_are_never_copied_whole(tmp_path):
    n, dim = 50_000, 512  # 102 MB of float32
    emb = np.lib.format.open_memmap(tmp_path / "emb.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    emb[:] = 1.0
    probs = np.lib.format.open_memmap(tmp_path / "p.npy", mode="w+", dtype=np.float32, shape=(n, 4))
    probs[:] = 0.25
    del emb, probs
    inputs, peak = _traced_load(tmp_path, n)
    assert isinstance(inputs.embeddings, np.memmap) and inputs.embeddings.shape == (n, dim)
    assert peak < 0.2 * n * dim * 4, f"peak {peak / 1e6:.1f} MB while reading a {n * dim * 4 / 1e6:.0f} MB file"


@pytest.mark.parametrize("order", ["C", "F"])
def test_float64_files_are_converted_to_float32_without_a_copy_in_memory(tmp_path, order):
    """scikit-learn's predict_proba gives float64: such a .npy was copied whole into memory by
    ``astype(np.float32)`` (2 GB for 1M x 512 embeddings); it is now converted block by block
    into a temporary map, with the values astype gives."""
    n, dim = 50_000, 512  # 205 MB of float64, 102 MB as float32
    rng = np.random.default_rng(0)
    emb = np.lib.format.open_memmap(tmp_path / "emb.npy", mode="w+", dtype=np.float64, shape=(n, dim),
                                    fortran_order=order == "F")
    for start in range(0, n, 10_000):
        emb[start : start + 10_000] = rng.normal(size=(10_000, dim))
    probs = np.lib.format.open_memmap(tmp_path / "p.npy", mode="w+", dtype=np.float64, shape=(n, 4))
    probs[:] = rng.dirichlet(np.ones(4), n)
    expected_emb, expected_probs = np.asarray(emb).astype(np.float32), np.asarray(probs).astype(np.float32)
    del emb, probs
    inputs, peak = _traced_load(tmp_path, n)
    assert isinstance(inputs.embeddings, np.memmap) and inputs.embeddings.dtype == np.float32
    assert peak < 0.2 * n * dim * 4, f"peak {peak / 1e6:.1f} MB while converting a {n * dim * 8 / 1e6:.0f} MB file"
    np.testing.assert_array_equal(inputs.embeddings, expected_emb)
    np.testing.assert_allclose(inputs.outputs.pred_probs, expected_probs, rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy", "m.parquet", "p.npy"]  # nothing left beside them


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS in KB as Linux reports it")
def test_list_columns_of_a_parquet_manifest_are_read_a_batch_at_a_time(tmp_path):
    """A Parquet manifest's embeddings column was read whole (Arrow doubles, then one chunk,
    then float32): now a batch at a time into float32. Values as astype gives them; a ragged
    row in a later batch is named by its row in the file."""
    import subprocess

    import pyarrow as pa
    import pyarrow.parquet as pq

    n, dim = 60_000, 256  # 123 MB of doubles
    values = np.random.default_rng(0).normal(size=(n, dim))
    table = pa.table({"label": pa.array(np.arange(n) % 4),
                      "embeddings": pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), dim).cast(pa.list_(pa.float64())),
                      "pred_probs": pa.FixedSizeListArray.from_arrays(pa.array(np.full(n * 4, 0.25)), 4)})
    pq.write_table(table, tmp_path / "m.parquet", row_group_size=20_000)
    table.slice(0, 10).to_pandas().to_parquet(tmp_path / "small.parquet")  # imports and pools warmed up on it
    script = ("import resource, sys\nimport numpy as np\nfrom datacheck.features.arrays import load_array_inputs\n"
              "load_array_inputs(sys.argv[1].replace('m.parquet', 'small.parquet'))\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "inputs = load_array_inputs(sys.argv[1])\n"
              "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "np.save(sys.argv[2], np.asarray(inputs.embeddings[::997]))\nprint((after - before) * 1024)")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.parquet"), str(tmp_path / "rows.npy")],
                          capture_output=True, text=True, check=True)
    grown = int(done.stdout.split()[-1])
    assert grown < 0.3 * values.nbytes, f"peak grew {grown / 1e6:.0f} MB reading {values.nbytes / 1e6:.0f} MB of doubles"
    np.testing.assert_array_equal(np.load(tmp_path / "rows.npy"), values[::997].astype(np.float32))

    ragged = table.column("embeddings").to_pylist()
    ragged[40_000] = ragged[40_000][:-1]
    pq.write_table(table.set_column(1, "embeddings", pa.array(ragged)), tmp_path / "ragged.parquet", row_group_size=20_000)
    with pytest.raises(BadDataError, match=r"column 'embeddings' of .*ragged.parquet: row 40001 has 255 values, row 1 has 256$"):
        load_array_inputs(tmp_path / "ragged.parquet")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_PAGEOUT is Linux's")
def test_release_pages_returns_a_mapped_input_and_keeps_its_values(tmp_path):
    """Between stages the audit hands a mapped input's pages back: the process's RSS drops by
    the pages read, and the values (a copy-on-write change too) are what they were."""
    from datacheck.features.arrays import _load_array, release_pages

    def rss_mb() -> float:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return int(fields["RssFile"].split()[0]) / 1024

    values = np.random.default_rng(0).random((64, 1 << 18), dtype=np.float32)  # 64 MB
    np.save(tmp_path / "e.npy", values)
    mapped = _load_array(tmp_path / "e.npy", "--embeddings")
    assert mapped.sum(dtype=np.float64) == values.sum(dtype=np.float64)  # every page read
    mapped[0, 0] = 7.0  # as a renormalised row: a private page of this process
    before = rss_mb()
    release_pages(mapped[1:])  # a view of the map releases the map
    assert before - rss_mb() > 48
    assert mapped[0, 0] == 7.0
    np.testing.assert_array_equal(mapped[1:], values[1:])


def test_no_output_lands_on_a_file_the_array_audit_read_or_its_manifest_lists(tmp_path):
    """An array audit never reads the images its manifest lists, but they are the user's dataset."""
    rows = ["path,label"]
    for i in range(8):
        make_image(tmp_path / "data" / "img" / f"{i}.png", i)
        rows.append(f"img/{i}.png,{'ab'[i % 2]}")
    (tmp_path / "data" / "m.csv").write_text("\n".join(rows) + "\n")
    probs = np.tile(np.array([[0.9, 0.1], [0.1, 0.9]], np.float32), (4, 1))
    np.save(tmp_path / "p.npy", probs)
    image = tmp_path / "data" / "img" / "0.png"
    before = image.read_bytes()
    assert invoke("audit", tmp_path / "data" / "m.csv", "--pred-probs", tmp_path / "p.npy", "--out", tmp_path / "run",
                  "-q", "--fail-on", "").exit_code == 0
    for args in (["relabel", tmp_path / "run", "--export-review", image],
                 ["relabel", tmp_path / "run", "--export-label-studio", image],
                 ["report", tmp_path / "run", "--out", image]):
        assert_one_line_error(invoke(*args, "-q"), ExitStatus.USAGE, "would write into the audited dataset")
    assert image.read_bytes() == before
    np.save(tmp_path / "labels.npy", np.array([0, 1] * 4))
    assert invoke("audit", "--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "labels.npy",
                  "--out", tmp_path / "bare", "-q", "--fail-on", "").exit_code == 0
    assert_one_line_error(invoke("report", tmp_path / "bare", "--out", tmp_path / "p.npy", "-q"), ExitStatus.USAGE,
                          "would write into the audited dataset")
    assert np.array_equal(np.load(tmp_path / "p.npy"), probs)


def test_class_names_listed_twice_are_named(tmp_path):
    np.save(tmp_path / "p.npy", np.tile(np.array([[0.5, 0.5]], np.float32), (4, 1)))
    np.save(tmp_path / "l.npy", np.array([0, 1, 0, 1]))
    (tmp_path / "names.txt").write_text("cat\ncat\n")
    result = invoke("audit", "--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "l.npy", "--class-names",
                    tmp_path / "names.txt", "--out", tmp_path / "run", "-q")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "--class-names lists 'cat' twice")


def test_a_byte_order_mark_is_not_part_of_the_first_class_name(tmp_path):
    """A names file saved by a Windows editor: the first class was '\ufeffcat', so a manifest
    labelled 'cat' was refused ("label(s) 'cat' are not among the 2 class names")."""
    np.save(tmp_path / "p.npy", np.tile(np.array([[0.5, 0.5]], np.float32), (4, 1)))
    (tmp_path / "names.txt").write_text("cat\ndog\n", encoding="utf-8-sig")
    frame = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "label": ["cat", "dog", "cat", "dog"]})
    inputs = load_array_inputs(frame, pred_probs=tmp_path / "p.npy", class_names=tmp_path / "names.txt")
    assert list(inputs.outputs.classes) == ["cat", "dog"]


def test_a_nan_in_a_parquet_probability_column_names_its_row(tmp_path):
    frame = pd.DataFrame({"sample_id": ["a", "b", "c"], "label": ["x", "y", "x"],
                          "pred_probs": [[0.9, 0.1], [float("nan"), 1.0], [0.8, 0.2]]})
    frame.to_parquet(tmp_path / "m.parquet")  # pandas writes the NaN inside the list as a null
    result = invoke("audit", tmp_path / "m.parquet", "--out", tmp_path / "run", "-q")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "column 'pred_probs'", "missing or NaN value in row 2")


@pytest.mark.parametrize("lists, row", [([[], [], []], 1), ([[0.9, 0.1], [], [0.8, 0.2]], 2), ([[], [0.9, 0.1], [0.8, 0.2]], 1)])
def test_empty_lists_in_a_probability_column_name_the_column_and_first_empty_row(tmp_path, lists, row):
    """Empty lists read as a (3, 0) array ("must be a 2-D array ... got shape (3, 0)"), or an
    empty first row blamed every other row ("row 2 has 2 values, row 1 has 0")."""
    table = pa.table({"sample_id": ["a", "b", "c"], "label": ["x", "y", "x"],
                      "pred_probs": pa.array(lists, pa.list_(pa.float64()))})
    pq.write_table(table, tmp_path / "m.parquet")
    result = invoke("audit", tmp_path / "m.parquet", "--out", tmp_path / "run", "-q")
    assert_one_line_error(result, ExitStatus.BAD_DATA, f"column 'pred_probs' of {tmp_path / 'm.parquet'} holds an "
                          f"empty list in row {row}; every row needs its values")
    frame = table.to_pandas()
    with pytest.raises(BadDataError, match=rf"^column 'pred_probs' of <DataFrame> holds an empty list in row {row};"):
        datacheck.audit(frame)
    assert not (tmp_path / "run").exists()


def test_nan_in_an_embeddings_column_names_the_column_not_an_option(tmp_path):
    """The values of a manifest's list column were checked as if given by --embeddings, so a
    DataFrame's NaN was blamed on a flag (or a keyword) its user never passed; rows of a table
    count from 1, as the manifest's other messages count them."""
    embeddings = np.ones((4, 3))
    embeddings[2, 1] = np.nan
    frame = pd.DataFrame({"sample_id": list("abcd"), "label": list("xyxy"), "embeddings": list(embeddings)})
    with pytest.raises(BadDataError, match=r"^column 'embeddings' of <DataFrame> has NaN or infinite values "
                                           r"\(first in row 3\)$"):
        datacheck.audit(frame)
    with pytest.raises(BadDataError, match=r"^embeddings has NaN or infinite values \(first in row 2\)$"):
        datacheck.audit(frame.drop(columns="embeddings"), embeddings=embeddings)  # the keyword's array: numpy's rows
    pq.write_table(pa.table({"sample_id": list("abcd"), "label": list("xyxy"),
                             "embeddings": pa.array(embeddings.tolist())}), tmp_path / "m.parquet")  # NaN, not null
    result = invoke("audit", tmp_path / "m.parquet", "--out", tmp_path / "run", "-q")
    assert_one_line_error(result, ExitStatus.BAD_DATA, f"column 'embeddings' of {tmp_path / 'm.parquet'} has NaN or "
                          "infinite values (first in row 3)")
    probs = np.full((4, 2), 0.5)
    probs[1] = [0.5, 0.7]
    with pytest.raises(BadDataError, match=r"^column 'pred_probs' of <DataFrame> rows must sum to 1 \(row 2 sums"):
        datacheck.audit(frame.drop(columns="embeddings").assign(pred_probs=list(probs)))


def test_embeddings_too_large_for_float32_arithmetic_are_bad_data(tmp_path):
    """At 1e18 the float32 norms overflowed and outliers flagged 904 of 60,000 samples instead
    of 5 (at 1e20, none): values past 1e15 are refused, naming the first row, before any work."""
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(40, 8)).astype(np.float32)
    embeddings[7, 3] = 3e17
    probs = np.full((40, 2), 0.5, np.float32)
    labels = np.arange(40) % 2
    np.save(tmp_path / "e.npy", embeddings)
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "l.npy", labels)
    result = invoke("audit", "--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "l.npy",
                    "--embeddings", tmp_path / "e.npy", "--out", tmp_path / "run")
    assert_one_line_error(result, ExitStatus.BAD_DATA, "--embeddings has values up to 3e+17 (first past 1e+15 in row 7)")
    assert not (tmp_path / "run").exists()
    embeddings[7, 3] = 1e15  # the largest taken
    np.save(tmp_path / "e.npy", embeddings)
    result = invoke("audit", "--pred-probs", tmp_path / "p.npy", "--labels", tmp_path / "l.npy",
                    "--embeddings", tmp_path / "e.npy", "--out", tmp_path / "run", "-q", "--fail-on", "")
    assert result.exit_code == 0, result.output

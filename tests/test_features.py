"""The feature stage: each input computed once, one kNN graph, findings independent of the selection."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import datacheck
from datacheck.features import FeatureStore, UndeclaredInput
from datacheck.engine.similarity import quarter_size, spectral_descriptors
from datacheck.features.knn import build_knn_graph

from .conftest import SAMPLE_DATA


def _rows(result, check):
    return result.findings[result.findings["check"] == check].drop(columns="run_id").reset_index(drop=True)


def test_near_duplicates_do_not_depend_on_the_other_checks(sample_audit):
    """Before the feature stage, near_duplicates verified embedding candidates only when another
    check had trained the model; now its own settings decide, whatever else runs."""
    alone = datacheck.audit(SAMPLE_DATA, checks=["near_duplicates"], workers=2)
    pd.testing.assert_frame_equal(_rows(alone, "near_duplicates"), _rows(sample_audit, "near_duplicates"),
                                  check_dtype=False)
    assert "model_outputs" not in alone.summary["timings_s"]  # nothing trained for it
    # with embedding candidates, likewise: alone it trains the model it needs
    config = _config({"near_duplicates": {"embedding_candidates": True}})
    with_model = [datacheck.audit(SAMPLE_DATA, checks=checks, workers=2, config=config)
                  for checks in (["near_duplicates"], ["near_duplicates", "label_issues"])]
    pd.testing.assert_frame_equal(_rows(with_model[0], "near_duplicates"), _rows(with_model[1], "near_duplicates"))
    assert with_model[0].summary["checks"]["near_duplicates"]["threshold"]["embedding_candidates"] is True


def _config(detectors: dict):
    import tempfile

    lines = []
    for name, params in detectors.items():
        lines.append(f"[detectors.{name}]")
        lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in params.items()]
    path = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    path.write("\n".join(lines) + "\n")
    path.close()
    return path.name


def test_one_knn_graph_serves_every_reader(monkeypatch):
    """outliers (k=10) and non_iid (k=15) read one graph of depth 15; outliers' findings are those
    of its own 10-graph."""
    import datacheck.pipeline as pipeline

    rng = np.random.default_rng(1)
    n = 400
    labels = np.arange(n) % 4
    probs = np.full((n, 4), 0.1, np.float32)
    probs[np.arange(n), labels] = 0.7
    embeddings = rng.normal(size=(n, 16)).astype(np.float32)
    builds = []
    real = pipeline.build_knn_graph
    monkeypatch.setattr(pipeline, "build_knn_graph", lambda e, k, d, **kw: builds.append(k) or real(e, k, d, **kw))
    from datacheck.detectors.non_iid import NonIID
    from datacheck.detectors.outliers import Outliers

    both = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, checks=[Outliers(), NonIID(k=15)])
    assert builds == [15]
    alone = datacheck.audit(pred_probs=probs, labels=labels, embeddings=embeddings, checks=[Outliers()])
    assert builds == [15, 10]
    pd.testing.assert_frame_equal(_rows(both, "outliers"), _rows(alone, "outliers"))


def test_graph_first_columns_are_the_smaller_graph():
    x = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)
    x[7] = np.nan  # not embedded: left out
    deep, shallow = build_knn_graph(x, 12), build_knn_graph(x, 5)
    assert 7 not in deep.rows and len(deep.rows) == 499
    np.testing.assert_array_equal(deep.first(5)[1], shallow.indices)
    np.testing.assert_allclose(deep.first(5)[0], shallow.distances, atol=1e-6)
    with pytest.raises(ValueError, match="12 neighbours"):
        deep.first(13)


def test_a_feature_is_computed_once_and_only_when_read():
    calls = []
    store = FeatureStore()
    store.provide("image_stats", lambda: calls.append(1) or "stats")
    store.provide("pixels", lambda: calls.append(2) or "pixels")
    view = store.view({"image_stats"})
    assert view.get("image_stats") == "stats" and view.get("image_stats") == "stats"
    assert calls == [1] and "image_stats" in store.timings
    with pytest.raises(UndeclaredInput, match="'pixels' is not among the declared inputs"):
        view.get("pixels")
    assert calls == [1]
    with pytest.raises(AssertionError, match="unknown feature"):
        store.provide("pixles", lambda: None)


def _clustered(n=3000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, d)) * 4
    x = (centers[np.arange(n) % 20] + rng.normal(size=(n, d))).astype(np.float32)
    x[-5:] = rng.normal(size=(5, d)).astype(np.float32) * 12  # far from every cluster
    return x


def test_approximate_graph_reaches_its_recall_and_records_it():
    x = _clustered()
    exact = build_knn_graph(x, 10)
    approx = build_knn_graph(x, 10, exact_max=1000)
    assert exact.info["method"] == "exact" and approx.info["method"] == "ivf"
    assert approx.info["recall_at_k"] >= 0.95
    # the recall it reports is the recall it has, measured here on every row
    hits = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(approx.indices, exact.indices)])
    assert hits >= 0.95 and abs(hits - approx.info["recall_at_k"]) < 0.03
    assert not (approx.indices == np.arange(len(x))[:, None]).any()  # never itself
    again = build_knn_graph(x, 10, exact_max=1000)
    np.testing.assert_array_equal(again.indices, approx.indices)  # deterministic
    assert build_knn_graph(x, 10, exact_max=1000, seed=2**32 - 1).info["recall_at_k"] >= 0.95  # the largest seed


def test_probing_every_list_is_exact_search():
    """nprobe = nlist scans every list, so it finds exactly the exact graph's neighbours (the
    HNSW graph over the list centres once returned 4 % of 200 asked lists as missing)."""
    import datacheck.features.knn as knn

    x = np.random.default_rng(0).standard_normal((8000, 64)).astype(np.float32)  # no clusters: many lists each
    exact = build_knn_graph(x, 10)
    nlist = 200
    lists = knn._InvertedLists.build(x, np.arange(len(x)), _trained_quantizer(x, nlist), nlist)
    distances, indices = lists.search_all(nlist, 10, "cpu")
    np.testing.assert_array_equal(np.sort(indices, axis=1), np.sort(exact.indices, axis=1))
    np.testing.assert_allclose(distances, exact.distances, atol=1e-5)


def test_the_cpu_scan_is_numpy_and_finds_what_the_torch_scan_finds():
    """On the CPU the lists are scanned with numpy (an image audit of a large folder never
    imports torch); torch's scan (an accelerator's) finds the same neighbours."""
    import subprocess
    import sys

    import datacheck.features.knn as knn

    x = _clustered()
    lists = knn._InvertedLists.build(x, np.arange(len(x)), _trained_quantizer(x, 40), 40)
    queries = knn._unit(x[:500])
    probes = lists.quantizer.search(queries, 8)[1]
    by_numpy = lists._scan(queries, probes, 11, "cpu")
    by_torch = lists._scan_torch(queries, lists._visits(probes), 8, 11, "cpu")
    np.testing.assert_allclose(by_numpy[0], by_torch[0], atol=1e-5)
    assert (by_numpy[1] == by_torch[1]).mean() > 0.999  # the same but for ties in the last bit
    script = ("import sys, numpy as np; from datacheck.features.knn import build_knn_graph; "
              "x = np.random.default_rng(0).standard_normal((3000, 16)).astype(np.float32); "
              "g = build_knn_graph(x, 5, 'cpu', exact_max=1000); "
              "print(g.info['method'], 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["ivf", "False"], done.stderr


def test_short_vectors_are_scanned_by_faiss_and_find_what_the_list_by_list_scan_finds():
    """Up to FAISS_SCAN_MAX_DIM the graph is searched by faiss's own inverted file (faster for
    short vectors, where choosing each query's best is the work); with the same list centres
    and probes it finds the neighbours the BLAS list-by-list scan finds, and a graph built
    either way reaches the same recall."""
    import faiss

    import datacheck.features.knn as knn

    x = _clustered()
    quantizer = _trained_quantizer(x, 40)
    index = faiss.IndexIVFFlat(quantizer, x.shape[1], 40, faiss.METRIC_INNER_PRODUCT)
    by_faiss = knn._FaissLists.build(x, np.arange(len(x)), index, quantizer).search_all(8, 10, "cpu")
    by_blas = knn._InvertedLists.build(x, np.arange(len(x)), quantizer, 40).search_all(8, 10, "cpu")
    np.testing.assert_allclose(by_faiss[0], by_blas[0], atol=1e-5)
    assert (by_faiss[1] == by_blas[1]).mean() > 0.999  # the same but for ties in the last bit
    assert x.shape[1] <= knn.FAISS_SCAN_MAX_DIM
    graph = build_knn_graph(x, 10, exact_max=1000)
    try:
        knn.FAISS_SCAN_MAX_DIM, kept = 0, knn.FAISS_SCAN_MAX_DIM
        listed = build_knn_graph(x, 10, exact_max=1000)
    finally:
        knn.FAISS_SCAN_MAX_DIM = kept
    assert graph.info == listed.info and graph.info["recall_at_k"] >= 0.95
    assert (graph.indices == listed.indices).mean() > 0.999


def _trained_quantizer(x: np.ndarray, nlist: int):
    """An HNSW index over ``nlist`` list centres trained on ``x``, as the graph builder makes it."""
    import faiss

    import datacheck.features.knn as knn

    quantizer = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index = faiss.IndexIVFFlat(quantizer, x.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 0
    index.train(knn._unit(x))
    return quantizer


def test_recall_is_counted_by_distance_so_copies_do_not_force_exact_search():
    """Every vector ten times: any copy of a true neighbour is as near as it. Counted by
    identity, recall stalled at 0.54 and nprobe climbed to every list (exact search, N²);
    counted by distance, the first probes reach it, with the exact graph's distances."""
    base = np.random.default_rng(0).normal(size=(400, 16)).astype(np.float32)
    x = np.repeat(base, 10, axis=0)
    approx = build_knn_graph(x, 5, exact_max=1000)
    assert approx.info["method"] == "ivf" and approx.info["recall_at_k"] >= 0.95
    assert approx.info["nprobe"] < approx.info["nlist"]
    np.testing.assert_allclose(approx.distances, build_knn_graph(x, 5).distances, atol=1e-5)


def test_recall_target_on_the_nearest_only():
    """recall_k=1 (duplicate candidates): the target holds on each sample's nearest, which
    needs no more probes than the whole k, and the reported recall is that of the nearest."""
    x = _clustered()
    exact = build_knn_graph(x, 10)
    nearest = build_knn_graph(x, 10, exact_max=1000, recall_k=1)
    assert nearest.info["recall_k"] == 1 and nearest.k == 10
    assert nearest.info["nprobe"] <= build_knn_graph(x, 10, exact_max=1000).info["nprobe"]
    hits = np.mean(nearest.indices[:, 0] == exact.indices[:, 0])
    assert hits >= 0.95 and abs(hits - nearest.info["recall_at_k"]) < 0.03


def test_exact_and_approximate_graphs_give_the_same_outliers(monkeypatch):
    import datacheck.features.knn as knn

    x = _clustered()
    labels = np.arange(len(x)) % 20
    probs = np.full((len(x), 20), 0.01, np.float32)
    probs[np.arange(len(x)), labels] = 0.81
    exact = datacheck.audit(pred_probs=probs, labels=labels, embeddings=x, checks="outliers")
    monkeypatch.setattr(knn, "EXACT_MAX", 1000)
    approx = datacheck.audit(pred_probs=probs, labels=labels, embeddings=x, checks="outliers")
    assert approx.summary["knn_graph"]["method"] == "ivf" and exact.summary["knn_graph"]["method"] == "exact"
    planted = {str(i) for i in range(len(x) - 5, len(x))}
    flagged_exact, flagged_approx = set(exact.issues("outliers")["sample_id"]), set(approx.issues("outliers")["sample_id"])
    assert flagged_exact >= planted and flagged_approx >= planted
    # Where they differ, the sample lies at the cut: the approximate search (recall 0.97) found
    # some neighbours a little farther (measured: one, z 2.987 exact against 3.184, cut 3.0).
    cut = exact.summary["checks"]["outliers"]["threshold"]["z_cut"]
    rows = exact.findings[exact.findings["check"] == "outliers"].set_index("sample_id")
    differ = flagged_exact ^ flagged_approx
    assert len(differ) <= 2 and all(abs(json.loads(rows.loc[i, "details"])["z"] - cut) < 0.25 for i in differ)


def test_summary_records_the_peak_memory_after_each_stage():
    """``peak_rss_mb``: the process's high-water mark after the manifest, each computed
    feature, each detector and the findings, never decreasing in stage order."""
    import sys

    x = _clustered(n=500)
    labels = np.arange(len(x)) % 20
    probs = np.full((len(x), 20), 0.01, np.float32)
    probs[np.arange(len(x)), labels] = 0.81
    result = datacheck.audit(pred_probs=probs, labels=labels, embeddings=x, checks=["outliers", "label_issues"])
    memory = result.summary["peak_rss_mb"]
    if sys.platform == "win32":
        assert set(memory.values()) == {None}
        return
    assert list(memory)[0] == "load_manifest" and list(memory)[-1] == "findings"
    assert {"knn_graph", "outliers", "label_issues"} <= set(memory)
    values = list(memory.values())
    assert values[0] > 10 and values == sorted(values)  # a high-water mark, in MB


def test_interrupted_image_statistics_resume_from_their_saved_parts(tmp_path, monkeypatch):
    """Statistics are saved every CHECKPOINT_ROWS rows: after a Ctrl-C in the third part, a
    rerun decodes only from that part on, and gives what an uninterrupted run gives."""
    import datacheck.features.images as images
    from datacheck.manifest import load_manifest

    from .conftest import make_tiny_dataset

    manifest = load_manifest(make_tiny_dataset(tmp_path / "data"))  # 16 images
    monkeypatch.setattr(images, "CHECKPOINT_ROWS", 5)
    real = images._decode_rows
    decoded = []

    def counting(paths, *args):
        if len(decoded) == 2 and interrupt:
            raise KeyboardInterrupt
        decoded.append(len(paths))
        return real(paths, *args)

    monkeypatch.setattr(images, "_decode_rows", counting)
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        images.image_stats(manifest, 0, 4, artifacts=tmp_path / "artifacts")
    assert decoded == [5, 5] and len(list((tmp_path / "artifacts").rglob("rows-*.parquet"))) == 2
    interrupt, decoded[:] = False, []
    resumed, arrays = images.image_stats(manifest, 0, 4, artifacts=tmp_path / "artifacts")
    thumbnails, descriptors = arrays["thumbnails"], arrays["thumbnail_descriptors"]
    assert decoded == [5, 1]  # the third and fourth parts only
    parts = sorted(p.name for p in (tmp_path / "artifacts" / images.IMAGE_STATS_ARTIFACT).iterdir())
    assert parts == [f"rows-{start:012d}.parquet" for start in (0, 5, 10, 15)]  # the parts are the artifact
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == [images.IMAGE_STATS_ARTIFACT]
    again, again_arrays = images.image_stats(manifest, 0, 4, artifacts=tmp_path / "artifacts")
    again_thumbnails, again_descriptors = again_arrays["thumbnails"], again_arrays["thumbnail_descriptors"]
    assert again.equals(resumed) and decoded == [5, 1]
    fresh, fresh_arrays = images.image_stats(manifest, 0, 4, artifacts=tmp_path / "fresh")
    fresh_thumbnails = fresh_arrays["thumbnails"]
    pd.testing.assert_frame_equal(resumed, fresh)
    # The thumbnails: read back from the parts, memory-mapped, equal to a decode in memory.
    in_memory_stats, in_memory_arrays = images.image_stats(manifest, 0, 4)
    in_memory, in_memory_descriptors = in_memory_arrays["thumbnails"], in_memory_arrays["thumbnail_descriptors"]
    assert isinstance(thumbnails, np.memmap) and thumbnails.shape == (16, 64, 64, 3)
    np.testing.assert_array_equal(np.asarray(thumbnails), in_memory)
    np.testing.assert_array_equal(np.asarray(again_thumbnails), in_memory)
    np.testing.assert_array_equal(np.asarray(fresh_thumbnails), in_memory)
    assert "thumbnail" not in resumed and in_memory.any(axis=(1, 2, 3)).all()
    pd.testing.assert_frame_equal(in_memory_stats, fresh)
    # The descriptors, made by the decoding workers: those of the whole array of thumbnails.
    assert isinstance(descriptors, np.memmap) and descriptors.shape == (16, 120) and descriptors.dtype == np.float32
    for got in (descriptors, again_descriptors, in_memory_descriptors):
        np.testing.assert_array_equal(np.asarray(got), spectral_descriptors(in_memory))
    assert "descriptor" not in resumed
    # The quarter-size thumbnails, made beside the descriptors: those of the thumbnails.
    for got in (arrays, again_arrays, in_memory_arrays):
        assert got["thumbnail_quarters"].shape == (16, 16, 16, 3)
        np.testing.assert_array_equal(np.asarray(got["thumbnail_quarters"]), quarter_size(in_memory))
    assert "quarter" not in resumed


def test_thumbnails_are_read_from_arrow_buffers_as_from_bytes():
    """A part's thumbnail column is read from Arrow's buffers in place; whole thumbnails land
    where the bytes path puts them, and empty, null, damaged (other length) rows stay zero,
    in a chunked and a sliced column alike."""
    import pyarrow as pa

    import datacheck.features.images as images

    size = 64 * 64 * 3
    rng = np.random.default_rng(0)
    values = [rng.integers(1, 256, size, dtype=np.uint8).tobytes() for _ in range(7)]
    values[1], values[4] = b"", b"\x01" * 10  # unreadable; damaged
    values[5] = None
    expected = np.zeros((9, 64, 64, 3), np.uint8)
    images._fill_rows(expected, 2, pd.Series([b"" if v is None else v for v in values]))
    for column in (pa.chunked_array([pa.array(values[:3]), pa.array(values[3:])]),
                   pa.array([b"x" * size] + values).slice(1), pa.array(values, pa.large_binary())):
        out = np.zeros_like(expected)
        images._fill_rows(out, 2, column)
        np.testing.assert_array_equal(out, expected)
    assert expected[[2, 4, 5, 8]].all() and not expected[[0, 1, 3, 6, 7]].any()  # rows 2-8 are values 0-6
    whole = pa.array([values[0], values[2]])  # every row whole: one contiguous copy
    out = np.zeros((2, 64, 64, 3), np.uint8)
    images._fill_rows(out, 0, whole)
    np.testing.assert_array_equal(out.reshape(2, -1), np.frombuffer(values[0] + values[2], np.uint8).reshape(2, -1))
    # Rows of another type (descriptors, float32) are read as that type, by either path.
    floats = np.arange(6, dtype=np.float32).reshape(2, 3)
    for column in (pa.array([floats[0].tobytes(), b"", floats[1].tobytes()]),
                   pd.Series([floats[0].tobytes(), b"", floats[1].tobytes()])):
        out = np.zeros((3, 3), np.float32)
        images._fill_rows(out, 0, column)
        np.testing.assert_array_equal(out, [floats[0], [0, 0, 0], floats[1]])


def test_a_full_disk_for_the_thumbnails_is_a_usage_error(tmp_path, monkeypatch):
    """The thumbnails' temporary file takes its disk space before it is mapped, so a full disk
    is one clear error, not a crash when a page of a sparse file is first written."""
    import errno
    import os

    from datacheck.engine.memory import temporary_map
    from datacheck.errors import UsageError

    if not hasattr(os, "posix_fallocate"):
        pytest.skip("no posix_fallocate on this platform")

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(UsageError, match=r"cannot keep the thumbnails in .*: No space left on device \(1 MB needed"):
        temporary_map((100, 64, 64, 3), np.uint8, tmp_path, "the thumbnails")
    assert list(tmp_path.iterdir()) == []  # nothing left behind

    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported)  # a file system that cannot: mapped sparse
    mapped = temporary_map((3, 64, 64, 3), np.uint8, tmp_path)
    mapped[1] = 5
    assert mapped.shape == (3, 64, 64, 3) and int(mapped.sum()) == 5 * 64 * 64 * 3


def test_a_parts_array_column_is_the_arrow_column_of_the_rows_bytes():
    """Rows of an array as the binary column a part saves: each whole row's bytes, b"" for
    the unreadable ones (in place from the array when all are whole)."""
    import pyarrow as pa

    from datacheck.features.images import _binary_rows

    values = np.arange(4 * 6, dtype=np.uint16).reshape(4, 2, 3)
    whole = np.array([True, False, True, False])
    column = _binary_rows(values, whole)
    expected = [values[i].tobytes() if w else b"" for i, w in enumerate(whole)]
    assert column.type == pa.binary() and column.to_pylist() == expected
    assert _binary_rows(values, np.ones(4, bool)).to_pylist() == [v.tobytes() for v in values]
    assert _binary_rows(values[:0], np.ones(0, bool)).to_pylist() == []


@pytest.mark.parametrize("damage", ["drop descriptor", "descriptor as text", "extra column"])
def test_a_part_without_the_expected_columns_is_computed_again(tmp_path, damage):
    """A statistics part with this dataset's key but other columns (an edited or foreign file)
    is decoded again, not read into wrong or missing descriptors."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import datacheck.features.images as images
    from datacheck.manifest import load_manifest

    from .conftest import make_tiny_dataset

    manifest = load_manifest(make_tiny_dataset(tmp_path / "data"))
    stats, arrays = images.image_stats(manifest, 0, 4, artifacts=tmp_path / "artifacts")
    part = next((tmp_path / "artifacts" / images.IMAGE_STATS_ARTIFACT).iterdir())
    table = pq.read_table(part)
    metadata = table.schema.metadata
    if damage == "drop descriptor":
        table = table.drop_columns(["descriptor"])
    elif damage == "descriptor as text":
        column = table.schema.get_field_index("descriptor")
        table = table.set_column(column, "descriptor", pa.array(["x" * 480] * table.num_rows))
    else:
        table = table.append_column("extra", pa.array([1] * table.num_rows))
    pq.write_table(table.replace_schema_metadata(metadata), part)
    again, again_arrays = images.image_stats(manifest, 0, 4, artifacts=tmp_path / "artifacts")
    pd.testing.assert_frame_equal(again, stats)
    for name, values in arrays.items():
        np.testing.assert_array_equal(np.asarray(again_arrays[name]), np.asarray(values))
    assert set(pq.read_table(part).column_names) == set(images.STAT_COLUMNS)  # saved again, whole


def test_a_part_with_unreadable_images_reads_back_as_decoded(tmp_path):
    """Unreadable images leave empty values in a part's array columns, among whole ones (the
    part's columns are cut from the audit's arrays): a rerun reads the part back (no decoding)
    with the same statistics, and zeros in every array where the image was unreadable."""
    import datacheck.features.images as images
    from datacheck.manifest import load_manifest

    from .conftest import make_tiny_dataset

    root = make_tiny_dataset(tmp_path / "data")
    (root / "train" / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    manifest = load_manifest(root)
    timings = {}
    stats, arrays = images.image_stats(manifest, 0, 4, artifacts=tmp_path / "artifacts", timings=timings)
    broken = (stats["error"] != "").to_numpy()
    assert broken.sum() == 1 and "image_stats" in timings
    again, again_arrays = images.image_stats(manifest, 0, 4, artifacts=tmp_path / "artifacts", timings=timings)
    assert "image_stats (cached)" in timings  # read back, not decoded
    pd.testing.assert_frame_equal(again, stats)
    for name, values in arrays.items():
        np.testing.assert_array_equal(np.asarray(again_arrays[name]), np.asarray(values))
        assert not np.asarray(values)[broken].any() and np.asarray(values)[~broken].any(axis=tuple(range(1, values.ndim))).all()


@pytest.mark.parametrize("damage", ["short descriptors", "some descriptors short", "null descriptors",
                                    "empty descriptors", "NaN descriptors", "null thumbnails", "long thumbnails",
                                    "short quarters", "empty quarters"])
def test_a_part_with_damaged_array_values_is_computed_again(tmp_path, damage):
    """A statistics part with this dataset's key and columns, but thumbnails or descriptors of
    the wrong length, null, missing where the thumbnail is there, or not numbers: decoded
    again. They were read as zeros ("unreadable"), and the near-duplicate and leakage
    findings changed without a word."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import datacheck.features.images as images
    from datacheck.manifest import load_manifest

    from .conftest import make_tiny_dataset

    manifest = load_manifest(make_tiny_dataset(tmp_path / "data"))
    stats, arrays = images.image_stats(manifest, 0, 4, artifacts=tmp_path / "artifacts")
    part = next((tmp_path / "artifacts" / images.IMAGE_STATS_ARTIFACT).iterdir())
    table = pq.read_table(part)
    metadata = table.schema.metadata
    name = "thumbnail" if "thumbnails" in damage else "quarter" if "quarters" in damage else "descriptor"
    values = table.column(name).to_pylist()
    if damage in ("short descriptors", "short quarters"):
        values = [v[:-4] for v in values]
    elif damage == "some descriptors short":
        values = [v[:-4] if i == 3 else v for i, v in enumerate(values)]
    elif damage.startswith("null"):
        values = [None if i % 2 else v for i, v in enumerate(values)]
    elif damage in ("empty descriptors", "empty quarters"):
        values = [b""] * len(values)
    elif damage == "NaN descriptors":
        values = [np.full(len(v) // 4, np.nan, np.float32).tobytes() for v in values]
    else:
        values = [v + b"\0" for v in values]
    table = table.set_column(table.schema.get_field_index(name), name, pa.array(values, pa.binary()))
    pq.write_table(table.replace_schema_metadata(metadata), part)
    again, again_arrays = images.image_stats(manifest, 0, 4, artifacts=tmp_path / "artifacts")
    pd.testing.assert_frame_equal(again, stats)
    for name, values in arrays.items():
        np.testing.assert_array_equal(np.asarray(again_arrays[name]), np.asarray(values))


@pytest.mark.parametrize("rows, k, exact_max", [(3000, 0, 1000), (30, 5, 10), (100, 200, 10)])
def test_the_approximate_graph_answers_where_the_exact_one_does(rows, k, exact_max):
    """Above exact_max, k = 0 (was a ZeroDivisionError measuring the recall) and fewer than 40
    rows per list (no list at all: faiss's AssertionError) give the graph exact search gives."""
    x = np.random.default_rng(0).standard_normal((rows, 16)).astype(np.float32)
    exact = build_knn_graph(x, k)
    approx = build_knn_graph(x, k, exact_max=exact_max)
    assert approx.indices.shape == exact.indices.shape == (rows, min(k, rows - 1))
    np.testing.assert_array_equal(np.sort(approx.indices, axis=1), np.sort(exact.indices, axis=1))


def test_released_rows_of_a_thumbnail_map_read_back_unchanged(tmp_path):
    """Rows let out of resident memory once written (a 1M-image folder kept 12 GB of thumbnails
    resident) are read back from the map's file as they were, whatever the page alignment."""
    from datacheck.engine.memory import release_rows, temporary_map

    values = temporary_map((1000, 7, 5), np.uint8, tmp_path)  # 35-byte rows: parts straddle pages
    expected = np.random.default_rng(0).integers(0, 256, values.shape, dtype=np.uint8)
    values[:] = expected
    for start, stop in ((0, 300), (300, 301), (301, 1000)):
        release_rows(values, start, stop)
    assert np.array_equal(values, expected)
    assert list(tmp_path.iterdir()) == []  # nameless: nothing left in the folder
    # A copy-on-write map keeps its changes (released, a changed page would be the file's again);
    # views and arrays in memory are fine too.
    path = tmp_path / "v.npy"
    np.save(path, expected)
    changed = np.load(path, mmap_mode="c")
    changed[5] = 0
    release_rows(changed)
    release_rows(changed[10:20])
    release_rows(expected)
    assert not changed[5].any() and np.array_equal(changed[6:], expected[6:])


def test_an_unlabeled_folder_decodes_nothing_for_a_model_it_cannot_train(tmp_path, monkeypatch):
    """A default audit of a folder of unlabeled photos: the model to train has no labels, so no
    image is decoded for it (before, every image was, for nothing) and cleanlab is not imported
    (a second of an audit with nothing to score)."""
    import subprocess
    import sys

    from datacheck.engine import loader

    from .conftest import make_image

    photos = tmp_path / "photos"
    for i in range(12):
        make_image(photos / f"{i}.png", i)

    def refused(*args, **kwargs):
        raise AssertionError("pixels decoded for a model that cannot train")

    monkeypatch.setattr(loader, "load_pixels", refused)
    result = datacheck.audit(photos, cache_dir="off", workers=0)
    assert result.summary["checks"]["label_issues"]["scored"] == 0
    assert result.summary["checks"]["outliers"]["threshold"]["rule"].startswith("off")
    script = (f"import sys, datacheck; datacheck.audit({str(photos)!r}, checks=['label_issues'], cache_dir='off', "
              "workers=0); print('cleanlab' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "False"


def test_the_search_stops_at_its_bound_where_no_nprobe_reaches_the_target(monkeypatch):
    """Isotropic noise has no structure for an inverted file: the recall target needs nearly
    every list probed (1M x 512 of 10 Gaussian classes: ~100,000 samples scanned per query, an
    hour). The search stops at its bound, is built there, says so, and the audit notes it."""
    import datacheck.features.knn as knn

    x = np.random.default_rng(0).standard_normal((8000, 64)).astype(np.float32)
    monkeypatch.setattr(knn, "EXACT_MAX", 1000)
    monkeypatch.setattr(knn, "_SCAN_VALUES", 64 * 400)  # 400 samples of 64 values per query
    bounded = build_knn_graph(x, 10)
    info = bounded.info
    assert info["method"] == "ivf" and info["recall_target_met"] is False and info["recall_at_k"] < 0.95
    assert 0 < info["scanned_per_query"] <= knn.max_scanned(len(x), 64) <= 500 and info["nprobe"] < info["nlist"]
    np.testing.assert_array_equal(build_knn_graph(x, 10).indices, bounded.indices)  # deterministic
    # the graph holds what it says: its recall over every row is the sampled one
    exact = build_knn_graph(x, 10, exact_max=len(x))
    hits = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(bounded.indices, exact.indices)])
    assert abs(hits - info["recall_at_k"]) < 0.03
    monkeypatch.setattr(knn, "_SCAN_VALUES", 2**40)  # unbounded: it probes on to the target
    unbounded = build_knn_graph(x, 10).info
    assert unbounded["recall_target_met"] is True and unbounded["nprobe"] > info["nprobe"]
    assert unbounded["scanned_per_query"] > 500

    monkeypatch.setattr(knn, "_SCAN_VALUES", 64 * 400)
    result = datacheck.audit(pd.DataFrame({"label": np.arange(len(x)) % 2}), embeddings=x, checks=["outliers"])
    assert result.summary["knn_graph"] == info
    notes = [n for n in result.summary["notes"] if "kNN graph" in n]
    assert len(notes) == 1 and f"recall@10 is {info['recall_at_k']:.2f}" in notes[0]
    assert f"nprobe {info['nprobe']} of {info['nlist']}" in notes[0]


def test_an_image_candidate_search_stopped_at_its_bound_is_noted(tmp_path, monkeypatch):
    """The near-duplicate candidates of an image folder above the exact limit come from an
    inverted file over the thumbnails' descriptors; where its bound stops it short of the
    recall target, the audit says so once (near_duplicates and split_leakage share it)."""
    from PIL import Image

    import datacheck.features.knn as knn

    rng = np.random.default_rng(0)
    for i in range(600):  # noise: descriptors without structure
        split = "train" if i % 3 else "val"
        (tmp_path / split / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(tmp_path / split / "a" / f"{i}.png")
    monkeypatch.setattr(knn, "EXACT_MAX", 100)
    monkeypatch.setattr(knn, "_SCAN_VALUES", 1)  # the other term: 4 x 100^2 / 600 = 67 samples per query
    result = datacheck.audit(tmp_path, checks=["near_duplicates", "split_leakage"], fail_on="", cache_dir="off")
    search = result.summary["checks"]["near_duplicates"]["threshold"]["candidate_search"]
    assert search["method"] == "ivf" and search["recall_target_met"] is False and search["recall_k"] == 1
    assert result.summary["checks"]["split_leakage"]["threshold"]["candidate_search"] == search
    notes = [n for n in result.summary["notes"] if "candidate search" in n]
    assert notes == [f"the near-duplicate candidate search's recall@1 is {search['recall_at_k']:.2f}, short of the "
                     f"0.95 target: the images' descriptors have little structure for an inverted file to use, and "
                     f"the search stopped at its bound ({search['scanned_per_query']:,} samples scanned per query, "
                     f"nprobe {search['nprobe']} of {search['nlist']:,} lists), so some near duplicates and split "
                     f"leaks may be missed"]
    monkeypatch.setattr(knn, "_SCAN_VALUES", 2**40)  # unbounded: the target is met, nothing to note
    again = datacheck.audit(tmp_path, checks=["near_duplicates"], fail_on="", cache_dir="off")
    assert again.summary["checks"]["near_duplicates"]["threshold"]["candidate_search"]["recall_target_met"] is True
    assert not [n for n in again.summary.get("notes", []) if "candidate search" in n]


def test_a_part_of_scans_is_stored_compressed_and_reads_back_whole(tmp_path):
    """Thumbnails of grey scans (strokes on white) compress: the saved part holds them in
    about a seventh of their 12 KB each (roman's: 37 -> 5 MB), and reads back equal."""
    import datacheck.features.images as images
    from PIL import Image, ImageDraw

    from datacheck.manifest import load_manifest

    rng = np.random.default_rng(0)
    for i in range(40):
        page = Image.new("L", (120, 100), 255)
        draw = ImageDraw.Draw(page)
        for _ in range(3):  # a few pen strokes
            draw.line([tuple(rng.integers(10, 90, 2)) for _ in range(4)], fill=int(rng.integers(0, 60)), width=3)
        (tmp_path / "data" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        page.save(tmp_path / "data" / f"c{i % 2}" / f"{i}.png")
    manifest = load_manifest(tmp_path / "data")
    stats, arrays = images.image_stats(manifest, 0, 8, artifacts=tmp_path / "artifacts")
    part = next((tmp_path / "artifacts" / images.IMAGE_STATS_ARTIFACT).iterdir())
    assert part.stat().st_size < 40 * arrays["thumbnails"][0].nbytes / 4
    again, again_arrays = images.image_stats(manifest, 0, 8, artifacts=tmp_path / "artifacts")
    pd.testing.assert_frame_equal(again, stats)
    for name, values in arrays.items():
        np.testing.assert_array_equal(np.asarray(again_arrays[name]), np.asarray(values))


def test_checking_the_model_is_timed_apart_from_loading_the_manifest(tiny_dataset, monkeypatch):
    """The model named is checked before a run folder exists (importing torch, seconds on a cold
    start); that time was reported as ``load_manifest``, which read as a slow manifest (6.6 s of
    a 1,797-image folder's 69 s audit). It is ``check_inputs`` now."""
    import time

    from datacheck.engine import models

    real = models.create_model

    def slow(*args, **kwargs):
        time.sleep(0.6)
        return real(*args, **kwargs)

    monkeypatch.setattr(models, "create_model", slow)
    result = datacheck.audit(tiny_dataset, checks=["image_properties"], model="resnet18", weights="random", workers=0)
    timings = result.summary["timings_s"]
    assert timings["check_inputs"] >= 0.6 > timings["load_manifest"]
    assert list(timings)[:3] == ["setup", "load_manifest", "check_inputs"]
    assert "check_inputs" in result.summary["peak_rss_mb"]


def test_each_stage_is_timed_without_the_stages_it_computed_on_the_way(tiny_dataset):
    """A feature read by another (the model's embeddings by the kNN graph) or an optional input
    read by a detector (the orientation networks by outliers) counted in both stages' seconds:
    the kNN graph of 1,797 digits read 39.9 s, the model's training 39.85 of them. Each stage
    now has its own seconds, and they add up to no more than the audit's."""
    result = datacheck.audit(tiny_dataset, checks=["outliers", "label_issues"], workers=0, cache_dir="off")  # trained here
    timings = dict(result.summary["timings_s"])
    total = timings.pop("total")
    assert {"model_outputs", "knn_graph", "outliers", "label_issues"} <= set(timings)
    assert sum(timings.values()) <= total + 0.001 * len(timings)  # each entry rounded to the millisecond
    assert timings["knn_graph"] < timings["model_outputs"] / 5


def test_a_feature_store_times_nested_features_apart():
    import time

    from datacheck.features import FeatureStore

    timings = {}
    store = FeatureStore(timings)
    store.provide("embeddings", lambda: time.sleep(0.3) or np.zeros((3, 2)))
    store.provide("knn_graph", lambda: (time.sleep(0.1), store.get("embeddings"))[1])
    store.get("knn_graph")
    assert 0.3 <= timings["embeddings"] < 0.6 and 0.1 <= timings["knn_graph"] < 0.3
    assert 0.4 <= store.seconds_computing < 0.8  # the outer one's wall time, counted once

"""Array audits of many classes, as ImageNet-like data has them: 1,000 classes, or 10,000 with a
few samples each (a long tail) and classes named but without rows. Each test pins a defect found
by auditing such data (probed at 100,000 x 1,000 and 20,000 x 10,000; here at sizes that run in
seconds but take the same code paths)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from datacheck.reporting.summary import MAX_NAMES_SHOWN, format_threshold

from .conftest import assert_one_line_error, invoke


def _long_tail(tmp_path, *, classes: int = 2_000, seed: int = 0):
    """A manifest of string labels over ``classes`` named classes: 5 classes of 60 rows, then
    classes of 1-3 rows, the last third of the names without a row; 70 % of rows in train.
    Probabilities put 0.9 on each row's class. Returns (manifest, pred_probs, names) paths."""
    rng = np.random.default_rng(seed)
    sizes = np.concatenate([np.full(5, 60), rng.integers(1, 4, size=2 * classes // 3 - 5),
                            np.zeros(classes - 2 * classes // 3, int)])
    ids = rng.permutation(np.repeat(np.arange(classes), sizes))
    probs = np.full((len(ids), classes), 0.1 / (classes - 1), np.float32)
    probs[np.arange(len(ids)), ids] = 0.9
    names = [f"n{i:05d}" for i in range(classes)]
    split = np.where(rng.random(len(ids)) < 0.7, "train", "val")
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"sample_id": [f"s{i}" for i in range(len(ids))], "label": [names[i] for i in ids],
                  "split": split}).to_csv(manifest, index=False)
    np.save(tmp_path / "P.npy", probs)
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    return manifest, tmp_path / "P.npy", tmp_path / "names.txt"


def test_the_summary_names_ten_classes_without_train_rows_and_counts_the_rest():
    # A long tail of 10,000 classes had 613 classes with val rows and none in train: the summary
    # table's threshold cell listed every name, 620 lines of stderr for one check.
    names = [f"n{i:05d}" for i in range(613)]
    threshold = {"scope": "train", "median_class_size": 2.0, "below": 1.0, "classes": 6561, "not_in_train": names}
    assert format_threshold(threshold) == ("class size < 1 (train); none in train: " + ", ".join(names[:10])
                                           + " and 603 more (summary.json: not_in_train)")
    threshold["not_in_train"] = names[:MAX_NAMES_SHOWN]  # exactly the number shown: no "more"
    assert format_threshold(threshold) == "class size < 1 (train); none in train: " + ", ".join(names[:10])


def test_a_long_tailed_audit_prints_a_short_summary_and_keeps_every_name_in_summary_json(tmp_path):
    manifest, probs, names = _long_tail(tmp_path)
    result = invoke("audit", manifest, "--pred-probs", probs, "--class-names", names, "--out", tmp_path / "run",
                    "--checks", "class_imbalance,label_issues", "--cache-dir", "off")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    missing = summary["checks"]["class_imbalance"]["threshold"]["not_in_train"]
    assert len(missing) > 100  # 1-3 rows, 30 % in val: a class of one val row has none in train
    assert format_threshold(summary["checks"]["class_imbalance"]["threshold"]).endswith(
        f", {missing[MAX_NAMES_SHOWN - 1]} and {len(missing) - MAX_NAMES_SHOWN:,} more (summary.json: not_in_train)")
    assert "not_in_train" in result.stderr
    assert sum(name in result.stderr for name in missing) == MAX_NAMES_SHOWN
    assert len(result.stderr.splitlines()) < 40, result.stderr
    # Every row's class has 0.9 of its row: no label is disputed.
    assert summary["checks"]["label_issues"]["flagged"] == 0
    assert summary["checks"]["label_issues"]["scored"] == summary["samples"]


def test_cleanlab_out_of_memory_at_many_classes_names_the_class_matrices_not_the_dataset(tmp_path, monkeypatch):
    # 3,000 rows of 20,000 classes: cleanlab's (C, C) int64 confusion matrix (3 GiB) ran out of
    # memory, and the error said "use a smaller dataset, image size or batch size", none of
    # which helps: its matrices grow with the classes squared, whatever the rows.
    import cleanlab.filter

    manifest, probs, names = _long_tail(tmp_path, classes=300)
    seen = []

    def out_of_memory(labels, pred_probs, **kwargs):
        seen.append(pred_probs.shape)
        raise MemoryError("Unable to allocate 2.98 GiB for an array with shape (20000, 20000) and data type int64")

    monkeypatch.setattr(cleanlab.filter, "find_label_issues", out_of_memory)
    result = invoke("audit", manifest, "--pred-probs", probs, "--class-names", names, "--out", tmp_path / "run",
                    "--checks", "label_issues", "--cache-dir", "off")
    rows = len(pd.read_csv(manifest))
    line = assert_one_line_error(result, 2, "not enough memory for label_issues (Unable to allocate 2.98 GiB",
                                 f"copies the {rows:,} x 300 probabilities (0.0 GiB)",
                                 "several 300 x 300 class matrices at once (0.0 GiB each)",
                                 "leave the check out (--checks)")
    assert "smaller dataset" not in line
    assert seen and seen[0][1] == 300


def test_a_parquet_manifest_of_many_classes_is_read_in_batches_of_bytes_not_of_4096_rows(tmp_path):
    # Its list columns were read 4,096 rows at a time whatever their width: 8,192 rows of 5,000
    # classes peaked at 1.1 GB for a 164 MB float32 array, 0.41 GB read 419 rows at a time.
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datacheck.features.arrays import _batch_rows, load_array_inputs

    rng = np.random.default_rng(0)
    n, k = 1_000, 4_000
    labels = rng.integers(0, k, n)
    labels[:2] = [0, k - 1]  # every column's class present: no --class-names needed
    probs = np.full((n, k), 0.1 / (k - 1))
    probs[np.arange(n), labels] = 0.9
    embeddings = rng.standard_normal((n, 16))

    def lists(values):
        return pa.ListArray.from_arrays(pa.array(np.arange(0, values.size + 1, values.shape[1], dtype=np.int32)),
                                        pa.array(values.ravel()))

    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"sample_id": [f"s{i}" for i in range(n)], "label": labels,
                             "pred_probs": lists(probs), "embeddings": lists(embeddings)}), path, row_group_size=300)
    metadata = pq.ParquetFile(path).metadata
    assert _batch_rows(metadata, ["pred_probs", "embeddings"]) == (16 << 20) // (8 * k) == 524  # the widest column
    assert _batch_rows(metadata, ["embeddings"]) == 4096  # 16 MB of 16 doubles is more: the cap
    inputs = load_array_inputs(path)  # batches of 524 and 476 rows, across 4 row groups of 300
    assert inputs.outputs.pred_probs.shape == (n, k) and inputs.outputs.pred_probs.dtype == np.float32
    np.testing.assert_array_equal(inputs.outputs.pred_probs, probs.astype(np.float32))
    np.testing.assert_array_equal(inputs.embeddings, embeddings.astype(np.float32))
    np.testing.assert_array_equal(inputs.labels.ids, labels)


def test_label_issues_is_off_with_the_reason_where_cleanlab_would_outgrow_the_memory(tmp_path, monkeypatch):
    # Linux does not refuse cleanlab's (C, C) matrices (85 GB at 50,000 classes): it kills the
    # audit once their pages are touched (exit 137, no message, an unfinished run). Where the
    # estimate exceeds what is available, the check is off, said why, and the others still run.
    import cleanlab.filter

    import datacheck.engine.memory as memory
    from datacheck.detectors.label_issues import CLEANLAB_BYTES_PER_CLASS_PAIR

    manifest, probs, names = _long_tail(tmp_path, classes=300)
    need = CLEANLAB_BYTES_PER_CLASS_PAIR * 300 * 300  # the class matrices alone: 2.9 MB
    monkeypatch.setattr(memory, "available_memory", lambda: need // 2)
    monkeypatch.setattr(cleanlab.filter, "find_label_issues", lambda *a, **k: pytest.fail("cleanlab was called"))
    result = invoke("audit", manifest, "--pred-probs", probs, "--class-names", names, "--out", tmp_path / "run",
                    "--checks", "label_issues,class_imbalance", "--fail-on", "label_issues>0", "--cache-dir", "off")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rule = summary["checks"]["label_issues"]["threshold"]["rule"]
    # 34 x 300² bytes of matrices and 4 x rows x 300 of the copy, in MiB (below one GiB)
    rows = len(pd.read_csv(manifest))
    assert rule.startswith(f"off: cleanlab's confident learning would need about {(need + 4 * rows * 300) / 2**20:.1f} "
                           "MiB for 300 classes (300 x 300")
    assert f"{need // 2 / 2**20:.1f} MiB is available" in rule and summary["checks"]["label_issues"]["flagged"] == 0
    assert summary["checks"]["class_imbalance"]["scored"] > 0  # the other check ran
    assert result.exit_code == 0 and [g["judged"] for g in summary["gates"]] == [False]  # untested, said so
    # With the memory there, it runs (the real call; every row's class has 0.9 of its row).
    monkeypatch.undo()
    monkeypatch.setattr(memory, "available_memory", lambda: need * 10)
    result = invoke("audit", manifest, "--pred-probs", probs, "--class-names", names, "--out", tmp_path / "run2",
                    "--checks", "label_issues", "--cache-dir", "off")
    summary = json.loads((tmp_path / "run2" / "summary.json").read_text())
    assert result.exit_code == 0 and summary["checks"]["label_issues"]["scored"] == summary["samples"]


def test_available_memory_is_at_most_the_machine_s():
    from datacheck.engine.memory import available_memory

    available = available_memory()
    if available is None:
        pytest.skip("no /proc/meminfo or cgroup files here")
    with open("/proc/meminfo") as fh:
        total = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemTotal:"))
    assert 0 < available <= total


def test_a_cgroup_limit_counts_even_where_its_stat_file_cannot_be_read(monkeypatch):
    # Without memory.stat the file cache cannot be subtracted: the whole usage counts (less is
    # left), rather than the container's limit being ignored.
    from pathlib import Path

    import datacheck.engine.memory as memory

    files = {"/sys/fs/cgroup/memory.max": "1000000\n", "/sys/fs/cgroup/memory.current": "400000\n"}

    def read_text(self, *args, **kwargs):
        if str(self) in files:
            return files[str(self)]
        raise FileNotFoundError(str(self))

    monkeypatch.setattr(Path, "read_text", read_text)
    assert memory.available_memory() == 600_000
    files["/sys/fs/cgroup/memory.stat"] = "anon 300000\ninactive_file 100000\n"
    assert memory.available_memory() == 700_000

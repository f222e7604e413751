"""Same input + seed -> same findings, whatever else varies: the manifest's row order, the torch
thread count a cache was written with, how often a repair is run."""

from __future__ import annotations

import numpy as np
import pandas as pd

import datacheck


def _arrays(n=400, k=4, d=16, seed=0):
    """A manifest of n samples in k Gaussian classes (some mislabeled) with its probabilities and embeddings."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    embeddings = (rng.normal(size=(k, d))[labels] * 3 + rng.normal(size=(n, d))).astype(np.float32)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += 2.5
    probs = np.exp(logits)
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    given = labels.copy()
    flip = rng.choice(n, 30, replace=False)
    given[flip] = (given[flip] + 1) % k
    frame = pd.DataFrame({"sample_id": [f"s{i:04d}" for i in range(n)], "label": given,
                          "split": np.where(rng.random(n) < 0.8, "train", "val")})
    return frame, probs, embeddings


def _per_sample(result, check):
    rows = result.findings[result.findings["check"] == check]
    return rows.set_index("sample_id")[["score", "is_issue", "details"]].sort_index()


def test_clusters_and_coreset_do_not_depend_on_the_manifests_row_order():
    """K-means++ seeding and the silhouette sample drew by position, and coreset's greedy broke
    ties by it: the same samples listed in another order got other sub-clusters (87 of 400
    samples' clusters, one flag) and other coreset scores."""
    frame, probs, embeddings = _arrays()
    order = np.random.default_rng(1).permutation(len(frame))
    checks = ["clusters", "coreset"]
    first = datacheck.audit(frame, pred_probs=probs, embeddings=embeddings, checks=checks, seed=3)
    shuffled = datacheck.audit(frame.iloc[order].reset_index(drop=True), pred_probs=probs[order],
                               embeddings=embeddings[order], checks=checks, seed=3)
    for check in checks:
        pd.testing.assert_frame_equal(_per_sample(first, check), _per_sample(shuffled, check))


def test_cross_validation_cache_is_kept_apart_per_torch_thread_count(tiny_dataset, tmp_path, monkeypatch):
    """Training sums in another order on 1 torch thread than on 2 (README: determinism holds per
    thread count), yet the cache of cross-validated outputs was keyed without it: an audit on 1
    thread after one on 2 read the 2-thread outputs, and a cold cache gave other findings than a
    warm one for the same data, seed and threads. The training here is a stand-in whose outputs
    name the thread count it ran on."""
    import torch

    from datacheck.engine import train
    from datacheck.engine.train_config import TrainConfig
    from datacheck.features.model import cross_validated_outputs
    from datacheck.manifest import load_manifest

    def fake_cross_validate(pixels, labels, num_classes, *args, rows=None, embed_rows=None, **kwargs):
        n, threads = len(rows), torch.get_num_threads()
        return train.CrossValResult(np.full((n, num_classes), threads, np.float32),
                                    np.full((n, num_classes), threads, np.float32),
                                    np.full((n + len(embed_rows), 2), threads, np.float32),
                                    np.zeros(n, np.int64), np.full(n, threads, np.float32), np.zeros(0, np.float32))

    monkeypatch.setattr(train, "cross_validate", fake_cross_validate)
    manifest = load_manifest(tiny_dataset)
    inputs = lambda: (np.zeros((len(manifest), 3, 8, 8), np.uint8), np.ones(len(manifest), bool), "same-files")  # noqa: E731
    threads = torch.get_num_threads()
    try:
        found = {}
        for count in (2, 1):
            torch.set_num_threads(count)
            outputs = cross_validated_outputs(manifest, inputs, TrainConfig(), "cpu", 0, str(tmp_path / "cache"))
            found[count] = float(outputs.aum.aum[0])
    finally:
        torch.set_num_threads(threads)
    assert found == {2: 2.0, 1: 1.0}


def test_a_shuffled_manifest_writes_the_same_findings_table_and_worst_samples():
    """Ties of a check's score were written in manifest order: the same samples listed in
    another order gave another findings table and other `worst` samples in summary.json
    (class_imbalance's whole class ties, as do the exact duplicates' copies)."""
    frame, probs, embeddings = _arrays()
    frame.loc[frame["label"] == 3, "split"] = "val"  # class 3 absent from train: its samples tie
    embeddings[7] = embeddings[8]
    order = np.random.default_rng(2).permutation(len(frame))
    checks = ["class_imbalance", "exact_duplicates", "label_issues", "outliers", "clusters"]
    first = datacheck.audit(frame, pred_probs=probs, embeddings=embeddings, checks=checks, seed=0)
    shuffled = datacheck.audit(frame.iloc[order].reset_index(drop=True), pred_probs=probs[order],
                               embeddings=embeddings[order], checks=checks, seed=0)
    same = ["run_id", "path"]  # a manifest without paths: the path is the row number
    pd.testing.assert_frame_equal(first.findings.drop(columns=same), shuffled.findings.drop(columns=same))
    assert ({c: v["worst"] for c, v in first.summary["checks"].items()}
            == {c: v["worst"] for c, v in shuffled.summary["checks"].items()})


def test_an_image_manifest_listed_in_another_order_trains_the_same_models(tmp_path):
    """The cross-validation's folds, threshold samples and batches, and the orientation
    networks' halves, were drawn by position: sample_data's images listed in another order
    trained other models, and their label and outlier findings (and orientation surprises)
    differed. Now every training takes the samples in sample-id order (a folder's own order,
    so its numbers are unchanged). 2 folds of 3 epochs: folds drawn by position differ between
    the two orders at any fold count (5 folds took 5 s more, for the same comparison)."""
    from datacheck.engine.loader import decode_resize_batch
    from datacheck.engine.train_config import TrainConfig
    from datacheck.features.model import orientation_outputs
    from datacheck.manifest import load_manifest

    from .conftest import SAMPLE_DATA

    frame = load_manifest(SAMPLE_DATA).frame[["sample_id", "path", "label", "split"]]
    frames = {"listed": frame, "shuffled": frame.iloc[np.random.default_rng(4).permutation(len(frame))]}
    checks = ["label_issues", "outliers"]
    config = {"train": {"epochs": 3, "folds": 2}}
    runs = [datacheck.audit(f.reset_index(drop=True), root=SAMPLE_DATA, checks=checks, config=config,
                            seed=0, workers=0, cache_dir=str(tmp_path / name)) for name, f in frames.items()]
    for check in checks:
        pd.testing.assert_frame_equal(_per_sample(runs[0], check), _per_sample(runs[1], check))
    assert runs[0].summary["checks"]["label_issues"]["flagged"] > 5

    surprise = []
    for f in frames.values():
        manifest = load_manifest(f.reset_index(drop=True), root=SAMPLE_DATA)
        decoded = decode_resize_batch({"path": manifest.abspaths()}, 32)
        inputs = (np.stack(decoded["pixels"]), np.array(decoded["ok"]), "key")
        found = orientation_outputs(lambda: inputs, len(manifest), TrainConfig(epochs=2), "cpu", 0, None,
                                    in_order=manifest.in_id_order)
        surprise.append(pd.Series(found.surprise, index=manifest.frame["sample_id"]).sort_index())
    assert surprise[0].notna().sum() >= len(frame) // 2  # one network's half at least (sample_data has no upright look)
    pd.testing.assert_series_equal(surprise[0], surprise[1])

"""Recall and precision of ``label_issues`` on the mislabels planted in ``sample_data``, per seed.

Audits ``sample_data/`` with ``--checks label_issues`` once per seed (cold cache: every
fold model is trained) and scores the flagged samples against ``sample_data/truth.csv``:
recall = planted mislabels flagged / 24; precision = flagged samples whose label is wrong
(a planted mislabel or an off-class image, which belongs to no class) / flagged. The issue's
target: recall >= 0.8 at precision >= 0.7. ``--train KEY=VALUE`` overrides a ``[train]``
setting (e.g. ``knn_k=0 label_smoothing=0.1``, the settings before the k-NN vote), so a
change to the model can be compared with the defaults over the same seeds.

    python benchmarks/label_recall.py [--seeds 0 1 2] [--train KEY=VALUE ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import tomllib
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
TARGET_RECALL, TARGET_PRECISION = 0.8, 0.7


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train", nargs="*", default=[], metavar="KEY=VALUE", help="[train] overrides (TOML values)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    try:
        args.overrides = tomllib.loads("\n".join(args.train))
    except tomllib.TOMLDecodeError as exc:
        parser.error(f"--train: {exc}")
    return args


def score(findings: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Recall of planted mislabels and precision (wrong labels among flagged) of label_issues."""
    mislabeled = set(truth.loc[truth["issue"] == "mislabeled", "sample_id"])
    wrong = mislabeled | set(truth.loc[truth["issue"] == "outlier", "sample_id"])
    rows = findings[(findings["check"] == "label_issues") & findings["is_issue"]]
    found = set(rows["sample_id"])
    return {
        "flagged": len(found),
        "recall": len(found & mislabeled) / len(mislabeled),
        "precision": len(found & wrong) / len(found) if found else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import datacheck

    truth = pd.read_csv(SAMPLE / "truth.csv")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            config = Path(tmp) / f"seed{seed}.toml"
            lines = [f"[audit]\nseed = {seed}\n[train]"] + [f"{k} = {json.dumps(v)}" for k, v in args.overrides.items()]
            config.write_text("\n".join(lines) + "\n")
            result = datacheck.audit(SAMPLE, out=Path(tmp) / f"run{seed}", config=config, checks=["label_issues"],
                                     cache_dir="off", workers=2)
            accuracy = result.summary["checks"]["label_issues"]["threshold"]["out_of_fold_accuracy"]
            results.append({"seed": seed, "out_of_fold_accuracy": accuracy, **score(result.findings, truth)})
    print(f"label_issues on sample_data (24 planted mislabels), [train] overrides: {args.overrides or 'none'}")
    print(f"{'seed':>4} {'OOF acc':>8} {'flagged':>8} {'recall':>7} {'precision':>9}")
    for r in results:
        print(f"{r['seed']:>4} {r['out_of_fold_accuracy']:>8.3f} {r['flagged']:>8} {r['recall']:>7.3f} {r['precision']:>9.3f}")
    mean = {k: sum(r[k] for r in results) / len(results) for k in ("recall", "precision")}
    met = sum(r["recall"] >= TARGET_RECALL and r["precision"] >= TARGET_PRECISION for r in results)
    print(f"mean {'':>17} {mean['recall']:>7.3f} {mean['precision']:>9.3f}   "
          f"target (recall >= {TARGET_RECALL} at precision >= {TARGET_PRECISION}) met on {met} of {len(results)} seeds")
    if args.json:
        args.json.write_text(json.dumps({"overrides": args.overrides, "seeds": results, "mean": mean}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

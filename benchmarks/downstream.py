"""A fixed downstream protocol: what is a training set worth to a fixed small CNN?

Trains one fixed network (architecture, hyper-parameters, augmentation and seeds all frozen
here, independent of datacheck's audit defaults, so changing those never moves the yardstick)
on each given training manifest, and reports its accuracy on one evaluation manifest, mean ±
standard deviation over seeds. The data is the only variable.

Accuracy is reported on the whole evaluation split and, when some evaluation files are
byte-identical copies of a training file of any condition compared (leaked copies, which reward
memorisation), also with those copies excluded.

    python benchmarks/downstream.py --train original=DATA --train cleaned=FIXED/ --eval DATA
    python benchmarks/downstream.py --roman [--work runs/downstream-roman] [--json out.json]
    python benchmarks/downstream.py --fix-yardstick [--budget 10000] [--work runs/downstream-fix]

Manifests are folders or CSV/Parquet/JSONL files (``datacheck.load_manifest``); of a training
manifest only the ``--train-split`` rows are used (all rows when it has no splits), of the
evaluation manifest the ``--eval-split`` rows. ``--roman`` builds the conditions of issue #5
itself from ``../shared/data/roman`` by running datacheck (audit, relabel, balance, augment)
into ``--work``, skipping those whose command does not exist yet. ``--fix-yardstick`` is issue
#16's: a seeded, stratified ``--holdout`` share of roman's val is held out and never read by
``fix``; (a) the remaining rows, (b) the same grown to ``--budget`` by augmentation alone and
(c) ``datacheck fix --budget`` are each trained on all their rows and scored on the held-out part.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the sibling helper importable
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import contact_sheet, int_at_least  # noqa: E402

DEFAULT_ROMAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "roman"


@dataclass(frozen=True)
class Protocol:
    """The frozen yardstick. Change it only with a new RESULTS.md section: numbers measured
    under different protocols are not comparable."""

    image_size: int = 32
    widths: tuple = (16, 32, 64, 128)
    epochs: int = 25
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    #: Random affine augmentation while training: rotation (degrees), scale and translation (fractions).
    rotate: float = 8.0
    scale: float = 0.10
    translate: float = 0.08
    #: Seed i of a run is ``seed_base + i``; with ``--seeds 3`` every condition sees the same three.
    seed_base: int = 1000


# --------------------------------------------------------------------------- the fixed model


def build_network(num_classes: int, protocol: Protocol):
    """conv-BN-ReLU-maxpool stages of ``protocol.widths`` channels, global average pooling,
    a linear head: (B, 3, S, S) float → (B, num_classes) logits."""
    from torch import nn

    layers, channels = [], 3
    for width in protocol.widths:
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                   nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


def _standardise(pixels: np.ndarray, device: str):
    """uint8 (B, 3, S, S) → float (B, 3, S, S), zero mean and unit scale per image."""
    import torch

    # A read-only array (a memory-mapped cache) is copied as it is cast: torch warns on sharing it.
    x = torch.tensor(pixels, device=device, dtype=torch.float32)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / (x.std(dim=(1, 2, 3), keepdim=True) + 1.0)


def _augment(x, protocol: Protocol, generator):
    """Random rotation, scale and translation per image, edges replicated (no flips: they
    turn "iv" into "vi")."""
    import torch
    from torch.nn import functional as F

    b = x.shape[0]

    def uniform(half_width: float):
        return (torch.rand(b, generator=generator) * 2 - 1) * half_width

    angle = uniform(math.radians(protocol.rotate))
    scale = 1 + uniform(protocol.scale)
    theta = torch.stack([
        torch.stack([scale * torch.cos(angle), -scale * torch.sin(angle), uniform(2 * protocol.translate)], 1),
        torch.stack([scale * torch.sin(angle), scale * torch.cos(angle), uniform(2 * protocol.translate)], 1),
    ], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def train_and_predict(train_pixels: np.ndarray, train_labels: np.ndarray, eval_pixels: np.ndarray,
                      num_classes: int, seed: int, protocol: Protocol, device: str = "cpu",
                      steps: int | None = None) -> np.ndarray:
    """Train the fixed network from scratch and predict the evaluation images.

    Parameters
    ----------
    train_pixels : ndarray of shape (N, 3, S, S), uint8
    train_labels : ndarray of shape (N,), int in [0, num_classes)
    eval_pixels : ndarray of shape (M, 3, S, S), uint8
    seed : int
        Fixes the initial weights, the batch order and the augmentation.
    steps : int, optional
        Optimizer steps to train for (the last epoch cut short); default ``protocol.epochs``
        full epochs.

    Returns
    -------
    ndarray of shape (M,), int
        Predicted class per evaluation image.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    network = build_network(num_classes, protocol).to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(network.parameters(), lr=protocol.lr, weight_decay=protocol.weight_decay)
    total = max(1, steps or protocol.epochs * math.ceil(len(train_labels) / protocol.batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=protocol.lr, total_steps=total)
    targets = torch.as_tensor(train_labels, dtype=torch.long)
    loss_fn = nn.CrossEntropyLoss()
    network.train()
    done = 0
    while done < total:
        order = torch.randperm(len(targets), generator=generator).numpy()
        for start in range(0, len(order), protocol.batch_size):
            if done == total:
                break
            batch = order[start : start + protocol.batch_size]
            if len(batch) > 1:  # BatchNorm cannot train on a single image
                x = _augment(_standardise(train_pixels[batch], device), protocol, generator)
                loss = loss_fn(network(x), targets[batch].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            scheduler.step()
            done += 1
    network.eval()
    predictions = []
    with torch.inference_mode():
        for start in range(0, len(eval_pixels), 512):
            predictions.append(network(_standardise(eval_pixels[start : start + 512], device)).argmax(1).cpu().numpy())
    return np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------- data


def load_any_manifest(source: Path, max_missing: int):
    """``datacheck.load_manifest``, also accepting a manifest file whose paths lie outside its
    folder (``write_manifest`` writes absolute paths then, e.g. a balance plan over the original
    dataset): such a file is read with ``root`` at the files' common folder."""
    import pandas as pd

    from datacheck import BadDataError, load_manifest

    try:
        return load_manifest(source, max_missing=max_missing)
    except BadDataError as exc:
        if source.is_dir() or "escapes the dataset root" not in str(exc):
            raise
    folder = source.resolve().parent
    reader = {".csv": pd.read_csv, ".parquet": pd.read_parquet}.get(source.suffix.lower(),
                                                                     lambda p: pd.read_json(p, lines=True))
    paths = [str(p) for p in reader(source)["path"]]
    absolute = [os.path.normpath(p if os.path.isabs(p) else folder / p) for p in paths]
    root = Path(os.path.commonpath(absolute)) if absolute else folder
    if root.is_file():  # a single file: its folder is the root
        root = root.parent
    return load_manifest(source, max_missing=max_missing, root=root)


def select_split(frame, split: str):
    """Rows of ``split`` with a label; every labelled row when the manifest has no splits or
    ``split`` is ``"all"``."""
    labelled = frame[frame["label"].notna()]
    if split != "all" and labelled["split"].notna().any():
        labelled = labelled[labelled["split"] == split]
    return labelled.reset_index(drop=True)


def file_digests(paths: list[str]) -> list[str]:
    """BLAKE2b of each file's bytes: equal digests are exact copies."""
    out = []
    for path in paths:
        with open(path, "rb") as fh:
            out.append(hashlib.blake2b(fh.read(), digest_size=16).hexdigest())
    return out


@dataclass
class Dataset:
    """One manifest's selected rows, decoded: ``pixels`` (N, 3, S, S) uint8, ``labels`` (N,)
    class names, ``paths`` absolute, ``ok`` (N,) bool (False: the file could not be decoded)."""

    source: str
    pixels: np.ndarray
    labels: np.ndarray
    paths: list
    ok: np.ndarray
    missing: int


def load_dataset(source: Path, split: str, protocol: Protocol, max_missing: int, cache_dir, workers: int) -> Dataset:
    from datacheck import BadDataError
    from datacheck.engine.loader import load_pixels

    manifest = load_any_manifest(source, max_missing)
    frame = select_split(manifest.frame, split)
    if frame.empty:
        raise BadDataError(f"{source}: no labelled rows in split {split!r}")
    paths = [os.path.join(manifest.root, p) for p in frame["path"]]
    pixels, ok, _ = load_pixels(paths, protocol.image_size, workers, cache_dir)
    return Dataset(str(source), pixels, frame["label"].astype(str).to_numpy(), paths, ok, len(manifest.missing))


# --------------------------------------------------------------------------- evaluation


def evaluate(conditions: dict[str, Path], eval_source: Path, seeds: int, protocol: Protocol, *, train_split="train",
             eval_split="val", max_missing=0, cache_dir=None, workers=1, device="cpu", equal_steps=False,
             log=print) -> dict:
    """Train the fixed network ``seeds`` times per condition and score it on the evaluation rows.

    By default every condition trains for ``protocol.epochs`` epochs, so a larger training set
    also gets more optimizer steps; with ``equal_steps`` every condition gets the steps the
    first condition's epochs make (the control for that).

    Returns
    -------
    dict
        ``protocol``, ``eval`` (source, size, leaked copies) and ``conditions``: per condition its
        training-set size and accuracies per seed on all evaluation rows (``accuracy``) and on the
        rows that are not byte copies of a training file of any condition (``accuracy_no_leak``);
        ``rows_by_models_wrong`` (how many evaluation rows m of the trained models get wrong,
        m = 0, 1, ...), ``missed_by_most_models`` (the rows more than half of them get wrong, the
        most missed first) and ``missed_by_every_model``.
    """
    from datacheck import BadDataError

    evaluation = load_dataset(eval_source, eval_split, protocol, max_missing, cache_dir, workers)
    trains = {name: load_dataset(path, train_split, protocol, max_missing, cache_dir, workers)
              for name, path in conditions.items()}
    train_digests = set()
    for data in trains.values():
        train_digests.update(file_digests(data.paths))
    leaked = np.array([d in train_digests for d in file_digests(evaluation.paths)], dtype=bool)
    classes = sorted(set(evaluation.labels).union(*(set(d.labels) for d in trains.values())))
    index = {c: i for i, c in enumerate(classes)}
    eval_y = np.array([index[c] for c in evaluation.labels])
    result = {
        "protocol": asdict(protocol),
        "eval": {"source": str(eval_source), "split": eval_split, "samples": len(eval_y),
                 "leaked_copies": int(leaked.sum()), "unreadable": int((~evaluation.ok).sum())},
        "classes": classes,
        "equal_steps": equal_steps,
        "conditions": [],
    }
    steps = None
    guesses = np.zeros((len(eval_y), len(classes)), dtype=np.int64)  # votes of the models per class
    for name, data in trains.items():
        if not data.ok.any():
            raise BadDataError(f"{data.source}: no readable training image")
        if equal_steps and steps is None:
            steps = protocol.epochs * math.ceil(int(data.ok.sum()) / protocol.batch_size)
        # An unreadable training file is skipped, as a training pipeline would have to; an
        # unreadable evaluation file stays in (its all-zero image is predicted, usually wrongly).
        x, y = data.pixels[data.ok], np.array([index[c] for c in data.labels[data.ok]])
        entry = {"name": name, "source": data.source, "train_samples": len(y),
                 "unreadable_skipped": int((~data.ok).sum()), "missing_skipped": data.missing,
                 "per_class": {c: int((data.labels[data.ok] == c).sum()) for c in classes},
                 "steps": steps or protocol.epochs * math.ceil(len(y) / protocol.batch_size),
                 "accuracy": [], "accuracy_no_leak": [], "seconds": []}
        for i in range(seeds):
            started = time.perf_counter()
            predicted = train_and_predict(x, y, evaluation.pixels, len(classes), protocol.seed_base + i, protocol, device,
                                          steps)
            entry["seconds"].append(round(time.perf_counter() - started, 2))
            correct = predicted == eval_y
            guesses[np.arange(len(eval_y)), predicted] += 1
            entry["accuracy"].append(float(correct.mean()))
            entry["accuracy_no_leak"].append(float(correct[~leaked].mean()) if (~leaked).any() else float("nan"))
            log(f"{name}: seed {i + 1}/{seeds}: accuracy {correct.mean():.4f} ({entry['seconds'][-1]:.0f} s)")
        result["conditions"].append(entry)
    # Rows that no trained model gets right bound every condition's accuracy here from above
    # (each condition's models are among them): what cleaning can gain is at most the rest.
    # How many models miss each row: rows missed by one or two of them are the seeds' noise,
    # rows missed by nearly all are the data's (or the network's) limit.
    models = sum(len(c["accuracy"]) for c in result["conditions"])
    wrong_by = models - guesses[np.arange(len(eval_y)), eval_y]
    result["rows_by_models_wrong"] = np.bincount(wrong_by, minlength=models + 1).tolist() if models else []
    hard = [i for i in np.argsort(-wrong_by, kind="stable") if models and wrong_by[i] * 2 > models]
    result["missed_by_most_models"] = [
        {"path": evaluation.paths[i], "label": str(evaluation.labels[i]), "voted": classes[int(guesses[i].argmax())],
         "models_wrong": int(wrong_by[i])} for i in hard]
    result["missed_by_every_model"] = [row for row in result["missed_by_most_models"] if row["models_wrong"] == models]
    return result


def missed_sheet(rows: list[dict], models: int, path: Path, side: int = 96, columns: int = 10) -> Path:
    """A contact sheet of ``rows`` (``missed_by_most_models``): each image with its label, the
    models' most common answer and how many of the ``models`` got it wrong, to judge by eye
    whether the label or the models are wrong."""
    return contact_sheet([(row["path"], f"{i}: {row['label']}->{row['voted']} {row['models_wrong']}/{models}")
                          for i, row in enumerate(rows)], path, side, columns)


def format_table(result: dict) -> str:
    """The comparison as a fixed-width text table, one row per condition."""
    ev = result["eval"]
    n_clean = ev["samples"] - ev["leaked_copies"]
    all_rows = f"{ev['split']} (n={ev['samples']})"
    clean_rows = f"w/o leaked copies (n={n_clean})"
    width = max([22] + [len(c["name"]) for c in result["conditions"]])
    head = (f"{'condition':<{width}} {'train':>6} {'steps':>6}  {all_rows:>17} {'vs first':>9}  {clean_rows:>26} {'vs first':>9} "
            f"{'s/seed':>7}")
    lines = [head]
    base = None
    for c in result["conditions"]:
        acc, clean = np.array(c["accuracy"]), np.array(c["accuracy_no_leak"])
        if base is None:
            base = (acc.mean(), clean.mean())
        lines.append(f"{c['name']:<{width}} {c['train_samples']:>6} {c['steps']:>6}  {_pm(acc):>17} {100 * (acc.mean() - base[0]):>+8.1f}p  "
                     f"{_pm(clean):>26} {100 * (clean.mean() - base[1]):>+8.1f}p {np.mean(c['seconds']):>7.0f}")
    seeds = len(result["conditions"][0]["accuracy"]) if result["conditions"] else 0
    budget = "equal steps" if result.get("equal_steps") else f"{result['protocol']['epochs']} epochs each"
    lines.append(f"(accuracy in %, mean ± std over {seeds} seed(s); {budget}; 'p' = percentage points; "
                 f"{ev['leaked_copies']} {ev['split']} files are byte copies of a training file)")
    return "\n".join(lines)


def _pm(values: np.ndarray) -> str:
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{100 * values.mean():.1f} ± {100 * std:.1f}"


# --------------------------------------------------------------------------- --roman: build the conditions


def _datacheck(*args: str, log) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "datacheck", *map(str, args)]
    log("$ datacheck " + " ".join(map(str, args)))
    return subprocess.run(command, capture_output=True, text=True)


def _last_line(done: subprocess.CompletedProcess) -> str:
    """The last line a failed command printed on stderr (its one-line error)."""
    return (done.stderr.strip().splitlines() or ["(no message)"])[-1]


def _has_command(name: str) -> bool:
    return subprocess.run([sys.executable, "-m", "datacheck", name, "--help"], capture_output=True).returncode == 0


def build_roman_conditions(data: Path, work: Path, log=print) -> tuple[dict[str, Path], dict[str, str]]:
    """Audit ``data`` and derive the issue-#5 conditions from it into ``work`` (reused when
    already there; delete ``work`` to rebuild).

    Returns
    -------
    conditions : dict of name to training manifest
    skipped : dict of name to the reason it could not be built
    """
    from datacheck.detectors import list_detectors
    from datacheck.errors import DatacheckError

    conditions = {"a original": data}
    skipped: dict[str, str] = {}
    # The opt-in checks balance needs, when they exist. Everything derived from an audit lives
    # in a folder named after its checks, so a check that lands later gets a fresh audit and
    # fresh plans instead of stale ones being reused.
    extra = [c for c in ("clusters", "coreset") if c in list_detectors()]
    work = work / "+".join(["audit", *extra])
    audit = work / "audit"
    if not (audit / "run.json").exists():
        work.mkdir(parents=True, exist_ok=True)
        checks = ",".join(dict.fromkeys(list_detectors(default_only=True) + extra))
        done = _datacheck("audit", data, "--out", audit, "--checks", checks, "--quiet", log=log)
        if done.returncode not in (0, 1):  # 1: a gate failed, still a complete run
            last = _last_line(done)
            raise DatacheckError(f"`datacheck audit {data}` failed (exit {done.returncode}): {last}")

    def step(name: str, output: Path, commands: list[tuple], finished: Path | None = None) -> None:
        """Run ``commands`` unless ``finished`` (default ``output``) exists; then train on ``output``."""
        missing = sorted({c[0] for c in commands if not _has_command(c[0])})
        if missing:
            skipped[name] = f"`datacheck {'`, `datacheck '.join(missing)}` does not exist yet"
            return
        if not (finished or output).exists():
            for args in commands:
                done = _datacheck(*args, log=log)
                if done.returncode != 0:
                    last = _last_line(done)
                    skipped[name] = f"`datacheck {' '.join(map(str, args))}` failed (exit {done.returncode}): {last}"
                    return
        conditions[name] = output

    step("b relabel+drop", work / "relabelled", [
        ("relabel", audit, "--auto", "--drop", "--out", work / "relabel", "--materialize", work / "relabelled", "-q")])
    # Sub-cluster balancing needs the clusters check; balancing by class needs none (without
    # clusters it stands in for condition c, named as such in the table).
    for strategy in ["subclusters"] * ("clusters" in extra) + ["classes"]:
        step(f"c balance({strategy})+augment", work / f"augmented-{strategy}", [
            ("balance", audit, "--out", work / f"plan-{strategy}", "--strategy", strategy, "--drop-flagged", "-q"),
            ("augment", work / f"plan-{strategy}", "--out", work / f"augmented-{strategy}", "-q")],
             finished=work / f"augmented-{strategy}" / "augment.json")
    if "coreset" in extra:
        step("d coreset", work / "plan-coreset" / "manifest.csv", [
            ("balance", audit, "--out", work / "plan-coreset", "--strategy", "coreset", "-q")])
    else:
        skipped["d coreset"] = "the `coreset` check does not exist yet (balance --strategy coreset needs it)"
    return conditions, skipped


# --------------------------------------------------------------------------- --fix-yardstick (issue #16)


def hold_out(data: Path, work: Path, fraction: float, seed: int) -> tuple[Path, Path]:
    """Split ``fraction`` of ``data``'s val rows off, stratified by label with ``seed``.

    Writes ``work/holdout.csv`` (the held-out rows, split ``val``) and ``work/dataset.csv``
    (every other row, splits kept), both with absolute paths, and returns their paths. No step
    of ``fix`` ever reads the held-out rows: they are only the final evaluation.
    """
    from sklearn.model_selection import train_test_split

    from datacheck import load_manifest
    from datacheck.runs import atomic_write

    manifest = load_manifest(data)
    frame = manifest.frame.assign(path=[os.path.join(manifest.root, p) for p in manifest.frame["path"]])
    val = frame[frame["split"] == "val"]
    if val.empty:
        raise SystemExit(f"{data} has no val split to hold a part of out")
    _, held = train_test_split(val.index.to_numpy(), test_size=fraction, random_state=seed,
                               stratify=val["label"].to_numpy())
    work.mkdir(parents=True, exist_ok=True)
    paths = work / "holdout.csv", work / "dataset.csv"
    for path, rows in zip(paths, (frame.loc[sorted(held)], frame.drop(index=held))):
        text = rows[["sample_id", "path", "label", "split"]].to_csv(index=False)
        atomic_write(path, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
    return paths


def run_fix(dataset: Path, root: Path, out: Path, budget: int, seed: int, extra: list[str], log) -> dict:
    """``datacheck fix`` into ``out`` (reused when complete); its ``summary.json``."""
    import json

    summary = out / "summary.json"
    if not summary.is_file():
        done = _datacheck("fix", dataset, "--root", root, "--out", out, "--budget", budget, "--seed", seed, *extra,
                          "-q", log=log)
        if done.returncode not in (0, 1):  # 1: the final audit's gate, still a complete fix
            last = _last_line(done)
            raise SystemExit(f"`datacheck fix` failed (exit {done.returncode}): {last}")
    return json.loads(summary.read_text(encoding="utf-8"))


def fix_yardstick(data: Path, work: Path, budget: int, seeds: int, protocol: Protocol, *, fraction=0.4,
                  split_seed=0, fix_seed=0, cache_dir=None, workers=1, device="cpu", variants=(), log=print) -> dict:
    """Issue #16's yardstick: (a) the original rows, (b) the same augmented to ``budget`` with no
    cleaning, (c) ``datacheck fix`` to ``budget``; each trained ``seeds`` times on every row it
    has (train and the held-in val) and scored on the held-out part of val.

    ``variants``: ``(name, config)`` pairs, each one more condition ``datacheck fix --config
    config`` (same budget and seed), to compare a setting with (c) on the same held-out part.
    """
    holdout, dataset = hold_out(data, work, fraction, split_seed)
    # (b): fix with every cleaning and targeting step off: class proportions kept, each class
    # grown by the same factor with the same augmentation policy; nothing dropped.
    plain = work / "plain.toml"
    plain.write_text("[fix]\ndrop_flagged = false\n", encoding="utf-8")
    fixes = {}
    started = time.perf_counter()
    fixes["b"] = run_fix(dataset, data, work / "fix-b-augment-only", budget, fix_seed,
                         ["--no-relabel", "--no-balance", "--no-boost", "--config", plain], log)
    fixes["c"] = run_fix(dataset, data, work / "fix-c", budget, fix_seed, [], log)
    conditions = {"a original (train + held-in val)": dataset,
                  "b augmented to budget, no cleaning": work / "fix-b-augment-only" / "manifest.csv",
                  "c datacheck fix": work / "fix-c" / "manifest.csv"}
    for name, config in variants:
        folder = work / f"fix-variant-{name}"
        run_fix(dataset, data, folder, budget, fix_seed, ["--config", config.resolve()], log)
        conditions[f"variant {name} ({config.name})"] = folder / "manifest.csv"
    log(f"fixes ready after {time.perf_counter() - started:.0f} s")
    result = evaluate(conditions, holdout, seeds, protocol, train_split="all", eval_split="val",
                      cache_dir=cache_dir, workers=workers, device=device, log=log)
    acc = {c["name"][0]: 100 * np.mean(c["accuracy"]) for c in result["conditions"][:3]}
    fix_seconds = sum(e["seconds"] or 0 for e in fixes["c"]["steps"].values())
    result["yardstick"] = {
        "budget": budget, "holdout_fraction": fraction, "split_seed": split_seed, "fix_seed": fix_seed,
        "c_minus_a": round(acc["c"] - acc["a"], 2), "c_minus_b": round(acc["c"] - acc["b"], 2),
        "fix_seconds": round(fix_seconds, 1),
        "targets": {"c >= a + 6": bool(acc["c"] - acc["a"] >= 6), "c >= b + 2": bool(acc["c"] - acc["b"] >= 2),
                    "fix <= 20 min": bool(fix_seconds <= 1200)},
        "fix_steps": {k: v["seconds"] for k, v in fixes["c"]["steps"].items()},
        # Every model of every condition and seed wrong on these held-out rows: c - a can grow
        # by at most (1 - a - this share) unless a model learns to answer them.
        "missed_by_every_model": len(result["missed_by_every_model"]),
        "missed_by_most_models": len(result["missed_by_most_models"]),
        "missed_sheet": str(missed_sheet(result["missed_by_most_models"], len(result["rows_by_models_wrong"]) - 1,
                                         work / "missed_by_most_models.png")),
        "variants_minus_c": {c["name"]: round(100 * np.mean(c["accuracy"]) - acc["c"], 2)
                             for c in result["conditions"][3:]},
    }
    return result


# --------------------------------------------------------------------------- CLI


def _named_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="append", type=_named_path, default=[], metavar="NAME=PATH",
                        help="a training manifest (repeat to compare several)")
    parser.add_argument("--eval", type=Path, help="the evaluation manifest")
    parser.add_argument("--roman", action="store_true", help="build the issue-#5 conditions from the roman dataset")
    parser.add_argument("--fix-yardstick", action="store_true",
                        help="issue #16: original vs augmented vs `datacheck fix`, on a held-out part of roman's val")
    parser.add_argument("--budget", type=int_at_least(1), default=10_000, help="the budget of --fix-yardstick")
    parser.add_argument("--holdout", type=float, default=0.4, help="share of val held out by --fix-yardstick")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of --fix-yardstick's held-out split")
    parser.add_argument("--fix-seed", type=int, default=0, help="seed of --fix-yardstick's `datacheck fix` runs")
    parser.add_argument("--fix-variant", action="append", type=_named_path, default=[], metavar="NAME=CONFIG",
                        help="--fix-yardstick: one more condition, `datacheck fix --config CONFIG` (repeatable)")
    parser.add_argument("--data", type=Path, default=DEFAULT_ROMAN, help="the roman dataset, for --roman")
    parser.add_argument("--work", type=Path, default=Path("runs/downstream-roman"), help="working folder of --roman")
    parser.add_argument("--seeds", type=int_at_least(1), default=3)
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--eval-split", default="val")
    parser.add_argument("--max-missing", type=int_at_least(0), default=0)
    parser.add_argument("--equal-steps", action="store_true",
                        help="train every condition for the optimizer steps of the first (default: equal epochs)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (timings differ; accuracies nearly so)")
    parser.add_argument("--threads", type=int_at_least(1), default=1,
                        help="torch CPU threads (1: on a shared machine 2 threads are several times slower)")
    parser.add_argument("--cache-dir", default="", help="decoded-image cache ['' = datacheck's, 'off' = none]")
    parser.add_argument("--json", type=Path, help="also write every number here")
    # Only for tests: any other value makes a different, incomparable protocol (printed with the table).
    parser.add_argument("--epochs", type=int_at_least(1), default=Protocol.epochs, help=argparse.SUPPRESS)
    parser.add_argument("--image-size", type=int_at_least(16), default=Protocol.image_size, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Checked before any work: a variant fails otherwise only after the other fixes (an hour on roman).
    names = [name for name, _ in args.fix_variant]
    if args.fix_variant and not args.fix_yardstick:
        parser.error("--fix-variant goes with --fix-yardstick")
    for name, config in args.fix_variant:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or names.count(name) > 1:
            parser.error(f"--fix-variant {name!r}: names are distinct letters, digits, '-' or '_' (a folder each)")
        if not config.is_file():
            parser.error(f"--fix-variant {name}: no config file at {config}")

    from datacheck.errors import DatacheckError
    from datacheck.engine.workers import default_workers
    from datacheck.pipeline import _cache_dir

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    import torch

    torch.set_num_threads(args.threads)
    protocol = Protocol(epochs=args.epochs, image_size=args.image_size)
    conditions = dict(args.train)
    skipped: dict[str, str] = {}
    eval_source = args.eval
    try:
        if args.fix_yardstick:
            if not args.data.is_dir():
                parser.error(f"roman dataset not found at {args.data} (pass --data)")
            work = args.work if args.work != parser.get_default("work") else Path("runs/downstream-fix")
            result = fix_yardstick(args.data, work, args.budget, args.seeds, protocol, fraction=args.holdout,
                                   split_seed=args.split_seed, fix_seed=args.fix_seed,
                                   cache_dir=_cache_dir(args.cache_dir), workers=default_workers(),
                                   device=args.device, variants=args.fix_variant, log=log)
            print(format_table(result))
            y = result["yardstick"]
            print(f"budget {y['budget']}; c - a = {y['c_minus_a']:+.1f}p, c - b = {y['c_minus_b']:+.1f}p; "
                  f"fix took {y['fix_seconds'] / 60:.1f} min; targets: "
                  + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in y["targets"].items()))
            held = result["eval"]["samples"]
            print(f"held-out rows every model gets wrong: {y['missed_by_every_model']} of {held} "
                  f"({100 * y['missed_by_every_model'] / held:.1f} %), most of them: {y['missed_by_most_models']} "
                  f"(sheet {y['missed_sheet']})")
            print("held-out rows by how many of the models get them wrong (0, 1, ...): "
                  + ", ".join(map(str, result["rows_by_models_wrong"])))
            for name, diff in y["variants_minus_c"].items():
                print(f"{name} - c = {diff:+.1f}p")
            if args.json:
                from datacheck.runs import write_json

                write_json(args.json, result)
            return 0
        if args.roman:
            if not args.data.is_dir():
                parser.error(f"roman dataset not found at {args.data} (pass --data)")
            built, skipped = build_roman_conditions(args.data, args.work, log)
            conditions = {**built, **conditions}
            eval_source = eval_source or args.data
        if not conditions or eval_source is None:
            parser.error("give --train NAME=PATH (one or more) and --eval PATH, or --roman")
        for name, why in skipped.items():
            log(f"skipped condition {name!r}: {why}")
        result = evaluate(conditions, eval_source, args.seeds, protocol, train_split=args.train_split,
                          eval_split=args.eval_split, max_missing=args.max_missing,
                          cache_dir=_cache_dir(args.cache_dir), workers=default_workers(), device=args.device,
                          equal_steps=args.equal_steps, log=log)
    except DatacheckError as exc:
        print(f"datacheck: error: {exc}", file=sys.stderr)
        return int(exc.exit_status)
    result["skipped"] = skipped
    if protocol != Protocol():
        print(f"NOTE: non-default protocol {asdict(protocol)}; not comparable with RESULTS.md")
    print(format_table(result))
    for name, why in skipped.items():
        print(f"not run: {name}: {why}")
    if args.json:
        from datacheck.runs import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

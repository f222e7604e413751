"""Today's features as a user meets them: a folder of photos without class folders (audited as
unlabeled images), then every follow-up command on it. Tiny folders and checks that train no
model (one test embeds 12 images with the frozen efficientnet-lite0), so the file takes seconds."""

from __future__ import annotations

import shutil

from .conftest import invoke, make_image

QUICK = '[audit]\nchecks = ["image_properties", "exact_duplicates"]\n'


def _audit(data, run, tmp_path, *extra):
    config = tmp_path / "quick.toml"
    config.write_text(QUICK)
    result = invoke("audit", data, "--out", run, "--config", config, "--workers", 0, "-q", *extra)
    assert result.exit_code == 0, result.output
    return run


def _flat(root, n=6):
    for i in range(n):
        make_image(root / f"photo{i}.png", i)
    shutil.copy(root / "photo0.png", root / "copy.png")  # an exact duplicate for --drop to remove
    return root


def test_relabel_materialize_of_a_flat_folder_writes_its_images(tmp_path):
    """`relabel RUN --drop --materialize DIR` of a folder of photos: exit 0 and
    "materialized: DIR", but DIR was an empty folder (a folder holds class folders, and no row
    had a class), which `datacheck audit DIR` refuses as "no images found". Now the kept images
    are laid out as the folder scan reads unlabeled images, directly in DIR."""
    from datacheck import load_manifest

    run = _audit(_flat(tmp_path / "photos"), tmp_path / "run", tmp_path)
    cleaned = tmp_path / "cleaned"
    result = invoke("relabel", run, "--drop", "--materialize", cleaned, "-q")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in cleaned.iterdir())  # one of the two copies dropped, directly in DIR
    assert len(names) == 6 and set(names) - {"copy.png"} <= {f"photo{i}.png" for i in range(6)}, names
    again = load_manifest(cleaned).frame
    assert len(again) == 6 and again["label"].isna().all()


def test_relabel_materialize_of_unlabeled_splits_keeps_the_splits(tmp_path):
    """`root/train/*.png`, `root/val/*.png` (unlabeled splits) materialize as
    `DIR/train/*.png`, `DIR/val/*.png`, which the scan reads back with their splits."""
    from datacheck import load_manifest

    data = tmp_path / "photos"
    for i in range(4):
        make_image(data / "train" / f"t{i}.png", i)
        make_image(data / "val" / f"v{i}.png", 10 + i)
    run = _audit(data, tmp_path / "run", tmp_path)
    cleaned = tmp_path / "cleaned"
    assert invoke("relabel", run, "--drop", "--materialize", cleaned, "-q").exit_code == 0
    again = load_manifest(cleaned).frame
    assert sorted(again["sample_id"]) == sorted(load_manifest(data).frame["sample_id"])
    assert again.set_index("sample_id")["split"].to_dict() == load_manifest(data).frame.set_index("sample_id")["split"].to_dict()


def _labeled_train_unlabeled_val(root):
    for c, label in enumerate(("cat", "dog")):
        for i in range(6):
            # Fixed seeds, none of the val images' (500-502): the seed was hash((label, i)) % 1000,
            # salted per process, and about one run in 30 drew a val image's seed, so --drop
            # removed that val image as an exact duplicate ("2 unlabeled", a CI failure).
            make_image(root / "train" / label / f"{label}{i}.png", 100 * c + i)
    for i in range(3):
        make_image(root / "val" / f"v{i}.png", 500 + i)
    return root


def test_relabel_materialize_says_which_unlabeled_rows_it_leaves_out(tmp_path):
    """`root/train/<class>/*`, `root/val/*.png`: the val images have no class, and beside
    class folders a folder has no place for them. `--materialize` left them out without a
    word (exit 0, a dataset without its val split); now a `datacheck: note:` line says so."""
    run = _audit(_labeled_train_unlabeled_val(tmp_path / "data"), tmp_path / "run", tmp_path)
    result = invoke("relabel", run, "--drop", "--materialize", tmp_path / "cleaned", "-q")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("datacheck: note:")]
    assert len(notes) == 1 and "3 unlabeled" in notes[0], result.stderr


def test_augment_says_which_unlabeled_rows_it_leaves_out(tmp_path):
    """`balance` keeps unlabeled val rows as they are, but `augment`'s folder left them out:
    the val split vanished with exit 0, its count only in `--json` (`skipped_unlabeled`).
    Now a `datacheck: note:` line on stderr says so."""
    run = _audit(_labeled_train_unlabeled_val(tmp_path / "data"), tmp_path / "run", tmp_path)
    plan = tmp_path / "plan"
    assert invoke("balance", run, "--strategy", "classes", "--out", plan, "-q").exit_code == 0
    result = invoke("augment", plan, "--out", tmp_path / "aug", "--workers", 0, "-q")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("datacheck: note:")]
    assert len(notes) == 1 and "3 unlabeled" in notes[0], result.stderr


def test_balance_of_unlabeled_photos_does_not_ask_for_the_clusters_check_it_ran(tmp_path):
    """A flat folder audited with `--model efficientnet-lite0` has embeddings, so `clusters`
    ran, and with no labeled sample scored none; its summary gave a rule as if it had
    clustered, and `balance` said "needs the clusters check; audit with --checks including
    clusters", which the audit had. Now clusters says it was off, and balance says why."""
    data = tmp_path / "photos"
    for i in range(12):
        make_image(data / f"p{i}.png", i)
    run = tmp_path / "run"
    result = invoke("audit", data, "--out", run, "--model", "efficientnet-lite0", "--checks", "clusters",
                    "--workers", 0, "-q")
    assert result.exit_code == 0, result.output
    import json

    rule = json.loads((run / "summary.json").read_text())["checks"]["clusters"]["threshold"]["rule"]
    assert rule.startswith("off"), rule
    result = invoke("balance", run, "--out", tmp_path / "plan")
    # Unlabeled data is the data's fault, not the command line's: exit 3, as for a val-only dataset.
    assert result.exit_code == 3 and "--checks including" not in result.stderr, result.stderr
    assert "has no labeled training row" in result.stderr

"""Every registered model: one forward pass; pretrained backbones never download."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datacheck.engine.models import create_model, list_models
from datacheck.errors import UsageError

from .conftest import JUDGE_AT_CHANCE, install_plugin, invoke


@pytest.mark.parametrize("name", list_models())
def test_forward_pass_on_cpu(name):
    model = create_model(name, num_classes=3, weights=None if name == "convnet-small" else "random").eval()
    with torch.inference_mode():
        logits, embedding = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 3) and embedding.shape == (2, model.dim)
    assert torch.isfinite(logits).all()


def test_convolutions_run_channels_last_whatever_the_input_layout():
    """Weights are laid out channels-last (oneDNN's faster kernels on the CPU), they stay so when
    moved or loaded, and an input in either layout gives the same outputs."""
    torch.manual_seed(0)
    model = create_model("convnet-small", num_classes=3).eval()
    convolutions = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)
    copy = create_model("convnet-small", num_classes=3).to("cpu")
    copy.load_state_dict(model.state_dict())
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last)
               for m in copy.modules() if isinstance(m, torch.nn.Conv2d))
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        plain, cl = model(x), model(x.contiguous(memory_format=torch.channels_last))
    assert torch.equal(plain[0], cl[0]) and torch.equal(plain[1], cl[1])


def test_missing_pretrained_weights_say_where_to_put_them(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(UsageError, match=r"no weights for resnet18: put resnet18-f37072fd.pth in .*hub/checkpoints"):
        create_model("resnet18", num_classes=2)


def test_weights_file_round_trip_and_bad_file(tmp_path):
    model = create_model("convnet-small", num_classes=4)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    again = create_model("convnet-small", num_classes=4, weights=tmp_path / "w.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    for text in (b"garbage", b"README text\n"):  # the weights-only unpickler raises IndexError on the second
        (tmp_path / "bad.pt").write_bytes(text)
        with pytest.raises(UsageError, match=r"bad.pt is not a PyTorch weights file \(a state dict saved with torch.save\)"):
            create_model("convnet-small", num_classes=4, weights=tmp_path / "bad.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(UsageError, match="holds a list, not a state dict of convnet-small"):
        create_model("convnet-small", num_classes=4, weights=tmp_path / "list.pt")
    torch.save({k: v.to(torch.complex64) for k, v in model.state_dict().items() if v.is_floating_point()},
               tmp_path / "complex.pt")
    with pytest.raises(UsageError, match="holds complex tensors, not the real weights of convnet-small"):
        create_model("convnet-small", num_classes=4, weights=tmp_path / "complex.pt")
    torch.save({1: torch.zeros(2)}, tmp_path / "int-keys.pt")
    with pytest.raises(UsageError, match="holds a dict whose keys are not all layer names, not a state dict"):
        create_model("convnet-small", num_classes=4, weights=tmp_path / "int-keys.pt")
    torch.save({"fc.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(UsageError, match=r"does not fit convnet-small: its layer names differ, missing 20 "
                                         r"\(first 'features.0.0.weight'\); unexpected 1 \(first 'fc.weight'\)") as info:
        create_model("convnet-small", num_classes=4, weights=tmp_path / "other.pt")
    assert "\n" not in str(info.value) and len(str(info.value)) < 300
    with pytest.raises(UsageError, match="a folder, not a weights file"):
        create_model("convnet-small", num_classes=4, weights=tmp_path)


def test_weights_of_another_class_count_load_the_features_and_train_a_new_head(tmp_path):
    """Each fold trains C + 1 classes (AUM's fake class), and a user's weights come from another
    task: the features are taken, the classifier is left to training."""
    torch.manual_seed(0)
    donor = create_model("convnet-small", num_classes=3)
    torch.save(donor.state_dict(), tmp_path / "three.pt")
    taker = create_model("convnet-small", num_classes=5, weights=tmp_path / "three.pt")
    assert all(torch.equal(a, b) for a, b in zip(donor.features.state_dict().values(),
                                                  taker.features.state_dict().values()))
    assert taker.head.weight.shape == (5, 128)
    assert create_model("convnet-small", num_classes=5, weights="random").head.weight.shape == (5, 128)
    with pytest.raises(UsageError, match="unknown model"):
        create_model("vit-huge", num_classes=4)


def test_frozen_backbone_audit_from_the_cli(tiny_dataset, tmp_path):
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "r", "--model", "resnet18",
                    "--weights", "random", "--checks", "label_issues,outliers", "--json", "-q")
    assert result.exit_code == 0, result.output
    missing = invoke("audit", tiny_dataset, "--out", tmp_path / "r2", "--model", "resnet50",
                     "--weights", tmp_path / "none.pth")
    assert missing.exit_code == 2 and "--weights" in missing.stderr and "file not found" in missing.stderr


@pytest.mark.parametrize("arch, side, dim", [("mobilenet_v3_small", 224, 1024), ("vit_b_16", 224, 768),
                                             ("inception_v3", 299, 2048)])
def test_any_torchvision_classifier_is_a_frozen_backbone(arch, side, dim):
    """``torchvision:<name>``: the network's last linear layer (fc, classifier[-1], heads.head)
    gives way to the identity, so the features are what it read; the input side is its weights'."""
    from datacheck.engine.models import model_input_size

    name = f"torchvision:{arch}"
    assert model_input_size(name) == side
    model = create_model(name, num_classes=3, weights="random").eval()
    assert not model.trainable and model.dim == dim and model.normalization == "imagenet"
    with torch.inference_mode():
        logits, embedding = model(torch.randn(2, 3, side, side))
    assert logits.shape == (2, 3) and embedding.shape == (2, dim)


def test_torchvision_weights_load_and_bad_names_are_usage_errors(tmp_path, monkeypatch):
    import torchvision

    torch.manual_seed(0)
    donor = torchvision.models.mobilenet_v3_small(weights=None)  # as a user saved it: the whole classifier
    torch.save(donor.state_dict(), tmp_path / "mnv3.pth")
    model = create_model("torchvision:mobilenet_v3_small", num_classes=4, weights=tmp_path / "mnv3.pth")
    assert torch.equal(model.features.features[0][0].weight, donor.features[0][0].weight)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for name, message in [("torchvision:mobilenet_v3_small", r"no weights for torchvision:mobilenet_v3_small: put "
                                                              r"mobilenet_v3_small-047dcff4.pth in .*hub/checkpoints"),
                          ("torchvision:resnet19", r"unknown torchvision model 'resnet19' .* resnet18"),
                          ("torchvision:squeezenet1_0", "has no linear classifier")]:
        with pytest.raises(UsageError, match=message):
            create_model(name, num_classes=2, weights=None if "mobilenet" in name else "random")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(donor.state_dict(), tmp_path / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth")
    from_hub = create_model("torchvision:mobilenet_v3_small", num_classes=2)  # torchvision's own file, in the hub cache
    assert torch.equal(from_hub.features.features[0][0].weight, donor.features[0][0].weight)


def test_a_torchvision_backbone_audits_from_the_cli(tiny_dataset, tmp_path):
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "r", "--model", "torchvision:mobilenet_v3_small",
                    "--weights", "random", "--checks", "label_issues", "-q")
    assert result.exit_code == 0, result.output
    bad = invoke("audit", tiny_dataset, "--out", tmp_path / "r2", "--model", "torchvision:nope")
    assert bad.exit_code == 2 and "unknown torchvision model 'nope'" in bad.stderr and not (tmp_path / "r2").exists()


def test_inference_batch_halves_on_out_of_memory():
    """On a CUDA out-of-memory error, predict retries the batch at half the size; same outputs."""
    from datacheck.engine.train import predict

    torch.manual_seed(0)
    network = create_model("convnet-small", 3)
    pixels = np.random.default_rng(0).integers(0, 256, size=(37, 3, 32, 32), dtype=np.uint8)
    expected = predict(network, pixels, "cpu", batch_size=64)
    forward, sizes = network.forward, []

    def limited(x):
        if len(x) > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        sizes.append(len(x))
        return forward(x)

    network.forward = limited
    probs, embeddings = predict(network, pixels, "cpu", batch_size=64)
    assert max(sizes) == 8 and sum(sizes) == 37 * 5  # 8 = 64 halved three times; 5 views with TTA
    np.testing.assert_allclose(probs, expected[0], atol=1e-5)
    np.testing.assert_allclose(embeddings, expected[1], atol=1e-4)


def test_aum_with_a_frozen_backbone_trains_only_a_head(tiny_dataset, tmp_path, monkeypatch):
    """The backbone embeds each image once; the fold heads (with threshold samples) give the AUM."""
    import datacheck
    import datacheck.engine.train as train

    def no_backbone_training(*args, **kwargs):
        raise AssertionError("a frozen backbone must not be trained")

    monkeypatch.setattr(train, "fit", no_backbone_training)
    result = datacheck.audit(tiny_dataset, out=tmp_path / "r", checks=["aum"], model="resnet18", weights="random",
                             cache_dir="off", workers=0, config={"detectors": JUDGE_AT_CHANCE})
    rows = result.findings[result.findings["check"] == "aum"]
    threshold_samples = result.summary["checks"]["aum"]["threshold"]["threshold_samples"]
    # 5 folds of ~13 training rows, up to 2 threshold samples each (10 %, rounded up)
    assert 5 <= threshold_samples <= 10
    # every sample is trained on with its own label by 3 or 4 of the fold heads
    assert len(rows) == 16 and rows["score"].between(0, 1).all()


def test_pixels_cache_is_a_read_only_memory_map(tiny_dataset, tmp_path):
    """Cached pixels are an .npy memory map equal to a fresh decode; a damaged cache is decoded again."""
    from datacheck.engine.loader import load_pixels
    from datacheck.manifest import load_manifest

    paths = load_manifest(tiny_dataset).abspaths()
    fresh, fresh_ok, key = load_pixels(paths, 16, workers=0)
    cache = tmp_path / "cache"
    cached, ok, cached_key = load_pixels(paths, 16, workers=0, cache_dir=cache)
    assert isinstance(cached, np.memmap) and not cached.flags.writeable and key == cached_key
    np.testing.assert_array_equal(cached, fresh)
    np.testing.assert_array_equal(ok, fresh_ok)
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 2 and files[0].endswith(".npy") and files[1].endswith(".ok.npy")
    (cache / files[0]).write_bytes(b"not an array")
    again, _, _ = load_pixels(paths, 16, workers=0, cache_dir=cache)
    np.testing.assert_array_equal(again, fresh)


def test_training_on_rows_equals_training_on_their_copy():
    """fit/predict read ``rows`` of a (memory-mapped) array batch by batch: same model, same outputs."""
    from datacheck.engine.train import TrainConfig, fit, predict

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(60, 3, 16, 16), dtype=np.uint8)
    labels = rng.integers(0, 3, 60)
    rows = np.sort(rng.choice(60, 40, replace=False))
    config = TrainConfig(image_size=16, epochs=2, batch_size=16)
    outputs = []
    for subset in ({"pixels": pixels[rows]}, {"pixels": pixels, "rows": rows}):
        torch.manual_seed(0)
        network = create_model("convnet-small", 3)
        pixels_in, picked = subset["pixels"], subset.get("rows")
        fit(network, pixels_in, labels[rows], config, "cpu", seed=0, rows=picked)
        outputs.append(predict(network, pixels_in, "cpu", batch_size=7, rows=picked))
    np.testing.assert_array_equal(outputs[0][0], outputs[1][0])
    np.testing.assert_array_equal(outputs[0][1], outputs[1][1])


def test_an_installed_package_adds_a_model_through_an_entry_point(tmp_path, monkeypatch, tiny_dataset):
    """A package declaring ``[project.entry-points."datacheck.models"]`` (here a real
    ``.dist-info`` on sys.path) gives a model the CLI trains like a built-in one."""
    from datacheck.engine import models

    declared = install_plugin(tmp_path, monkeypatch, "my_models", (
        "from torch import nn\n"
        "from datacheck.engine.models import Network\n"
        "def tiny(num_classes, weights=None):\n"
        "    return Network(nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten()), 48, num_classes, trainable=True)\n"
        "tiny.input_size = 16\n"
        "broken = 3\n"), "datacheck.models", "tiny-pool = my_models:tiny")
    monkeypatch.setattr(models, "_plugins_loaded", False)
    monkeypatch.setattr(models, "_MODELS", dict(models._MODELS))
    monkeypatch.setattr(models, "_INPUT_SIZES", dict(models._INPUT_SIZES))
    assert "tiny-pool" in list_models() and models.model_input_size("tiny-pool") == 16
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "r", "--model", "tiny-pool",
                    "--checks", "label_issues", "-q")
    assert result.exit_code == 0, result.output

    declared.write_text("[datacheck.models]\nresnet18 = my_models:tiny\nbad = my_models:broken\n")
    monkeypatch.setattr(models, "_plugins_loaded", False)
    with pytest.raises(UsageError, match=r"model plugin '(resnet18|bad)' \(my_models:\w+\)"):
        create_model("convnet-small", 2)


def test_deterministic_kernels_set_cudnn_flags_on_cuda_only_and_restore_them():
    import torch

    from datacheck.engine.device import deterministic_kernels

    cudnn = torch.backends.cudnn
    before = cudnn.deterministic, cudnn.benchmark
    with deterministic_kernels("cpu"):
        assert (cudnn.deterministic, cudnn.benchmark) == before
    with pytest.raises(RuntimeError, match="boom"), deterministic_kernels("cuda:0"):
        assert cudnn.deterministic and not cudnn.benchmark
        raise RuntimeError("boom")
    assert (cudnn.deterministic, cudnn.benchmark) == before  # restored, also after an error


@pytest.mark.parametrize("model", ["convnet-small", "resnet18"])
def test_unlabeled_rows_are_embedded_into_the_labeled_rows_space(model):
    """``embed_rows``: every fold model (or the frozen backbone) embeds rows it never trains on
    or predicts, in the cross-validated rows' space, and nothing else changes. An unlabeled
    row that is a copy of a labeled one gets its embedding."""
    from datacheck.engine.train import TrainConfig, cross_validate

    # resnet18 untrained: the point is where the rows land, not what they mean
    weights = "random" if model == "resnet18" else None
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(50, 3, 32, 32), dtype=np.uint8)
    pixels[45:] = pixels[:5]  # the unlabeled rows 45-49 are copies of rows 0-4
    labels = np.repeat(np.arange(3), 15)
    rows, extra = np.arange(45), np.arange(45, 50)
    config = TrainConfig(image_size=32, epochs=2, folds=3, model=model)
    alone = cross_validate(pixels, np.r_[labels, -np.ones(5, int)], 3, config, "cpu", seed=1, weights=weights, rows=rows)
    both = cross_validate(pixels, np.r_[labels, -np.ones(5, int)], 3, config, "cpu", seed=1, weights=weights,
                          rows=rows, embed_rows=extra)
    assert both.embeddings.shape == (50, alone.embeddings.shape[1])
    np.testing.assert_array_equal(both.pred_probs, alone.pred_probs)
    np.testing.assert_array_equal(both.embeddings[:45], alone.embeddings)
    np.testing.assert_allclose(both.embeddings[45:], alone.embeddings[:5], rtol=1e-5, atol=1e-6)


def test_a_frozen_backbone_standardises_one_row_without_nan_or_a_warning():
    """One image embedded by a frozen backbone (a folder of one photo): torch's std of one row
    warned 'degrees of freedom is <= 0' on stderr and the standardised features were NaN."""
    import warnings

    from datacheck.engine.train import TrainConfig, frozen_features

    network = create_model("resnet18", 2, "random")
    pixels = np.random.default_rng(0).integers(0, 256, size=(1, 3, 32, 32), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raw, standardised = frozen_features(network, pixels, TrainConfig(image_size=32, model="resnet18"), "cpu")
    assert raw.shape == (1, 512) and torch.isfinite(standardised).all() and float(standardised.abs().max()) == 0.0


def test_inference_batches_are_bounded_in_pixels(monkeypatch):
    """A pretrained backbone's 224 px inputs were predicted 512 at a time (the batch of 64 px
    ones): EfficientNet-Lite0 took 7.3 GB on 1,797 images. A batch now holds at most
    PREDICT_PIXELS pixels, with the same outputs."""
    from datacheck.engine import train

    assert train.PREDICT_PIXELS // (224 * 224) == 41 and train.PREDICT_PIXELS // (64 * 64) == 512
    network = create_model("convnet-small", 3)
    pixels = np.random.default_rng(0).integers(0, 256, (10, 3, 48, 48), dtype=np.uint8)
    whole = train.predict(network, pixels, "cpu", batch_size=512)
    seen = []
    forward = network.forward
    monkeypatch.setattr(network, "forward", lambda x: seen.append(len(x)) or forward(x))
    monkeypatch.setattr(train, "PREDICT_PIXELS", 3 * 48 * 48 + 5)
    bounded = train.predict(network, pixels, "cpu", batch_size=512, tta=False)
    assert seen == [3, 3, 3, 1]
    np.testing.assert_allclose(bounded[1], whole[1], rtol=1e-5, atol=1e-6)

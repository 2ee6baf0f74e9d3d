"""EfficientNet-Lite: parity with the reference PyTorch model, ImageNet sanity, weights cache."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import sklearn
import torch
from efficientnet_lite_pytorch import EfficientNet
from matplotlib import cbook
from PIL import Image

import keras_transfer  # noqa: F401  (selects the torch backend before keras is imported)
from keras_transfer.backbones import efficientnet_lite as enl
from keras_transfer.backbones import lite_weights
from keras_transfer.backbones import get_backbone
from keras_transfer.base.errors import ConfigError, WeightsError

VARIANTS = ["lite0", "lite1", "lite2"]
GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
FLOWER = Path(sklearn.__file__).parent / "datasets" / "images" / "flower.jpg"


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory):
    """Keeps converted weights of this module's models out of the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_TRANSFER_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def top_models(module_cache):
    """Lazily built ImageNet classifiers (include_top=True), one per variant."""
    built: dict[str, keras.Model] = {}

    def get(variant: str) -> keras.Model:
        if variant not in built:
            built[variant] = enl.build_efficientnet_lite(variant, include_top=True)
        return built[variant]

    return get


def reference(variant: str, **override) -> torch.nn.Module:
    """The reference PyTorch model with the bundled state dict, in eval mode."""
    model = EfficientNet.from_name(f"efficientnet-{variant}", **override)
    state = torch.load(lite_weights.package_weights_path(variant), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


def load_image(path: Path, size: int) -> np.ndarray:
    """RGB image resized (bilinear) and normalised as (x - 127) / 128, batch of one."""
    rgb = np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR), np.float32)
    return ((rgb - 127.0) / 128.0)[None]


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_match_reference(variant, top_models):
    size = enl.VARIANTS[variant][2]
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype(np.float32)
    with torch.no_grad():
        expected = reference(variant)(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    got = predict(top_models(variant), x)
    assert got.shape == (2, 1000)
    rel = np.abs(got - expected).max() / np.abs(expected).max()
    assert rel < 1e-4, f"{variant}: max relative logit error {rel:.2e}"


def test_features_match_reference_at_odd_size():
    # 190 -> 95 -> 48 -> 24: mixes symmetric and asymmetric 'SAME' padding in stride-2 layers.
    model = enl.build_efficientnet_lite("lite0", 190)
    x = np.random.default_rng(1).normal(size=(1, 190, 190, 3)).astype(np.float32)
    with torch.no_grad():
        expected = reference("lite0", image_size=190).extract_features(torch.from_numpy(x.transpose(0, 3, 1, 2)))
    got = predict(model, x)
    assert got.shape == (1, 6, 6, 1280)
    np.testing.assert_allclose(got, expected.numpy().transpose(0, 2, 3, 1), atol=1e-4 * np.abs(got).max())


@pytest.mark.parametrize("variant", VARIANTS)
def test_grace_hopper_is_military_uniform(variant, top_models):
    logits = predict(top_models(variant), load_image(GRACE_HOPPER, enl.VARIANTS[variant][2]))
    assert logits.argmax() == 652


def test_flower_is_daisy(top_models):
    assert predict(top_models("lite0"), load_image(FLOWER, 224)).argmax() == 985


def test_feature_map_at_non_native_size():
    model = enl.build_efficientnet_lite("lite0", 160)
    assert model.output.shape[1:] == (5, 5, 1280)
    assert model.layers[-1].name == "head_act"
    assert predict(model, np.zeros((2, 160, 160, 3), np.float32)).shape == (2, 5, 5, 1280)


def test_converted_weights_are_cached_once(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TRANSFER_CACHE", str(tmp_path))
    first = enl.build_efficientnet_lite("lite0", 64)
    files = list((tmp_path / "weights").iterdir())
    assert [f.name for f in files] == [f"efficientnet_lite0-{lite_weights.weights_sha256('lite0')[:12]}.npz"]
    mtime = files[0].stat().st_mtime_ns
    second = enl.build_efficientnet_lite("lite0", 64)
    assert list((tmp_path / "weights").iterdir()) == files
    assert files[0].stat().st_mtime_ns == mtime
    x = np.random.default_rng(2).normal(size=(1, 64, 64, 3)).astype(np.float32)
    np.testing.assert_array_equal(predict(first, x), predict(second, x))


def test_random_weights():
    model = enl.build_efficientnet_lite("lite1", 64, weights=None)
    assert predict(model, np.zeros((1, 64, 64, 3), np.float32)).shape == (1, 2, 2, 1280)
    imagenet = lite_weights.convert_state_dict(
        torch.load(lite_weights.package_weights_path("lite1"), map_location="cpu", weights_only=True), "lite1")
    assert not np.allclose(model.get_layer("stem_conv").get_weights()[0], imagenet["stem_conv"][0])


def test_local_weight_files(tmp_path):
    x = np.random.default_rng(3).normal(size=(1, 64, 64, 3)).astype(np.float32)
    pth = lite_weights.package_weights_path("lite0")
    from_pth = enl.build_efficientnet_lite("lite0", 64, weights=str(pth))
    h5 = tmp_path / "lite0.weights.h5"
    from_pth.save_weights(h5)
    from_h5 = enl.build_efficientnet_lite("lite0", 64, weights=str(h5))
    imagenet = enl.build_efficientnet_lite("lite0", 64)
    np.testing.assert_array_equal(predict(from_pth, x), predict(imagenet, x))
    np.testing.assert_array_equal(predict(from_h5, x), predict(imagenet, x))
    with pytest.raises(WeightsError):  # a lite0 file does not fit lite2
        enl.build_efficientnet_lite("lite2", 64, weights=str(pth))


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="lite9"):
        enl.build_efficientnet_lite("lite9")
    with pytest.raises(ConfigError, match="too small"):
        enl.build_efficientnet_lite("lite0", 16, weights=None)
    with pytest.raises(WeightsError, match="not found"):
        enl.build_efficientnet_lite("lite0", 64, weights=str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("variant", VARIANTS)
def test_registered_spec(variant):
    spec = get_backbone(f"efficientnet-{variant}")
    size = enl.VARIANTS[variant][2]
    assert (spec.name, spec.input_size, spec.feature_dim) == (f"efficientnet_{variant}", size, 1280)
    assert spec.preprocessing.mean == (127, 127, 127) and spec.preprocessing.std == (128, 128, 128)
    assert spec.offline_weights() and spec.min_input_size == 32 and spec.gradcam_layer == "head_act"
    sha = lite_weights.weights_sha256(variant)
    assert spec.weights_identity("imagenet") == f"efficientnet_{variant}:imagenet:{sha[:12]}"
    assert spec.weights_identity(None) == "random"
    assert spec.weights_identity(str(lite_weights.package_weights_path(variant))) == f"file:{sha[:12]}"
    model = spec.build(64, None)
    assert model.output.shape[1:] == (2, 2, 1280)
    assert model.get_layer(spec.gradcam_layer) is model.layers[-1]
    groups = spec.finetune_groups
    assert groups[0] == ("stem_",) and groups[-1] == ("head_",) and len(groups) == 9
    for layer in model.layers[1:]:  # every layer but the input belongs to exactly one group
        assert sum(layer.name.startswith(g) for group in groups for g in group) == 1, layer.name

"""keras.applications backbones: preprocessing, the three kinds of weights, offline mode, input sizes."""

from __future__ import annotations

import hashlib
import socket
from unittest import mock

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

import keras_transfer  # noqa: F401  (selects the torch backend before keras is imported)
from keras_transfer import TrainConfig
from keras_transfer.backbones import get_backbone
from keras_transfer.base.errors import ConfigError, WeightsError
from keras_transfer.backbones.layers import ImageNormalization
from keras_transfer.backbones.network import build_classifier, build_extractor

A = keras.applications
PREPROCESS_INPUT = {
    "resnet50": A.resnet50.preprocess_input, "vgg16": A.vgg16.preprocess_input, "vgg19": A.vgg19.preprocess_input,
    "densenet121": A.densenet.preprocess_input, "mobilenet_v2": A.mobilenet_v2.preprocess_input,
    "efficientnet_b0": A.efficientnet.preprocess_input, "inception_v3": A.inception_v3.preprocess_input,
    "xception": A.xception.preprocess_input,
}
MOBILENET_96 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
MOBILENET_224 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def numpy(model, x) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


def save_keras_h5(model: keras.Model, path) -> None:
    """Writes weights in the legacy HDF5 layout of keras' downloadable ``*_notop.h5`` files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve a host name fails like a machine without network."""
    def refuse(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known (network disabled by the test)")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty keras cache folder, for keras itself and for keras-transfer."""
    (tmp_path / "keras").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(tmp_path / "keras"))
    monkeypatch.delenv("KERAS_TRANSFER_OFFLINE", raising=False)
    return tmp_path / "keras" / "models"


@pytest.mark.parametrize("name", sorted(PREPROCESS_INPUT))
def test_preprocessing_equals_keras_preprocess_input(name):
    x = np.random.default_rng(0).integers(0, 256, (2, 7, 9, 3)).astype(np.uint8)
    expected = PREPROCESS_INPUT[name](x.copy())
    p = get_backbone(name).preprocessing
    got = keras.ops.convert_to_numpy(ImageNormalization(p.mean, p.std, p.bgr)(x))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_offline_without_cached_weights_fails_fast(how, keras_home, no_network, monkeypatch):
    spec = get_backbone("mobilenet_v2")
    if how == "environment":
        monkeypatch.setenv("KERAS_TRANSFER_OFFLINE", "1")
    with pytest.raises(WeightsError, match="offline") as error:
        spec.build(96, "imagenet", offline=how == "argument")
    message = str(error.value)
    assert str(keras_home / MOBILENET_96) in message and "--weights" in message
    assert "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/" + MOBILENET_96 in message
    assert not spec.offline_weights()


def test_failed_download_explains_how_to_supply_a_file(keras_home, no_network):
    with pytest.raises(WeightsError, match="cannot download") as error:
        get_backbone("mobilenet_v2").build(96, "imagenet")
    assert "--weights <file>" in error.value.hint and "--offline" in error.value.hint
    assert "Name or service not known" in error.value.received


def test_offline_loads_the_keras_cache(keras_home, no_network, monkeypatch):
    spec = get_backbone("mobilenet_v2")
    source = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 3))
    save_keras_h5(source, keras_home / MOBILENET_96)
    x = np.random.default_rng(1).normal(size=(2, 96, 96, 3)).astype(np.float32)
    np.testing.assert_array_equal(numpy(spec.build(96, "imagenet", offline=True), x), numpy(source, x))
    monkeypatch.setenv("KERAS_TRANSFER_OFFLINE", "1")
    np.testing.assert_array_equal(numpy(spec.build(96, "imagenet"), x), numpy(source, x))
    assert not spec.offline_weights() and spec.weights_identity("imagenet") == "mobilenet_v2:imagenet:keras"
    save_keras_h5(source, keras_home / MOBILENET_224)  # the native-size file decides "available offline"
    sha = hashlib.sha256((keras_home / MOBILENET_224).read_bytes()).hexdigest()
    assert spec.offline_weights() and spec.weights_identity("imagenet") == f"mobilenet_v2:imagenet:{sha[:12]}"


def test_local_weights_file(tmp_path):
    spec = get_backbone("mobilenet_v2")
    first = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(64, 64, 3))
    path = tmp_path / "downloaded_by_hand_notop.h5"
    save_keras_h5(first, path)
    x = np.random.default_rng(2).normal(size=(1, 64, 64, 3)).astype(np.float32)
    np.testing.assert_array_equal(numpy(spec.build(64, str(path)), x), numpy(first, x))
    identity = spec.weights_identity(str(path))
    assert identity == f"file:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    save_keras_h5(keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(64, 64, 3)), path)
    assert spec.weights_identity(str(path)) != identity  # same path, new content: a new identity
    assert spec.weights_identity(None) == "random"


def test_bad_weights_files(tmp_path):
    spec = get_backbone("mobilenet_v2")
    with pytest.raises(WeightsError, match="not found"):
        spec.build(64, str(tmp_path / "missing_notop.h5"))
    vgg = tmp_path / "vgg16_notop.h5"
    save_keras_h5(keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3)), vgg)
    with pytest.raises(WeightsError, match="cannot load") as error:
        spec.build(64, str(vgg))
    assert MOBILENET_224 in error.value.expected  # 64 px loads keras' 224 px file
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(WeightsError, match="cannot load"):
        spec.build(64, str(tmp_path / "junk.h5"))


def test_efficientnet_b0_file_weights_match_keras_imagenet_path(tmp_path):
    """keras adds an input Rescaling only for weights="imagenet"; loading the same file by path must match it."""
    source = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(64, 64, 3))
    norm = next(layer for layer in source.layers if isinstance(layer, keras.layers.Normalization))
    norm.adapt_mean.assign(np.array([0.485, 0.456, 0.406], np.float32))  # what keras' ImageNet file holds
    norm.adapt_variance.assign(np.array([0.229, 0.224, 0.225], np.float32) ** 2)
    norm.finalize_state()
    path = tmp_path / "efficientnetb0_notop.h5"
    save_keras_h5(source, path)
    with mock.patch("keras.src.applications.efficientnet.file_utils.get_file", return_value=str(path)):
        reference = keras.applications.EfficientNetB0(include_top=False, weights="imagenet", input_shape=(64, 64, 3))
    x = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    expected = numpy(reference, x)
    spec = get_backbone("efficientnet_b0")
    tolerance = {"rtol": 1e-4, "atol": 1e-5 * np.abs(expected).max()}
    np.testing.assert_allclose(numpy(spec.build(64, str(path)), x), expected, **tolerance)
    assert np.abs(numpy(source, x) - expected).max() > 0.1 * np.abs(expected).max()  # without the fix: wrong

    # the folded scale survives saving the classifier and reloading it in safe mode
    extractor = build_extractor(spec, 64, str(path), pooling="spatial")
    head = keras.Sequential([keras.Input((2, 2, 1280)), keras.layers.Flatten()])
    classifier = build_classifier(extractor, head)
    classifier.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    images = x.astype(np.uint8)
    np.testing.assert_allclose(np.asarray(reloaded.predict(images, verbose=0)),
                               numpy(reference, images.astype(np.float32)).reshape(2, -1), **tolerance)


@pytest.mark.parametrize(("name", "size", "grid"), [("inception_v3", 139, 3), ("xception", 160, 5)])
def test_user_input_sizes(name, size, grid):
    spec = get_backbone(name)
    assert TrainConfig(backbone=name, input_size=size).validate().size == size
    model = spec.build(size, None)
    assert model.output.shape[1:] == (grid, grid, spec.feature_dim)
    with pytest.raises(ConfigError, match="too small"):
        TrainConfig(backbone=name, input_size=spec.min_input_size - 1).validate()
    with pytest.raises(ConfigError, match="too small"):
        spec.build(spec.min_input_size - 1, None)


def test_imagenet_head_has_1000_logits():
    model = get_backbone("mobilenet_v2").build_imagenet(None)
    assert model.input_shape[1:] == (224, 224, 3) and model.output_shape == (None, 1000)
    assert model.layers[-1].get_config()["activation"] == "linear"

"""The shared test over every registered backbone: random weights, tiny inputs.

Each backbone is trained once through the Python API (bottleneck head, a tiny generated
dataset, weights=None), then the run is checked: the saved classifier reloads in safe mode
and reproduces the training pipeline's predictions, shapes, preprocessing, layer names.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_transfer  # noqa: F401  (selects the torch backend before keras is imported)
from keras_transfer import TrainConfig, train
from keras_transfer.backbones import get_backbone, list_backbones
from keras_transfer.backbones.layers import ImageNormalization

ZOO = {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet50", "vgg16", "vgg19",
       "densenet121", "mobilenet_v2", "efficientnet_b0", "inception_v3", "xception"}


def tiny_size(name: str) -> int:
    return max(get_backbone(name).min_input_size, 32)


@pytest.fixture(scope="module")
def keras_features(tmp_path_factory):
    """Own cache folder; features through Keras predict (``runtime="keras"`` below): ONNX export of
    eleven backbones would take minutes (test_backbone_cli trains through ONNX; benchmarks/backbones.py
    exports all)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_TRANSFER_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory, keras_features):
    """``trained(name) -> Run``, trained once per backbone (2 classes, 12 random images)."""
    runs = {}

    def get(name: str):
        if name not in runs:
            size, rng = tiny_size(name), np.random.default_rng(0)
            labels = np.repeat([0, 1], 6)
            images = rng.integers(0, 256, (12, size, size, 3)).astype(np.uint8)
            images[labels == 1] //= 2  # class 1 darker
            root = tmp_path_factory.mktemp(name)
            np.savez(root / "data.npz", images=images, labels=labels)
            config = TrainConfig(data=str(root / "data.npz"), backbone=name, weights=None, input_size=size,
                                 epochs=2, batch_size=4, val_fraction=0.5, patience=1, runtime="keras")
            runs[name] = train(config, root / "run")
        return runs[name]

    return get


def nested_backbone(run) -> keras.Model:
    extractor = run.model.get_layer("features")
    return next(layer for layer in extractor.layers if isinstance(layer, keras.Model))


def test_the_zoo_is_registered():
    assert ZOO <= set(list_backbones())
    assert list_backbones()[0] == "efficientnet_lite0"


@pytest.mark.parametrize("name", list_backbones())
def test_reloaded_classifier_reproduces_training_features(name, trained):
    run = trained(name)
    spec = get_backbone(name)
    with np.load(run.path / "features" / "val.npz", allow_pickle=False) as saved:
        features, indices = saved["features"], saved["indices"]
    assert features.shape == (6, spec.pooled_dim(run.config.pool_stages))
    model = run.model  # keras.saving.load_model(..., safe_mode=True)
    val_images = _val_images(run)
    from_features = model.get_layer("head").predict(features, verbose=0)
    end_to_end = np.asarray(model.predict(val_images[indices], verbose=0))
    assert end_to_end.shape == (6, 2)
    np.testing.assert_allclose(end_to_end, from_features, atol=1e-5)
    assert run.read("metrics.json")["split"] == "val"


def _val_images(run) -> np.ndarray:
    """The val split's images in split order, reloaded with the run's own config."""
    from keras_transfer.data.load import load_dataset

    config = run.config
    dataset = load_dataset(config.data, val_fraction=config.val_fraction, seed=config.seed)
    return np.stack([dataset.val.image(i) for i in range(len(dataset.val))])


@pytest.mark.parametrize("name", list_backbones())
def test_feature_map_gradcam_layer_and_finetune_groups(name, trained):
    spec, run = get_backbone(name), trained(name)
    backbone = nested_backbone(run)  # names as reloaded from model.keras
    maps = backbone.outputs  # the last stage first, then the earlier stages pooled beside it
    assert len(maps) == run.config.pool_stages and [m.shape[-1] for m in maps[1:]] == [c for _, c in spec.stages[:len(maps) - 1]]
    assert len(maps[0].shape) == 4 and maps[0].shape[-1] == spec.feature_dim
    gradcam = backbone.get_layer(spec.gradcam_layer).output
    assert len(gradcam.shape) == 4 and gradcam.shape[-1] == spec.feature_dim
    groups = spec.layer_groups(backbone)
    names = [layer.name for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert all(groups), f"empty group in {[len(g) for g in groups]}"
    assert [n for group in groups for n in group] == names  # each layer once, groups in input-to-output order
    for group in spec.finetune_groups:
        for prefix in group:
            assert any(n.startswith(prefix) for n in names), f"prefix {prefix!r} names no layer"


@pytest.mark.parametrize("name", list_backbones())
def test_preprocessing_travels_inside_the_saved_model(name, trained):
    spec = get_backbone(name)
    layer = trained(name).model.get_layer("features").get_layer("normalize")
    p = spec.preprocessing
    assert layer.__class__.__module__.startswith("keras.")  # Keras' own layers: loads without this package
    x = np.random.default_rng(1).integers(0, 256, (2, 5, 5, 3)).astype(np.float32)  # pixels, as resized
    y = keras.ops.convert_to_numpy(layer(x))
    restored = y * np.asarray(p.std) + np.asarray(p.mean)
    if p.bgr:
        restored = restored[..., ::-1]
    np.testing.assert_allclose(restored, x, atol=1e-3)
    reference = ImageNormalization(p.mean, p.std, p.bgr)  # the layer earlier releases saved
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reference(x)), y, atol=1e-5)

"""Resize modes agree between the data pipeline and the saved model; spatial pooling."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

import keras_transfer  # noqa: F401  (selects the torch backend before keras is imported)
from keras_transfer.backbones import get_backbone
from keras_transfer.data.images import RESIZE_MODES, read_image, resize
from keras_transfer.backbones.network import build_classifier, build_extractor, build_head

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # 600 x 512


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_TRANSFER_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def keras_resize(image: np.ndarray, size: int, mode: str) -> np.ndarray:
    """What the saved classifier's Resizing layer does to one image."""
    layer = keras.layers.Resizing(size, size, interpolation="bilinear", antialias=True,
                                  crop_to_aspect_ratio=mode == "crop", pad_to_aspect_ratio=mode == "pad")
    return keras.ops.convert_to_numpy(layer(image[None].astype(np.float32)))[0]


@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("shape", [(600, 512), (151, 300), (100, 61), (30, 50)])
def test_pipeline_resize_matches_the_saved_models_layer(mode, shape):
    image = np.asarray(Image.open(GRACE_HOPPER).convert("RGB").resize(shape[::-1], Image.BILINEAR))
    ours = resize(image, 96, mode).astype(np.float32)
    theirs = keras_resize(image, 96, mode)
    difference = np.abs(ours - theirs)
    assert difference.max() <= 1.01 and difference.mean() < 0.5  # uint8 rounding only
    if mode == "pad":  # black borders left and right of the portrait content
        assert ours[:, :2].max() == 0 if shape[0] > shape[1] else ours[:2].max() == 0


@pytest.fixture(scope="module")
def extractor():
    return build_extractor(get_backbone("efficientnet_lite0"), 128, "imagenet")


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_features_through_pipeline_and_saved_model_agree(mode, extractor):
    identity = keras.Sequential([keras.Input((1280,)), keras.layers.Identity()], name="head")
    model = build_classifier(extractor, identity, mode)
    image = read_image(GRACE_HOPPER)
    pipeline = np.asarray(extractor.predict_on_batch(resize(image, 128, mode)[None]))[0]
    saved = np.asarray(model.predict_on_batch(image[None]))[0]
    cosine = pipeline @ saved / np.linalg.norm(pipeline) / np.linalg.norm(saved)
    assert cosine > 0.998, f"{mode}: cosine {cosine:.5f}"  # measured 0.9994-0.9998
    other = np.asarray(model.predict_on_batch(np.rot90(image)[None].copy()))[0]  # the check can fail
    assert other @ saved / np.linalg.norm(other) / np.linalg.norm(saved) < 0.99


def test_spatial_pooling_keeps_the_map_and_the_head_pools_it():
    extractor = build_extractor(get_backbone("efficientnet_lite0"), 96, None, pooling="spatial")
    assert extractor.output_shape == (None, 3, 3, 1280)
    head = build_head(extractor.output_shape[1:], num_classes=4)
    assert isinstance(head.get_layer("pool"), keras.layers.GlobalAveragePooling2D)
    features = np.asarray(extractor.predict_on_batch(np.zeros((2, 96, 96, 3), np.uint8)))
    assert np.asarray(head.predict_on_batch(features)).shape == (2, 4)
    pooled = build_extractor(get_backbone("efficientnet_lite0"), 96, None, pooling="max")
    assert pooled.output_shape == (None, 1280)

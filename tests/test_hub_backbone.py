"""``hub:PRESET`` backbones: features equal KerasHub's own forward pass and pooling, train / predict /
the stored held-out probabilities / an ONNX export agree, and cache keys follow the preset's weights.

The presets are made here the way KerasHub saves a download: tiny DINOv2 (CLS + one register
token) and ResNet architectures with random weights, each with an image converter, written by
``save_to_preset`` into a local folder (no internet).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import FLOWERS5 as FLOWERS
from conftest import assert_consumers_agree, engine_features, relative_error, resized_pixels

keras_hub = pytest.importorskip("keras_hub")
pytestmark = [pytest.mark.skipif(not FLOWERS.is_dir(), reason="needs ../shared/datasets/flowers5"),
              pytest.mark.filterwarnings("ignore:The structure of `inputs`")]  # KerasHub's own backbone call
DINO_SIDE, RESNET_SIDE = 28, 32


def _dino(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.DINOV2Backbone(
        patch_size=14, num_layers=2, hidden_dim=24, num_heads=2, intermediate_dim=48, num_register_tokens=1,
        image_shape=(DINO_SIDE, DINO_SIDE, 3), position_embedding_shape=(DINO_SIDE, DINO_SIDE, 3))
    converter = keras_hub.layers.DINOV2ImageConverter(  # ImageNet mean / std, as the real DINOv2 presets
        image_size=(DINO_SIDE, DINO_SIDE), scale=[1 / (255 * s) for s in (0.229, 0.224, 0.225)],
        offset=[-m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    return backbone, converter


def _resnet(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        image_shape=(RESNET_SIDE, RESNET_SIDE, 3))
    converter = keras_hub.layers.ResNetImageConverter(image_size=(RESNET_SIDE, RESNET_SIDE), scale=1 / 127.5,
                                                      offset=-1.0)
    return backbone, converter


def _save(pair, folder: Path) -> Path:
    backbone, converter = pair
    backbone.save_to_preset(str(folder))
    converter.save_to_preset(str(folder))
    return folder


@pytest.fixture(scope="module")
def presets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("presets")
    return {"dino": _save(_dino(1), root / "dino"), "dino2": _save(_dino(2), root / "dino2"),
            "resnet": _save(_resnet(1), root / "resnet")}


@pytest.mark.parametrize("preset,pooling", [("dino", "cls"), ("dino", "mean"), ("resnet", "avg")])
def test_features_equal_keras_hubs_forward_pass_and_pooling(presets, flowers3, tmp_path, preset, pooling):
    import keras

    suffix = "#mean" if pooling == "mean" else ""
    features = engine_features(f"hub:{presets[preset]}{suffix}", flowers3, tmp_path / "out")
    backbone = keras_hub.models.Backbone.from_preset(str(presets[preset]))
    converter = keras_hub.layers.ImageConverter.from_preset(str(presets[preset]))
    side = DINO_SIDE if preset == "dino" else RESNET_SIDE
    pixels = resized_pixels(sorted(flowers3.rglob("*.jpg")), side).astype("float32")
    output = keras.ops.convert_to_numpy(backbone(converter(pixels)))
    expected = {"cls": lambda: output[:, 0], "mean": lambda: output[:, 2:].mean(axis=1),  # CLS + 1 register token
                "avg": lambda: output.mean(axis=(1, 2))}[pooling]()
    assert features.shape == expected.shape == (30, 24 if preset == "dino" else 32)
    assert relative_error(features, expected) < 1e-4


@pytest.mark.parametrize("preset,stages", [("dino", 3), ("resnet", 2)])
def test_stages_pool_the_backbones_earlier_pyramid_outputs(presets, flowers3, tmp_path, preset, stages):
    """--stages N: the final output and the last N - 1 earlier pyramid outputs (a ViT's blocks: their
    CLS tokens; a CNN's maps: their means), concatenated, as KerasHub computes them."""
    import keras

    from keras_transfer.backbones import get_backbone

    reference = f"hub:{presets[preset]}"
    assert get_backbone(reference).max_stages == stages
    features = engine_features(reference, flowers3, tmp_path / "out", stages=stages)
    backbone = keras_hub.models.Backbone.from_preset(str(presets[preset]))
    converter = keras_hub.layers.ImageConverter.from_preset(str(presets[preset]))
    levels = list(backbone.pyramid_outputs)[:-1][::-1]  # last first
    taps = keras.Model(backbone.inputs, [backbone.output, *[backbone.pyramid_outputs[n] for n in levels]])
    side = DINO_SIDE if preset == "dino" else RESNET_SIDE
    outputs = [keras.ops.convert_to_numpy(x) for x in taps(converter(
        resized_pixels(sorted(flowers3.rglob("*.jpg")), side).astype("float32")))]
    expected = np.concatenate([x[:, 0] if x.ndim == 3 else x.mean(axis=(1, 2)) for x in outputs], axis=1)
    assert features.shape == expected.shape == (30, {"dino": 72, "resnet": 96}[preset])
    assert relative_error(features, expected) < 1e-4
    one = engine_features(reference, flowers3, tmp_path / "one")
    assert np.allclose(features[:, :one.shape[1]], one, atol=1e-4 * np.abs(one).max())  # the final output first


def test_the_spec_carries_the_converters_preprocessing_and_keys_follow_the_weights(presets, tmp_path):
    from keras_transfer.backbones import get_backbone

    dino, other, resnet = (get_backbone(f"hub:{presets[n]}") for n in ("dino", "dino2", "resnet"))
    assert (dino.input_size, dino.feature_dim, dino.name) == (DINO_SIDE, 24, "hub:dino")
    assert dino.preprocessing.mean == pytest.approx((123.675, 116.28, 103.53))
    assert dino.preprocessing.std == pytest.approx((58.395, 57.12, 57.375))
    assert resnet.preprocessing.mean == pytest.approx((127.5,) * 3) and resnet.input_size == RESNET_SIDE
    assert dino.weights_identity(None) != other.weights_identity(None)  # other weights, other cache key
    assert dino.weights_identity(None) != get_backbone(f"hub:{presets['dino']}#mean").weights_identity(None)
    copy = shutil.copytree(presets["dino"], tmp_path / "elsewhere")
    assert get_backbone(f"hub:{copy}").weights_identity(None) == dino.weights_identity(None)  # same bytes, same key
    _save(_dino(3), copy)  # the same folder, new weights: a new key
    assert get_backbone(f"hub:{copy}").weights_identity(None) != dino.weights_identity(None)
    from keras_transfer.base.paths import cache_dir

    moved = shutil.copytree(presets["resnet"], tmp_path / "moved")
    key = get_backbone(f"hub:{moved}").weights_identity(None)
    (cache_dir("hub") / "records.json").rename(cache_dir("hub") / "presets.json")  # the earlier record's name
    shutil.rmtree(moved)
    assert get_backbone(f"hub:{moved}").weights_identity(None) == key  # a run of an earlier release still opens


def test_a_bad_reference_is_a_clear_error(tmp_path):
    from keras_transfer.backbones import get_backbone
    from keras_transfer.base.errors import KerasTransferError

    (tmp_path / "empty").mkdir()
    for reference in (f"hub:{tmp_path / 'empty'}", "hub:", f"hub:{tmp_path}#max"):
        with pytest.raises(KerasTransferError):
            get_backbone(reference)


def test_train_predict_stored_and_exported_probabilities_agree_without_the_preset(presets, flowers3, tmp_path):
    from keras_transfer.cli import main

    out, preset = tmp_path / "run", shutil.copytree(presets["dino"], tmp_path / "preset")
    assert main(["train", str(flowers3), "--backbone", f"hub:{preset}", "--stages", "2", "--out", str(out), "--quiet",
                 "--no-baseline"]) == 0  # two pooled stages: the encoder converted for them
    card = (out / "MODEL_CARD.md").read_text()
    assert f"the KerasHub preset {preset}" in card and "keras.applications" not in card
    shutil.rmtree(preset)  # the run answers from the converted encoder: no preset, no KerasHub needed
    assert_consumers_agree(out)

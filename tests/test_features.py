"""The extraction runtimes against Keras predict, reduced precision, run-local reuse, options."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import HYMENOPTERA
from feature_helpers import collect, file_split, make_engine, tiny_extractor

from keras_transfer.backbones import get_backbone
from keras_transfer.config import TrainConfig
from keras_transfer.base.errors import ConfigError
from keras_transfer.features import FeatureCache, FeatureSource, RuntimeOptions
from keras_transfer.features.extract import ViewMaker
from keras_transfer.features.runtime import make_runtime
from keras_transfer.backbones.network import build_extractor


@pytest.fixture(scope="module")
def lite0():
    """EfficientNet-Lite0 with its ImageNet weights at 224 px, and its identity."""
    spec = get_backbone("efficientnet_lite0")
    identity = {"backbone": spec.name, "weights": spec.weights_identity("imagenet"), "size": 224,
                "pooling": "avg", "preprocessing": spec.preprocessing.as_dict()}
    return build_extractor(spec, 224, "imagenet"), identity


@pytest.fixture(scope="module")
def photos():
    """20 real photos of mixed sizes (ants and bees)."""
    return file_split(sorted((HYMENOPTERA / "val" / "ants").glob("*.jpg"))[:10]
                      + sorted((HYMENOPTERA / "val" / "bees").glob("*.jpg"))[:10])


@pytest.fixture(scope="module")
def keras_features(lite0, photos, tmp_path_factory):
    extractor, identity = lite0
    engine = make_engine(tmp_path_factory.mktemp("keras"), extractor, identity, "keras", ViewMaker(224))
    return collect(engine, photos)[0][0]


def relative_errors(got: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(max |got - ref| / max |ref|, worst per-image ||got - ref|| / ||ref||)."""
    worst_row = np.linalg.norm(got - reference, axis=1) / np.linalg.norm(reference, axis=1)
    return float(np.abs(got - reference).max() / np.abs(reference).max()), float(worst_row.max())


@pytest.mark.parametrize("runtime", ["openvino", "onnx"])
def test_fast_runtime_matches_keras_predict_in_fp32(lite0, photos, keras_features, tmp_path, runtime):
    extractor, identity = lite0
    engine = make_engine(tmp_path, extractor, identity, runtime, ViewMaker(224))
    features, failures = collect(engine, photos)
    assert engine.runtime.name == runtime and not failures
    assert features.shape == (1, 20, 1280) and keras_features.std() > 0.1
    assert max(relative_errors(features[0], keras_features)) < 1e-4


def test_bf16_is_close_but_cached_apart_from_fp32(lite0, photos, keras_features, tmp_path):
    import openvino as ov

    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        with pytest.raises(ConfigError, match="bf16"):
            make_runtime(lite0[0], lite0[1], RuntimeOptions("openvino", "bf16"), 224)
        return
    extractor, identity = lite0
    engine = make_engine(tmp_path, extractor, identity, "openvino", ViewMaker(224))
    engine.options = RuntimeOptions("openvino", "bf16")
    features, _ = collect(engine, photos)
    max_abs, worst_row = relative_errors(features[0], keras_features)
    assert 1e-4 < worst_row < 0.25  # really bf16, still the same features
    assert engine.extracted == 20 and engine.identity["precision"] == "bf16"


def test_runtime_options_are_validated(lite0):
    with pytest.raises(ConfigError, match="did you mean 'openvino'"):
        RuntimeOptions("openvin").validate()
    with pytest.raises(ConfigError, match="needs the openvino runtime"):
        RuntimeOptions("onnx", "bf16").validate()
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8").validate()
    with pytest.raises(ConfigError, match="--augment-views"):
        TrainConfig(augment_views=-1).validate()


def test_failed_export_falls_back_to_keras_under_auto(tmp_path):
    class NotExportable:
        input_shape = (None, 32, 32, 3)

        def predict_on_batch(self, images):
            return np.ones((len(images), 2), np.float32)

    runtime = make_runtime(NotExportable(), {"backbone": "odd"}, RuntimeOptions("auto"), 32)
    assert runtime.name == "keras"
    with pytest.raises(ConfigError, match="cannot run odd"):
        make_runtime(NotExportable(), {"backbone": "odd"}, RuntimeOptions("openvino"), 32)


def test_source_saves_views_beside_the_run_and_reuses_them(tmp_path, photos):
    def source() -> FeatureSource:
        return FeatureSource(tiny_extractor(), {"backbone": "tiny"}, tmp_path / "run" / "features",
                             options=RuntimeOptions("keras"), cache=FeatureCache(tmp_path / "shared"))

    features, indices = source().views(photos, 2)
    assert features.shape == (3, 20, 8) and list(indices) == list(range(20))
    assert not np.allclose(features[0], features[1]) and not np.allclose(features[1], features[2])
    assert (tmp_path / "run" / "features" / "train-3views.npz").exists()
    shutil.rmtree(tmp_path / "shared")
    again = source()
    np.testing.assert_array_equal(again.views(photos, 2)[0], features)
    assert again.engine.extracted == 0 and not (tmp_path / "shared").exists()  # served from the run folder alone
    original, _ = again(photos)
    np.testing.assert_allclose(original, features[0], rtol=1e-5)


def test_spatial_feature_maps_keep_their_shape_through_the_cache(tmp_path, photos):
    import keras

    pooled = tiny_extractor()
    spatial = keras.Model(pooled.input, pooled.layers[-2].output, name="features")  # (15, 15, 8) maps

    def source(run: str) -> FeatureSource:
        return FeatureSource(spatial, {"backbone": "tiny", "pooling": "spatial"}, tmp_path / run,
                             options=RuntimeOptions("keras"), cache=FeatureCache(tmp_path / "shared"))

    first = source("a")
    maps, _ = first.views(photos, 1)
    assert maps.shape == (2, 20, 15, 15, 8)
    again = source("b")  # another run folder: every map comes back from the shared cache
    np.testing.assert_array_equal(again.views(photos, 1)[0], maps)
    assert again.engine.extracted == 0 and first.engine.extracted == 40


def test_cli_rejects_bf16_on_onnx_runtime(capsys):
    from keras_transfer.cli import main

    assert main(["train", "digits", "--runtime", "onnx", "--precision", "bf16", "-q"]) == 2
    assert "needs the openvino runtime" in capsys.readouterr().err

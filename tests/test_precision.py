"""Precision: the choice per CPU (only the CPU reading replaced), keys apart per precision and
calibration set, and a real int8 engine against fp32 on real photos (hymenoptera)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from keras_transfer.config import TrainConfig, feature_source
from keras_transfer.features import runtime
from keras_transfer.features.cache import FeatureCache
from keras_transfer.features.quantize import Calibration
from keras_transfer.strategies.solver import fit_linear_head
from conftest import HYMENOPTERA

AVX2 = frozenset({"sse2", "avx", "avx2", "fma"})
AMX = AVX2 | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}
INT8_TOLERANCE = 0.2  # mean relative L2 error to fp32 of these int8 Lite0 features: measured 0.14 (max 0.24)


def test_the_cpu_is_read_for_real():
    flags = runtime.cpu_capabilities()
    assert flags and all(flag == flag.lower() for flag in flags)


@pytest.mark.parametrize(("flags", "expected"), [(AVX2, runtime.CHOICE_OTHER_CPU),
                                                 (AMX, runtime.CHOICE_BF16_CPU),
                                                 (AVX2 | {"avx512_bf16"}, runtime.CHOICE_BF16_CPU)])
def test_auto_is_the_measured_choice_of_the_cpu(monkeypatch, flags, expected):
    monkeypatch.setattr(runtime, "cpu_capabilities", lambda: flags)
    assert runtime.choose_precision() == expected
    assert runtime.RuntimeOptions().resolved().precision == expected
    assert runtime.choose_precision("onnx") == "fp32"  # no reduced precision without OpenVINO
    config = TrainConfig(data=str(HYMENOPTERA), backbone="efficientnet_lite0").validate()
    assert config.precision == "auto"
    assert feature_source(config, HYMENOPTERA).engine.identity["precision"] == expected  # never "auto" in a key


def test_bad_precision_is_a_config_error():
    from keras_transfer.base.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown precision"):
        TrainConfig(data=str(HYMENOPTERA), precision="fp8").validate()
    with pytest.raises(ConfigError, match="needs the openvino runtime"):
        TrainConfig(data=str(HYMENOPTERA), precision="int8", runtime="onnx").validate()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """fp32 and int8 (calibrated on 32 training images) Lite0 feature sources of hymenoptera, one cache."""
    out = tmp_path_factory.mktemp("precision")
    cache = FeatureCache(out / "cache")
    made = {}
    for precision in ("fp32", "int8"):
        config = TrainConfig(data=str(HYMENOPTERA), backbone="efficientnet_lite0", precision=precision).validate()
        source = feature_source(config, out / precision)
        if precision == "int8":
            source.options = dataclasses.replace(source.options,
                                                 calibration=dataclasses.replace(source.options.calibration, count=32))
        source.cache = cache
        made[precision] = source
    return made


def test_precisions_and_calibration_sets_are_cached_apart(sources):
    fp32, int8 = sources["fp32"].engine, sources["int8"].engine
    assert fp32.identity["precision"] == "fp32" and "calibration" not in fp32.identity
    assert int8.identity["precision"] == "int8" and int8.identity_key != fp32.identity_key
    calibration = sources["int8"].options.calibration
    assert calibration.split.name == "train" and len(calibration.indices) == 32
    again = Calibration(calibration.split, calibration.resize_mode, calibration.seed, 32)
    other = Calibration(calibration.split, calibration.resize_mode, calibration.seed + 1, 32)
    assert again.key == calibration.key and other.key != calibration.key  # deterministic, and keyed by its images


@pytest.fixture(scope="module")
def features(sources):
    """(train features fp32, labels, val features per precision, val labels) on a small real subset."""
    from keras_transfer.config import dataset_of

    dataset = dataset_of(TrainConfig(data=str(HYMENOPTERA)).validate())
    train = dataset.train.subset(np.linspace(0, len(dataset.train) - 1, 80).astype(int))
    val = dataset.eval_split.subset(np.linspace(0, len(dataset.eval_split) - 1, 48).astype(int))
    x_train, kept = sources["fp32"].views(train, 0)
    out = {"x_train": x_train, "y_train": train.labels[kept], "y_val": val.labels}
    for precision, source in sources.items():
        x, kept_val = source.views(val, 0)
        assert len(kept_val) == len(val)
        out[precision] = x[0]
    out["int8_extracted"] = sources["int8"].engine.extracted
    return out


def test_int8_features_are_close_to_fp32(features):
    assert features["int8_extracted"] == len(features["y_val"])  # computed, not read from fp32's entries
    fp32, int8 = features["fp32"], features["int8"]
    error = np.linalg.norm(int8 - fp32, axis=1) / np.linalg.norm(fp32, axis=1)
    assert 0 < error.mean() < INT8_TOLERANCE
    assert np.corrcoef(fp32.ravel(), int8.ravel())[0, 1] > 0.95


def test_int8_predictions_agree_with_fp32(features):
    fit = fit_linear_head(features["x_train"], features["y_train"], 2)
    fp32 = fit.head.predict(features["fp32"]).argmax(1)
    int8 = fit.head.predict(features["int8"]).argmax(1)
    assert (fp32 == int8).mean() >= 0.9  # measured 46 of 48
    assert (int8 == features["y_val"]).mean() >= 0.8  # and it still classifies ants and bees

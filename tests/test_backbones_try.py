"""``keras-transfer backbones DATA --try``: the probe reads the training images only, and its
recommendation agrees with the held-out ranking of the candidates (images the probe never saw)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import DATASETS

FLOWERS5 = DATASETS / "flowers5"
PER_CLASS = 40  # 200 images: 160 training images probed, 40 held out

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    """Lite0 and Lite2 (the bundled weights) as ``onnx:`` encoders exported by PyTorch in seconds: the
    built-in Keras ones give the same features (test_backbone_routes) but cost a Keras export each."""
    from test_backbone_routes import lite_encoder

    from keras_transfer.strategies.backbone_probe import try_backbones

    folder = tmp_path_factory.mktemp("try")
    names = ",".join(f"onnx:{lite_encoder(v, folder / f'lite{v}.onnx')}" for v in (0, 2))
    return try_backbones(str(FLOWERS5), names, max_per_class=PER_CLASS, plot=folder / "try.png"), folder / "try.png"


def test_auto_means_the_backbones_usable_offline():
    from keras_transfer.strategies.backbone_probe import candidate_names

    assert candidate_names("auto")[:3] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def test_the_probe_measures_each_candidate_and_plots(trial):
    result, plot = trial
    names = [c.backbone for c in result.candidates]
    assert [n.rsplit("/", 1)[-1] for n in names] == ["lite0.onnx", "lite2.onnx"]
    assert all(c.images == 160 and c.folds == 5 and c.fp32_images_per_second > 0 for c in result.candidates)
    assert result.recommended in names and plot.stat().st_size > 10_000
    speeds = [c.fp32_images_per_second for c in result.candidates]
    assert speeds[0] > speeds[1]  # Lite0 (224 px) is faster than Lite2 (260 px, deeper)
    assert [c.feature_dim for c in result.candidates] == [1280, 1280] and result.candidates[0].license == "Apache-2.0"
    if result.bf16 != "yes":  # an AVX2-only CPU: said, not measured
        assert all(c.bf16_images_per_second is None for c in result.candidates) and "bf16" in result.bf16


def test_the_recommendation_agrees_with_the_held_out_ranking(trial):
    """Each candidate's head, solved on the training images, scored on the held-out images: the
    recommended backbone is within one standard error of the best held-out accuracy."""
    from keras_transfer.config import TrainConfig, dataset_of, feature_source
    from keras_transfer.strategies.solver import fit_linear_head

    result, plot = trial
    held_out = {}
    for candidate in result.candidates:
        config = TrainConfig(data=str(FLOWERS5), backbone=candidate.backbone, max_per_class=PER_CLASS).validate()
        dataset = dataset_of(config)
        source = feature_source(config, plot.parent / candidate.backbone)
        (x, i), (v, j) = source(dataset.train), source(dataset.val)
        fit = fit_linear_head(x[None], dataset.train.labels[i], len(dataset.class_names))
        scores = fit.head.predict(v)
        held_out[candidate.backbone] = float((scores.argmax(1) == dataset.val.labels[j]).mean())
        assert len(dataset.val) == 40 and not set(dataset.val.ids()) & set(dataset.train.ids())
    best = max(held_out.values())
    error = math.sqrt(best * (1 - best) / 40)
    assert held_out[result.recommended] >= best - error, (held_out, result.as_dict())


def test_cli_json_and_errors(trial, capsys, tmp_path):
    from keras_transfer.cli import main

    lite0 = trial[0].candidates[0]
    argv = ["backbones", str(FLOWERS5), "--try", lite0.backbone, "--max-per-class", str(PER_CLASS),
            "--plot", str(tmp_path / "p.png"), "--json", "--quiet"]
    assert main(argv) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [c["backbone"] for c in answer["candidates"]] == [lite0.backbone] == [answer["recommended"]]
    assert np.isclose(answer["candidates"][0]["accuracy"], lite0.accuracy)  # same cached features, same probe
    assert main(["backbones", "--try", "lite0"]) == 2 and "needs a dataset" in capsys.readouterr().err
    assert main(["backbones", str(FLOWERS5), "--try", "lite9"]) == 2 and "lite0" in capsys.readouterr().err

"""Richer features from the same weights: pooled stages, the mirror-image view, backbone ensembles.

Each is checked against a plain Keras computation of the same numbers (the backbone built by
itself, its stage outputs averaged in NumPy), and through training, prediction and export.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from conftest import HYMENOPTERA
from feature_helpers import file_split
from test_features import relative_errors

from keras_transfer.backbones import get_backbone
from keras_transfer.backbones.efficientnet_lite import build_efficientnet_lite
from keras_transfer.cli import main
from keras_transfer.config import TrainConfig
from keras_transfer.data.augment import FLIP, view_name
from keras_transfer.data.images import read_image, resize
from keras_transfer.base.errors import ConfigError
from keras_transfer.features.cache import FeatureCache
from keras_transfer.features.keys import identity_hash
from keras_transfer.run import Run, feature_source

LITE0_STAGES = ["head_act", "block7a_project_bn", "block6d_add", "block5c_add"]
LITE2_STAGES = ["head_act", "block7a_project_bn", "block6e_add", "block5d_add"]


@pytest.fixture(scope="module")
def photos():
    """12 real photos of mixed sizes (ants and bees)."""
    return file_split(sorted((HYMENOPTERA / "val" / "ants").glob("*.jpg"))[:6]
                      + sorted((HYMENOPTERA / "val" / "bees").glob("*.jpg"))[:6])


def plain_keras(variant: str, size: int, layers: list[str], photos, mirror: bool = False) -> list[np.ndarray]:
    """The global average of each of ``layers`` for the photos, computed by Keras and NumPy alone."""
    backbone = build_efficientnet_lite(variant, size)
    taps = keras.Model(backbone.input, [backbone.get_layer(name).output for name in layers])
    pixels = np.stack([resize(read_image(path, size), size) for path in photos.items]).astype(np.float32)
    pixels = pixels[:, :, ::-1] if mirror else pixels
    return [np.asarray(out).mean(axis=(1, 2)) for out in taps.predict((pixels - 127.0) / 128.0, verbose=0)]


def assert_blocks_match(features: np.ndarray, blocks: list[np.ndarray]) -> None:
    """``features`` is the concatenation of ``blocks``, each to 1e-4 of its own scale."""
    assert features.shape[1] == sum(b.shape[1] for b in blocks)
    start = 0
    for block in blocks:
        got = features[:, start:start + block.shape[1]]
        assert block.std() > 1e-3 and max(relative_errors(got, block)) < 1e-4
        start += block.shape[1]


def test_default_pools_four_stages_equal_to_plain_keras_with_the_mirror_view(tmp_path, photos):
    config = TrainConfig(data=str(HYMENOPTERA), backbone="lite0").validate()
    assert config.pool_stages == 4 and TrainConfig().validate().pool_stages == 4
    source = feature_source(config, tmp_path)
    views, indices = source.views(photos, 0, flip=True)
    assert views.shape == (2, 12, 1904) and len(indices) == 12
    assert_blocks_match(views[0], plain_keras("lite0", 224, LITE0_STAGES, photos))
    assert_blocks_match(views[1], plain_keras("lite0", 224, LITE0_STAGES, photos, mirror=True))


def test_ensemble_features_are_its_members_features(tmp_path, photos):
    spec = get_backbone("lite0+lite2")
    assert spec.name == "efficientnet_lite0+efficientnet_lite2" and spec.input_size == 260
    config = TrainConfig(data=str(HYMENOPTERA), backbone="lite0+lite2").validate()
    features, _ = feature_source(config, tmp_path)(photos)
    assert features.shape == (12, spec.pooled_dim(4)) == (12, 1904 + 1960)
    members = [feature_source(TrainConfig(backbone=name, input_size=260).validate(), tmp_path / name)(photos)[0]
               for name in ("lite0", "lite2")]
    assert max(relative_errors(features, np.concatenate(members, axis=1))) < 1e-4
    assert_blocks_match(features[:, :1904], plain_keras("lite0", 260, LITE0_STAGES, photos))
    assert_blocks_match(features[:, 1904:], plain_keras("lite2", 260, LITE2_STAGES, photos))


def test_cache_keys_keep_stages_views_and_ensembles_apart(tmp_path, photos):
    configs = [TrainConfig(backbone="lite0", stages=1), TrainConfig(backbone="lite0"),
               TrainConfig(backbone="lite0", stages=2), TrainConfig(backbone="lite2"),
               TrainConfig(backbone="lite0+lite2"), TrainConfig(backbone="lite0+lite2", stages=1)]
    keys = [identity_hash(feature_source(c.validate(), tmp_path).engine.identity) for c in configs]
    assert len(set(keys)) == len(keys)
    assert len({view_name(0), view_name(FLIP), view_name(1)}) == 3
    # one cache, two variants: the second extracts every image again and gets its own shape
    cache = FeatureCache(tmp_path / "cache")  # not the session's, where other tests put these photos
    one, four = (feature_source(TrainConfig(backbone="lite0", stages=n).validate(), tmp_path / f"s{n}")
                 for n in (1, 4))
    one.cache = four.cache = cache
    assert one(photos)[0].shape == (12, 1280) and one.engine.extracted == 12
    assert four(photos)[0].shape == (12, 1904) and four.engine.extracted == 12
    flipped = feature_source(TrainConfig(backbone="lite0").validate(), tmp_path / "flip")
    flipped.cache = cache
    views, _ = flipped.views(photos, 0, flip=True)
    assert flipped.engine.extracted == 12  # the originals came from the cache, the mirror images did not
    assert not np.allclose(views[0], views[1])
    assert sorted(p.name for p in (tmp_path / "flip" / "features").iterdir()) == ["train-2views-flip.npz"]


def test_options_of_stages_and_ensembles_are_checked():
    cases = [dict(stages=5), dict(stages=0), dict(stages=2, strategy="finetune"), dict(stages=2, pooling="spatial"),
             dict(backbone="lite0+lite2", strategy="finetune"), dict(backbone="lite0+lite0"),
             dict(backbone="lite0+lite2", weights="weights.h5"), dict(flip=True, solver="keras")]
    for case in cases:
        with pytest.raises(ConfigError):
            TrainConfig(**case).validate()
    assert TrainConfig(strategy="finetune").validate().pool_stages == 1
    assert TrainConfig(pooling="spatial").validate().pool_stages == 1
    assert TrainConfig(backbone="resnet50").validate().pool_stages == 1  # no stages listed for it


def held_out_accuracy(run: Run) -> float:
    return run.read("metrics.json")["accuracy"]


@pytest.fixture(scope="module")
def ensemble_runs(tmp_path_factory):
    """hymenoptera trained with lite0 and lite2 at 260 px, and with their ensemble."""
    root = tmp_path_factory.mktemp("ensemble")
    runs = {}
    for name, flags in (("lite0", ["-b", "lite0", "--input-size", "260"]), ("lite2", ["-b", "lite2"]),
                        ("ensemble", ["-b", "lite0+lite2", "--flip"])):
        assert main(["train", str(HYMENOPTERA), "--out", str(root / name), "--quiet", *flags]) == 0
        runs[name] = Run.open(root / name)
    return runs


def test_ensemble_trains_and_predicts_as_one_model(ensemble_runs, capsys):
    from keras_transfer.run import RunModel

    runs = ensemble_runs
    assert held_out_accuracy(runs["ensemble"]) >= min(held_out_accuracy(runs[m]) for m in ("lite0", "lite2"))
    assert held_out_accuracy(runs["ensemble"]) >= 0.93
    # Keras-free predict averages the mirror view in, as the held-out evaluation did
    run = runs["ensemble"]
    capsys.readouterr()
    assert main(["predict", str(run.path), str(HYMENOPTERA / "val"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    predictor = RunModel.open(run)
    assert predictor.solved
    files = sorted((HYMENOPTERA / "val").rglob("*.jpg"))[:20]
    answer, failures = predictor.predict_files(files)
    probabilities = answer.probabilities
    views, _ = predictor.source.views(file_split(files), 0, flip=True)
    expected = (predictor.head.predict(views[0]) + predictor.head.predict(views[1])) / 2
    assert not failures and np.abs(probabilities - expected).max() < 1e-5
    top = {row["path"]: row["predictions"][0]["probability"] for row in rows}
    assert len(top) == 153 and max(abs(top[str(f)] - p.max()) for f, p in zip(files, expected)) < 1e-4
    # its one ONNX graph (both backbones, the mirror image, the head): test_export on the default run,
    # which is this ensemble, and test_consistency (an ensemble's exported files agree to 1e-4)


def test_ensemble_is_explained_by_gradcam_of_its_first_member(ensemble_runs, tmp_path):
    from keras_transfer.explain import explain

    photo = sorted((HYMENOPTERA / "val" / "bees").glob("*.jpg"))[0]
    item = explain(ensemble_runs["ensemble"], [photo], out=tmp_path / "explained")[0]
    assert sorted(item.files) == ["figure", "gradcam"]  # no CAM: the head also reads the other member
    assert item.cam is None and item.predicted == "bees" and item.peak() is not None
    assert item.gradcam.max() == 1.0 and item.gradcam.min() >= 0 and item.gradcam.std() > 0.05

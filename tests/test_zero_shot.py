"""Zero-shot ImageNet predictions and the shipped class index."""

from __future__ import annotations

import json
from pathlib import Path

import keras_transfer  # noqa: F401  (selects the torch backend before keras is imported)

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format
from matplotlib import cbook

from keras_transfer.backbones.imagenet_labels import (CLASS_FILE, generate_class_index, imagenet_classes,
                                                      write_class_index)
from keras_transfer.cli import main
from keras_transfer.data.images import read_image, resize
from keras_transfer.base.errors import WeightsError
from keras_transfer.run.zero_shot import predict_imagenet

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TRANSFER_CACHE", str(tmp_path / "cache"))


def test_shipped_class_index_is_generated_from_the_package(tmp_path):
    classes = imagenet_classes()
    assert list(classes) == generate_class_index()
    assert write_class_index(tmp_path / "classes.json").read_bytes() == CLASS_FILE.read_bytes()
    assert len(classes) == 1000 and len({c["wnid"] for c in classes}) == 1000
    assert classes[652] == {"wnid": "n03763968", "name": "military uniform", "synonyms": "military uniform"}
    assert classes[0]["name"] == "tench" and classes[985]["name"] == "daisy"


def test_grace_hopper_is_a_military_uniform(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    results = predict_imagenet([GRACE_HOPPER, tmp_path / "broken.jpg", tmp_path / "missing"], top_k=3)
    by_path = {r["path"]: r for r in results}
    best = by_path[str(GRACE_HOPPER)]["predictions"]
    assert best[0] == {**best[0], "label": "military uniform", "index": 652, "wnid": "n03763968"}
    probabilities = [p["probability"] for p in best]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1
    assert "not a readable image" in by_path[str(tmp_path / "broken.jpg")]["error"]
    assert "no such file" in by_path[str(tmp_path / "missing")]["error"]


def test_keras_application_head_from_the_offline_cache(tmp_path, monkeypatch):
    """MobileNetV2's ImageNet head read offline from the keras cache equals keras' own pipeline."""
    models = tmp_path / "keras" / "models"
    models.mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(WeightsError, match="offline"):
        predict_imagenet([GRACE_HOPPER], backbone="mobilenet_v2", offline=True)
    reference = keras.applications.MobileNetV2(weights=None, classifier_activation="softmax")  # random ImageNet head
    with h5py.File(models / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5", "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, reference)
    top = predict_imagenet([GRACE_HOPPER], backbone="mobilenet_v2", top_k=5, offline=True)[0]["predictions"]
    image = resize(read_image(GRACE_HOPPER, 224), 224)[None]
    expected = np.asarray(reference.predict(keras.applications.mobilenet_v2.preprocess_input(image), verbose=0))[0]
    assert [p["index"] for p in top] == list(np.argsort(-expected)[:5])
    np.testing.assert_allclose([p["probability"] for p in top], np.sort(expected)[::-1][:5], rtol=1e-4)


def test_cli_zero_shot(capsys):
    assert main(["predict", "--imagenet", str(GRACE_HOPPER), "--top-k", "2", "--json", "--quiet"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [p["label"] for p in results[0]["predictions"]][0] == "military uniform"
    assert main(["predict", str(GRACE_HOPPER)]) == 2  # a trained run needs a run folder first
    assert "run folder" in capsys.readouterr().err

"""The CLI over the backbone zoo: listing, bundled EfficientNet-Lite1/2 training, offline errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import keras_transfer  # noqa: F401  (selects the torch backend before keras is imported)
from keras_transfer import Run
from keras_transfer.backbones import get_backbone, list_backbones
from keras_transfer.cli import main


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two classes of 12 small PNGs (reddish vs bluish noise), with mixed sizes."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for label, channel in (("red", 0), ("blue", 2)):
        (root / label).mkdir()
        for i in range(12):
            image = rng.integers(0, 120, (40 + 4 * i, 56, 3)).astype(np.uint8)
            image[..., channel] += 120
            Image.fromarray(image).save(root / label / f"{i}.png")
    return root


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory, monkeypatch):
    """A cache shared by this module's tests and an empty keras cache (no keras weights offline)."""
    monkeypatch.setenv("KERAS_TRANSFER_CACHE", str(tmp_path_factory.getbasetemp() / "cli-cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.getbasetemp() / "keras-home"))
    monkeypatch.delenv("KERAS_TRANSFER_OFFLINE", raising=False)


def test_backbones_listing(capsys):
    assert main(["backbones", "--json", "--quiet"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert list(rows) == list_backbones() and len(rows) >= 11
    assert rows["resnet50"] == {**rows["resnet50"], "input_size": 224, "parameters": 23_587_712,
                                "feature_dim": 2048, "offline_weights": False}
    assert rows["inception_v3"]["min_input_size"] == 75 and rows["mobilenet_v2"]["parameters"] == 2_257_984
    assert all(rows[f"efficientnet_lite{i}"]["offline_weights"] for i in range(3))
    assert main(["backbones"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(rows) + 2 and lines[2].split()[:2] == ["efficientnet_lite0", "224"]  # header, rule, rows


def test_train_efficientnet_lite1_with_bundled_weights(image_folder, tmp_path, capsys):
    out = tmp_path / "lite1"
    code = main(["train", str(image_folder), "--backbone", "efficientnet_lite1", "--out", str(out),
                 "--val-fraction", "0.5", "--quiet", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metrics"]["accuracy"] == 1.0  # red vs blue is easy for ImageNet features
    run = Run.open(out)
    assert run.config.backbone == "efficientnet_lite1" and run.config.size == 240
    with np.load(out / "features" / "train.npz", allow_pickle=False) as saved:
        assert saved["features"].shape == (12, get_backbone("efficientnet_lite1").pooled_dim(4)) == (12, 1904)


def test_train_efficientnet_lite2_spatial_padded_small_input(image_folder, tmp_path, capsys):
    out = tmp_path / "lite2"
    code = main(["train", str(image_folder), "-b", "efficientnet_lite2", "--input-size", "96", "--resize", "pad",
                 "--pooling", "spatial", "--offline", "--epochs", "30", "--val-fraction", "0.5", "--out", str(out),
                 "--quiet"])
    assert code == 0
    with np.load(out / "features" / "val.npz", allow_pickle=False) as saved:
        assert saved["features"].shape == (12, 3, 3, 1280)
    capsys.readouterr()
    assert main(["predict", str(out), str(image_folder / "red"), "--json", "--quiet"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 12 and sum(r["predictions"][0]["label"] == "red" for r in results) >= 10


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_offline_training_without_keras_weights_is_a_clean_error(how, image_folder, tmp_path, monkeypatch, capsys):
    args = ["train", str(image_folder), "-b", "vgg16", "--out", str(tmp_path / "run"), "--quiet"]
    if how == "flag":
        args.append("--offline")
    else:
        monkeypatch.setenv("KERAS_TRANSFER_OFFLINE", "1")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the ImageNet weights of vgg16 are not in the keras cache") and "--weights" in err
    assert "Traceback" not in err

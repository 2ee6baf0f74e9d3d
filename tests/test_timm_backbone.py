"""``timm:NAME`` backbones: features equal timm's own forward pass, train / predict / the real server /
an ONNX export agree, cache keys follow the weights file, and ``--weights FILE`` is the reference's.

timm imports torchvision, which does not load beside this project's CPU torch 2.13.0; the Makefile
builds ``.venv-timm`` (torch 2.14.1 + torchvision 0.29.1 + timm). There ``tests/timm_side.py`` makes
tiny random-weight timm models (a ViT and a ConvNeXt), saves their state dicts the way a user's
download is saved, converts them through the ``timm:NAME@FILE`` route into this session's cache,
and writes timm's own forward pass. Everything else runs here, from the converted encoders, without
timm (as a user's run does once converted).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import FLOWERS5, assert_consumers_agree, engine_features, relative_error, resized_pixels

ROOT = Path(__file__).resolve().parents[1]
TIMM_PYTHON = ROOT / ".venv-timm" / "bin" / "python"
SIDE = 160  # timm's test models' input size
pytestmark = pytest.mark.skipif(not FLOWERS5.is_dir(), reason="needs ../shared/datasets/flowers5")


@pytest.fixture(scope="module")
def converted(flowers3, tmp_path_factory) -> tuple[Path, dict]:
    """(folder of weights files and timm's features, what timm_side.py reported per model)."""
    assert TIMM_PYTHON.is_file(), "no .venv-timm: `make install` builds it"
    folder = tmp_path_factory.mktemp("timm")
    np.save(folder / "pixels.npy", resized_pixels(sorted(flowers3.rglob("*.jpg")), SIDE), allow_pickle=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(folder / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([str(TIMM_PYTHON), str(ROOT / "tests" / "timm_side.py"), str(folder)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, json.loads((folder / "side.json").read_text())


@pytest.mark.parametrize("key", ["vit", "vit_avg", "convnext", "downloaded"])
def test_features_equal_timms_forward_pass(converted, flowers3, tmp_path, key):
    folder, side = converted
    features = engine_features(side[key]["reference"], flowers3, tmp_path / "out")  # no timm in this process
    expected = np.load(folder / f"{key}.npy", allow_pickle=False)
    assert features.shape == expected.shape == (30, side[key]["feature_dim"])
    assert relative_error(features, expected) < 1e-4


def test_the_spec_carries_timms_preprocessing_and_keys_follow_the_weights_file(converted, tmp_path):
    from keras_transfer.backbones import get_backbone

    folder, side = converted
    vit = get_backbone(side["vit"]["reference"])
    assert (vit.name, vit.input_size, vit.feature_dim) == ("timm:test_vit.r160_in1k", SIDE, side["vit"]["feature_dim"])
    assert vit.preprocessing.mean == pytest.approx(tuple(m * 255 for m in side["vit"]["mean"]))
    assert vit.preprocessing.std == pytest.approx(tuple(s * 255 for s in side["vit"]["std"]))
    assert vit.license == "its author's, of vit.safetensors (timm's published weights: apache-2.0)"
    keys = {k: v["key"] for k, v in side.items()}
    assert len(set(keys.values())) == 5  # other weights (vit2), another pooling (vit_avg), another model
    downloaded = get_backbone("timm:test_convnext.r160_in1k")  # timm's own weights: converted once, recorded
    assert downloaded.weights_identity(None) == keys["downloaded"] and downloaded.license == "apache-2.0"
    assert vit.weights_identity(None) == keys["vit"]
    copy = shutil.copy(folder / "vit.safetensors", tmp_path / "renamed.safetensors")
    assert get_backbone(f"timm:test_vit.r160_in1k@{copy}").weights_identity(None) == keys["vit"]  # same bytes


def test_the_weights_option_names_the_file_and_bad_references_are_clear(converted, tmp_path, monkeypatch, capsys):
    from keras_transfer.backbones import get_backbone
    from keras_transfer.base.errors import ConfigError, KerasTransferError, WeightsError
    from keras_transfer.config import TrainConfig

    folder, _ = converted
    config = TrainConfig(data="x", backbone="timm:test_vit.r160_in1k#avg", weights=str(folder / "vit.safetensors"))
    assert (config.backbone, config.weights) == (f"timm:test_vit.r160_in1k@{folder / 'vit.safetensors'}#avg",
                                                 "imagenet")
    monkeypatch.chdir(folder)  # a relative @FILE is made absolute: the run opens from anywhere
    assert TrainConfig(data="x", backbone="timm:test_vit.r160_in1k@vit.safetensors").backbone == \
        f"timm:test_vit.r160_in1k@{folder / 'vit.safetensors'}"
    for backbone, weights in (("timm:test_vit.r160_in1k", None), ("onnx:enc.onnx", "w.h5")):
        with pytest.raises(ConfigError, match="brings its own weights"):  # said by validate: runs still open
            TrainConfig(data="x", backbone=backbone, weights=weights).validate()
    with pytest.raises(ConfigError, match="its weights cannot be trained"):  # not a traceback in finetune
        TrainConfig(data="x", backbone=converted[1]["vit"]["reference"], strategy="finetune").validate()
    for reference in ("timm:", "timm:test_vit@", f"timm:test_vit@{tmp_path / 'missing.pth'}", "timm:test_vit#Max!",
                      "timm:test_vit#default"):
        with pytest.raises(KerasTransferError):
            get_backbone(reference)
    other = tmp_path / "other.safetensors"  # weights never converted: this process has no timm to do it
    other.write_bytes((folder / "vit.safetensors").read_bytes() + b" ")
    with pytest.raises(ConfigError, match="timm cannot be imported here"):
        get_backbone(f"timm:test_vit.r160_in1k@{other}")
    from keras_transfer.cli import main

    assert main(["train", str(folder), "--backbone", "timm:test_vit.r160_in1k", "--offline", "-q"]) == 1
    assert "not converted on this machine" in capsys.readouterr().err  # --offline reaches the timm route
    with pytest.raises(WeightsError, match="not converted on this machine"):  # and TrainConfig(offline=True)
        TrainConfig(data=str(folder), backbone="timm:test_vit.r160_in1k", offline=True).validate()
    monkeypatch.setenv("KERAS_TRANSFER_OFFLINE", "1")  # timm's own weights would be downloaded: refused at once
    with pytest.raises(WeightsError, match="not converted on this machine"):
        get_backbone("timm:test_vit.r160_in1k")


def test_train_predict_serve_and_export_agree_without_the_weights_file(converted, flowers3, tmp_path):
    from keras_transfer.cli import main

    folder, _ = converted
    weights = shutil.copy(folder / "convnext.pth", tmp_path / "convnext.pth")  # same bytes: converted already
    out = tmp_path / "run"
    assert main(["train", str(flowers3), "--backbone", "timm:test_convnext.r160_in1k", "--weights", str(weights),
                 "--out", str(out), "--quiet", "--no-baseline"]) == 0
    assert "as stated with the timm encoder: its author's, of convnext.pth" in (out / "MODEL_CARD.md").read_text()
    Path(weights).unlink()  # the run answers from the converted encoder, keyed by the file's recorded hash
    assert_consumers_agree(out, serve=True)

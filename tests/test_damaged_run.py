"""Every file of a run folder missing, empty or garbage: predict, evaluate and report either
still work or stop with exit 1 and a message that names the file and what to do."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import HYMENOPTERA

FILES = ["config.json", "class_names.json", "metrics.json", "calibration.json", "predictions.npz",
         "model.keras", "head.npz", "unknown.npz"]
DAMAGE = {"missing": None, "empty": b"", "garbage": b"\x00\xffnot what train wrote\x89PNG{[\"" * 8}
BEE = sorted((HYMENOPTERA / "val" / "bees").iterdir())[0]


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", FILES)
def test_a_damaged_run_file_gets_a_clear_message(lite0_run, tmp_path, capsys, name, damage):
    from keras_transfer.cli import main

    run = tmp_path / "run"
    shutil.copytree(lite0_run.path, run, ignore=shutil.ignore_patterns("features", "export", "report"))
    (run / name).unlink()
    if DAMAGE[damage] is not None:
        (run / name).write_bytes(DAMAGE[damage])
    commands = [["predict", str(run), str(BEE)], ["evaluate", str(run)]]
    if name in ("predictions.npz", "metrics.json", "class_names.json"):
        commands.append(["report", str(run), "--out", str(tmp_path / "report"), "--sample", "10"])
    for command in commands:
        code = main([*command, "-q"])  # an exception here would be a traceback for the user
        err = capsys.readouterr().err
        assert code in (0, 1), (command, code, err)
        if code == 1:
            assert name in err and ("train again" in err or "re-run train" in err), (command, err)
        assert "Traceback" not in err


@pytest.mark.parametrize("damage", ["truncated", "zeroed", "garbage"])
def test_a_damaged_cached_onnx_file_is_rebuilt_and_said(lite0_run, tmp_path, monkeypatch, capsys, damage):
    """The compiled-model cache: a damaged exported backbone is detected, exported again and the
    predictions are those of the intact cache (OpenVINO checks its own compiled blobs)."""
    from keras_transfer.run import predict
    from keras_transfer.cli import main
    from keras_transfer.base.paths import cache_dir

    expected = predict(lite0_run, [BEE])[0]["predictions"][0]
    cache = tmp_path / "cache"
    shutil.copytree(cache_dir("onnx"), cache / "onnx")  # the exported files, no features: extraction runs
    for path in (cache / "onnx").glob("*.onnx"):  # the run's backbones and any other
        size = path.stat().st_size
        path.write_bytes({"truncated": path.read_bytes()[:size // 3], "zeroed": bytes(size),
                          "garbage": b"\x08\x07garbage" * 100}[damage])
    monkeypatch.setenv("KERAS_TRANSFER_CACHE", str(cache))
    out = tmp_path / "p.json"
    assert main(["predict", str(lite0_run.path), str(BEE), "--output", str(out)]) == 0
    assert "is damaged; exporting it again" in capsys.readouterr().err
    got = json.loads(out.read_text())[0]["predictions"][0]
    assert got["label"] == expected["label"] and abs(got["probability"] - expected["probability"]) < 1e-4


def test_a_run_trained_from_a_relative_path_works_from_anywhere_and_moved(tmp_path, monkeypatch, capsys):
    """Trained with a relative dataset path, then moved and opened from another directory."""
    from keras_transfer.cli import main

    data = tmp_path / "work" / "data"
    for c in ("ants", "bees"):
        (data / c).mkdir(parents=True)
        for f in sorted((HYMENOPTERA / "train" / c).iterdir())[:12]:
            (data / c / f.name).symlink_to(f)
    monkeypatch.chdir(tmp_path / "work")
    assert main(["train", "data", "--out", "runs/small", "-q"]) == 0
    shutil.move(str(tmp_path / "work" / "runs" / "small"), tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", "moved", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] > 0
    assert main(["predict", "moved", str(BEE), "-q"]) == 0 and "bees" in capsys.readouterr().out


def test_a_damaged_compiled_model_cache_is_compiled_again(lite0_run, isolated_cache):
    """Every OpenVINO cache blob replaced with garbage or emptied: predict (a fresh process, so
    nothing is held in memory) gives the same probabilities as before."""
    import os
    import subprocess
    import sys

    def predict() -> list:
        done = subprocess.run([sys.executable, "-m", "keras_transfer.cli", "predict", str(lite0_run.path), str(BEE),
                               "--json", "-q"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "KERAS_TRANSFER_CACHE": str(isolated_cache)})
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        return json.loads(done.stdout)

    before = predict()
    blobs = sorted((isolated_cache / "openvino").glob("*.blob"))
    assert blobs
    for i, blob in enumerate(blobs):
        blob.write_bytes(b"" if i % 2 else os.urandom(4096))
    assert predict() == before

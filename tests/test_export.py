"""Exported files run with their runtime alone and agree with predict; the README example runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import HYMENOPTERA

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def exported(lite0_run):
    from keras_transfer.cli import main

    assert main(["export", str(lite0_run.path), "--format", "onnx", "openvino", "litert", "-q", "--json"]) == 0
    return {fmt: lite0_run.path / "export" / f"model.{ext}" for fmt, ext in
            (("onnx", "onnx"), ("openvino", "xml"), ("litert", "tflite"))}


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "litert"])
def test_exported_file_runs_alone_and_equals_predict(fmt, exported, lite0_run, tmp_path):
    from keras_transfer.run import predict
    from keras_transfer.data.images import read_image, resize

    images = sorted((HYMENOPTERA / "val" / "ants").iterdir())[:10] + sorted((HYMENOPTERA / "val" / "bees").iterdir())[:10]
    size = lite0_run.config.size
    np.save(tmp_path / "x.npy", np.stack([resize(read_image(p, size), size) for p in images]))
    run = {"onnx": "import onnxruntime as ort\nm = ort.InferenceSession(path)\n"
                   "meta = m.get_modelmeta().custom_metadata_map\np, s = m.run(None, {'image': x})",
           "openvino": "import openvino as ov\nmodel = ov.Core().read_model(path)\n"
                       "meta = {k: model.get_rt_info(['model_info', k]).astype(str) for k in ('class_names', 'input_size', 'unknown_threshold')}\n"
                       "p, s = ov.Core().compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})(x).values()",
           "litert": "from ai_edge_litert.interpreter import Interpreter\nm = Interpreter(path)\n"
                     "i, o = m.get_input_details()[0]['index'], m.get_output_details()[0]['index']\n"
                     "m.resize_tensor_input(i, list(x.shape))\nm.allocate_tensors()\n"
                     "m.set_tensor(i, x)\nm.invoke()\np = m.get_tensor(o)\ns = None\n"
                     "meta = json.load(open(path + '.json'))"}[fmt]
    code = (f"import json, sys\nimport numpy as np\nimport PIL\npath = {str(exported[fmt])!r}\nx = np.load('x.npy')\n{run}\n"
            "assert not {'keras', 'torch', 'keras_transfer'} & set(sys.modules)\n"
            "print(json.dumps({'p': np.asarray(p).tolist(), 'names': json.loads(meta['class_names']), "
            "'size': int(meta['input_size']), 's': None if s is None else np.asarray(s).tolist(), "
            "'threshold': meta['unknown_threshold']}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["names"] == lite0_run.class_names and out["size"] == size == 224
    predicted = predict(lite0_run, images, top_k=1)
    theirs = [r["predictions"][0]["label"] for r in predicted]
    assert [out["names"][i] for i in np.argmax(out["p"], axis=1)] == theirs
    if fmt == "litert":  # LiteRT files carry the classifier only
        assert out["s"] is None and out["threshold"] == ""
    else:  # the unknown score inside the file equals predict's, and the threshold rides in the metadata
        assert np.abs(np.array(out["s"]) - [r["unknown_score"] for r in predicted]).max() < 1e-4
        flags = np.array(out["s"]) > float(out["threshold"])
        assert flags.tolist() == [r["unknown"] for r in predicted]
    assert np.allclose(np.sum(out["p"], axis=1), 1, atol=1e-5)


def test_parity_table_is_written(exported):
    rows = json.loads((exported["onnx"].parent / "parity.json").read_text())
    assert [r["format"] for r in rows] == ["onnx", "openvino", "litert"]
    for row in rows:
        assert row["top1_agreement"] == 1.0 and row["max_abs_prob_diff"] < 1e-3 and row["images"] == 153
        assert row["images_per_s_batch1"] > 0 and row["images_per_s_batch32"] > 0 and row["megabytes"] > 5


def test_readme_example_runs_as_written(exported, lite0_run, tmp_path):
    text = README.read_text()
    code = re.search(r"<!-- exported-example -->\n```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "ants").symlink_to(lite0_run.path)
    bee = sorted((HYMENOPTERA / "val" / "bees").iterdir())[0]
    (tmp_path / "bee.jpg").symlink_to(bee)
    done = subprocess.run([sys.executable, "-c", code + "\nimport sys\nassert 'keras' not in sys.modules"],
                          capture_output=True, text=True, cwd=tmp_path, check=True, env={**os.environ})
    assert done.stdout.split()[0] == "bees"


def test_export_errors_are_clear_and_leave_nothing(lite0_run, tmp_path, capsys):
    from keras_transfer.cli import main

    assert main(["export", str(lite0_run.path), "--format", "tflite", "-q"]) == 2
    assert "unknown export format" in capsys.readouterr().err
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("a file where a folder should be")
    assert main(["export", str(lite0_run.path), "--format", "onnx", "--out", str(not_a_folder / "m.onnx"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err
    assert main(["export", str(tmp_path / "no-run"), "-q"]) == 1
    assert "run folder not found" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing half-written anywhere


def test_export_of_a_damaged_run_names_the_file(lite0_run, tmp_path, capsys):
    from keras_transfer.cli import main

    damaged = tmp_path / "ants"
    shutil.copytree(lite0_run.path, damaged, ignore=shutil.ignore_patterns("features", "export"))
    (damaged / "head.npz").write_bytes(b"garbage, not an npz")
    assert main(["export", str(damaged), "--format", "onnx", "-q"]) == 1
    err = capsys.readouterr().err
    assert "damaged" in err and "head.npz" in err and not (damaged / "export").exists()


def test_int8_without_nncf_says_how_to_install_it(lite0_run, tmp_path):
    out = tmp_path / "export"
    code = ("import sys\nsys.modules['nncf'] = None  # as if it were not installed\n"
            "from keras_transfer.cli import main\n"
            f"sys.exit(main(['export', {str(lite0_run.path)!r}, '--int8', '--out', {str(out)!r}, '-q']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2 and "--int8 needs NNCF" in done.stderr and "pip install nncf" in done.stderr
    assert not out.exists()


def test_int8_is_refused_for_litert_before_anything_is_written(lite0_run, tmp_path, capsys):
    from keras_transfer.cli import main

    out = tmp_path / "export"
    assert main(["export", str(lite0_run.path), "--format", "onnx", "litert", "--int8", "--out", str(out), "-q"]) == 2
    assert "--int8 is not available for litert" in capsys.readouterr().err and not out.exists()


def test_int8_openvino_costs_little_accuracy_and_says_so(lite0_run, tmp_path):
    from keras_transfer.cli import main

    out = tmp_path / "export"
    assert main(["export", str(lite0_run.path), "--format", "openvino", "--int8", "--out", str(out), "-q"]) == 0
    rows = {r["format"]: r for r in json.loads((out / "parity.json").read_text())}
    assert set(rows) == {"openvino", "openvino-int8"}
    int8 = rows["openvino-int8"]
    assert int8["top1_agreement"] >= 0.95 and abs(int8["accuracy_cost_points"]) <= 3.0  # 153 held-out images
    assert int8["megabytes"] < 0.6 * rows["openvino"]["megabytes"]
    assert int8["speedup_batch32"] == pytest.approx(int8["images_per_s_batch32"] / rows["openvino"]["images_per_s_batch32"])
    import openvino as ov

    assert "int8" in ov.Core().read_model(str(out / "model.int8.xml")).get_rt_info(["model_info", "precision"]).astype(str)


@pytest.fixture(scope="module")
def keras_head_run(tmp_path_factory):
    """A hymenoptera run whose head (Dense 1024 + BatchNorm) was trained by Keras, calibrated at T = 2."""
    from keras_transfer.cli import main
    from keras_transfer.run import Run

    out = tmp_path_factory.mktemp("runs") / "bn"
    assert main(["train", str(HYMENOPTERA), "--head", "gap_dense_bn", "--epochs", "5", "--out", str(out), "-q"]) == 0
    record = json.loads((out / "calibration.json").read_text())
    (out / "calibration.json").write_text(json.dumps({**record, "temperature": 2.0}))
    return Run.open(out)


def test_keras_trained_head_exports_with_its_temperature(keras_head_run):
    from keras_transfer.cli import main

    assert main(["export", str(keras_head_run.path), "--format", "onnx", "openvino", "-q"]) == 0
    rows = json.loads((keras_head_run.path / "export" / "parity.json").read_text())
    for row in rows:  # against model.keras with the temperature applied
        assert row["top1_agreement"] == 1.0 and row["max_abs_prob_diff"] < 1e-3 and row["images"] == 153
    import onnxruntime as ort

    meta = ort.InferenceSession(rows[0]["file"]).get_modelmeta().custom_metadata_map
    assert meta["temperature"] == "2.0" and meta["strategy"] == "bottleneck" and meta["unknown_threshold"] == ""


def test_training_again_into_a_run_folder_removes_its_stale_exports(tmp_path):
    """An exported file (or a temperature) of an earlier model never sits beside a new one."""
    from keras_transfer.cli import main

    run, small = tmp_path / "run", ["--backbone", "efficientnet_lite0", "--max-per-class", "30", "--no-baseline"]
    assert main(["train", "digits", "--out", str(run), *small, "-q"]) == 0
    (run / "export").mkdir()
    (run / "export" / "model.onnx").write_bytes(b"an earlier model")
    assert main(["train", "digits", "--out", str(run), *small, "--solver", "keras", "--epochs", "3", "-q"]) == 0
    assert not (run / "export").exists() and json.loads((run / "calibration.json").read_text())["temperature"] > 0

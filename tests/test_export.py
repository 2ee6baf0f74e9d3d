"""Exported files run with their runtime alone and agree with predict; the README example runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import HYMENOPTERA

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def exported(ants_run):
    from keras_transfer.cli import main

    assert main(["export", str(ants_run.path), "--format", "onnx", "openvino", "-q", "--json"]) == 0
    return {"onnx": ants_run.path / "export" / "model.onnx", "openvino": ants_run.path / "export" / "model.xml"}


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_exported_file_runs_alone_and_equals_predict(fmt, exported, ants_run, tmp_path):
    from keras_transfer.api import predict
    from keras_transfer.data.images import read_image, resize

    images = sorted((HYMENOPTERA / "val" / "ants").iterdir())[:10] + sorted((HYMENOPTERA / "val" / "bees").iterdir())[:10]
    np.save(tmp_path / "x.npy", np.stack([resize(read_image(p, 224), 224) for p in images]))
    run = {"onnx": "import onnxruntime as ort\nm = ort.InferenceSession(path)\n"
                   "meta = m.get_modelmeta().custom_metadata_map\np = m.run(None, {'image': x})[0]",
           "openvino": "import openvino as ov\nmodel = ov.Core().read_model(path)\n"
                       "meta = {k: model.get_rt_info(['model_info', k]).astype(str) for k in ('class_names', 'input_size')}\n"
                       "p = ov.Core().compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})(x)[0]"}[fmt]
    code = (f"import json, sys\nimport numpy as np\nimport PIL\npath = {str(exported[fmt])!r}\nx = np.load('x.npy')\n{run}\n"
            "assert not {'keras', 'torch', 'keras_transfer'} & set(sys.modules)\n"
            "print(json.dumps({'p': np.asarray(p).tolist(), 'names': json.loads(meta['class_names']), "
            "'size': int(meta['input_size'])}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["names"] == ants_run.class_names and out["size"] == 224
    theirs = [r["predictions"][0]["label"] for r in predict(ants_run, images, top_k=1)]
    assert [out["names"][i] for i in np.argmax(out["p"], axis=1)] == theirs
    assert np.allclose(np.sum(out["p"], axis=1), 1, atol=1e-5)


def test_parity_table_is_written(exported):
    rows = json.loads((exported["onnx"].parent / "parity.json").read_text())
    assert [r["format"] for r in rows] == ["onnx", "openvino"]
    for row in rows:
        assert row["top1_agreement"] == 1.0 and row["max_abs_prob_diff"] < 1e-3 and row["images"] == 153
        assert row["images_per_s_batch1"] > 0 and row["images_per_s_batch32"] > 0 and row["megabytes"] > 5


def test_readme_example_runs_as_written(exported, ants_run, tmp_path):
    text = README.read_text()
    code = re.search(r"<!-- exported-example -->\n```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "ants").symlink_to(ants_run.path)
    bee = sorted((HYMENOPTERA / "val" / "bees").iterdir())[0]
    (tmp_path / "bee.jpg").symlink_to(bee)
    done = subprocess.run([sys.executable, "-c", code + "\nimport sys\nassert 'keras' not in sys.modules"],
                          capture_output=True, text=True, cwd=tmp_path, check=True, env={**os.environ})
    assert done.stdout.split()[0] == "bees"


def test_export_errors_are_clear_and_leave_nothing(ants_run, tmp_path, capsys):
    from keras_transfer.cli import main

    assert main(["export", str(ants_run.path), "--format", "tflite", "-q"]) == 2
    assert "unknown export format" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = main(["export", str(ants_run.path), "--format", "onnx", "--out", str(locked / "m.onnx"), "-q"])
        err = capsys.readouterr().err
        if os.geteuid() != 0:  # root writes anywhere: the read-only case is only checkable as a user
            assert code == 2 and "cannot write" in err
        assert "Traceback" not in err
    finally:
        locked.chmod(0o700)
    assert main(["export", str(tmp_path / "no-run"), "-q"]) == 1
    assert "run folder not found" in capsys.readouterr().err

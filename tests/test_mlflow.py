"""train --mlflow: a real SQLite tracking store, and a real `mlflow models predict` call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")

from keras_transfer.cli import main  # noqa: E402
from keras_transfer.data.load import DEMO_FLOWERS  # noqa: E402


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    run = folder / "flowers"
    old = Path.cwd()
    import os

    os.chdir(folder)  # MLflow's default artifact root is ./mlruns
    try:
        assert main(["train", "flowers", "--backbone", "efficientnet_lite0", "--stages", "1", "--input-size", "128",
                     "--max-per-class", "12", "--out", str(run), "--mlflow", uri, "-q"]) == 0
    finally:
        os.chdir(old)
    mlflow.set_tracking_uri(uri)
    [found] = mlflow.search_runs(experiment_names=["keras-transfer"], output_format="list")
    return folder, uri, run, found


def test_parameters_metrics_and_artifacts_are_logged(logged):
    folder, uri, run, found = logged
    metrics = json.loads((run / "metrics.json").read_text())
    assert found.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    assert found.data.metrics["baseline_accuracy"] == pytest.approx(metrics["baseline"]["accuracy"])
    assert found.data.params["backbone"] == "efficientnet_lite0" and found.data.params["input_size"] == "128"
    assert found.data.tags["evaluated_images"] == metrics["evaluated_images"]
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(found.info.run_id)}
    assert {"MODEL_CARD.md", "model.keras", "metrics.json", "export", "report"} <= names
    exported = {a.path for a in mlflow.MlflowClient().list_artifacts(found.info.run_id, "export")}
    assert "export/model.onnx" in exported


def test_the_pyfunc_model_loads_without_pickle_and_predicts(logged):
    folder, uri, run, found = logged
    model = mlflow.pyfunc.load_model(f"runs:/{found.info.run_id}/model")
    assert "python_model" not in model.metadata.flavors["python_function"]  # a loader module, no cloudpickle
    photo = sorted((DEMO_FLOWERS / "roses").iterdir())[0]
    from PIL import Image

    pixels = np.asarray(Image.open(photo).convert("RGB"))
    by_path, by_pixels = model.predict([str(photo)]), model.predict(pixels[None])
    assert by_path["label"][0] == by_pixels["label"][0]
    assert by_path["probabilities"][0] == pytest.approx(by_pixels["probabilities"][0])
    assert len(by_path["probabilities"][0]) == 5


def test_mlflow_models_predict(logged, tmp_path):
    folder, uri, run, found = logged
    photos = [sorted((DEMO_FLOWERS / name).iterdir())[0] for name in ("daisy", "sunflowers")]
    request = tmp_path / "in.json"
    request.write_text(json.dumps({"dataframe_split": {"columns": ["path"], "data": [[str(p)] for p in photos]}}))
    out = tmp_path / "out.json"
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    subprocess.run([str(mlflow_cli), "models", "predict", "-m", f"runs:/{found.info.run_id}/model", "-i", str(request),
                    "-t", "json", "-o", str(out), "--env-manager", "local"], check=True, cwd=folder,
                   env={**__import__("os").environ, "MLFLOW_TRACKING_URI": uri}, timeout=300)
    predictions = json.loads(out.read_text())["predictions"]
    assert len(predictions) == 2 and all(p["label"] in ("daisy", "dandelion", "roses", "sunflowers", "tulips")
                                         for p in predictions)
    assert all(abs(sum(p["probabilities"]) - 1) < 1e-4 for p in predictions)


def test_mlflow_missing_says_how_to_install(monkeypatch):
    from keras_transfer.base.errors import ConfigError
    from keras_transfer.export.tracking import require_mlflow

    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError, match=r"keras-transfer\[mlflow\]"):
        require_mlflow()

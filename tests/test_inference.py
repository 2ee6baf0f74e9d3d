"""Keras-free prediction of a solver run through the feature engine and the NumPy head."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np

from conftest import HYMENOPTERA


def test_predict_imports_no_keras_and_equals_the_held_out_predictions(ants_run, tmp_path):
    """A fresh process predicts the 153 val images without keras/torch, with the probabilities train saved."""
    out = tmp_path / "preds.json"
    code = (f"import sys\nfrom keras_transfer.cli import main\n"
            f"code = main(['predict', {str(ants_run.path)!r}, {str(HYMENOPTERA / 'val')!r}, '--top-k', '2', "
            f"'--output', {str(out)!r}, '-q'])\n"
            f"assert code == 0 and not {{'keras', 'torch'}} & set(sys.modules), sorted({{'keras', 'torch'}} & set(sys.modules))")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})
    rows = {row["path"]: row for row in json.loads(out.read_text())}
    saved = np.load(ants_run.path / "predictions.npz")
    for path, probabilities in zip(saved["ids"], saved["probabilities"]):
        top = rows[str(path)]["predictions"]
        assert top[0]["label"] == ants_run.class_names[int(probabilities.argmax())]
        assert abs(top[0]["probability"] - float(probabilities.max())) < 1e-5


def test_predict_writes_csv_rows_and_reports_unreadable_files(ants_run, tmp_path):
    from keras_transfer.cli import main

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = sorted((HYMENOPTERA / "val" / "bees").iterdir())[:3]
    out = tmp_path / "preds.csv"
    assert main(["predict", str(ants_run.path), *map(str, good), str(broken), "--output", str(out), "-q"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["path"] for r in rows] == [*map(str, good), str(broken)]
    assert all(r["label"] in ("ants", "bees") and 0.5 <= float(r["confidence"]) <= 1 for r in rows[:3])
    assert rows[3]["label"] == "" and "not a readable image" in rows[3]["error"]

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
    from keras_transfer.run import predict

    for row, expected in zip(rows[:3], predict(ants_run, good)):
        assert row["label"] == expected["predictions"][0]["label"] and row["error"] == ""
        assert abs(float(row["confidence"]) - expected["predictions"][0]["probability"]) < 1e-6
        assert json.loads(row["top_k"]) == expected["predictions"] and row["unknown"] == str(expected["unknown"])
    assert rows[3]["label"] == "" and "not a readable image" in rows[3]["error"]


def _flowers(tmp_path, count: int = 200):
    """``count`` flowers5 photos (none is an ant or a bee), linked into one folder."""
    folder = tmp_path / "flowers"
    folder.mkdir()
    photos = sorted((HYMENOPTERA.parent / "flowers5").rglob("*.jpg"))[::20][:count]
    for photo in photos:
        (folder / f"{photo.parent.name}_{photo.name}").symlink_to(photo)
    return folder


def test_unknown_score_separates_flowers_from_ants_and_bees(ants_run, tmp_path):
    from keras_transfer.run import evaluate_outliers, predict

    report = evaluate_outliers(ants_run, _flowers(tmp_path))
    assert report["knn"]["auroc"] >= 0.9  # the score the run keeps beats the two usual alternatives:
    # by 9.5 points with the default ensemble (0.979 vs 0.884), 10+ with Lite0 alone
    assert report["knn"]["auroc"] > max(report["max_softmax"]["auroc"], report["energy"]["auroc"]) + 0.05
    assert report["known"] == "val (153)" and report["outliers"].endswith("(200)")
    selection = ants_run.read("metrics.json")["selection"]["unknown"]
    assert selection["threshold"] == report["knn"]["threshold"] and selection["false_rejection"] == 0.05
    flagged = [r["unknown"] for r in predict(ants_run, [tmp_path / "flowers"])]
    known = [r["unknown"] for r in predict(ants_run, [HYMENOPTERA / "val"])]
    assert np.mean(flagged) > 0.6 and np.mean(known) < 0.2  # stated rate 5%, set on training images
    assert np.mean(flagged) == report["knn"]["outliers_flagged"]
    measured = selection["measured_false_rejection"]  # beside the promise: the held-out split's own rate
    assert selection["promised_false_rejection"] == 0.05 and "cross-conformal" in selection["set_on"]
    assert measured["images"] == 153 and measured["split"] == "val"
    assert measured["rate"] == np.mean(known) == measured["rejected"] / 153


def test_unknown_threshold_keeps_its_false_rejection_promise_on_new_images():
    """Cross-conformal: on new images of the training distribution the rate is about the promised one
    (averaged over 20 draws: within 1.5 points), never far above it."""
    from keras_transfer.inference.unknown import auroc, conformal_quantile, fit_unknown

    rng = np.random.default_rng(0)
    rates = []
    for seed in range(20):
        centres = rng.normal(size=(3, 16)) * 3
        draw = lambda n: centres[rng.integers(0, 3, n)] + rng.normal(size=(n, 16))  # noqa: E731
        scorer = fit_unknown(draw(300), rate=0.05, k=10, seed=seed)
        rates.append(np.mean(scorer.scores(draw(2000)) > scorer.threshold))
    assert abs(np.mean(rates) - 0.05) < 0.015 and max(rates) < 0.09, rates
    assert conformal_quantile(np.arange(1.0, 20.0), 0.05) == 19.0  # ceil(20 * 0.95) = 19th of 19
    assert conformal_quantile(np.arange(1.0, 100.0), 0.1) == 90.0  # ceil(100 * 0.9) = 90th
    assert auroc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert auroc(np.array([0.3, 0.4]), np.array([0.1, 0.2])) == 0.0
    assert auroc(np.array([0.2, 0.2]), np.array([0.2, 0.2])) == 0.5


def test_model_keras_loads_with_plain_keras_and_agrees_with_predict(ants_run, tmp_path):
    """No keras_transfer import: Keras' own layers only, safe mode on; same answers as ``predict``."""
    from keras_transfer.run import predict
    from keras_transfer.data.images import read_image, resize

    images = sorted((HYMENOPTERA / "val" / "ants").iterdir())[:3] + sorted((HYMENOPTERA / "val" / "bees").iterdir())[:3]
    size = ants_run.config.size
    np.save(tmp_path / "x.npy", np.stack([resize(read_image(p, size), size) for p in images]))  # the engine's pixels
    code = f"""
import json, sys
import keras, numpy as np
model = keras.saving.load_model({str(ants_run.path / "model.keras")!r}, safe_mode=True)
assert not any(name.startswith("keras_transfer") for name in sys.modules)
print(json.dumps(np.asarray(model.predict(np.load("x.npy"), verbose=0)).tolist()))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "KERAS_BACKEND": "torch"}, cwd=tmp_path)
    plain = np.array(json.loads(done.stdout.splitlines()[-1]))
    ours = predict(ants_run, images, top_k=2)
    ours = np.array([[next(p["probability"] for p in r["predictions"] if p["label"] == c) for c in ("ants", "bees")]
                     for r in ours])
    assert (plain.argmax(1) == ours.argmax(1)).all() and np.abs(plain - ours).max() < 1e-3


def test_a_damaged_head_file_is_a_clear_error(ants_run, tmp_path, capsys):
    import shutil

    from keras_transfer.cli import main

    copy = tmp_path / "run"
    shutil.copytree(ants_run.path, copy, ignore=shutil.ignore_patterns("features", "export"))
    (copy / "head.npz").write_bytes(b"garbage")
    assert main(["predict", str(copy), str(HYMENOPTERA / "val" / "bees"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "head.npz" in err and "damaged" in err and "Traceback" not in err

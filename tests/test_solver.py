"""The default head: the L-BFGS solver, the Keras-free model file, numbers no choice has seen."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import HYMENOPTERA
from keras_transfer.run import split_features, train
from keras_transfer.config import TrainConfig
from keras_transfer.strategies import solver
from keras_transfer.strategies.solver import C_GRID, fit_linear_head

HEAVY = ("keras", "torch", "openvino", "onnxruntime", "matplotlib", "ray")


def _modules_after(code: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", f"import sys\n{code}\nprint(' '.join(sys.modules))"],
                          capture_output=True, text=True, check=True, env={**os.environ, "KERAS_BACKEND": "torch"})
    return set(done.stdout.split())


def test_cli_help_and_parse_errors_import_no_heavy_library():
    loaded = _modules_after("from keras_transfer.cli import build_parser\nbuild_parser()\n"
                            "import keras_transfer.run, keras_transfer.strategies.bottleneck")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    for argv, code, says in ((["--help"], 0, "usage:"), (["train", "--help"], 0, "default: lite0+lite2 on the solved"),
                             (["train", "--epochs", "x"], 2, "--epochs")):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "keras_transfer.cli", *argv],
                              capture_output=True, text=True)
        imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
        shown = " ".join((done.stdout + done.stderr).split())  # argparse wraps help at the terminal's width
        assert done.returncode == code and says in shown, (argv, done.returncode)
        assert not imported & set(HEAVY), (argv, imported & set(HEAVY))


def test_solver_matches_sklearn_and_folds_standardisation(ants_run, monkeypatch):
    monkeypatch.setattr(solver, "TOL", 1e-8)  # the default stops where accuracy no longer moves
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    split, features, indices = split_features(ants_run, "train")
    labels = split.labels[indices]
    fit = fit_linear_head(features[None], labels, 2, C=0.1)
    scaler = StandardScaler().fit(features)
    # two softmax columns with an L2 penalty on both equal a logistic regression at twice the C
    reference = LogisticRegression(C=0.2, max_iter=5000, tol=1e-10).fit(scaler.transform(features), labels)
    ours, theirs = fit.head.predict(features), reference.predict_proba(scaler.transform(features))
    assert np.abs(ours - theirs).max() < 2e-3  # float32 products over 1280 features


def test_solver_matches_sklearn_multinomial_with_class_weights(monkeypatch):
    monkeypatch.setattr(solver, "TOL", 1e-8)
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [60, 25, 15])
    x = (rng.normal(size=(100, 6)) + y[:, None] * 0.8).astype(np.float32)
    x = (x - x.mean(0)) / x.std(0)
    fit = fit_linear_head(x[None], y, 4, class_weight="auto", C=0.5)  # class 3 has no image
    reference = LogisticRegression(C=0.5, class_weight="balanced", max_iter=5000, tol=1e-10).fit(x, y)
    ours = fit.head.predict(x)
    assert np.abs(ours[:, :3] - reference.predict_proba(x)).max() < 1e-3 and ours[:, 3].max() < 1e-9


def test_cross_validation_folds_are_stratified_and_cover_every_image():
    from keras_transfer.data.dataset import stratified_folds

    y = np.repeat([0, 1, 2], [50, 11, 7])
    folds = stratified_folds(y, 5, seed=0)
    for label in range(3):
        counts = np.bincount(folds[y == label], minlength=5)
        assert counts.max() - counts.min() <= 1  # each class dealt evenly
    # small classes do not all start in fold 0: the folds' sizes differ by at most one image
    assert np.ptp(np.bincount(folds, minlength=5)) <= 1 and set(folds.tolist()) == set(range(5))
    np.testing.assert_array_equal(folds, stratified_folds(y, 5, seed=0))  # seeded: the same folds again
    assert not np.array_equal(folds, stratified_folds(y, 5, seed=1))


def test_default_run_reports_held_out_figures_with_their_images(ants_run):
    metrics = ants_run.read("metrics.json")
    assert metrics["evaluated_on"] == "val" and metrics["held_out"] is True and metrics["n"] == 153
    selection = metrics["selection"]
    assert selection["solver"] == "lbfgs" and selection["folds"] == 5 and selection["C"] in C_GRID
    assert selection["fit_on"] == "train (245)" and selection["cv_images"] == 245
    assert list(selection["cv"]) == [f"{c:g}" for c in C_GRID[:len(selection["cv"])]]  # the path, in order
    losses = [v["log_loss"] for v in selection["cv"].values()]
    assert selection["C"] == C_GRID[int(np.argmin(losses))]
    baseline = metrics["baseline"]
    assert baseline["evaluated_on"] == "val" and baseline["n"] == 153
    assert metrics["accuracy"] > baseline["accuracy"] + 0.2  # transfer beats raw pixels by far here


def test_model_file_written_without_keras_equals_the_solver_head(ants_run, tmp_path):
    """model.keras of a solver run loads in a fresh Keras (safe mode) and gives the head's probabilities."""
    split, features, indices = split_features(ants_run, "train")
    code = f"""
import keras_transfer.backbones.layers, keras, numpy as np
model = keras.saving.load_model({str(ants_run.path / "model.keras")!r}, safe_mode=True)
head = model.get_layer("head")
x = np.load({str(tmp_path / "x.npy")!r})
np.save({str(tmp_path / "p.npy")!r}, np.asarray(head.predict(x, verbose=0)))
"""
    np.save(tmp_path / "x.npy", features[:20])
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    predictions = np.load(ants_run.path / "predictions.npz")
    from keras_transfer.run import Run

    run = Run.open(ants_run.path)
    head = run.model.get_layer("head")
    assert head.get_layer("predictions").units == 2
    kernel, bias = head.get_layer("predictions").get_weights()
    logits = features[:20] @ kernel + bias
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    assert np.abs(np.load(tmp_path / "p.npy") - expected).max() < 1e-5
    # the saved held-out probabilities are those of the saved model
    val, val_features, rows = split_features(ants_run, "val")
    logits = val_features @ kernel + bias
    held_out = np.exp(logits - logits.max(1, keepdims=True))
    held_out /= held_out.sum(1, keepdims=True)
    row_of = {int(index): row for row, index in enumerate(rows)}
    order = [row_of[int(index)] for index in predictions["indices"]]
    assert predictions["probabilities"].shape == (153, 2)
    assert np.abs(predictions["probabilities"] - held_out[order]).max() < 1e-5


def test_default_train_imports_no_keras_once_compiled(ants_run, tmp_path):
    """A default run whose backbone is compiled and whose features are cached never imports keras or torch."""
    out = tmp_path / "again"
    code = (f"from keras_transfer.cli import main\n"
            f"assert main(['train', {str(HYMENOPTERA)!r}, '--out', {str(out)!r}, '-q']) == 0")
    loaded = _modules_after(code)
    assert not loaded & {"keras", "torch"}, loaded & {"keras", "torch"}
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == ants_run.read("metrics.json")["accuracy"]


def test_no_choice_reads_the_held_out_labels(tmp_path, ants_run):
    """Swapping the labels of the held-out val images changes no chosen hyper-parameter."""
    swapped = tmp_path / "swapped"
    for cls, other in (("ants", "bees"), ("bees", "ants")):
        (swapped / "train").mkdir(parents=True, exist_ok=True)
        (swapped / "train" / cls).symlink_to(HYMENOPTERA / "train" / cls)
        (swapped / "val").mkdir(exist_ok=True)
        (swapped / "val" / other).symlink_to(HYMENOPTERA / "val" / cls)
    run = train(TrainConfig(data=str(swapped)), tmp_path / "run")
    honest, corrupted = ants_run.read("metrics.json"), run.read("metrics.json")
    assert corrupted["selection"]["C"] == honest["selection"]["C"]
    assert corrupted["selection"]["cv"] == honest["selection"]["cv"]
    assert corrupted["accuracy"] == pytest.approx(1 - honest["accuracy"])


def test_keras_loop_strategies_choose_on_a_selection_split_cut_from_train(tmp_path, colour_folder):
    run = train(TrainConfig(data=str(colour_folder), input_size=32, runtime="keras", solver="keras", epochs=3),
                tmp_path / "run")
    metrics, summary = run.read("metrics.json"), run.read("dataset.json")
    assert metrics["evaluated_on"] == "val" and metrics["held_out"] is True
    assert metrics["selection"]["epochs_chosen_on"].startswith("selection")
    assert summary["splits"]["test"] == metrics["n"] and summary["splits"]["train"] + summary["splits"]["val"] == 20

"""Training strategies end to end through the CLI (in-process) on small generated datasets:
the shared run folder, what each strategy may change in the backbone, heads, training
controls, Ctrl-C and resume, the auto planner and the comparison table.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from PIL import Image

from keras_transfer.run import eval_predictions, evaluate
from keras_transfer.backbones import get_backbone
from keras_transfer.cli import main
from keras_transfer.config import TrainConfig
from keras_transfer.data.load import load_dataset
from keras_transfer.data.images import read_batch
from keras_transfer.base.errors import ConfigError
from keras_transfer.backbones.heads import HEADS, HeadOptions, build_head
from keras_transfer.backbones.network import build_extractor
from keras_transfer.run import Run
from keras_transfer.strategies import auto, training
from keras_transfer.strategies.finetune import backbone_of, group_of, split_backbone

COLOURS = {"blue": (30, 30, 230), "green": (30, 200, 30), "red": (230, 30, 30)}
BACKBONE = "efficientnet_lite0"
SIZE = 64
RUN_FILES = ("model.keras", "config.json", "metrics.json", "history.json", "timing.json", "class_names.json")
# Enough epochs for each run to separate three colours; few enough to stay fast.
RUN_ARGS = {
    "bottleneck": ["--strategy", "bottleneck", "--epochs", "40"],
    "frozen": ["--strategy", "frozen", "--epochs", "4", "--lr", "0.01"],
    # (without label smoothing: on this saturated task the smoothed loss of the warm head is already
    # near its floor, so 3 epochs of the top 2 blocks would not beat it and the warm start is kept)
    "finetune": ["--strategy", "finetune", "--epochs", "30", "--finetune-epochs", "3", "--finetune-views", "1",
                 "--unfreeze", "2", "--label-smoothing", "0"],
    "finetune_all": ["--strategy", "finetune", "--epochs", "30", "--finetune-epochs", "2", "--unfreeze", "all",
                     "--finetune-lr", "1e-5"],
    "scratch": ["--strategy", "scratch", "--epochs", "4"],
}


def make_dataset(root: Path, counts: dict[str, int], size=(48, 48), seed: int = 0) -> Path:
    """A folder-per-class dataset, ``counts[name]`` images each: a noisy patch of the class
    colour covering most of a noise background, at a random place."""
    rng = np.random.default_rng(seed)
    width, height = size
    for name, count in counts.items():
        for i in range(count):
            image = rng.integers(0, 80, (height, width, 3)).astype(np.int16)
            top, left = rng.integers(0, height // 5 + 1), rng.integers(0, width // 5 + 1)
            patch = image[top:top + 4 * height // 5, left:left + 4 * width // 5]
            patch += np.array(COLOURS[name], np.int16) - 40
            path = root / name / f"{name}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
    return root


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    """Three easy classes, 16 images each (12 train / 4 val per class with --val-fraction 0.25)."""
    return make_dataset(tmp_path_factory.mktemp("data") / "colours", dict.fromkeys(COLOURS, 16))


def train(data: Path, out: Path, *args: str) -> Run:
    argv = ["train", str(data), "--out", str(out), "--backbone", BACKBONE, "--input-size", str(SIZE),
            "--val-fraction", "0.25", "--solver", "keras", "-q", *args]  # these test the Keras loop's controls
    assert main(argv) == 0
    return Run.open(out)


@pytest.fixture(scope="module")
def runs(colours, tmp_path_factory):
    """``runs(name)``: the run ``RUN_ARGS[name]`` on ``colours``, trained once per module."""
    done: dict[str, Run] = {}
    root = tmp_path_factory.mktemp("runs")

    def get(name: str) -> Run:
        if name not in done:
            done[name] = train(colours, root / name, *RUN_ARGS[name])
        return done[name]

    return get


def pretrained_backbone() -> keras.Model:
    return backbone_of(build_extractor(get_backbone(BACKBONE), SIZE, "imagenet"))


def layer_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


# --------------------------------------------------------------------------- every strategy


@pytest.mark.parametrize("name", list(RUN_ARGS))
def test_strategy_trains_and_writes_the_run_folder(name, runs, tmp_path):
    run = runs(name)
    assert all((run.path / file).is_file() for file in RUN_FILES)
    assert run.config.strategy == RUN_ARGS[name][1] and run.class_names == sorted(COLOURS)
    metrics, history, timing = run.read("metrics.json"), run.read("history.json"), run.read("timing.json")
    assert metrics["split"] == "val" and metrics["n"] == 12
    assert metrics["accuracy"] >= 0.75  # chance is 1/3
    assert len(history["loss"]) == len(history["val_loss"]) == timing["epochs"] >= 1
    assert "interrupted" not in history
    assert timing["total_seconds"] >= timing["fit_seconds"] > 0

    assert fresh_accuracy(Run.open(run.path), tmp_path) >= 5 / 6


def fresh_accuracy(run: Run, tmp_path: Path) -> float:
    """Accuracy of a run's saved model, loaded afresh in safe mode, on new raw uint8 images
    of another size (70 x 50) than the training images."""
    fresh = make_dataset(tmp_path / "fresh", dict.fromkeys(COLOURS, 2), size=(70, 50), seed=1)
    files = sorted(fresh.rglob("*.png"))
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    assert images.dtype == np.uint8 and images.shape == (6, 50, 70, 3)
    probabilities = np.asarray(run.model.predict(images, verbose=0))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    truth = [run.class_names.index(f.parent.name) for f in files]
    return float((probabilities.argmax(axis=1) == truth).mean())


# --------------------------------------------------------------------------- finetune


def test_finetune_moves_only_the_unfrozen_blocks_and_never_batchnorm(runs):
    run = runs("finetune")
    spec = get_backbone(BACKBONE)
    before = pretrained_backbone()
    tuned = backbone_of(run.model.get_layer("features"))
    groups = spec.layer_groups(before)
    unfrozen = {name for group in groups[-run.config.unfreeze:] for name in group}
    old, new = layer_weights(before), layer_weights(tuned)
    assert old.keys() == new.keys()
    moved = {name for name in old if not same(old[name], new[name])}
    batchnorm = {layer.name for layer in before.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert batchnorm & unfrozen  # the unfrozen blocks hold BatchNorm layers: the check below is real
    assert not moved & batchnorm  # gamma, beta and moving statistics all untouched
    assert not moved - unfrozen  # nothing below the freeze point changed
    weighted_unfrozen = {name for name in unfrozen & old.keys() if name not in batchnorm}
    assert weighted_unfrozen and moved == weighted_unfrozen  # every conv of the top blocks learned


def test_finetuned_run_exports_its_own_backbone(runs):
    """The exported file carries the fine-tuned weights (not the pretrained ones): it equals model.keras."""
    from keras_transfer.export import export_run
    from keras_transfer.export.parity import parity_table

    run = runs("finetune")
    row, = parity_table(run, {"onnx": export_run(run, "onnx")})
    assert row["top1_agreement"] == 1.0 and row["max_abs_prob_diff"] < 1e-3


def test_finetune_all_moves_every_weight_but_batchnorm(runs):
    run = runs("finetune_all")
    assert run.config.unfreeze == 0  # "all"
    before = pretrained_backbone()
    old, new = layer_weights(before), layer_weights(backbone_of(run.model.get_layer("features")))
    assert old.keys() == new.keys()
    moved = {name for name in old if not same(old[name], new[name])}
    batchnorm = {layer.name for layer in before.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert batchnorm and moved == old.keys() - batchnorm
    history = run.read("history.json")
    assert len(history["loss"]) == 2 and history["head_loss"]  # both phases ran
    assert min(history["val_loss"]) < history["head_val_loss"][-1]  # and fine-tuning helped


def test_fine_tuning_that_never_helps_gives_back_the_warm_start(colours, tmp_path):
    """A learning rate far too high wrecks the backbone at the first step (measured: val
    accuracy 1/3, loss ~10): the run ends with the head-only model instead."""
    run = train(colours, tmp_path / "run", "--strategy", "finetune", "--epochs", "30", "--finetune-epochs", "1",
                "--unfreeze", "all", "--finetune-lr", "0.01", "--mixup", "0.4", "--batch-size", "8",
                "--label-smoothing", "0")  # (so the training loss is the log loss of the metrics)
    history = run.read("history.json")
    assert history["val_loss"][0] > 2 * min(history["head_val_loss"])  # the fine-tuning epoch did wreck it
    old, new = layer_weights(pretrained_backbone()), layer_weights(backbone_of(run.model.get_layer("features")))
    assert all(same(old[name], new[name]) for name in old)
    metrics = run.read("metrics.json")  # the warm start, scored on images neither phase chose on
    assert metrics["evaluated_on"] == "val" and metrics["held_out"] and metrics["selection"]["epochs_chosen_on"].startswith("selection")


@pytest.mark.parametrize("name", ["finetune", "finetune_all"])
def test_finetune_evaluation_uses_the_tuned_backbone(name, runs):
    run = runs(name)
    metrics = run.read("metrics.json")
    again = evaluate(run.path)
    assert again["accuracy"] == pytest.approx(metrics["accuracy"])
    assert again["log_loss"] == pytest.approx(metrics["log_loss"], rel=1e-3, abs=1e-5)
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
    # The feature path agrees with the end-to-end saved model (tuned backbone inside), so the
    # evaluation features were recomputed with the tuned weights, not the pretrained ones.
    predictions = eval_predictions(run.path)
    _, images, failures = read_batch([Path(i) for i in predictions.ids], SIZE, "stretch")
    assert not failures
    direct = np.asarray(run.model.predict(np.stack(images), verbose=0))
    pretrained = build_extractor(get_backbone(BACKBONE), SIZE, "imagenet").predict(np.stack(images), verbose=0)
    stale = np.asarray(run.model.get_layer("head").predict(pretrained, verbose=0))
    error, stale_error = np.abs(predictions.probabilities - direct).max(), np.abs(stale - direct).max()
    assert error < 1e-3 and stale_error > 1e-2  # measured: ~2e-6 and ~0.3


def test_finetune_unfreeze_out_of_range_is_a_clear_error(colours, tmp_path, capsys):
    blocks = len(get_backbone(BACKBONE).finetune_groups)
    argv = ["train", str(colours), "--out", str(tmp_path / "bad"), "--input-size", str(SIZE), "--strategy",
            "finetune", "--unfreeze", str(blocks + 1), "--epochs", "1", "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--unfreeze" in err and f"1 to {blocks}" in err
    assert "Traceback" not in err
    assert not list((tmp_path / "bad").rglob("*.weights.h5"))  # refused before training the head


@pytest.mark.parametrize("name, size", [("efficientnet_lite0", 32), ("inception_v3", 75), ("xception", 71)])
def test_backbones_split_exactly_at_block_boundaries(name, size):
    """Inception blocks end in a named concatenation whose inside holds the next block's
    names; xception blocks end in an auto-named residual add: both cut cleanly."""
    spec = get_backbone(name)
    backbone = spec.build(size, None)
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    expected = backbone.predict(x, verbose=0)
    blocks = len(spec.finetune_groups)
    for unfreeze in sorted({1, 2, 3, blocks // 2, blocks}):
        bottom, top = split_backbone(backbone, spec.finetune_groups, unfreeze)
        assert len(bottom.outputs) == 1 and len(top.inputs) == 1
        np.testing.assert_allclose(top.predict(bottom.predict(x, verbose=0), verbose=0), expected, atol=1e-4)
        first_top = blocks - unfreeze
        groups = {model: {group_of(layer.name, spec.finetune_groups) for layer in model.layers} - {None}
                  for model in (bottom, top)}
        assert max(groups[bottom], default=-1) < first_top <= min(groups[top])
        trainable = [layer for layer in top.layers if layer.trainable_weights]
        assert trainable and not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)


# --------------------------------------------------------------------------- frozen


def test_frozen_keeps_every_backbone_weight(runs):
    run = runs("frozen")
    before = layer_weights(pretrained_backbone())
    after = layer_weights(backbone_of(run.model.get_layer("features")))
    assert before.keys() == after.keys()
    changed = [name for name in before if not same(before[name], after[name])]
    assert changed == []  # BatchNorm moving statistics included: inference mode all along


# --------------------------------------------------------------------------- heads


@pytest.mark.parametrize("preset", sorted(HEADS))
def test_head_presets_build_on_the_right_features(preset):
    spatial = build_head((2, 2, 1280), 3, preset)
    assert spatial.output_shape == (None, 3)
    out = spatial.predict(np.random.default_rng(0).normal(size=(4, 2, 2, 1280)).astype("float32"), verbose=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    if preset == "conv":
        with pytest.raises(ConfigError, match="spatial"):
            build_head((1280,), 3, preset)
    else:
        assert build_head((1280,), 3, preset).output_shape == (None, 3)


def test_head_presets_match_the_tutorials():
    layers = {preset: [type(layer).__name__ for layer in build_head((2, 2, 64), 3, preset).layers[1:]]
              for preset in HEADS}
    assert layers["gap_dense_bn"][:3] == ["GlobalAveragePooling2D", "Dense", "BatchNormalization"]
    assert build_head((2, 2, 64), 3, "gap_dense_bn").get_layer("hidden_0").units == 1024
    assert layers["flatten_bn"][:3] == ["Flatten", "BatchNormalization", "Dense"]
    assert build_head((2, 2, 64), 3, "flatten_bn").get_layer("hidden_0").units == 50
    assert layers["conv"][:3] == ["Conv2D", "Dropout", "GlobalAveragePooling2D"]
    assert build_head((2, 2, 64), 3, "conv").get_layer("conv").filters == 100
    assert layers["linear"][-1] == "Dense" and "Conv2D" not in layers["linear"]


def test_head_options_set_hidden_sizes_and_dropout():
    head = build_head((1280,), 3, "linear", HeadOptions((64, 32), dropout=0.5))
    assert [head.get_layer(f"hidden_{i}").units for i in range(2)] == [64, 32]
    assert {layer.rate for layer in head.layers if isinstance(layer, keras.layers.Dropout)} == {0.5}
    assert build_head((1280,), 3, "gap_dense_bn", HeadOptions((256,))).get_layer("hidden_0").units == 256
    assert build_head((2, 2, 64), 3, "conv", HeadOptions((8,))).get_layer("conv").filters == 8
    no_dropout = build_head((1280,), 3, "flatten_bn", HeadOptions(dropout=0.0))
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in no_dropout.layers)


@pytest.mark.parametrize("preset, pooling", [("gap_dense_bn", "avg"), ("flatten_bn", "spatial"), ("conv", "spatial")])
def test_head_trains_through_the_cli(preset, pooling, colours, tmp_path):
    run = train(colours, tmp_path / preset, "--head", preset, "--pooling", pooling, "--epochs", "15")
    assert run.config.head == preset and run.config.pooling == pooling
    head = run.model.get_layer("head")
    assert len(head.input_shape) == (4 if pooling == "spatial" else 2)
    assert run.read("metrics.json")["accuracy"] >= 0.75
    assert fresh_accuracy(run, tmp_path) >= 5 / 6


def test_conv_head_on_pooled_features_is_a_clear_error(colours, tmp_path, capsys):
    argv = ["train", str(colours), "--out", str(tmp_path / "bad"), "--input-size", str(SIZE), "--head", "conv",
            "--val-fraction", "0.25", "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "spatial" in err and "Traceback" not in err


# --------------------------------------------------------------------------- training controls


def test_class_weight_auto_on_imbalanced_data(tmp_path):
    data = make_dataset(tmp_path / "skewed", {"blue": 24, "red": 6})
    plain = train(data, tmp_path / "plain", "--epochs", "10")
    weighted = train(data, tmp_path / "weighted", "--epochs", "10", "--class-weight", "auto")
    assert json.loads((weighted.path / "config.json").read_text())["class_weight"] == "auto"
    assert plain.config.class_weight is None
    # balancing moves the predictions towards the minority class (red, 6 of 30 training images)
    from keras_transfer.run import eval_predictions

    red = plain.class_names.index("red")
    assert (eval_predictions(weighted).probabilities[:, red].mean()
            > eval_predictions(plain).probabilities[:, red].mean())
    weights = training.class_weights(np.array([0] * 24 + [1] * 6), 2, "auto")
    assert weights == pytest.approx({0: 30 / (2 * 24), 1: 30 / (2 * 6)})
    assert training.class_weights(np.array([0, 0, 2]), 3, "auto")[1] == 1.0  # absent class
    assert training.class_weights(np.array([0, 1]), 2, None) is None


def test_label_smoothing_changes_the_loss(colours, tmp_path):
    plain = train(colours, tmp_path / "plain", "--epochs", "30", "--dropout", "0")
    smooth = train(colours, tmp_path / "smooth", "--epochs", "30", "--dropout", "0", "--label-smoothing", "0.1")
    assert smooth.config.label_smoothing == 0.1
    # Cross-entropy against smoothed targets can never go below their entropy.
    target = np.array([1 - 0.1 + 0.1 / 3, 0.1 / 3, 0.1 / 3])
    floor = -(target * np.log(target)).sum()
    smooth_loss, plain_loss = smooth.read("history.json")["loss"], plain.read("history.json")["loss"]
    assert min(smooth_loss) >= floor - 1e-4
    assert min(plain_loss) < floor  # without smoothing the easy task goes below it


def test_finetune_smooths_labels_by_default_and_bottleneck_does_not(runs):
    target = np.array([1 - 0.1 + 0.1 / 3, 0.1 / 3, 0.1 / 3])
    floor = -(target * np.log(target)).sum()  # cross-entropy against smoothed targets never goes below it
    history = runs("finetune_all").read("history.json")
    assert runs("finetune_all").config.label_smoothing is None  # the default
    assert min(history["head_loss"]) >= floor - 1e-4 and min(history["loss"]) >= floor - 1e-4  # both phases
    assert min(runs("bottleneck").read("history.json")["loss"]) < floor
    assert training.label_smoothing(TrainConfig(strategy="finetune", label_smoothing=0.0)) == 0.0


def test_refit_trains_for_the_validated_epochs_at_their_learning_rates():
    x = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    y = training.one_hot(np.arange(40) % 2, 2)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, activation="softmax")])
    history = {"val_loss": [0.9, 0.5, 0.7, 0.8], "learning_rate": [0.1, 0.01, 0.01, 0.003]}
    done = training.refit(model, (x, y), history, training.FitOptions(epochs=50, learning_rate=0.1))
    assert len(done["refit_loss"]) == 2  # the best validation loss came after epoch 2
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.01)


def test_refit_bottleneck_trains_a_fresh_head_on_train_and_val(colours, tmp_path):
    args = ("--epochs", "20", "--test-fraction", "0.25")
    plain, refitted = train(colours, tmp_path / "plain", *args), train(colours, tmp_path / "refit", *args, "--refit")
    history = refitted.read("history.json")
    assert history["val_loss"] == plain.read("history.json")["val_loss"]  # the same validated run first
    assert len(history["refit_loss"]) == int(np.argmin(history["val_loss"])) + 1
    assert not same(head_weights(refitted), head_weights(plain))
    assert refitted.read("metrics.json")["split"] == "test"
    assert refitted.read("metrics.json")["accuracy"] >= 0.9


@pytest.mark.parametrize("args, message", [
    (("--refit", "--strategy", "frozen", "--test-fraction", "0.25"), "bottleneck strategy"),
])
def test_refit_off_bottleneck_is_a_clear_error(colours, tmp_path, capsys, args, message):
    argv = ["train", str(colours), "--out", str(tmp_path / "run"), "--input-size", str(SIZE), "-q", *args]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def head_weights(run: Run) -> list[np.ndarray]:
    return [np.asarray(w) for w in run.model.get_layer("head").get_weights()]


def test_seed_makes_bottleneck_bit_reproducible(colours, tmp_path):
    args = ("--epochs", "15", "--seed", "3")
    first, second = train(colours, tmp_path / "a", *args), train(colours, tmp_path / "b", *args)
    def curves(run: Run) -> dict:
        return {k: v for k, v in run.read("history.json").items() if k != "epoch_seconds"}  # wall time varies

    assert curves(first) == curves(second)
    assert same(head_weights(first), head_weights(second))
    other = train(colours, tmp_path / "c", "--epochs", "15", "--seed", "4")
    assert curves(other) != curves(first)
    assert not same(head_weights(other), head_weights(first))


# --------------------------------------------------------------------------- Ctrl-C and resume


def interrupt_once(monkeypatch, phase: str, epoch: int) -> list[int]:
    """Makes the progress callback raise KeyboardInterrupt, as Ctrl-C would, once: at the end
    of ``epoch`` (0-based) of training phase ``phase``. Returns the interrupted epochs."""
    original, interrupted = training.EpochProgress.on_epoch_end, []

    def on_epoch_end(self, index, logs=None):
        original(self, index, logs)
        if self.desc == phase and index == epoch and not interrupted:
            interrupted.append(index)
            raise KeyboardInterrupt

    monkeypatch.setattr(training.EpochProgress, "on_epoch_end", on_epoch_end)
    return interrupted


def test_ctrl_c_keeps_the_best_model_and_the_same_command_resumes(colours, tmp_path, monkeypatch):
    epochs, stop_at = 8, 3
    interrupted = interrupt_once(monkeypatch, "head", stop_at - 1)
    out = tmp_path / "run"
    run = train(colours, out, "--epochs", str(epochs), "--seed", "1")
    history = run.read("history.json")
    assert interrupted == [stop_at - 1] and history["interrupted"] == [1.0]
    assert 1 <= len(history.get("loss", [])) <= stop_at
    best = next((out / "checkpoints").rglob("head.best.weights.h5"))
    saved = build_head((1280,), 3)
    saved.load_weights(best)
    assert same(head_weights(run), [np.asarray(w) for w in saved.get_weights()])
    assert (run.path / "metrics.json").is_file() and run.read("metrics.json")["n"] == 12

    resumed = train(colours, out, "--epochs", str(epochs), "--seed", "1")
    history = resumed.read("history.json")
    assert "interrupted" not in history
    assert len(history["loss"]) == epochs - stop_at  # BackupAndRestore started after epoch 3
    assert not list((out / "checkpoints").rglob("head_backup/*"))  # the backup is gone once finished


def test_ctrl_c_while_finetune_trains_its_head_stops_before_fine_tuning(colours, tmp_path, monkeypatch):
    interrupted = interrupt_once(monkeypatch, "head", 1)
    run = train(colours, tmp_path / "run", "--strategy", "finetune", "--epochs", "6", "--finetune-epochs", "2")
    history = run.read("history.json")
    assert interrupted == [1] and history["interrupted"] == [1.0] and 1 <= len(history["head_loss"]) <= 2
    assert "loss" not in history  # no fine-tuning epoch ran
    assert not list((tmp_path / "run").rglob("finetune.best.weights.h5"))
    after = layer_weights(backbone_of(run.model.get_layer("features")))
    before = layer_weights(pretrained_backbone())
    assert all(same(before[name], after[name]) for name in before)


# --------------------------------------------------------------------------- auto


def test_auto_plans_within_the_budget_and_explains_itself(colours, tmp_path):
    out = tmp_path / "auto"
    assert main(["train", str(colours), "--out", str(out), "--strategy", "auto", "--time-budget", "0.2", "-b", BACKBONE,
                 "--epochs", "30", "--val-fraction", "0.25", "-q"]) == 0
    run = Run.open(out)
    assert all((out / name).is_file() for name in (*RUN_FILES, "plan.json"))
    plan = run.read("plan.json")
    assert set(plan) >= {"budget_seconds", "probe_seconds", "probes", "estimates_seconds", "chosen", "reason"}
    assert plan["budget_seconds"] == 0.2
    # The first probe always spends more than a quarter of 0.2 s: no other backbone is probed.
    assert [p["backbone"] for p in plan["probes"]] == [BACKBONE]
    assert 0 < plan["probes"][0]["accuracy"] <= 1 and plan["probes"][0]["images_per_second"] > 0
    estimates = plan["estimates_seconds"]
    assert {"bottleneck", "finetune (0 views)"} <= set(estimates) and all(v > 0 for v in estimates.values())
    # Every fine-tune plan is estimated longer than 80% of what the budget leaves.
    assert (plan["chosen"]["backbone"], plan["chosen"]["strategy"]) == (BACKBONE, "bottleneck")
    assert BACKBONE in plan["reason"] and "bottleneck" in plan["reason"]
    assert (run.config.strategy, run.config.backbone) == ("bottleneck", BACKBONE)
    assert run.config.input_size is None  # the planner uses the backbone's native size
    assert run.read("metrics.json")["accuracy"] >= 0.75
    assert fresh_accuracy(run, tmp_path) >= 5 / 6
    # The default bottleneck is always a candidate; the choice reads the selection split only.
    assert plan["candidates"][0]["candidate"] == plan["kept"] == "default bottleneck"
    assert all(c["images"].startswith("selection") for c in plan["candidates"])
    assert [p["phase"] for p in plan["phases"]][:2] == ["default bottleneck", "plan (probes, speed)"]
    assert all(p["actual_s"] >= 0 for p in plan["phases"])
    assert run.read("metrics.json")["evaluated_on"] == "val" and run.read("metrics.json")["held_out"]


def test_auto_tries_the_mirror_view_and_keeps_the_better_candidate(colours, tmp_path, monkeypatch):
    """With time to spare, auto also fits the default with the mirror view; the selection split decides.
    (The planner is told to keep the default, so no other candidate trains: this test is about the mirror.)"""
    keep_default = dataclasses.replace  # the plan auto would make when nothing else fits: the default bottleneck
    monkeypatch.setattr(auto, "plan", lambda context, budget: (keep_default(context.config, strategy="bottleneck"), {
        "budget_seconds": budget, "estimates_seconds": {}, "reason": "test: keep the default"}))
    out = tmp_path / "auto"
    assert main(["train", str(colours), "--out", str(out), "--strategy", "auto", "--time-budget", "600", "-b", BACKBONE,
                 "--input-size", str(SIZE), "--val-fraction", "0.25", "-q"]) == 0
    run = Run.open(out)
    plan = run.read("plan.json")
    scores = {c["candidate"]: c for c in plan["candidates"]}
    assert set(scores) == {"default bottleneck", auto.MIRRORED}
    assert all(c["images"].startswith("selection") for c in scores.values())
    kept = min(scores, key=lambda name: scores[name]["log_loss"])
    assert plan["kept"] == kept and run.config.flip == (kept == auto.MIRRORED)
    assert [p["phase"] for p in plan["phases"]][:2] == ["default bottleneck", auto.MIRRORED]
    assert plan["phases"][-1]["phase"] == f"{kept}, refit on train + selection"
    assert run.read("metrics.json")["evaluated_on"] == "val" and run.read("metrics.json")["accuracy"] >= 0.75


def test_deadline_stops_training_and_keeps_the_best_weights(tmp_path):
    x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    y = training.one_hot(np.arange(64) % 2, 2)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, activation="softmax")])
    options = training.FitOptions(epochs=50, learning_rate=0.01, batch_size=8, deadline=time.perf_counter() - 1)
    history = training.fit(model, (x, y), (x, y), options, tmp_path / "ckpt", "head")
    assert len(history["loss"]) == 1  # stopped within the first epoch, as soon as a batch ended


def planner_context(colours, monkeypatch, training_speed: float):
    """A planning context whose probes and training-speed measurement are faked (no models)."""
    fake = {"efficientnet_lite0": auto.Probe("efficientnet_lite0", 0.90, 200.0),
            "efficientnet_lite1": auto.Probe("efficientnet_lite1", 0.97, 100.0)}
    measured = []
    monkeypatch.setattr(auto, "list_backbones", lambda: list(fake))
    monkeypatch.setattr(auto, "probe", lambda context, name: fake[name])
    monkeypatch.setattr(auto, "training_speed", lambda context, name, size: measured.append(size) or training_speed)
    dataset = load_dataset(colours, val_fraction=0.25)
    return SimpleNamespace(config=TrainConfig(data=str(colours), input_size=SIZE), dataset=dataset), fake, measured


def test_planner_picks_the_best_probe_and_the_most_views_that_fit(colours, monkeypatch):
    """Full fine-tuning never fits (training measured at 1e-6 img/s): cached views decide."""
    context, fake, measured = planner_context(colours, monkeypatch, 1e-6)
    dataset = context.dataset
    finetune = {v: auto.estimate_seconds("finetune", dataset, 100.0, v) for v in (4, 2, 1, 0)}
    assert finetune[4] > finetune[2] > finetune[1] > finetune[0] > auto.estimate_seconds("bottleneck", dataset, 100.0)

    config, explanation = auto.plan(context, 1e6)
    assert measured == list(auto.SPEED_PROBE_SIZES)
    assert (config.backbone, config.strategy, config.finetune_views, config.input_size, config.unfreeze) == (
        "efficientnet_lite1", "finetune", 4, None, 2)
    assert [p["backbone"] for p in explanation["probes"]] == list(fake)
    assert explanation["estimates_seconds"]["finetune (4 views)"] == pytest.approx(finetune[4])
    config, _ = auto.plan(context, (finetune[1] + finetune[2]) / 2 / 0.8)
    assert (config.strategy, config.finetune_views) == ("finetune", 1)
    config, explanation = auto.plan(context, finetune[0])
    assert config.strategy == "bottleneck" and "does not fit" in explanation["reason"]
    measured.clear()
    config, explanation = auto.plan(context, 1e-9)  # no time for a second probe
    assert [p["backbone"] for p in explanation["probes"]] == ["efficientnet_lite0"]
    assert (config.backbone, config.strategy) == ("efficientnet_lite0", "bottleneck")
    assert not measured  # hopeless: the training speed is not even measured
    fake["efficientnet_lite0"] = auto.Probe("efficientnet_lite0", 0.969, 200.0)  # a tie: the faster wins
    assert auto.plan(context, 1e6)[0].backbone == "efficientnet_lite0"


def test_planner_fine_tunes_every_block_at_the_largest_side_that_fits(colours, monkeypatch):
    context, _, _ = planner_context(colours, monkeypatch, 50.0)
    config, explanation = auto.plan(context, 1e6)
    assert (config.backbone, config.strategy, config.unfreeze) == ("efficientnet_lite1", "finetune", 0)
    assert (config.input_size, config.finetune_epochs) == (224, auto.FULL_EPOCHS[1])
    assert explanation["chosen"]["input_size"] == 224 and "every block" in explanation["reason"]
    sizes = []
    for budget in (1e6, 300, 120, 80, 60, 45, 40, 35):
        config, explanation = auto.plan(context, budget)
        if config.strategy == "finetune" and config.unfreeze == 0:
            key = f"finetune, all blocks, {config.input_size} px, {config.finetune_epochs} epochs"
            assert explanation["estimates_seconds"][key] <= 0.8 * budget
            assert auto.FULL_EPOCHS[0] <= config.finetune_epochs <= auto.FULL_EPOCHS[1]
            sizes.append(config.input_size)
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) >= 2  # less time, smaller images


# --------------------------------------------------------------------------- compare


def test_compare_json_has_one_row_per_run(runs, capsys):
    paths = [runs("bottleneck").path, runs("finetune").path]
    capsys.readouterr()
    assert main(["compare", *map(str, paths), "--json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["strategy"] for row in rows] == ["bottleneck", "finetune"]
    for row, path in zip(rows, paths):
        run = Run.open(path)
        metrics, timing = run.read("metrics.json"), run.read("timing.json")
        assert row["epochs"] == timing["epochs"] == len(run.read("history.json")["loss"])
        assert row["s/epoch"] == pytest.approx(timing["fit_seconds"] / timing["epochs"])
        assert row["total s"] == pytest.approx(timing["total_seconds"])
        assert (row["log loss"], row["accuracy"], row["kappa"]) == (
            metrics["log_loss"], metrics["accuracy"], metrics["cohen_kappa"])
        assert all(math.isfinite(row[k]) for k in ("s/epoch", "total s", "log loss", "accuracy", "kappa"))

    assert main(["compare", *map(str, paths), "-q"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["run", "strategy", "backbone"] and len(table) == 4  # header, rule, two runs
    assert "finetune" in table[3]

"""The training loop every strategy shares: Adam, LR on plateau, early stopping with best
weights restored, class weights, label smoothing, checkpoints that survive Ctrl-C and resume.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from keras_transfer.base import log


@dataclass(frozen=True)
class FitOptions:
    """How to fit one model (one phase of a strategy)."""

    epochs: int
    learning_rate: float
    batch_size: int = 32
    patience: int = 15
    label_smoothing: float = 0.0
    class_weight: str | None = None  # None or "auto" (balanced)
    schedule: str = "plateau"  # "plateau": Adam, LR cut on plateau; "cosine": AdamW, warm-up + cosine decay
    deadline: float | None = None  # time.perf_counter() at which training stops (best weights kept)


class Deadline(keras.callbacks.Callback):
    """Stops training before ``deadline``: after a batch once it has passed, or after an epoch
    when the next one would end past it (the epoch time is measured as it goes)."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline, self.began, self.longest = deadline, 0.0, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() > self.deadline:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.longest = max(self.longest, time.perf_counter() - self.began)
        if time.perf_counter() + self.longest > self.deadline:
            self.model.stop_training = True


class EpochProgress(keras.callbacks.Callback):
    """One progress bar over epochs, showing the latest validation metrics."""

    def __init__(self, epochs: int, desc: str):
        super().__init__()
        self.epochs, self.desc, self.bar, self.seconds, self.began = epochs, desc, None, [], 0.0

    def on_train_begin(self, logs=None):
        self.bar = log.progress(total=self.epochs, desc=self.desc, unit="epoch")

    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.began)
        logs = logs or {}
        self.bar.set_postfix(val_loss=f"{logs.get('val_loss', float('nan')):.4f}",
                             val_acc=f"{logs.get('val_accuracy', float('nan')):.3f}")
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


def class_weights(labels: np.ndarray | None, num_classes: int, mode: str | None) -> dict[int, float] | None:
    """Balanced class weights (``mode="auto"``) for the classes present, else (or without labels) None."""
    if mode != "auto" or labels is None:
        return None
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    return {int(c): float(w) for c, w in zip(present, weights)} | {
        c: 1.0 for c in range(num_classes) if c not in present}


def optimizer_for(options: FitOptions, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam at a fixed rate (cut on plateau by a callback), or AdamW with warm-up + cosine decay."""
    if options.schedule == "plateau":
        return keras.optimizers.Adam(options.learning_rate)
    steps = max(1, options.epochs * steps_per_epoch)
    rate = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=options.learning_rate,
                                                  warmup_steps=max(1, steps // 10))
    return keras.optimizers.AdamW(rate, weight_decay=0.05)


def compile_model(model: keras.Model, options: FitOptions, steps_per_epoch: int) -> None:
    model.compile(optimizer=optimizer_for(options, steps_per_epoch),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])


def fit(model: keras.Model, train, val, options: FitOptions, checkpoint_dir: Path,
        name: str, labels: np.ndarray | None = None, keep_start: bool = False) -> dict[str, list[float]]:
    """Fits a compiled-or-not model; survives Ctrl-C with its best weights and resumes.

    Args:
        model: The model to train (compiled here).
        train: ``(x, one_hot_y)`` arrays or a ``keras.utils.PyDataset`` yielding them.
        val: Validation data of the same kind.
        options: Epochs, learning rate, patience, smoothing, class weights.
        checkpoint_dir: Folder for the best weights and the resumable backup.
        name: Phase name, used for file names and the progress bar.
        labels: Integer training labels, needed for ``class_weight="auto"``.
        keep_start: The starting weights are the first candidate: if no epoch beats their
            validation loss, they are what the model ends with (fine-tuning never makes a
            warm-started model worse).

    Returns:
        The Keras history dict, plus ``interrupted: [1.0]`` when stopped by Ctrl-C.
    """
    arrays = isinstance(train, tuple)
    compile_model(model, options, math.ceil(len(train[0]) / options.batch_size) if arrays else len(train))
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    best = checkpoint_dir / f"{name}.best.weights.h5"
    record = checkpoint_dir / f"{name}.best.json"  # the validation loss of the weights in ``best``
    if keep_start and not best.exists():  # (a resumed run already has its best so far)
        start = (model.evaluate(*val, batch_size=options.batch_size, verbose=0, return_dict=True)
                 if arrays else model.evaluate(val, verbose=0, return_dict=True))
        model.save_weights(best)
        record.write_text(json.dumps({"val_loss": float(start["loss"])}))
    earlier = json.loads(record.read_text())["val_loss"] if best.exists() and record.exists() else None
    checkpoint = keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True,
                                                 save_weights_only=True, initial_value_threshold=earlier)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(checkpoint_dir / f"{name}_backup")),
        checkpoint,
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=options.patience, restore_best_weights=True),
        progress := EpochProgress(options.epochs, name),
    ]
    if options.deadline is not None:
        callbacks.append(Deadline(options.deadline))
    if options.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3,
                                                           patience=max(2, options.patience // 3)))
    weights = class_weights(labels, model.output_shape[-1], options.class_weight)
    kwargs = {"batch_size": options.batch_size, "shuffle": True} if arrays else {}
    try:
        model.fit(*(train if arrays else (train,)), validation_data=val, epochs=options.epochs,
                  callbacks=callbacks, class_weight=weights, verbose=0, **kwargs)
        interrupted = False
    except KeyboardInterrupt:
        log.warn(f"interrupted: keeping the best {name} weights so far; run train again to continue")
        interrupted = True
    history = getattr(getattr(model, "history", None), "history", None) or {}
    history = {k: [float(v) for v in vals] for k, vals in history.items()}
    history["epoch_seconds"] = progress.seconds
    # A resumed fit starts its own early stopping afresh: weights saved before the interruption
    # (or by an earlier run of the same config) win when their validation loss is lower.
    if best.exists() and (interrupted or checkpoint.best < min(history.get("val_loss", [np.inf]))):
        model.load_weights(best)
    if best.exists() and np.isfinite(checkpoint.best):
        record.write_text(json.dumps({"val_loss": float(checkpoint.best)}))
    return {**history, "interrupted": [1.0]} if interrupted else history


def refit(model: keras.Model, train: tuple[np.ndarray, np.ndarray], history: dict[str, list[float]],
          options: FitOptions, labels: np.ndarray | None = None) -> dict[str, list[float]]:
    """Trains a fresh ``model`` on ``train`` (training + validation data) for as many epochs as the
    validated ``history`` took to reach its best validation loss, replaying that run's learning rates.

    Returns:
        ``refit_loss`` per epoch, or ``{"interrupted": [1.0]}`` when stopped by Ctrl-C (the
        caller keeps its validated model).
    """
    epochs = int(np.argmin(history["val_loss"])) + 1
    rates = history.get("learning_rate") or [options.learning_rate]
    compile_model(model, options, math.ceil(len(train[0]) / options.batch_size))
    replay = keras.callbacks.LearningRateScheduler(lambda epoch, _: float(rates[min(epoch, len(rates) - 1)]))
    weights = class_weights(labels, model.output_shape[-1], options.class_weight)
    try:
        done = model.fit(*train, batch_size=options.batch_size, epochs=epochs, shuffle=True, class_weight=weights,
                         callbacks=[replay, EpochProgress(epochs, "refit")], verbose=0)
    except KeyboardInterrupt:
        log.warn("interrupted: keeping the head validated before the refit")
        return {"interrupted": [1.0]}
    return {"refit_loss": [float(v) for v in done.history["loss"]]}


FINETUNE_LABEL_SMOOTHING = 0.1  # CIFAR-10, 100/class, every block at 160 px: 79.8% test vs 77.4% without


def label_smoothing(config) -> float:
    """``--label-smoothing`` if given, else 0.1 for both phases of ``finetune``, else 0."""
    if config.label_smoothing is not None:
        return config.label_smoothing
    return FINETUNE_LABEL_SMOOTHING if config.strategy == "finetune" else 0.0


def options_for(config, default_epochs: int, learning_rate: float | None = None,
                epochs: int | None = None) -> FitOptions:
    """FitOptions from a TrainConfig; ``config.epochs`` (if set) overrides the strategy default."""
    return FitOptions(epochs=epochs or config.epochs or default_epochs,
                      learning_rate=learning_rate or config.learning_rate, batch_size=config.batch_size,
                      patience=config.patience, label_smoothing=label_smoothing(config),
                      class_weight=config.class_weight)

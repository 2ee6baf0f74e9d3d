"""Training configuration: one flat, frozen dataclass, saved as JSON beside the model."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from keras_transfer.data.images import RESIZE_MODES
from keras_transfer.errors import ConfigError, unknown_choice
from keras_transfer.features.runtime import RuntimeOptions

STRATEGIES = ("bottleneck", "frozen", "finetune", "scratch", "auto")
TUNED_STRATEGIES = ("finetune", "scratch")  # strategies whose extractor weights move
CLASS_WEIGHTS = ("auto",)
POOLINGS = ("avg", "max", "spatial")
SOLVERS = ("auto", "lbfgs", "keras")
HEAD_PRESETS = ("linear", "gap_dense_bn", "flatten_bn", "conv")  # keras_transfer.heads.HEADS (no keras import here)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    Example:
        >>> TrainConfig(data="digits", epochs=5).validate().epochs
        5
    """

    data: str = "digits"
    backbone: str = "efficientnet_lite0"
    weights: str | None = "imagenet"
    offline: bool = False
    input_size: int | None = None
    resize: str = "stretch"
    pooling: str = "avg"
    strategy: str = "bottleneck"
    head: str = "linear"
    hidden_units: tuple[int, ...] = ()
    dropout: float = 0.2
    epochs: int | None = None  # None: the strategy's default
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 15
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    max_per_class: int | None = None
    seed: int = 0
    augment_views: int = 0
    tta_views: int = 0
    runtime: str = "auto"
    precision: str = "fp32"
    unfreeze: int = 0  # top blocks fine-tuned; 0: all of them
    finetune_epochs: int | None = None
    finetune_lr: float = 1e-4
    finetune_views: int = 2
    mixup: float = 0.0
    class_weight: str | None = None
    label_smoothing: float | None = None  # None: 0.1 for finetune, else 0
    time_budget: float | None = None
    refit: bool = False  # bottleneck (Keras loop): train the head again on train + val
    solver: str = "auto"  # bottleneck head: auto (L-BFGS for the linear head), lbfgs, keras (epoch loop)
    baseline: bool = True  # also report a logistic regression on raw 16x16 pixels of the same split

    def validate(self) -> TrainConfig:
        """Checks every field; returns self so calls can chain."""
        from keras_transfer.backbones import get_backbone

        spec = get_backbone(self.backbone)
        if self.resize not in RESIZE_MODES:
            raise unknown_choice("resize mode", self.resize, RESIZE_MODES)
        if self.pooling not in POOLINGS:
            raise unknown_choice("pooling", self.pooling, POOLINGS)
        if self.strategy not in STRATEGIES:
            raise unknown_choice("strategy", self.strategy, STRATEGIES)
        if self.input_size is not None and self.input_size < spec.min_input_size:
            raise ConfigError(f"input size {self.input_size} is too small for {spec.name}",
                              f"at least {spec.min_input_size} pixels")
        if self.head not in HEAD_PRESETS:
            raise unknown_choice("head", self.head, HEAD_PRESETS)
        if self.solver not in SOLVERS:
            raise unknown_choice("solver", self.solver, SOLVERS)
        if self.solver == "lbfgs" and (self.head != "linear" or self.hidden_units or self.pooling == "spatial"):
            raise ConfigError("--solver lbfgs fits the linear head on pooled features only",
                              "--head linear, no --hidden, --pooling avg or max",
                              f"--head {self.head} --hidden {list(self.hidden_units)} --pooling {self.pooling}",
                              hint="use --solver auto or keras")
        if self.class_weight not in (None, *CLASS_WEIGHTS):
            raise unknown_choice("class weight", str(self.class_weight), CLASS_WEIGHTS)
        checks = [("epochs", self.epochs is None or self.epochs >= 1), ("batch_size", self.batch_size >= 1),
                  ("learning_rate", self.learning_rate > 0), ("patience", self.patience >= 0),
                  ("dropout", 0 <= self.dropout < 1), ("hidden_units", all(u > 0 for u in self.hidden_units)),
                  ("augment_views", self.augment_views >= 0), ("tta_views", self.tta_views >= 0),
                  ("unfreeze", self.unfreeze >= 0), ("finetune_lr", self.finetune_lr > 0),
                  ("finetune_epochs", self.finetune_epochs is None or self.finetune_epochs >= 1),
                  ("finetune_views", self.finetune_views >= 0), ("mixup", self.mixup >= 0),
                  ("label_smoothing", self.label_smoothing is None or 0 <= self.label_smoothing < 1),
                  ("time_budget", self.time_budget is None or self.time_budget > 0)]
        for name, ok in checks:
            if not ok:
                raise ConfigError(f"invalid {name}", received=repr(getattr(self, name)))
        if self.refit and self.strategy != "bottleneck":
            raise ConfigError("--refit is for the bottleneck strategy", "--strategy bottleneck",
                              f"--strategy {self.strategy}")
        RuntimeOptions(self.runtime, self.precision).validate()
        return self

    @property
    def size(self) -> int:
        """The input side used: ``input_size`` or the backbone's native size."""
        from keras_transfer.backbones import get_backbone

        return self.input_size or get_backbone(self.backbone).input_size

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        raw = json.loads(path.read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        raw = {k: v for k, v in raw.items() if k in known}
        raw["hidden_units"] = tuple(raw.get("hidden_units", ()))
        return cls(**raw)

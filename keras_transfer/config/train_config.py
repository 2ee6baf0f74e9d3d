"""Training configuration: one flat, frozen dataclass, saved as JSON beside the model."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from keras_transfer.data.images import RESIZE_MODES
from keras_transfer.base.errors import ConfigError, unknown_choice
from keras_transfer.base.paths import write_json
from keras_transfer.backbones import DEFAULT_BACKBONE, DEFAULT_ENSEMBLE, get_backbone
from keras_transfer.backbones.weights import offline_mode
from keras_transfer.features.executor import check_executor
from keras_transfer.features.runtime import RuntimeOptions

STRATEGIES = ("bottleneck", "frozen", "finetune", "scratch", "auto")
CONVERTED = ("onnx:", "hub:", "timm:")  # backbones whose weights come with their reference
TUNED_STRATEGIES = ("finetune", "scratch")  # strategies whose extractor weights move
CLASS_WEIGHTS = ("auto", "none")
THRESHOLD_METRICS = ("f1", "f2", "f0.5")  # strategies.multilabel_solver.THRESHOLD_METRICS (F-beta)
POOLINGS = ("avg", "max", "spatial")
SOLVERS = ("auto", "lbfgs", "keras")
HEAD_PRESETS = ("linear", "gap_dense_bn", "flatten_bn", "conv")  # keras_transfer.backbones.heads.HEADS (no keras import here)


# the JSON values each field annotation of TrainConfig accepts in config.json
_JSON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": (type(None),),
               "tuple[int, ...]": (list, tuple)}


def block_count(text: str) -> int:
    """--unfreeze value: a block count, or 'all' (stored as 0)."""
    return 0 if text.strip().lower() == "all" else int(text)


def weights_choice(text: str) -> str | None:
    """--weights value: 'imagenet', a file, or 'none' (random, stored as None)."""
    return None if text.lower() == "none" else text


def option(default, help: str, flag: str | None = None, short: str | None = None, parse=None, cli: bool = True,
           const: str | None = None):
    """A ``TrainConfig`` field and its command-line option (``keras-transfer train`` is generated
    from these: ``--name-with-dashes`` unless ``flag``; the type from the annotation unless
    ``parse``; a bool that defaults to True becomes ``--no-<name>``; with ``const`` the option's
    value is optional, ``const`` when the flag is given alone)."""
    return field(default=default, metadata={"help": help, "flag": flag, "short": short, "parse": parse, "cli": cli,
                                            "const": const})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; each field is also a ``train`` option.

    Example:
        >>> TrainConfig(data="digits", epochs=5).validate().epochs
        5
    """

    data: str = option("flowers", "dataset folder, images.npy+labels.npy folder, .npz, or a built-in: 'flowers' "
                                  "(the bundled demo photos) or 'digits'", cli=False)
    labels: str | None = option(None, "CSV/TSV table of image file name (or id) and class, for a data folder of "
                                      "unsorted images; an optional split column assigns splits")
    multi_label: bool = option(False, "class folders: an image lying in several of them (the same bytes) carries "
                                      "each of those labels (several labels per image)")
    labels_from_name: str | None = option(None, "classes read from file names: a regular expression whose first "
                                                "group is the class, e.g. '^(.+)_\\d+\\.jpg$', or 'prefix' (the "
                                                "name before its last underscore)")
    splits: str | None = option(None, "which folder is each split, e.g. train=seg_train,test=seg_test (for "
                                      "unusual names, or two folders claiming one split)")
    exclude: str | None = option(None, "file list of images to leave out (one path per line), or the keep list "
                                       "`keras-transfer audit --write-clean LIST` writes (trains on those only)")
    unlabelled: str | None = option(None, "folder of unlabelled images for self-training: the head's confident "
                                          "predictions join the training images as labels, at a threshold chosen "
                                          "by cross-validation inside the training images, and only where that "
                                          "cross-validation says they help (metrics.json says how many were used)")
    corrections: str | None = option(None, "corrections table (CSV: path relative to DATA, action relabel | "
                                           "exclude, label) of fixes applied after the splits are cut: relabelled "
                                           "images take their new class, excluded ones are left out and listed "
                                           "(the studio writes it)")
    backbone: str | None = option(None, "registered backbone (keras-transfer backbones lists them), or several "
                                        "joined by + (their pooled features side by side), or onnx:FILE, "
                                        "hub:PRESET, timm:NAME (docs/backbones.md); default: lite0+lite2 on the "
                                        "solved default path (bottleneck or auto, linear head), else "
                                        "efficientnet_lite0", short="-b")
    weights: str | None = option("imagenet", "'imagenet', a local weights file (e.g. a keras *_notop.h5, or a "
                                             "timm: backbone's state dict), or 'none' (random)", parse=weights_choice)
    offline: bool = option(False, "never use the network: ImageNet weights only from the bundle or the keras "
                                  "cache (also KERAS_TRANSFER_OFFLINE=1)")
    input_size: int | None = option(None, "input side in pixels (default: the backbone's)")
    resize: str = option("stretch", "how images become square: stretch | pad | crop")
    pooling: str = option("avg", "avg | max | spatial (the h x w feature map)")
    stages: int | None = option(None, "stages pooled and concatenated: 1 = the last feature map only, N = also the "
                                      "ends of the N - 1 stages before it (default: 4 for EfficientNet-Lite on "
                                      "the solved default path, else 1)")
    flip: bool = option(False, "also train on the left-right mirror of every image and average both at "
                               "prediction (cached views; twice the feature time)")
    strategy: str = option("bottleneck", "bottleneck | frozen | finetune | scratch | auto")
    head: str = option("linear", "linear | gap_dense_bn | flatten_bn | conv (spatial features)")
    hidden_units: tuple[int, ...] = option((), "hidden layer sizes of the head", flag="--hidden")
    dropout: float = option(0.2, "dropout before each head layer")
    epochs: int | None = option(None, "training epochs (default: the strategy's)")
    batch_size: int = option(32, "images per training step")
    learning_rate: float = option(1e-3, "learning rate of the head", flag="--lr")
    patience: int = option(15, "early-stopping patience (epochs)")
    val_fraction: float = option(0.2, "share of the training images cut as validation when there is no val split")
    test_fraction: float = option(0.0, "share cut as a test split when there is none")
    max_per_class: int | None = option(None, "at most N images per class in each split on disk "
                                             "(e.g. 100-per-class experiments)")
    seed: int = option(0, "seed of the splits, folds and augmentations")
    augment_views: int = option(0, "cached augmented views per training image (flip, rotate, zoom, shift, "
                                   "shear, colour)")
    tta_views: int = option(0, "augmented views averaged at evaluation")
    runtime: str = option("auto", "feature runtime: auto | openvino | onnx | keras")
    precision: str = option("auto", "auto | fp32 | bf16 | int8: auto is the measured choice for this CPU (fp32 where "
                                    "nothing faster keeps the accuracy); bf16 (CPUs with AMX / AVX512-BF16) and int8 "
                                    "(NNCF, calibrated on training images) are faster, less exact")
    executor: str = option("local", "where cache misses are extracted: local | ray (a Ray Data actor pool; "
                                    "same features; needs pip install 'keras-transfer[ray]')")
    ray_address: str | None = option(None, "--executor ray: cluster address, e.g. ray://head:10001 or auto "
                                           "(default: $RAY_ADDRESS, else a new local Ray instance)")
    unfreeze: int = option(0, "finetune: top blocks to unfreeze, or 'all' (0)", parse=block_count)
    finetune_epochs: int | None = option(None, "finetune: epochs of the unfrozen phase (default: the strategy's)")
    finetune_lr: float = option(1e-4, "finetune: learning rate of the unfrozen phase")
    finetune_views: int = option(2, "finetune: augmented views per image cached at the freeze point")
    mixup: float = option(0.0, "finetune (all blocks): mixup strength alpha, e.g. 0.4 (0: off)")
    class_weight: str | None = option(None, "'auto': balance the classes; 'none': never; default: balanced by the "
                                            "solved head when the largest class is over 3x the smallest")
    label_smoothing: float | None = option(None, "default: 0.1 for --strategy finetune, else 0")
    time_budget: float | None = option(None, "auto: seconds to spend (default 300)")
    refit: bool = option(False, "bottleneck (Keras loop): after early stopping, train the head again on "
                                "train + val (needs a test split)")
    solver: str = option("auto", "bottleneck head: auto (L-BFGS with L2 by cross-validation on the training "
                                 "images, for the linear head) | lbfgs | keras (the epoch loop, early-stopped "
                                 "on a validation split)")
    solver_c: float | None = option(None, "solved head: use this inverse L2 strength C instead of choosing it by "
                                          "cross-validation (the studio's refit reuses its run's)", flag="--solver-c")
    baseline: bool = option(True, "report a logistic regression on raw 16x16 pixels of the same images beside "
                                  "the accuracy")
    mlflow: str | None = option(None, "also log the run to MLflow: parameters, held-out metrics, report, model card, "
                                      "model.keras, the ONNX export and a pyfunc model (`mlflow models predict`); "
                                      "the tracking URI, e.g. sqlite:///mlflow.db (alone: $MLFLOW_TRACKING_URI or "
                                      "MLflow's default); needs pip install 'keras-transfer[mlflow]'", const="")
    threshold_metric: str = option("f1", "several labels per image: what each label's decision threshold "
                                         "maximises on out-of-fold training images: f1 | f2 | f0.5")

    def __post_init__(self):
        if self.backbone is None:  # the default depends on what the backbone is for
            object.__setattr__(self, "backbone", DEFAULT_ENSEMBLE if self.solved else DEFAULT_BACKBONE)
        if self.backbone.startswith("timm:"):  # a weights file is the reference's, by its absolute path
            from keras_transfer.backbones.timm_models import resolved

            file = self.weights if self.weights not in ("imagenet", None) else None
            object.__setattr__(self, "backbone", resolved(self.backbone, file))
            object.__setattr__(self, "weights", "imagenet" if file else self.weights)

    def validate(self) -> TrainConfig:
        """Checks every field; returns self so calls can chain."""
        if self.backbone.startswith(CONVERTED) and self.weights != "imagenet":
            raise ConfigError(f"{self.backbone} brings its own weights", "--weights imagenet (the default)"
                              + (", or a state dict file" if self.backbone.startswith("timm:") else ""),
                              f"--weights {self.weights or 'none'}")
        if self.backbone.startswith(CONVERTED) and self.strategy in TUNED_STRATEGIES:
            raise ConfigError(f"{self.backbone} runs as one ONNX graph: its weights cannot be trained",
                              "--strategy bottleneck, frozen or auto", f"--strategy {self.strategy}",
                              hint="fine-tune a Keras backbone (efficientnet_lite0, resnet50, ...)")
        with offline_mode(self.offline):  # hub: / timm: convert by name here: --offline must reach them
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
        if self.stages is not None and not 1 <= self.stages <= spec.max_stages:
            raise ConfigError("invalid --stages", f"a whole number from 1 to {spec.max_stages} for {spec.name}",
                              repr(self.stages))
        one_map = self.pooling == "spatial" or self.strategy in TUNED_STRATEGIES  # one backbone's feature map
        if self.pool_stages > 1 and one_map:
            raise ConfigError("--stages above 1 pools several stages of a frozen backbone",
                              "--stages 1 with --pooling spatial or --strategy finetune / scratch",
                              f"--stages {self.stages} --pooling {self.pooling} --strategy {self.strategy}")
        if spec.members and one_map:
            raise ConfigError(f"the ensemble {spec.name} concatenates pooled features of frozen backbones",
                              "--strategy bottleneck, frozen or auto with --pooling avg or max",
                              f"--strategy {self.strategy} --pooling {self.pooling}",
                              hint="fine-tune one backbone, e.g. --backbone " + spec.members[-1].name)
        if spec.members and self.weights not in ("imagenet", None):
            raise ConfigError(f"the ensemble {spec.name} loads each member's own ImageNet weights", "--weights imagenet",
                              str(self.weights), hint="train a single backbone to use a weights file")
        if self.flip and not self.solved:
            raise ConfigError("--flip trains the solved linear head (the default path) on mirror images too",
                              "--strategy bottleneck or auto, --solver auto or lbfgs, --head linear, no --hidden, "
                              "--pooling avg or max, no --refit",
                              hint="--augment-views N adds random flips to the other heads")
        if self.threshold_metric not in THRESHOLD_METRICS:
            raise unknown_choice("threshold metric", self.threshold_metric, THRESHOLD_METRICS)
        if self.class_weight not in (None, *CLASS_WEIGHTS):
            raise unknown_choice("class weight", str(self.class_weight), CLASS_WEIGHTS)
        at_least_1, at_least_0, positive = "a whole number >= 1", "a whole number >= 0", "a number > 0"
        checks = [("epochs", self.epochs is None or self.epochs >= 1, at_least_1),
                  ("batch_size", 1 <= self.batch_size <= 65536, "a whole number from 1 to 65536"),
                  ("learning_rate", 0 < self.learning_rate <= 10, "a number in (0, 10]"),
                  ("patience", self.patience >= 0, at_least_0),
                  ("dropout", 0 <= self.dropout < 1, "a number in [0, 1)"),
                  ("hidden_units", all(u > 0 for u in self.hidden_units), "whole numbers >= 1"),
                  ("augment_views", 0 <= self.augment_views <= 100, "a whole number from 0 to 100"),
                  ("tta_views", 0 <= self.tta_views <= 100, "a whole number from 0 to 100"),
                  ("unfreeze", self.unfreeze >= 0, "a whole number >= 0, or 'all'"),
                  ("finetune_lr", 0 < self.finetune_lr <= 10, "a number in (0, 10]"),
                  ("finetune_epochs", self.finetune_epochs is None or self.finetune_epochs >= 1, at_least_1),
                  ("finetune_views", 0 <= self.finetune_views <= 100, "a whole number from 0 to 100"),
                  ("mixup", 0 <= self.mixup <= 10, "a number in [0, 10]"),
                  ("label_smoothing", self.label_smoothing is None or 0 <= self.label_smoothing < 1,
                   "a number in [0, 1)"),
                  ("time_budget", self.time_budget is None or 0 < self.time_budget < float("inf"), positive),
                  ("val_fraction", 0 < self.val_fraction < 1, "a number in (0, 1)"),
                  ("test_fraction", 0 <= self.test_fraction < 1, "a number in [0, 1)"),
                  ("val_fraction", self.val_fraction + self.test_fraction < 1,
                   "--val-fraction + --test-fraction below 1 (images must be left to train on)"),
                  ("max_per_class", self.max_per_class is None or self.max_per_class >= 1, at_least_1),
                  ("input_size", self.input_size is None or self.input_size <= 4096, "at most 4096 pixels"),
                  ("solver_c", self.solver_c is None or 0 < self.solver_c < float("inf"), positive),
                  ("seed", 0 <= self.seed < 2**32, "a whole number from 0 to 2**32 - 1")]
        fields_by_name = {f.name: f for f in dataclasses.fields(self)}
        for name, ok, expected in checks:
            if not ok:
                flag = fields_by_name[name].metadata.get("flag") or "--" + name.replace("_", "-")
                raise ConfigError(f"invalid {flag}", expected, repr(getattr(self, name)))
        if self.unlabelled and not self.solved:
            raise ConfigError("--unlabelled adds pseudo-labels to the solved linear head", "--strategy bottleneck or "
                              "auto, --head linear, no --hidden, --pooling avg or max, --solver auto or lbfgs",
                              f"--strategy {self.strategy} --head {self.head} --solver {self.solver}")
        if self.refit and self.strategy != "bottleneck":
            raise ConfigError("--refit is for the bottleneck strategy", "--strategy bottleneck",
                              f"--strategy {self.strategy}")
        RuntimeOptions(self.runtime, self.precision).validate()
        if self.precision == "int8" and self.executor != "local":  # its actors would need the calibration images
            raise ConfigError("--precision int8 extracts on the local executor", "--executor local",
                              f"--executor {self.executor}", hint="or --precision fp32 on the cluster")
        check_executor(self.executor, self.runtime)
        return self

    @property
    def size(self) -> int:
        """The input side used: ``input_size`` or the backbone's native size."""
        return self.input_size or get_backbone(self.backbone).input_size

    @property
    def solved(self) -> bool:
        """The default path: a linear head solved on standardised cached features (not a Keras loop)."""
        return (self.strategy in ("bottleneck", "auto") and self.solver != "keras" and self.head == "linear"
                and not self.hidden_units and self.pooling != "spatial" and not self.refit)

    @property
    def pool_stages(self) -> int:
        """The stages pooled: ``stages``, else the backbone's default on the solved path (which
        standardises the stages' differently scaled features), else 1."""
        if self.stages is not None:
            return self.stages
        if not self.solved:
            return 1

        return get_backbone(self.backbone).default_stages

    def save(self, path: Path) -> None:
        write_json(path, dataclasses.asdict(self))

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        raw = json.loads(path.read_text())
        if not isinstance(raw, dict):
            raise ValueError(f"not a JSON object: {str(raw)[:80]}")
        fields_by_name = {f.name: f for f in dataclasses.fields(cls)}
        raw = {k: v for k, v in raw.items() if k in fields_by_name}
        for name, value in raw.items():  # an edited file fails here, not deep inside a command
            allowed = tuple(t for part in str(fields_by_name[name].type).split("|") for t in _JSON_TYPES[part.strip()])
            if not isinstance(value, allowed) or (isinstance(value, list) and not all(isinstance(v, int) for v in value)):
                raise ValueError(f"{name} is {value!r}, not {fields_by_name[name].type}")
        raw["hidden_units"] = tuple(raw.get("hidden_units", ()))
        return cls(**raw)

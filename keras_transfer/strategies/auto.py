"""The automatic planner: probe backbones on a sample, estimate each strategy's time on this
machine, pick the best plan that fits the time budget, explain the choice in the run folder.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from keras_transfer.base import log
from keras_transfer.backbones import get_backbone, list_backbones
from keras_transfer.config import TrainConfig
from keras_transfer.data.dataset import Dataset, Split, cap_per_class
from keras_transfer.strategies.base import FitResult, TrainContext, get_strategy

PROBE_PER_CLASS = 25
DEFAULT_BUDGET = 300.0
FINETUNE_VIEWS = (4, 2, 1, 0)
FULL_SIZES = (224, 192, 160, 128, 96)  # training sides tried for full fine-tuning, largest first
FULL_EPOCHS = (4, 10)  # fewest worth running, most needed (with the cosine schedule)
SPEED_PROBE_SIZES = (96, 160)  # training speed measured at these sides, a power law fitted between
EPOCH_EFFICIENCY = 0.85  # a real epoch (decoding, augmentation, callbacks) vs bare train steps: 69 vs 80 img/s
FIXED_SECONDS = 20.0  # exports and compilations of a full fine-tune (before and after training)
HEAD_SAMPLES_PER_SECOND = 20_000  # Keras head training on cached features, measured here
TOP_COST = 1 / 3  # one training pass through the unfrozen top blocks vs one backbone forward


@dataclass(frozen=True)
class Probe:
    """One backbone's probe: accuracy of a linear head on a sample, and its measured speed."""

    backbone: str
    accuracy: float
    images_per_second: float


ONE_STAGE = {"stages": None, "flip": False}  # fine-tuning trains one backbone's last map on its own views


def _sample(split: Split, per_class: int, seed: int) -> Split:
    """At most ``per_class`` images of each class, deterministically."""
    return split.subset(cap_per_class(split.labels, per_class, seed), f"probe_{split.name}")


def probe(context: TrainContext, backbone: str) -> Probe:
    """Features of a per-class sample through ``backbone``; linear-probe accuracy and speed."""
    config = dataclasses.replace(context.config, backbone=backbone, input_size=None)
    source = context.make_features(config)
    train = _sample(context.dataset.train, PROBE_PER_CLASS, config.seed)
    val = _sample(context.dataset.val, PROBE_PER_CLASS, config.seed)
    x_train, i_train = source(train)
    x_val, i_val = source(val)
    scaler = StandardScaler().fit(x_train)
    model = LogisticRegression(max_iter=2000, C=0.5).fit(scaler.transform(x_train), train.labels[i_train])
    accuracy = float((model.predict(scaler.transform(x_val)) == val.labels[i_val]).mean())
    return Probe(backbone, accuracy, images_per_second(source))


def images_per_second(source) -> float:
    """Backbone throughput of ``source``'s runtime on one warm batch of random images."""
    runtime, size = source.engine.runtime, source.size
    images = np.random.default_rng(0).integers(0, 256, (runtime.batch_size, size, size, 3), np.uint8)
    list(runtime.stream([(None, images)]))  # warm-up (OpenVINO has no plain ``infer``)
    start = time.perf_counter()
    list(runtime.stream([(None, images)]))
    return runtime.batch_size / max(time.perf_counter() - start, 1e-6)


def training_speed(context: TrainContext, backbone: str, size: int) -> float:
    """Measured images/s of a full fine-tuning step (every block trained) at ``size`` px here."""
    import keras

    from keras_transfer.backbones.network import build_extractor
    from keras_transfer.strategies.finetune import phase_two_options, unfreeze_all
    from keras_transfer.strategies.training import compile_model

    config = context.config
    extractor = build_extractor(get_backbone(backbone), size, config.weights, offline=config.offline)
    unfreeze_all(extractor)
    n = len(context.dataset.class_names)
    model = keras.Sequential([extractor, keras.layers.Dense(n, activation="softmax")])
    compile_model(model, phase_two_options(config, 10), steps_per_epoch=10)  # as the real phase 2 trains
    images = np.random.default_rng(0).integers(0, 256, (config.batch_size, size, size, 3)).astype(np.float32)
    labels = np.eye(n, dtype=np.float32)[np.arange(config.batch_size) % n]
    model.train_on_batch(images, labels)  # warm-up
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        model.train_on_batch(images, labels)
        seconds.append(time.perf_counter() - start)
    return config.batch_size / max(float(np.median(seconds)), 1e-6)


@dataclass
class FullPlan:
    """What ``full_finetune_plan`` found: the config (None: nothing fits), its time estimates
    per plan and the measured training speeds."""

    config: TrainConfig | None = None
    estimates: dict[str, float] = field(default_factory=dict)
    speeds: dict[str, float] = field(default_factory=dict)


def full_finetune_plan(context: TrainContext, best: Probe, left: float) -> FullPlan:
    """The largest training side at which full fine-tuning runs enough epochs within ``left``.

    The step speed is measured at the two ``SPEED_PROBE_SIZES`` and a power law of the side
    through them gives the others (measured exponents here: ~2-2.5). An epoch trains on every
    training image and validates on every validation image (~1/3 of a training step each).
    The plan's config is None when no side fits ``FULL_EPOCHS[0]`` epochs.
    """
    spec, dataset = get_backbone(best.backbone), context.dataset
    sizes = [s for s in FULL_SIZES if spec.min_input_size <= s <= spec.input_size]

    def fixed(size: int) -> float:  # exports, compilations and the head's bottleneck phase
        return FIXED_SECONDS + estimate_seconds("bottleneck", dataset, best.images_per_second * (spec.input_size / size) ** 2)

    if not sizes or fixed(sizes[-1]) >= 0.8 * left:
        return FullPlan()  # hopeless: not even worth measuring the training speed
    start = time.perf_counter()
    (small, large), speeds = SPEED_PROBE_SIZES, [training_speed(context, best.backbone, s) for s in SPEED_PROBE_SIZES]
    exponent = float(np.clip(np.log(speeds[0] / speeds[1]) / np.log(large / small), 1.5, 3.0))
    found = FullPlan(speeds={f"{s} px": v for s, v in zip(SPEED_PROBE_SIZES, speeds)})
    left -= time.perf_counter() - start
    for size in sizes:
        speed = EPOCH_EFFICIENCY * speeds[1] * (large / size) ** exponent
        epoch = (len(dataset.train) + len(dataset.val) / 3) / speed
        epochs = min(FULL_EPOCHS[1], int((0.8 * left - fixed(size)) / epoch))
        found.estimates[f"finetune, all blocks, {size} px, {max(epochs, FULL_EPOCHS[0])} epochs"] = (
            fixed(size) + max(epochs, FULL_EPOCHS[0]) * epoch)
        if epochs >= FULL_EPOCHS[0]:
            found.config = dataclasses.replace(context.config, backbone=best.backbone, strategy="finetune",
                                               unfreeze=0, input_size=size, finetune_epochs=epochs, **ONE_STAGE)
            break
    return found


def estimate_seconds(strategy: str, dataset: Dataset, speed: float, views: int = 0) -> float:
    """Rough wall time of a strategy at ``speed`` backbone images/s on this machine.

    Feature extraction dominates; the head trains ~40 epochs on cached features; fine-tuning
    adds its views at the freeze point and ~10 epochs over them through the top blocks.
    """
    n_train, n_all = len(dataset.train), sum(len(s) for s in dataset.splits.values())
    bottleneck = n_all / speed + 5 + 40 * n_train / HEAD_SAMPLES_PER_SECOND
    if strategy == "bottleneck":
        return bottleneck
    if strategy == "finetune":
        return bottleneck + n_train * (1 + views) / speed * (1 + 10 * TOP_COST)
    raise ValueError(strategy)


def plan(context: TrainContext, budget: float) -> tuple[TrainConfig, dict]:
    """Chooses backbone, strategy and views; returns the resolved config and the explanation."""
    candidates = [name for name in list_backbones() if get_backbone(name).offline_weights()]
    start = time.perf_counter()
    probes = []
    for name in candidates:
        if probes and time.perf_counter() - start > 0.25 * budget:
            log.info("auto: skipping the remaining probes to stay within the budget")
            break
        probes.append(probe(context, name))
        log.info(f"auto: probe {name}: accuracy {probes[-1].accuracy:.3f}, "
                 f"{probes[-1].images_per_second:.0f} img/s")
    best = max(probes, key=lambda p: (round(p.accuracy, 2), p.images_per_second))
    left = budget - (time.perf_counter() - start)
    estimates = {"bottleneck": estimate_seconds("bottleneck", context.dataset, best.images_per_second)}
    choice = dataclasses.replace(context.config, backbone=best.backbone, input_size=None, strategy="bottleneck")
    reason = "bottleneck: fine-tuning does not fit the budget"
    found = full_finetune_plan(context, best, left)
    estimates.update(found.estimates)
    full = found.config
    if full is not None:
        choice = full
        reason = (f"finetune every block at {full.input_size} px for {full.finetune_epochs} epochs: "
                  "the largest side with enough epochs in the budget (full fine-tuning adapts the "
                  "backbone to the data, the largest gain here)")
    left = budget - (time.perf_counter() - start)  # measuring the training speed took some
    for views in () if full else FINETUNE_VIEWS:
        seconds = estimate_seconds("finetune", context.dataset, best.images_per_second, views)
        estimates[f"finetune ({views} views)"] = seconds
        if seconds <= 0.8 * left:
            choice = dataclasses.replace(choice, strategy="finetune", finetune_views=views, unfreeze=2, **ONE_STAGE)
            reason = f"finetune with {views} augmented views: the best expected accuracy that fits the budget"
            break
    explanation = {"budget_seconds": budget, "probe_seconds": time.perf_counter() - start,
                   "probes": [dataclasses.asdict(p) for p in probes], "estimates_seconds": estimates,
                   "training_images_per_second": found.speeds,
                   "chosen": {"backbone": choice.backbone, "strategy": choice.strategy,
                              "input_size": choice.input_size, "unfreeze": choice.unfreeze,
                              "finetune_epochs": choice.finetune_epochs, "finetune_views": choice.finetune_views},
                   "reason": f"{best.backbone}: best probe accuracy ({best.accuracy:.3f}) on "
                             f"{PROBE_PER_CLASS} images per class; {reason}"}
    return choice, explanation


def _estimate_key(config: TrainConfig) -> str:
    """The ``estimates_seconds`` entry of a planned config."""
    if config.strategy != "finetune":
        return config.strategy
    if config.unfreeze == 0:
        return f"finetune, all blocks, {config.input_size} px, {config.finetune_epochs} epochs"
    return f"finetune ({config.finetune_views} views)"


MIRRORED = "default bottleneck + mirror view"  # the candidate trained on (and averaging) the mirror images too
RESERVE_SECONDS = 25.0  # after training: export + compile of a tuned backbone, held-out pass, saving


@dataclass
class Clock:
    """The budget's clock: each phase's estimate beside its measured time, for plan.json."""

    budget: float
    start: float = field(default_factory=time.perf_counter)
    phases: list[dict] = field(default_factory=list)

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)

    def run(self, name: str, estimate: float | None, work):
        began = time.perf_counter()
        result = work()
        self.phases.append({"phase": name, "estimate_s": estimate, "actual_s": time.perf_counter() - began})
        return result


def selection_scores(result: FitResult, source, split: Split, flip: bool = False) -> dict:
    """Log loss and accuracy of a candidate on the selection split (never the held-out one);
    ``flip``: its probabilities averaged with the mirror images', as it will predict."""
    from keras_transfer.evaluation.metrics import sample_losses

    if result.classifier is None:
        views, indices = source.views(split, 0, flip=flip)
        probabilities, labels = np.mean([result.head.predict(v) for v in views], axis=0), split.labels[indices]
    else:  # a Keras-trained candidate: its classifier on streamed batches (undecodable images dropped)
        from keras_transfer.data.stream import ImageBatches

        size, n = int(result.classifier.get_layer("features").input_shape[1]), int(result.classifier.output_shape[-1])
        batches = ImageBatches(split, size, n, 32, source.resize_mode)
        pairs = [(np.asarray(result.classifier.predict_on_batch(images)), targets.argmax(1))
                 for images, targets in (batches[i] for i in range(len(batches)))]
        probabilities, labels = np.concatenate([p for p, _ in pairs]), np.concatenate([t for _, t in pairs])
    return {"log_loss": float(sample_losses(labels, probabilities).mean()),
            "accuracy": float((probabilities.argmax(1) == labels).mean()), "images": f"{split.name} ({len(labels)})"}


class AutoStrategy:
    """Fits the default bottleneck model first (cheap) and, when the budget leaves three times
    its time, the same with the mirror view (trained on, averaged at prediction); plans the best
    use of what the budget leaves (see ``plan``), runs it with a deadline, and keeps whichever
    candidate scores the best log loss on the selection split; writes ``plan.json`` (estimate vs
    actual per phase, every candidate's selection-split scores).
    """

    name = "auto"
    default_epochs = 0

    def fit(self, context: TrainContext) -> FitResult:
        from keras_transfer.strategies.bottleneck import BottleneckStrategy

        budget = context.config.time_budget or DEFAULT_BUDGET
        clock = Clock(budget, context.started or time.perf_counter())
        default = clock.run("default bottleneck", None, lambda: BottleneckStrategy(learn_from_val=False).fit(context))
        base = dataclasses.replace(context.config, strategy="bottleneck", input_size=None)
        candidates = [("default bottleneck", base, default, context.features)]
        seconds = clock.phases[0]["actual_s"]
        if not base.flip and clock.left() > 3 * seconds + RESERVE_SECONDS:  # mirror features cost about as much again
            mirrored = dataclasses.replace(base, flip=True)
            with_flip = dataclasses.replace(context, config=mirrored)
            result = clock.run(MIRRORED, seconds, lambda: BottleneckStrategy(learn_from_val=False).fit(with_flip))
            candidates.append((MIRRORED, mirrored, result, context.features))
        planned = clock.run("plan (probes, speed)", None, lambda: plan(context, max(clock.left() - RESERVE_SECONDS, 1e-3)))
        config, explanation = planned
        if (config.strategy, config.backbone) != ("bottleneck", context.config.backbone):
            chosen = TrainContext(config, context.dataset, get_backbone(config.backbone), context.make_features(config),
                                  context.checkpoints, context.make_features, deadline=clock.start + budget - RESERVE_SECONDS,
                                  started=context.started)
            strategy = BottleneckStrategy(learn_from_val=False) if config.strategy == "bottleneck" else get_strategy(config.strategy)
            estimate = explanation["estimates_seconds"].get(_estimate_key(config))
            result = clock.run(f"{config.strategy} ({config.backbone})", estimate, lambda: strategy.fit(chosen))
            candidates.append((f"{config.strategy} ({config.backbone})", config, result, chosen.features))
        scored = [(name, cfg, result, source, selection_scores(result, source, context.dataset.val, cfg.flip))
                  for name, cfg, result, source in candidates]
        name, config, result, source, _ = min(scored, key=lambda c: c[4]["log_loss"])
        if name in ("default bottleneck", MIRRORED):  # kept: fit it as a plain run does, on every training image
            whole = dataclasses.replace(context, config=config, dataset=context.dataset.without_selection_split())
            result = clock.run(f"{name}, refit on train + selection", None, lambda: BottleneckStrategy().fit(whole))
        log.info(f"auto: {explanation['reason']}; kept {name} (selection-split log loss)")
        result.config, result.features = config, result.features or source
        result.notes["plan.json"] = {**explanation, "budget_seconds": budget, "planned_with_seconds":
                                     explanation["budget_seconds"], "kept": name, "phases": clock.phases,
                                     "candidates": [{"candidate": n, **scores} for n, _, _, _, scores in scored]}
        return result

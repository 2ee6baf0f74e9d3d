"""``keras-transfer backbones DATA --try a,b,c``: which backbone, measured on the user's own images.

For each candidate: the cross-validated accuracy of the linear probe the bottleneck strategy
solves (``solver.cross_validate``: L-BFGS softmax regression on standardised features, folds
split by image, the C it would choose) on the **training images only** (the validation and test
splits are never read), and the feature speed of its compiled engine on this machine (img/s on
random pixels, fp32, and bf16 where the CPU has it). The recommendation: the fastest candidate
whose probe accuracy is within one binomial standard error of the best one's (a tie on accuracy
goes to speed); ``auto`` tries the backbones whose weights are usable offline (the Lite family).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_transfer.backbones import get_backbone, list_backbones
from keras_transfer.base import log
from keras_transfer.base.errors import ConfigError, KerasTransferError
from keras_transfer.config import TrainConfig, dataset_of, feature_source
from keras_transfer.strategies.solver import cross_validate

SPEED_SECONDS = 1.5  # timing of each runtime: at least this long, after a warm-up batch


@dataclass(frozen=True)
class Candidate:
    """One backbone's measurement: probe accuracy (cross-validated on the training images) and speed."""

    backbone: str
    accuracy: float
    images: int
    folds: int
    fp32_images_per_second: float
    bf16_images_per_second: float | None
    feature_dim: int
    license: str


@dataclass(frozen=True)
class Trial:
    """Every candidate, the recommended one and why."""

    candidates: list[Candidate]
    recommended: str
    reason: str
    bf16: str  # "yes", or why bf16 was not measured

    def as_dict(self) -> dict:
        return {"candidates": [dataclasses.asdict(c) for c in self.candidates], "recommended": self.recommended,
                "reason": self.reason, "bf16": self.bf16}


def candidate_names(spec: str) -> list[str]:
    """``a,b,c`` -> the names; ``auto`` -> the registered backbones with offline weights (the Lite family)."""
    if spec.strip().lower() == "auto":
        return [name for name in list_backbones() if get_backbone(name).offline_weights()]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if len(names) < 1 or len(set(names)) != len(names):
        raise ConfigError("invalid --try", "backbone names separated by commas (each once), or auto", repr(spec))
    for name in names:
        get_backbone(name)  # an unknown name fails now, with close matches, before any extraction
    return names


def _throughput(source) -> float:
    """Images per second of ``source``'s compiled engine on random pixels (after one warm-up batch)."""
    runtime, size = source.engine.runtime, source.size
    images = np.random.default_rng(0).integers(0, 256, (4 * runtime.batch_size, size, size, 3), np.uint8)
    list(runtime.stream([(None, images)]))
    count, start = 0, time.perf_counter()
    while count < 2 * len(images) or time.perf_counter() - start < SPEED_SECONDS:
        list(runtime.stream([(None, images)]))
        count += len(images)
    return count / (time.perf_counter() - start)


def _bf16_speed(config: TrainConfig, folder: Path) -> tuple[float | None, str]:
    try:
        return _throughput(feature_source(dataclasses.replace(config, precision="bf16"), folder)), "yes"
    except KerasTransferError as error:  # no bf16 on this CPU (AVX2 only, e.g. AMD EPYC): said once in the note
        return None, f"{error.what} (needs {error.expected})" if error.expected else error.what


def probe_backbone(config: TrainConfig, folder: Path, with_bf16: bool = True) -> tuple[Candidate, str]:
    """Measures one candidate (``config.backbone``) on ``config``'s training images; (candidate, bf16 note)."""
    dataset = dataset_of(config)
    train = dataset.train
    source = feature_source(config, folder)
    features, indices = source(train)
    y = train.labels[indices]
    x = features.reshape(len(features), -1)
    std = x.std(axis=0)
    scaled = ((x - x.mean(axis=0)) / np.where(std < 1e-6, 1.0, std)).astype(np.float32)
    scores, _, folds, _ = cross_validate(scaled[None], y, len(dataset.class_names), seed=config.seed)
    if not scores:
        raise ConfigError("too few training images to cross-validate a probe", "at least 2 images in every class",
                          f"{np.bincount(y).tolist()} images per class")
    best = min(scores.values(), key=lambda s: s["log_loss"])  # the C the solver would choose
    bf16, note = _bf16_speed(config, folder) if with_bf16 else (None, "not asked")
    spec = get_backbone(config.backbone)
    return Candidate(config.backbone, best["accuracy"], int(min(len(y), 2000)), folds, _throughput(source), bf16,
                     int(x.shape[1]), spec.license or "not stated"), note


def recommend(candidates: list[Candidate]) -> tuple[str, str]:
    """The fastest candidate within one standard error of the best probe accuracy; (name, reason)."""
    best = max(candidates, key=lambda c: c.accuracy)
    error = math.sqrt(max(best.accuracy * (1 - best.accuracy), 1e-4) / best.images)
    close = [c for c in candidates if c.accuracy >= best.accuracy - error]
    chosen = max(close, key=lambda c: c.fp32_images_per_second)
    if chosen is best:
        return chosen.backbone, f"best probe accuracy ({best.accuracy:.1%})" + (
            f" and fastest of {len(close)} within one standard error ({error:.1%})" if len(close) > 1 else "")
    return chosen.backbone, (f"within one standard error ({error:.1%}) of the best probe accuracy "
                             f"({best.backbone}, {best.accuracy:.1%}) and {chosen.fp32_images_per_second / max(best.fp32_images_per_second, 1e-9):.1f}x its speed")


def try_backbones(data: str, candidates: str | list[str], seed: int = 0, max_per_class: int | None = None,
                  plot: str | Path | None = None, with_bf16: bool = True) -> Trial:
    """Measures each candidate backbone on the training images of ``data`` and recommends one.

    Args:
        data: A dataset folder (as ``train`` takes it; split the same way, same seed).
        candidates: ``"a,b,c"``, ``"auto"`` or a list of names.
        seed: Split and fold seed.
        max_per_class: At most this many images per class in each split (a quicker probe).
        plot: Where to write the accuracy-vs-speed PNG (None: no plot).
        with_bf16: Also time the bf16 engine where the CPU offers it.

    Example:
        >>> trial = try_backbones("flowers", "auto")  # doctest: +SKIP
        >>> trial.recommended  # doctest: +SKIP
        'efficientnet_lite0'
    """
    names = candidate_names(candidates) if isinstance(candidates, str) else list(candidates)
    measured, bf16 = [], "yes"
    with tempfile.TemporaryDirectory(prefix="kt-probe-") as folder:
        for name in log.progress(names, desc="backbones", unit="backbone"):
            config = TrainConfig(data=data, backbone=name, seed=seed, max_per_class=max_per_class).validate()
            candidate, note = probe_backbone(config, Path(folder) / str(len(measured)), with_bf16)
            measured.append(candidate)
            bf16 = note if note != "yes" else bf16
    chosen, reason = recommend(measured)
    trial = Trial(measured, chosen, reason, bf16)
    if plot is not None:
        write_plot(trial, Path(plot))
    return trial


def format_trial(trial: Trial) -> str:
    """The table, the bf16 note and the recommendation, as printed by the CLI."""
    rows = [[c.backbone, f"{c.accuracy:.1%}", c.images, c.folds, f"{c.fp32_images_per_second:.1f}",
             "-" if c.bf16_images_per_second is None else f"{c.bf16_images_per_second:.1f}", c.feature_dim, c.license]
            for c in trial.candidates]
    text = log.table(["backbone", "probe acc", "images", "folds", "img/s fp32", "img/s bf16", "features", "licence"],
                     rows, title="linear probe, cross-validated on the training images only")
    note = "" if trial.bf16 == "yes" else f"\nbf16 not measured: {trial.bf16}"
    return f"{text}{note}\nrecommended: {trial.recommended} ({trial.reason})"


def write_plot(trial: Trial, path: Path) -> Path:
    """Probe accuracy against fp32 feature speed, one labelled point per candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=110)
    for c in trial.candidates:
        axes.scatter(c.fp32_images_per_second, c.accuracy * 100, s=60 if c.backbone == trial.recommended else 30,
                     color="tab:red" if c.backbone == trial.recommended else "tab:blue")
        axes.annotate(c.backbone, (c.fp32_images_per_second, c.accuracy * 100), textcoords="offset points",
                      xytext=(5, 4), fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("feature speed here, fp32 (images/s, log scale)")
    axes.set_ylabel("linear-probe accuracy, cross-validated (%)")
    axes.set_title(f"recommended: {trial.recommended}", fontsize=10)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path

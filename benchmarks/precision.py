"""Reduced precision without the accuracy cost? ``python -m benchmarks.precision [--quick]``.

Per dataset and precision, side by side in one run on this CPU, with the default features
(Lite0 + Lite2 at 260 px, 4 pooled stages) through the product's own path (``feature_source``
with ``--precision P``: same engine, cache, calibration and solver as ``train``):
- feature error: mean relative L2 distance to the fp32 features of the held-out images;
- held-out accuracy of the product's solved linear head (C by cross-validation inside the
  training images), trained on the training images' features of that precision. Held-out images:
  CIFAR-10 *test* 100/class (trained on CIFAR-10 train 100/class), flowers5's 20% validation cut
  (seed 0, 864 images; the rest trains), hymenoptera's ``val/`` (153; ``train/`` trains). No choice
  is made on them; int8 calibrates on a seeded subset of the training images only;
- speed: img/s end to end (hash + decode + resize + inference + cache write of the flowers5
  training images into an empty cache, engine already compiled) and img/s of the pure network
  (OpenVINO's async queue on random uint8 input), each precision right after the other;
- the one-off int8 quantization seconds (NNCF statistics on the calibration images).
Precisions: fp32, int8 (every convolution int8, what ``--precision int8`` uses) and ``int8-taps``
(the convolutions pooled into the features kept fp32), and bf16 where the CPU has it. ``--quick``: CIFAR-10 50/class and hymenoptera only, 200 images timed.
Prints the CPU (model, flags, load) and a table; writes ``benchmarks/results/precision.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import keras_transfer  # noqa: F401  (sets the Keras backend before keras is imported)
from benchmarks.data import REPO, balanced_files, cifar_root, cpu, linked_dataset
from keras_transfer.config import TrainConfig, dataset_of, feature_source
from keras_transfer.features import quantize
from keras_transfer.features.cache import FeatureCache
from keras_transfer.features.runtime import BF16_FLAGS, cpu_capabilities
from keras_transfer.strategies.solver import fit_linear_head

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = REPO.parent / "shared" / "datasets"
VARIANTS = {"fp32": ("fp32", None), "int8": ("int8", "int8"), "int8-taps": ("int8", "int8-taps")}


def datasets(work: Path, quick: bool) -> dict[str, Path]:
    """name -> dataset folder (CIFAR-10 as a train/ + test/ folder of links to the shared JPEGs)."""
    per_class = 50 if quick else 100
    root = cifar_root(work)
    cifar = work / f"cifar10-{per_class}"
    linked_dataset(balanced_files(root, "train", 10 * per_class), cifar / "train")
    linked_dataset(balanced_files(root, "test", 10 * per_class), cifar / "test")
    found = {f"cifar10 {per_class}/class": cifar, "hymenoptera": SHARED / "hymenoptera_data"}
    if not quick:
        found["flowers5"] = SHARED / "flowers5"
    return found


def config_for(data: Path, precision: str) -> TrainConfig:
    """The default train's config, held-out split as ``train`` cuts it (no selection split: the solver
    cross-validates inside the training images)."""
    return TrainConfig(data=str(data), precision=precision, runtime="openvino").validate()


def features(config: TrainConfig, work: Path, variant: str) -> dict:
    """Training and held-out features of ``config`` with its precision, and the seconds it took."""
    quantize.INT8_RECIPE = VARIANTS[variant][1] or quantize.INT8_RECIPE  # the recipe is part of the cache key
    dataset = dataset_of(config)
    source = feature_source(config, work / "runs" / variant / Path(config.data).name)
    start = time.perf_counter()
    source.engine.runtime  # noqa: B018  (export, quantize if int8, compile: timed apart)
    prepare = time.perf_counter() - start
    train, kept = source.views(dataset.train, 0)
    test, kept_test = source.views(dataset.eval_split, 0)
    return {"source": source, "train": train, "y": dataset.train.labels[kept], "test": test[0],
            "y_test": dataset.eval_split.labels[kept_test], "classes": len(dataset.class_names),
            "prepare_s": prepare, "held_out": f"{dataset.eval_split.name} ({len(kept_test)} images)"}


def accuracy(f: dict) -> float:
    fit = fit_linear_head(f["train"], f["y"], f["classes"])
    return float((fit.head.predict(f["test"]).argmax(1) == f["y_test"]).mean())


def end_to_end(source, split, count: int) -> float:
    """img/s of the engine's whole pass over ``count`` images into an empty cache (compiled already)."""
    engine = dataclasses.replace(source.engine, cache=FeatureCache(Path(tempfile.mkdtemp(prefix="kt-prec-"))))
    engine.runtime = source.engine.runtime  # the compiled runtime, not a second compile
    subset = split.subset(np.arange(min(count, len(split))))
    start = time.perf_counter()
    engine.fill(subset, [0], lambda *_: None, desc="timed")
    return len(subset) / (time.perf_counter() - start)


def network(runtime, seconds: float = 10.0) -> float:
    """img/s of the compiled network alone: OpenVINO's async queue, random uint8 input."""
    import openvino as ov

    size = runtime.compiled.input(0).get_partial_shape()[1].get_length()
    batch = np.random.default_rng(0).integers(0, 256, (runtime.batch_size, size, size, 3), np.uint8)
    queue = ov.AsyncInferQueue(runtime.compiled, runtime.requests)
    for _ in range(2 * runtime.requests):
        queue.start_async({0: batch})
    queue.wait_all()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        queue.start_async({0: batch})
        done += runtime.batch_size
    queue.wait_all()
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CIFAR-10 50/class and hymenoptera only")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="of " + ", ".join(VARIANTS) + ", bf16")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keras-transfer-bench")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    if cpu_capabilities() & BF16_FLAGS and "bf16" not in variants:
        variants.append("bf16")
    VARIANTS["bf16"] = ("bf16", None)
    load = os.getloadavg()
    print(f"CPU: {cpu()}; load average {load[0]:.1f}", flush=True)
    rows = []
    timed = 200 if args.quick else 400
    for name, folder in datasets(args.work, args.quick).items():
        reference = None
        for variant in variants:
            f = features(config_for(folder, VARIANTS[variant][0]), args.work, variant)
            reference = reference if reference is not None else f["test"]
            error = np.linalg.norm(f["test"] - reference, axis=1) / np.linalg.norm(reference, axis=1)
            row = {"dataset": name, "precision": variant, "held_out": f["held_out"], "accuracy": accuracy(f),
                   "feature_rel_error": float(error.mean()), "prepare_s": f["prepare_s"]}
            if name.startswith("flowers5") or (args.quick and name == "hymenoptera"):
                runtime = f["source"].engine.runtime
                row["img_s_end_to_end"] = end_to_end(f["source"], dataset_of(config_for(folder, "fp32")).train, timed)
                row["img_s_network"] = network(runtime)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'dataset':<22}{'precision':<10}{'accuracy':>9}{'feat err':>9}{'img/s e2e':>10}{'img/s net':>10}"
          f"{'prep s':>8}  held-out images")
    for r in rows:
        e2e, net = r.get("img_s_end_to_end"), r.get("img_s_network")
        print(f"{r['dataset']:<22}{r['precision']:<10}{100 * r['accuracy']:>8.1f}%{r['feature_rel_error']:>9.4f}"
              f"{e2e or float('nan'):>10.1f}{net or float('nan'):>10.1f}{r['prepare_s']:>8.0f}  {r['held_out']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "precision.json").write_text(json.dumps({
        "cpu": cpu(), "load_average": load, "quick": args.quick, "features": "lite0+lite2 260 px, 4 stages",
        "timed_images": f"the first {timed} training images of flowers5 (hymenoptera with --quick)",
        "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

"""One benchmark case per call, run in a fresh process so its peak RSS is its own.

``python -m benchmarks.cases CASE ARGS.json`` prints one JSON line with the result (and the
process's peak RSS).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rate(count: int, seconds: float) -> dict:
    return {"images": count, "seconds": round(seconds, 3), "images_per_s": round(count / seconds, 1)}


def _tutorial_predict(model, files: list[str], preprocess, batch: int = 32) -> float:
    """The classic tutorial loop: load_img -> img_to_array -> preprocess_input -> predict; seconds."""
    import keras

    start = time.perf_counter()
    for i in range(0, len(files), batch):
        x = np.stack([keras.utils.img_to_array(keras.utils.load_img(f, target_size=(224, 224)))
                      for f in files[i:i + batch]])
        model.predict(preprocess(x), verbose=0, batch_size=batch)
    return time.perf_counter() - start


def classic_resnet50(files: list[str]) -> dict:
    """(a) keras.applications ResNet50 + predict, with random weights (speed does not depend on
    their values as long as denormal floats, which random deep nets produce and real weights do
    not, are flushed to zero)."""
    import keras
    import torch

    torch.set_flush_denormal(True)
    model = keras.applications.ResNet50(weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3))
    seconds = _tutorial_predict(model, files, keras.applications.resnet50.preprocess_input)
    return _rate(len(files), seconds)


def _lite0(size: int = 224):
    from keras_transfer.backbones import get_backbone
    from keras_transfer.backbones.network import build_extractor

    spec = get_backbone("efficientnet_lite0")
    identity = {"backbone": spec.name, "weights": spec.weights_identity("imagenet"), "size": size,
                "pooling": "avg", "preprocessing": spec.preprocessing.as_dict()}
    return build_extractor(spec, size, "imagenet"), identity


def keras_lite0(files: list[str]) -> dict:
    """(b) Plain Keras predict of the default backbone (normalisation is inside the model)."""
    extractor, _ = _lite0()
    return _rate(len(files), _tutorial_predict(extractor, files, lambda x: x))


def _engine(args: dict):
    from keras_transfer.features import FeatureCache, FeatureEngine, RuntimeOptions
    from keras_transfer.features.extract import ViewMaker

    size = args.get("size", 224)
    extractor, identity = _lite0(size)
    options = RuntimeOptions(args.get("runtime", "auto"), args.get("precision", "fp32"),
                             args.get("batch_size", RuntimeOptions.batch_size), args.get("streams"))
    return FeatureEngine(extractor, identity, ViewMaker(size), options, FeatureCache(Path(args["cache"])))


def _split(files: list[str]):
    from keras_transfer.data.dataset import Split

    return Split("bench", [Path(f) for f in files], np.zeros(len(files), np.int64))


def engine(args: dict) -> dict:
    """(c) Our engine on a cold feature cache, then warm; optionally saves the features."""
    from keras_transfer.base import log

    log.set_quiet(True)
    eng, split = _engine(args), _split(args["files"])
    start = time.perf_counter()
    runtime = eng.runtime  # export (once per backbone, cached) + compile
    setup = time.perf_counter() - start
    features = np.zeros((len(split), 1280), np.float32)

    def sink(_, rows, vector):
        features[rows] = vector

    start = time.perf_counter()
    eng.fill(split, [0], sink)
    cold = _rate(len(split), time.perf_counter() - start)
    start = time.perf_counter()
    eng.fill(split, [0], sink)
    warm = _rate(len(split), time.perf_counter() - start)
    if args.get("save"):
        np.save(args["save"], features)
    return {**cold, "extracted": eng.extracted, "runtime": runtime.name, "setup_seconds": round(setup, 2),
            "warm": warm}


def memory(args: dict) -> dict:
    """Streaming extraction into the cache (features are not kept): peak RSS vs dataset size."""
    from keras_transfer.base import log

    log.set_quiet(True)
    eng, split = _engine(args), _split(args["files"])
    eng.runtime  # noqa: B018  (build before timing)
    start = time.perf_counter()
    eng.fill(split, [0], lambda *_: None)
    return _rate(len(split), time.perf_counter() - start)


def warm_train(args: dict) -> dict:
    """``train`` twice into one run folder: feature seconds of a fresh and of a repeated run."""
    from keras_transfer.base import log
    from keras_transfer.run import train
    from keras_transfer.config import TrainConfig

    log.set_quiet(True)
    config = TrainConfig(data=args["data"], epochs=args.get("epochs", 3), runtime=args.get("runtime", "auto"))
    out = Path(args["out"])
    seconds = []
    for _ in range(2):
        run = train(config, out)
        seconds.append(run.read("timing.json")["feature_seconds"])
    return {"first_feature_seconds": round(seconds[0], 3), "rerun_feature_seconds": round(seconds[1], 3),
            "accuracy": run.read("metrics.json")["accuracy"]}


def precision_cost(args: dict) -> dict:
    """Relative feature error and logistic-regression accuracy of fp32 vs reduced-precision features."""
    from sklearn.linear_model import LogisticRegression

    loaded = {name: np.load(path) for name, path in args["features"].items()}
    labels = {split: np.array([Path(f).parent.name for f in files]) for split, files in args["files"].items()}
    reference, other = loaded["fp32_test"], loaded["reduced_test"]
    row_error = np.linalg.norm(other - reference, axis=1) / np.linalg.norm(reference, axis=1)
    result = {"feature_rel_error_mean": float(row_error.mean()), "feature_rel_error_max": float(row_error.max())}
    for name in ("fp32", "reduced"):
        head = LogisticRegression(max_iter=2000, C=0.5).fit(loaded[f"{name}_train"], labels["train"])
        result[f"{name}_accuracy"] = float((head.predict(loaded[f"{name}_test"]) == labels["test"]).mean())
    return result


CASES = {"classic_resnet50": classic_resnet50, "keras_lite0": keras_lite0, "engine": engine, "memory": memory,
         "warm_train": warm_train, "precision_cost": precision_cost}

if __name__ == "__main__":
    name, raw = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
    result = CASES[name](raw["files"] if name in ("classic_resnet50", "keras_lite0") else raw)
    print(json.dumps({**result, "peak_rss_mb": round(_peak_rss_mb(), 1)}))

"""Which pooled features probe best? ``python -m benchmarks.feature_variants [--variants ...]``.

CIFAR-10, 100 training and 100 test images per class (the issue-5 setting). For each variant,
a bundled EfficientNet-Lite extracts global-average-pooled features of one or more layers
(concatenated) through OpenVINO, and a standardised logistic regression is fitted on all 1000
training images, plain and with horizontally flipped copies, scored with and without flip TTA.
Variants: ``<lite0|lite1|lite2>@<side>:<layer>+<layer>...``. Prints a table and writes JSON to
benchmarks/results/feature_variants.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import keras_transfer  # noqa: F401, I001  (sets the Keras backend: before keras is imported)
import keras
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from benchmarks.data import balanced_files, cifar_root
from keras_transfer.backbones import get_backbone
from keras_transfer.backbones.efficientnet_lite import build_efficientnet_lite
from keras_transfer.data.images import read_image, resize
from keras_transfer.features.export import export_onnx
from keras_transfer.features.runtime import RuntimeOptions, openvino_runtime
from keras_transfer.layers import ImageNormalization

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_VARIANTS = (
    "lite0@224:head_act",
    "lite0@224:head_act+block7a_project_bn+block6d_add+block5c_add",
    "lite2@260:head_act+block7a_project_bn+block6e_add+block5d_add",
)


def extractor(variant: str, size: int, layers: list[str]) -> keras.Model:
    """Pixels -> the spec's normalisation -> backbone -> concatenated GAP of ``layers``."""
    backbone, p = build_efficientnet_lite(variant, size), get_backbone(f"efficientnet_{variant}").preprocessing
    pixels = keras.Input((size, size, 3))
    taps = keras.Model(backbone.input, [backbone.get_layer(name).output for name in layers])(
        ImageNormalization(p.mean, p.std, p.bgr)(pixels))
    pooled = [keras.layers.GlobalAveragePooling2D()(t) for t in (taps if isinstance(taps, list) else [taps])]
    return keras.Model(pixels, pooled[0] if len(pooled) == 1 else keras.layers.Concatenate()(pooled))


def features(runtime, files: list[Path], size: int, flip: bool) -> np.ndarray:
    images = np.stack([resize(read_image(f), size) for f in files])
    images = images[:, :, ::-1] if flip else images
    batches = [(i, images[i:i + runtime.batch_size]) for i in range(0, len(images), runtime.batch_size)]
    return np.concatenate([f for _, f in runtime.stream(batches)])


def score(x_train, y_train, x_test, x_test_flip, y_test) -> tuple[float, float]:
    """(accuracy, flip-TTA accuracy) of a standardised logistic regression."""
    scaler = StandardScaler().fit(x_train)
    model = LogisticRegression(C=10 / x_train.shape[1], max_iter=3000).fit(scaler.transform(x_train), y_train)
    p, p_flip = model.predict_proba(scaler.transform(x_test)), model.predict_proba(scaler.transform(x_test_flip))
    return float((p.argmax(1) == y_test).mean()), float(((p + p_flip).argmax(1) == y_test).mean())


def run_variant(spec: str, train: list[Path], test: list[Path]) -> dict:
    name, rest = spec.split("@")
    side, layers = rest.split(":")
    size, layers = int(side), layers.split("+")
    model = extractor(name, size, layers)
    runtime = openvino_runtime(export_onnx(model, {"backbone": f"probe-{name}", "size": size, "layers": layers}),
                               size, RuntimeOptions())
    start = time.perf_counter()
    x_train = features(runtime, train, size, False)
    speed = len(train) / (time.perf_counter() - start)
    x_flip, x_test, x_test_flip = (features(runtime, files, size, flip)
                                   for files, flip in ((train, True), (test, False), (test, True)))
    labels = {f.parent.name for f in train}
    index = {c: i for i, c in enumerate(sorted(labels))}
    y_train, y_test = (np.array([index[f.parent.name] for f in files]) for files in (train, test))
    plain = score(x_train, y_train, x_test, x_test_flip, y_test)
    flipped = score(np.concatenate([x_train, x_flip]), np.concatenate([y_train, y_train]), x_test, x_test_flip, y_test)
    return {"variant": spec, "dim": int(x_train.shape[1]), "images_per_second": speed, "accuracy": plain[0],
            "accuracy_tta": plain[1], "accuracy_flip_train": flipped[0], "accuracy_flip_train_tta": flipped[1]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.feature_variants", description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(DEFAULT_VARIANTS))
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keras-transfer-bench")
    args = parser.parse_args(argv)
    root = cifar_root(args.work)
    train, test = balanced_files(root, "train", 1000), balanced_files(root, "test", 1000)
    rows = [run_variant(spec, train, test) for spec in args.variants]
    print(f"{'variant':<66}{'dim':>6}{'img/s':>7}{'acc':>7}{'+tta':>7}{'flip':>7}{'f+tta':>7}")
    for r in rows:
        print(f"{r['variant']:<66}{r['dim']:>6}{r['images_per_second']:>7.0f}{r['accuracy']:>7.3f}"
              f"{r['accuracy_tta']:>7.3f}{r['accuracy_flip_train']:>7.3f}{r['accuracy_flip_train_tta']:>7.3f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "feature_variants.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

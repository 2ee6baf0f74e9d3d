"""Writing a run's ``model.keras`` for a solver-fitted linear head, without importing Keras.

Importing Keras on the torch backend takes 5-6 s, longer than fitting the head. A ``.keras``
file is a zip of ``config.json``, ``metadata.json`` and ``model.weights.h5``; for a given
extractor and resize mode only the head's class count and weights differ between runs. So
Keras itself saves a *template* classifier once (resize -> extractor -> Dense head with a
sentinel kernel) into the cache, the h5 paths of the head's kernel and bias are found by their
sentinel values, and each run's file is that template with the head's ``units`` and weights
replaced (h5py + zipfile). The result is an ordinary Keras file: ``tests/test_solver.py``
loads it with Keras and checks it against the head computed in NumPy.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.features.keys import identity_hash
from keras_transfer.base.paths import atomic_file, cache_dir

TEMPLATE_VERSION = 2  # 2: preprocessing from Keras' own layers
_TEMPLATE_CLASSES = 2


def _sentinel(dim: int) -> tuple[np.ndarray, np.ndarray]:
    kernel = (np.arange(dim * _TEMPLATE_CLASSES, dtype=np.float32).reshape(dim, _TEMPLATE_CLASSES) + 0.5) / 7.0
    return kernel, np.array([-1234.5, 6789.25], np.float32)


def template_path(identity: dict, resize_mode: str) -> Path:
    """Where the template of this extractor identity and resize mode is cached."""
    key = identity_hash({**identity, "resize": resize_mode, "template": TEMPLATE_VERSION,
                         "keras": importlib.metadata.version("keras")})
    return cache_dir("templates") / f"{identity.get('backbone', 'model')}-{key}.keras"


def ensure_template(extractor, identity: dict, resize_mode: str, feature_dim: int) -> Path:
    """The template file, saved by Keras the first time (``extractor``: a model or a ``Deferred``)."""
    path = template_path(identity, resize_mode)
    if path.exists() and path.with_suffix(".json").exists():
        return path
    from keras_transfer.features import resolve
    from keras_transfer.backbones.heads import HeadOptions, build_head
    from keras_transfer.backbones.network import build_classifier

    log.info(f"saving a model template for {identity.get('backbone')} (once; cached in {path.parent})")
    head = build_head((feature_dim,), _TEMPLATE_CLASSES, "linear", HeadOptions((), 0.0))
    kernel, bias = _sentinel(feature_dim)
    head.get_layer("predictions").set_weights([kernel, bias])
    classifier = build_classifier(resolve(extractor), head, resize_mode)
    atomic_file(path, lambda tmp: classifier.save(tmp))
    with zipfile.ZipFile(path) as archive, _h5(archive.read("model.weights.h5")) as weights:
        found = {}

        def visit(name, item):
            for role, value in (("kernel", kernel), ("bias", bias)):
                if getattr(item, "shape", None) == value.shape and np.array_equal(item[()], value):
                    found[role] = name

        weights.visititems(visit)
    if set(found) != {"kernel", "bias"}:
        raise RuntimeError(f"cannot locate the head's weights in the template {path}")
    text = json.dumps(found)
    atomic_file(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text))
    return path


def _h5(data: bytes):
    import h5py

    return h5py.File(io.BytesIO(data), "r")


def _patch_units(config: dict, units: int) -> dict:
    """Sets ``units`` of the head's ``predictions`` layer in a classifier's ``config.json``."""
    head = next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == "head")
    dense = next(layer for layer in head["config"]["layers"] if layer["config"]["name"] == "predictions")
    dense["config"]["units"] = int(units)
    return config


def write_linear_classifier(path: Path, template: Path, kernel: np.ndarray, bias: np.ndarray) -> Path:
    """Writes ``path`` (a ``.keras`` file): the template with the head ``softmax(x @ kernel + bias)``."""
    import h5py

    where = json.loads(template.with_suffix(".json").read_text())
    with zipfile.ZipFile(template) as archive:
        config = _patch_units(json.loads(archive.read("config.json")), kernel.shape[1])
        metadata = archive.read("metadata.json")
        weights = io.BytesIO()
        with archive.open("model.weights.h5") as source:
            shutil.copyfileobj(source, weights)
    with h5py.File(weights, "r+") as h5:
        for role, value in (("kernel", kernel), ("bias", bias)):
            del h5[where[role]]
            h5.create_dataset(where[role], data=np.asarray(value, np.float32))

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as out:  # as Keras writes it
            out.writestr("metadata.json", metadata)
            out.writestr("config.json", json.dumps(config))
            out.writestr("model.weights.h5", weights.getvalue())

    return atomic_file(path, write)

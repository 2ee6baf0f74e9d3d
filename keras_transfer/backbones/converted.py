"""What the ``hub:`` and ``timm:`` routes share: a model converted once into an ``onnx:`` encoder.

Each route keeps, under ``<cache>/<kind>/``, a record of the content hashes it has seen
(``records.json``: reference -> sha256, so a run keeps working offline or after its weights moved)
and the converted encoders (``<sha[:16]>-<pooling>.onnx``, settings in their metadata). The spec is
the ``onnx:`` spec of the converted file, named and keyed by the original model.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from keras_transfer.backbones.onnx_encoder import onnx_spec
from keras_transfer.backbones.spec import BackboneSpec
from keras_transfer.base import log
from keras_transfer.base.paths import cache_dir, write_json


_EARLIER = {"hub": "presets.json"}  # the record's name before the routes shared this module


def recorded(kind: str) -> dict:
    """reference -> sha256 of the weights seen by the ``kind`` route on this machine."""
    found = {}
    for name in (_EARLIER.get(kind), "records.json"):
        try:
            found.update(json.loads((cache_dir(kind) / name).read_text()) if name else {})
        except (OSError, ValueError):
            pass
    return found


def remember(kind: str, key: str, sha: str) -> None:
    records = recorded(kind)
    if records.get(key) != sha:
        write_json(cache_dir(kind) / "records.json", {**records, key: sha})


def encoder_path(kind: str, sha: str, pooling: str) -> Path:
    return cache_dir(kind) / f"{sha[:16]}-{pooling}.onnx"


def converted(kind: str, sha: str, pooling: str, label: str, export: Callable[[Path], object]) -> Path:
    """The converted encoder of ``sha``: ``export(target)`` writes it the first time only."""
    target = encoder_path(kind, sha, pooling)
    if not target.is_file():
        log.info(f"converting {label} to an ONNX encoder (once)")
        export(target)
    return target


def converted_spec(encoder: Path, name: str, key: str, description: str) -> BackboneSpec:
    """The ``onnx:`` spec of a converted encoder, under the original model's name and cache key."""
    return dataclasses.replace(onnx_spec(f"onnx:{encoder}"), name=name, weights_identity=lambda _weights: key,
                               description=description)

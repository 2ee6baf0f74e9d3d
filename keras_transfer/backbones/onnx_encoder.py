"""``onnx:PATH``: any ONNX image encoder as a backbone, run by the same feature engine and cache.

What the encoder needs is read, last one winning, from: what its graph says (input layout and
side when they are static), its ``metadata_props``, then a JSON file beside it (``enc.json``
for ``enc.onnx``). Keys (metadata values are strings, JSON for lists):

- ``input_size`` (int), ``layout`` (``NCHW`` or ``NHWC``);
- ``mean`` and ``std``: three per-channel values applied to RGB pixels scaled to [0, 1] (the
  timm / Hugging Face convention; the default is ImageNet's, with a warning);
- ``interpolation``: recorded only: the engine resizes as for every backbone (bilinear, antialiased);
- ``token_pooling`` for a (N, tokens, D) output: ``cls`` (token 0, the default) or ``mean`` (the
  mean of the tokens after ``prefix_tokens``, default 1); a (N, C, h, w) or (N, h, w, C) map is
  averaged (``--pooling max``: maximum) over space; a (N, D) output is used as it is;
- ``license``: the weights' licence, shown in ``keras-transfer backbones`` and kept with the run.

The encoder is copied once into a content-addressed store (``<cache>/encoders/<sha>.onnx`` with
its resolved settings), and the path it was read from is recorded there: a run trained on it keeps
working when the original file moves or is deleted (a reference by content; the run folder itself
holds the path and the hash in its feature keys). The feature graph the engine compiles is the
encoder with the normalisation and layout change in front and the pooling behind, all standard
ONNX operators, built here with ``onnx.helper`` (no converter prepends preprocessing to a graph).
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from keras_transfer.backbones.onnx_graph import (INPUT, EncoderSettings, dims_of, encoder_input, features_graph,
                                                 stored_settings, store)
from keras_transfer.backbones.spec import BackboneSpec, Preprocessing
from keras_transfer.backbones.weights import file_sha256
from keras_transfer.base import log
from keras_transfer.base.errors import ConfigError, WeightsError
from keras_transfer.base.paths import atomic_file, write_json

PREFIX = "onnx:"


def _from_graph(model) -> dict:
    dims = dims_of(encoder_input(model.graph))
    if len(dims) != 4:
        raise ConfigError("the ONNX encoder's input is not an image batch", "a 4-D input (N, 3, H, W) or (N, H, W, 3)",
                          f"input of shape {dims}")
    layout = "NHWC" if dims[3] == 3 and dims[1] != 3 else "NCHW"
    side = dims[2] if layout == "NCHW" else dims[1]
    return {"layout": layout, **({"input_size": side} if side else {})}


def _parse(values: dict) -> dict:
    """Metadata strings (or JSON values) -> typed settings fields; unknown keys are ignored."""
    known = EncoderSettings.__dataclass_fields__
    out = {}
    for key, value in values.items():
        if key not in known:
            continue
        if isinstance(value, str) and key in ("input_size", "mean", "std", "prefix_tokens"):
            try:
                value = json.loads(value)
            except ValueError as error:
                raise ConfigError(f"invalid encoder setting {key}", "a number or a JSON list", repr(value)) from error
        out[key] = tuple(float(v) for v in value) if key in ("mean", "std") else value
    return out


def read_settings(path: Path, model) -> EncoderSettings:
    """The encoder's settings: its graph, then its ``metadata_props``, then ``<stem>.json`` beside it."""
    fields = _from_graph(model)
    fields.update(_parse({p.key: p.value for p in model.metadata_props}))
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            fields.update(_parse(json.loads(sidecar.read_text())))
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot read {sidecar}", "a JSON object of encoder settings", str(error)) from error
    if "mean" not in fields or "std" not in fields:
        log.warn(f"{path.name} names no mean/std (metadata or {sidecar.name}): using ImageNet's")
    return EncoderSettings(**fields).check()


def _known_paths() -> dict:
    try:
        return json.loads((store() / "paths.json").read_text())
    except (OSError, ValueError):
        return {}


def _stored(path: Path) -> tuple[str, Path]:
    """(sha, stored copy) of the encoder at ``path``, or of the one last seen there if it moved."""
    if path.is_file():
        sha = file_sha256(path)[:16]
        copy = store() / f"{sha}.onnx"
        if not copy.exists():
            atomic_file(copy, lambda tmp: shutil.copyfile(path, tmp))
        known = _known_paths()
        if known.get(str(path.resolve())) != sha:
            write_json(store() / "paths.json", {**known, str(path.resolve()): sha})
        return sha, copy
    sha = _known_paths().get(str(path.resolve()))
    if sha and (store() / f"{sha}.onnx").is_file():
        log.info(f"{path} is gone; using the stored copy of the encoder trained on ({sha})")
        return sha, store() / f"{sha}.onnx"
    raise WeightsError(f"ONNX encoder {str(path)!r} not found", "onnx:PATH of an existing .onnx file",
                       str(path), hint="a run keeps its encoder in the store only once it has been read on this machine")


def encoder(path: str) -> tuple[str, EncoderSettings, int]:
    """(content sha, settings, pooled feature size) of the encoder at ``path`` (cached in the store)."""
    try:
        stat = Path(path).expanduser().stat()
        return _encoder(path, stat.st_size, stat.st_mtime_ns, str(store()))
    except OSError:
        return _encoder(path, 0, 0, str(store()))


@functools.lru_cache(maxsize=16)
def _encoder(path: str, _size: int, _mtime: int, _store: str) -> tuple[str, EncoderSettings, int]:
    """Memoised per file state and store (another cache root gets its own copy)."""
    sha, copy = _stored(Path(path).expanduser())
    record = store() / f"{sha}.json"
    try:
        return sha, stored_settings(sha), int(json.loads(record.read_text())["feature_dim"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    import onnx

    try:
        model = onnx.load(str(copy))
    except Exception as error:  # protobuf's DecodeError and friends
        raise WeightsError(f"{path} is not a readable ONNX file", "an ONNX model", f"{type(error).__name__}") from error
    settings = read_settings(Path(path).expanduser(), model)
    dim = _feature_dim(features_graph(model, settings, "avg"), settings.input_size)
    write_json(record, {"settings": asdict(settings), "feature_dim": dim, "source": str(Path(path).resolve())})
    return sha, settings, dim


def _feature_dim(graph, size: int) -> int:
    import onnxruntime as ort

    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(None, {INPUT: np.zeros((1, size, size, 3), np.float32)})[0]
    return int(np.prod(out.shape[1:]))


def onnx_spec(reference: str) -> BackboneSpec:
    """The spec of ``onnx:PATH`` (the encoder is read and stored on first use)."""
    path = reference[len(PREFIX):].strip()
    sha, settings, dim = encoder(path)

    def build(*_, **__):
        raise ConfigError(f"{reference} is an ONNX encoder: it has no Keras feature map to fine-tune",
                          "--strategy bottleneck, frozen or auto", hint="fine-tune a Keras backbone instead")

    def build_features(size: int, pooling: str = "avg", stages: int = 1):
        from keras_transfer.backbones.layers import onnx_features_model

        if size != settings.input_size or stages != 1:
            raise ConfigError(f"{reference} takes {settings.input_size} px images, one stage",
                              f"--input-size {settings.input_size} --stages 1", f"size {size}, stages {stages}")
        return onnx_features_model(sha, size, dim, pooling)

    return BackboneSpec(
        name=f"onnx:{Path(path).stem}", input_size=settings.input_size, feature_dim=dim,
        preprocessing=Preprocessing(tuple(m * 255 for m in settings.mean), tuple(s * 255 for s in settings.std)),
        build=build, weights_identity=lambda _weights: f"sha256:{sha}", gradcam_layer="",
        offline_weights=lambda: True, min_input_size=settings.input_size, build_features=build_features,
        license=settings.license, description=f"ONNX encoder {path} ({settings.layout}, licence {settings.license})")


def save_torch_encoder(module, size: int, path: str | Path, settings: dict) -> Path:
    """A PyTorch image encoder (NCHW input, batch dimension free) to an ONNX file that ``onnx:PATH``
    reads as it is: ``settings`` (``mean``, ``std``, ``license``, ``token_pooling`` ...) go into the file's
    metadata, so the encoder carries its own preprocessing.

    Example:
        >>> save_torch_encoder(model, 224, "encoder.onnx", {"mean": [0.485, 0.456, 0.406],
        ...                                                 "std": [0.229, 0.224, 0.225], "license": "Apache-2.0"})
    """
    import onnx
    import torch

    module.eval()
    torch.onnx.export(module, torch.zeros(1, 3, size, size), str(path), dynamo=False, input_names=["pixel_values"],
                      output_names=["out"], dynamic_axes={"pixel_values": {0: "n"}, "out": {0: "n"}})
    model = onnx.load(str(path))
    write_settings(model, settings)
    onnx.save(model, str(path))
    return Path(path)


def write_settings(model, settings: dict) -> None:
    """``settings`` into an ONNX model's metadata as ``onnx:`` reads them back (text as it is, the rest JSON)."""
    for key, value in settings.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)

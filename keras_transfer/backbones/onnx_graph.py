"""The ``onnx:`` route's feature graph and encoder store (``onnx_encoder`` reads the encoders).

The feature graph the engine compiles is the encoder with the normalisation and layout change in
front and the pooling behind, all standard ONNX operators, built with ``onnx.helper`` (no
converter prepends preprocessing to a graph). Stored encoders live in ``<cache>/encoders/<sha>.onnx``
with their resolved settings in ``<sha>.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_transfer.base.errors import ConfigError, WeightsError
from keras_transfer.base.paths import cache_dir

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
INPUT = "kt_pixels"  # the feature graph's input: float RGB pixels in [0, 255], (N, S, S, 3)
OUTPUT = "kt_features"


@dataclass(frozen=True)
class EncoderSettings:
    """How to feed an ONNX encoder and pool its output (see the module docstring)."""

    input_size: int = 224
    layout: str = "NCHW"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    token_pooling: str = "cls"
    prefix_tokens: int = 1
    license: str = "unknown"

    def check(self) -> EncoderSettings:
        if self.layout not in ("NCHW", "NHWC"):
            raise ConfigError("invalid encoder layout", "NCHW or NHWC", repr(self.layout))
        if self.token_pooling not in ("cls", "mean"):
            raise ConfigError("invalid token_pooling", "cls or mean", repr(self.token_pooling))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("invalid encoder mean/std", "three means and three positive stds",
                              f"mean {list(self.mean)}, std {list(self.std)}")
        return self


def encoder_input(graph):
    initialised = {t.name for t in graph.initializer}
    return next(i for i in graph.input if i.name not in initialised)


def dims_of(value_info) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def store() -> Path:
    return cache_dir("encoders")


def stored_settings(sha: str) -> EncoderSettings:
    """The resolved settings kept beside the stored encoder ``sha``."""
    record = json.loads((store() / f"{sha}.json").read_text())
    return EncoderSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in record["settings"].items()})


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)


def _reduce(op: str, source: str, axes: list[int], out: str, opset: int, graph) -> None:
    """ReduceMean / ReduceMax over ``axes``, without keeping them (axes an input from opset 18)."""
    from onnx import helper, numpy_helper

    if opset >= 18:
        graph.initializer.append(numpy_helper.from_array(np.array(axes, np.int64), f"{out}_axes"))
        graph.node.append(helper.make_node(op, [source, f"{out}_axes"], [out], keepdims=0, name=out))
    else:
        graph.node.append(helper.make_node(op, [source], [out], axes=axes, keepdims=0, name=out))


def _pool(graph, settings: EncoderSettings, pooling: str, opset: int) -> None:
    """The encoder's first output -> (N, D) ``OUTPUT``."""
    from onnx import helper, numpy_helper

    output = graph.output[0]
    rank, name = len(dims_of(output)), output.name
    op = "ReduceMax" if pooling == "max" else "ReduceMean"
    if rank == 2:
        graph.node.append(helper.make_node("Identity", [name], [OUTPUT], name=OUTPUT))
    elif rank == 4:
        _reduce(op, name, [2, 3] if settings.layout == "NCHW" else [1, 2], OUTPUT, opset, graph)
    elif rank == 3 and settings.token_pooling == "cls":
        graph.initializer.append(numpy_helper.from_array(np.array(0, np.int64), "kt_cls_index"))
        graph.node.append(helper.make_node("Gather", [name, "kt_cls_index"], [OUTPUT], axis=1, name=OUTPUT))
    elif rank == 3:
        graph.initializer.extend(numpy_helper.from_array(np.array([v], np.int64), n) for n, v in
                                 (("kt_tok_start", settings.prefix_tokens), ("kt_tok_end", 2**62), ("kt_tok_axis", 1)))
        graph.node.append(helper.make_node("Slice", [name, "kt_tok_start", "kt_tok_end", "kt_tok_axis"],
                                           ["kt_patch_tokens"], name="kt_patch_tokens"))
        _reduce(op, "kt_patch_tokens", [1], OUTPUT, opset, graph)
    else:
        raise ConfigError("the ONNX encoder's first output has an unusable shape",
                          "(N, D) features, (N, tokens, D) tokens or a (N, C, h, w) map", f"rank {rank}: {dims_of(output)}")


def features_graph(model, settings: EncoderSettings, pooling: str = "avg"):
    """The engine's feature graph: float RGB (N, S, S, 3) in [0, 255] -> normalise -> [NHWC -> NCHW]
    -> the encoder -> pooled (N, D). ``model`` is changed in place and returned."""
    from onnx import TensorProto, helper, numpy_helper

    if pooling not in ("avg", "max"):
        raise ConfigError(f"--pooling {pooling} is not available for an onnx: backbone", "avg or max", pooling)
    graph, size = model.graph, settings.input_size
    source = encoder_input(graph)
    mean = np.asarray(settings.mean, np.float32) * 255
    std = np.asarray(settings.std, np.float32) * 255
    graph.initializer.extend([numpy_helper.from_array(mean, "kt_mean"), numpy_helper.from_array(std, "kt_std")])
    front = [helper.make_node("Sub", [INPUT, "kt_mean"], ["kt_centred"], name="kt_centred"),
             helper.make_node("Div", ["kt_centred", "kt_std"], ["kt_normalised"], name="kt_normalised")]
    last, element = "kt_normalised", source.type.tensor_type.elem_type
    if settings.layout == "NCHW":
        front.append(helper.make_node("Transpose", [last], ["kt_nchw"], perm=[0, 3, 1, 2], name="kt_nchw"))
        last = "kt_nchw"
    front.append(helper.make_node("Cast", [last], [source.name], to=element, name="kt_to_encoder")
                 if element != TensorProto.FLOAT else helper.make_node("Identity", [last], [source.name], name="kt_in"))
    for node in reversed(front):
        graph.node.insert(0, node)
    _pool(graph, settings, pooling, _opset(model))
    graph.input.remove(source)
    graph.input.insert(0, helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", size, size, 3]))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", None]))
    return model


def write_features_graph(sha: str, pooling: str, target: str) -> None:
    """Writes the feature graph of the stored encoder ``sha`` to ``target``."""
    import onnx

    copy = store() / f"{sha}.onnx"
    if not copy.is_file():
        raise WeightsError(f"the encoder {sha} is not in the store {store()}", "a run trained on this machine",
                           str(copy), hint="train again with --backbone onnx:PATH")
    onnx.save(features_graph(onnx.load(str(copy)), stored_settings(sha), pooling), target)

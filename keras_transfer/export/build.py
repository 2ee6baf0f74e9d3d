"""One exported classifier per format: uint8 RGB images (N, S, S, 3) in, class probabilities out.

The classifier is the run's backbone as the optimised ONNX graph the feature engine compiles
(normalisation inside; a fine-tuned backbone is exported from ``model.keras`` the same way) with
a ``Cast`` to float in front and the head behind: a solved head as three standard operators
(``MatMul`` + ``Add`` + ``Softmax``, its logits divided by the calibration temperature), a
Keras-trained head as its own small ONNX export merged in (``onnx.compose``), followed by the
temperature (``Log`` -> ``Mul`` -> ``Softmax``) when it is not 1. Keras 3's
``model.export(format="onnx")`` of the whole model would re-trace it through torch (minutes, and
the raw trace carries a transpose around every convolution that ``features/export.py`` exists
to remove). OpenVINO's file is the same graph read and saved by OpenVINO. ``--int8`` quantizes
either with NNCF's post-training quantization on a calibration subset of the training images.
Files carry the class names, input size, resize rule, temperature and unknown threshold as
metadata (ONNX ``metadata_props``, OpenVINO ``rt_info``). The user resizes to the input size
(the run's ``resize`` rule: stretch, pad or crop), as the README's example shows.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_transfer.features.quantize import require_nncf  # one owner: the int8 feature engine needs it too
from keras_transfer.base import log
from keras_transfer.base.errors import ConfigError, KerasTransferError, RunError, unknown_choice
from keras_transfer.export.graph import (first_view, keras_head, linear_head, mean_of_views, unknown_score,
                                         with_mirror_images)
from keras_transfer.base.paths import atomic_file
from keras_transfer.config import CONVERTED, dataset_of
from keras_transfer.run import Run, RunModel
from keras_transfer.run.model_card import copy_model_card

FORMATS = ("onnx", "openvino", "litert")
SUFFIX = {"onnx": ".onnx", "openvino": ".xml", "litert": ".tflite"}
INT8_FORMATS = ("onnx", "openvino")  # NNCF quantizes these; LiteRT files stay fp32


CALIBRATION_IMAGES = 300  # training images NNCF calibrates the int8 ranges on


def metadata(model: RunModel, int8: bool = False) -> dict[str, str]:
    """What a user of the file needs besides the graph, as strings."""
    import keras_transfer

    run, unknown = model.run, model.unknown
    return {"class_names": json.dumps(model.class_names), "input_size": str(model.size),
            "resize": model.resize_mode, "input": "uint8 RGB NHWC, resized to input_size x input_size",
            "output": ("one probability per label (sigmoid); a label is present at or above its entry of "
                       "label_thresholds" if model.multi_label else "class probabilities, calibrated (temperature applied)")
                      + (", the mean of the image's and its mirror image's" if model.flip else "")
                      + (f"; without the {model.augmented} augmented test-time views the run's own evaluation "
                         "averages in" if model.augmented else ""),
            "temperature": str(model.temperature),
            **({"label_thresholds": json.dumps([float(t) for t in model.head.thresholds])} if model.multi_label else {}),
            "unknown_threshold": "" if unknown is None else str(unknown.threshold),
            "unknown_score": "" if unknown is None else (f"output 'unknown_score': cosine distance to the {unknown.k}th "
                                                         "nearest training image; above unknown_threshold: unknown"),
            "backbone": run.config.backbone, "strategy": run.config.strategy,
            "precision": "int8 (NNCF post-training quantization)" if int8 else "fp32",
            "producer": f"keras-transfer {keras_transfer.__version__}"}


def onnx_classifier(run_model: RunModel, info: dict[str, str]):
    """The ONNX ModelProto of the run's rule: Cast(uint8 -> float) -> backbone -> head [-> mean of the
    image's and its mirror's] -> probabilities [+ unknown score], ``info`` as metadata."""
    import onnx
    from onnx import TensorProto, helper

    from keras_transfer.features.export import export_onnx

    source, head, flip, temperature = run_model.source, run_model.head, run_model.flip, run_model.temperature
    model = onnx.load(str(export_onnx(source.extractor, source.identity)))
    if run_model.solved:
        features = model.graph.output[0].name
        if flip:  # the head on both views, averaged; the unknown score from the images' own features
            linear_head(model.graph, features, head, temperature, "view_probabilities")
            mean_of_views(model.graph, "view_probabilities", head.kernel.shape[1], "probabilities")
            features = first_view(model.graph, features, head.kernel.shape[0])
        else:
            linear_head(model.graph, features, head, temperature)
        if run_model.unknown is not None:
            unknown_score(model.graph, features, run_model.unknown)
    else:
        features = model.graph.output[0].name  # kept by the merge: the backbone's features
        model = keras_head(model, head, temperature)
        if run_model.unknown is not None:
            unknown_score(model.graph, features, run_model.unknown)
    graph, pixels, size = model.graph, model.graph.input[0], source.size
    if flip:  # the batch and its mirror images through the backbone at once, as the run was evaluated
        with_mirror_images(graph, "image", pixels.name)
    else:
        graph.node.insert(0, helper.make_node("Cast", ["image"], [pixels.name], to=TensorProto.FLOAT, name="to_float"))
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", size, size, 3]))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                                      ["batch", len(run_model.class_names)]))
    if run_model.unknown is not None:
        graph.output.append(helper.make_tensor_value_info("unknown_score", TensorProto.FLOAT, ["batch"]))
    _set_metadata(model, info)
    onnx.checker.check_model(model)
    return model


def calibration_pixels(run: Run, size: int, count: int = CALIBRATION_IMAGES) -> np.ndarray:
    """Up to ``count`` training images (every class in proportion), uint8 and resized: NNCF's calibration set."""
    from keras_transfer.export.parity import split_pixels
    from keras_transfer.data.dataset import stratified_folds

    train = dataset_of(run.config).train
    folds = max(1, -(-len(train) // count))  # one fold of about ``count`` images, every class dealt into it
    chosen = np.flatnonzero(stratified_folds(train.labels, folds, run.config.seed) == 0)
    return split_pixels(train.subset(chosen), size, run.config.resize, count)[0]


def quantize(model, run: Run, size: int, fmt: str):
    """The model quantized to int8 by NNCF (post-training, on training images), same inputs and outputs."""
    nncf = require_nncf()
    pixels = calibration_pixels(run, size)
    if fmt == "onnx":
        dataset = nncf.Dataset(list(pixels[:, None]), lambda batch: {"image": batch})
    else:
        dataset = nncf.Dataset(list(pixels[:, None]))
    return nncf.quantize(model, dataset, subset_size=len(pixels))


def export_run(run: str | Path | Run | RunModel, fmt: str = "onnx", out: str | Path | None = None, int8: bool = False,
               parity: bool = True) -> Path:
    """Writes the run's classifier as ``fmt`` (``out``: default ``<run>/export/model[.int8].<ext>``)
    and, with ``parity``, its row of the parity table into ``parity.json`` beside it.

    Example:
        >>> export_run("runs/ants", "onnx")  # doctest: +SKIP
        PosixPath('runs/ants/export/model.onnx')

    Raises:
        ConfigError: An unknown format, a missing NNCF for ``int8``, or a path that cannot be
            written (nothing is left there).
        RunError: A damaged run folder.
    """
    if fmt not in FORMATS:
        raise unknown_choice("export format", fmt, FORMATS)
    if int8 and fmt not in INT8_FORMATS:
        raise ConfigError(f"--int8 is not available for {fmt}", f"--int8 with --format {' or '.join(INT8_FORMATS)}",
                          f"--format {fmt} --int8", hint="NNCF quantizes ONNX and OpenVINO models")
    if int8:
        require_nncf()  # before any work
    if fmt == "litert":
        require_litert()
    run_model = RunModel.open(run)
    run = run_model.run
    if fmt == "litert" and run.config.backbone.startswith(CONVERTED):  # litert-torch converts PyTorch, not ONNX
        raise ConfigError(f"LiteRT cannot hold {run.config.backbone}: it runs as an ONNX graph",
                          "--format onnx or openvino for this run", "--format litert",
                          hint="a run on a Keras backbone (efficientnet_lite0, ...) exports to LiteRT")
    path = Path(out) if out else run.export_dir / f"model{'.int8' if int8 else ''}{SUFFIX[fmt]}"
    if path.suffix != SUFFIX[fmt]:
        raise ConfigError(f"an {fmt} file must end in {SUFFIX[fmt]}", SUFFIX[fmt], str(path))
    _write(run_model, fmt, path, int8)
    copy_model_card(run, path.parent)  # what the exported file was trained on, its figures, its limits
    if parity:
        from keras_transfer.export.parity import write_parity

        write_parity(run_model, {f"{fmt}-int8" if int8 else fmt: path})
    return path


def _write(run_model: RunModel, fmt: str, path: Path, int8: bool) -> Path:
    run = run_model.run
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        info = metadata(run_model, int8)
        if fmt == "litert":
            return _save_litert(run_model, path, info)
        model = onnx_classifier(run_model, info)
        if fmt == "onnx":
            import onnx

            if int8:
                model = quantize(model, run, run_model.size, fmt)
                _set_metadata(model, info)
            return atomic_file(path, lambda tmp: onnx.save(model, tmp))
        return _save_openvino(model, path, info, run if int8 else None)
    except OSError as error:
        raise ConfigError(f"cannot write {path}", "a writable folder", f"{type(error).__name__}: {error}") from error
    except KerasTransferError:
        raise
    except Exception as error:  # a converter or quantizer that cannot handle this model: say which, keep no file
        raise RunError(f"cannot export run {run.path} as {fmt}{' int8' if int8 else ''}",
                       f"a model {fmt} can convert", f"{type(error).__name__}: {str(error)[:300]}",
                       hint="try another --format; the parity table of the others still applies") from error


def _set_metadata(model, info: dict[str, str]) -> None:
    import onnx

    del model.metadata_props[:]
    for key, value in info.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))


def _save_openvino(model, path: Path, info: dict[str, str], int8_run: Run | None = None) -> Path:
    """The ONNX graph read and saved by OpenVINO (``.xml`` + ``.bin``), metadata in ``rt_info``;
    quantized to int8 first when ``int8_run`` is given."""
    import openvino as ov

    core = ov.Core()
    ov_model = core.read_model(model.SerializeToString(), b"")  # the model as bytes, its weights inline
    if int8_run is not None:
        ov_model = quantize(ov_model, int8_run, int(info["input_size"]), "openvino")
    for key, value in info.items():
        ov_model.set_rt_info(value, ["model_info", key])
    weights = path.with_suffix(".bin")
    staging = path.with_name(f".{path.stem}.staging.xml")
    try:
        ov.save_model(ov_model, str(staging), compress_to_fp16=False)
        staging.with_suffix(".bin").replace(weights)
        staging.replace(path)
    finally:
        for leftover in (staging, staging.with_suffix(".bin")):
            leftover.unlink(missing_ok=True)
    return path


def require_litert():
    try:
        with log.silenced((1, 2)):  # its import logs from native code (absl, oneDNN, torchao)
            import litert_torch
        # it imports JAX, which then warns at every fork; the forks here (NNCF, subprocess) exec at once
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
    except ImportError as error:
        raise ConfigError("--format litert needs litert-torch, which is not installed", "pip install -e '.[litert]'",
                          f"{type(error).__name__}: {error}") from error
    return litert_torch


def litert_metadata_path(path: Path) -> Path:
    """LiteRT files have no key/value metadata a runtime reads back: it is written beside, as JSON."""
    return path.with_name(path.name + ".json")


def _save_litert(run_model: RunModel, path: Path, info: dict[str, str]) -> Path:
    """The classifier converted by litert-torch (the Keras backbone is a torch module on the torch
    backend; uint8 in, the temperature inside), metadata in ``<file>.json``."""
    import torch

    from keras_transfer.base.paths import write_json
    from keras_transfer.features import resolve

    litert_torch = require_litert()
    temperature, head, flip = run_model.temperature, run_model.head, run_model.flip
    info = {**info, "unknown_threshold": "", "unknown_score": "not in LiteRT files (use the ONNX or OpenVINO file)"}

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.extractor = resolve(run_model.source.extractor)
            if run_model.solved:
                self.kernel = torch.nn.Parameter(torch.from_numpy(head.kernel / temperature).float(), False)
                self.bias = torch.nn.Parameter(torch.from_numpy(head.bias / temperature).float(), False)
            else:
                self.head = head

        def probabilities(self, pixels):
            features = self.extractor(pixels)
            if run_model.solved:
                logits = features @ self.kernel + self.bias
                return torch.sigmoid(logits) if run_model.multi_label else torch.softmax(logits, dim=-1)
            probabilities = self.head(features)
            if temperature == 1.0:
                return probabilities
            return torch.softmax(torch.log(probabilities.clamp_min(1e-30)) / temperature, dim=-1)

        def forward(self, image):
            pixels = image.float()
            if not flip:
                return self.probabilities(pixels)
            return (self.probabilities(pixels) + self.probabilities(pixels.flip(2))) / 2  # as the run was evaluated

    size = run_model.size
    log.info("converting to LiteRT with litert-torch (about a minute)")
    with torch.no_grad(), log.silenced((1, 2)):  # it prints every conversion pass and native logs
        edge = litert_torch.convert(Classifier().eval(), (torch.zeros((1, size, size, 3), dtype=torch.uint8),))
    with log.silenced((1, 2)):
        atomic_file(path, lambda tmp: edge.export(tmp))
    write_json(litert_metadata_path(path), info)  # after the model: never beside a file it does not describe
    return path

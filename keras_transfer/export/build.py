"""One exported classifier per format: uint8 RGB images (N, S, S, 3) in, class probabilities out.

A default run's classifier is its backbone's optimised ONNX graph (the one the feature engine
compiles; normalisation inside) with a ``Cast`` to float in front and the solved head
(``MatMul`` + ``Add`` + ``Softmax``) behind, assembled with the ``onnx`` package. Keras 3's
``model.export(format="onnx")`` would re-trace the whole model through torch (minutes, and the
raw trace carries a transpose around every convolution that ``features/export.py`` exists to
remove); the head is three standard operators. OpenVINO's file is the same graph read and saved
by OpenVINO. Both carry the class names, input size, resize rule and unknown threshold as
metadata (ONNX ``metadata_props``, OpenVINO ``rt_info``). The user resizes to the input size
(the run's ``resize`` rule: stretch, pad or crop), as the README's example shows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_transfer.errors import ConfigError, RunError, unknown_choice
from keras_transfer.paths import atomic_file
from keras_transfer.run import Run

FORMATS = ("onnx", "openvino")
SUFFIX = {"onnx": ".onnx", "openvino": ".xml"}


def metadata(run: Run, predictor) -> dict[str, str]:
    """What a user of the file needs besides the graph, as strings."""
    import keras_transfer

    unknown = predictor.unknown
    return {"class_names": json.dumps(run.class_names), "input_size": str(predictor.source.size),
            "resize": run.config.resize, "input": "uint8 RGB NHWC, resized to input_size x input_size",
            "output": "class probabilities", "temperature": "1.0",
            "unknown_threshold": "" if unknown is None else str(unknown.threshold),
            "unknown_score": "" if unknown is None else f"cosine distance to the {unknown.k}th nearest training image",
            "backbone": run.config.backbone, "producer": f"keras-transfer {keras_transfer.__version__}"}


def onnx_classifier(run: Run, predictor, info: dict[str, str]):
    """The ONNX ModelProto: Cast(uint8 -> float) -> backbone -> MatMul + Add -> Softmax, ``info`` as metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from keras_transfer.features.export import export_onnx

    model = onnx.load(str(export_onnx(predictor.source.extractor, predictor.source.identity)))
    graph = model.graph
    pixels, features = graph.input[0], graph.output[0].name
    size = predictor.source.size
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", size, size, 3])
    graph.node.insert(0, helper.make_node("Cast", ["image"], [pixels.name], to=TensorProto.FLOAT, name="to_float"))
    graph.initializer.extend([numpy_helper.from_array(predictor.head.kernel.astype(np.float32), "head_kernel"),
                              numpy_helper.from_array(predictor.head.bias.astype(np.float32), "head_bias")])
    graph.node.extend([helper.make_node("MatMul", [features, "head_kernel"], ["head_matmul"], name="head_matmul"),
                       helper.make_node("Add", ["head_matmul", "head_bias"], ["logits"], name="head_add"),
                       helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1, name="head_softmax")])
    probabilities = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                                  ["batch", len(run.class_names)])
    del graph.input[:]
    graph.input.append(image)
    del graph.output[:]
    graph.output.append(probabilities)
    for key, value in info.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    return model


def export_run(run: str | Path | Run, fmt: str, out: str | Path | None = None) -> Path:
    """Writes the run's classifier as ``fmt`` (``out``: default ``<run>/export/model.<ext>``).

    Raises:
        ConfigError: An unknown format, or a path that cannot be written (nothing is left there).
        RunError: A run whose head or backbone was trained by Keras (not exportable this way yet).
    """
    from keras_transfer.inference import Predictor

    if fmt not in FORMATS:
        raise unknown_choice("export format", fmt, FORMATS)
    run = run if isinstance(run, Run) else Run.open(run)
    predictor = Predictor.open(run)
    if predictor is None:
        raise RunError(f"run {run.path} cannot be exported yet", "a default run (solved linear head, frozen backbone)",
                       f"--strategy {run.config.strategy} --head {run.config.head}",
                       hint="train with the default --strategy bottleneck --head linear")
    path = Path(out) if out else run.path / "export" / f"model{SUFFIX[fmt]}"
    if path.suffix != SUFFIX[fmt]:
        raise ConfigError(f"an {fmt} file must end in {SUFFIX[fmt]}", SUFFIX[fmt], str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        info = metadata(run, predictor)
        model = onnx_classifier(run, predictor, info)
        if fmt == "onnx":
            import onnx

            return atomic_file(path, lambda tmp: onnx.save(model, tmp))
        return _save_openvino(model, path, info)
    except OSError as error:
        raise ConfigError(f"cannot write {path}", "a writable folder", f"{type(error).__name__}: {error}") from error


def _save_openvino(model, path: Path, info: dict[str, str]) -> Path:
    """The ONNX graph read and saved by OpenVINO (``.xml`` + ``.bin``), metadata in ``rt_info``."""
    import openvino as ov

    core = ov.Core()
    ov_model = core.read_model(model.SerializeToString(), b"")  # the model as bytes, its weights inline
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

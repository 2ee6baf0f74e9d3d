"""Inference runtimes for the frozen extractor: OpenVINO (fastest), ONNX Runtime, Keras predict.

Every runtime maps uint8 batches (B, S, S, 3) to float32 features (B, D) through ``stream``,
which takes an iterable of ``(tag, images)`` and yields ``(tag, features)`` in the same order;
OpenVINO keeps several inference requests in flight so the cores never wait on Python.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from keras_transfer.base import log
from keras_transfer.base.errors import ConfigError, KerasTransferError, unknown_choice
from keras_transfer.features.export import discard_if_damaged, export_onnx
from keras_transfer.base.paths import cache_dir

RUNTIMES = ("auto", "openvino", "onnx", "keras")
PRECISIONS = ("auto", "fp32", "bf16", "int8")
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: the quantized layers run in int8 anyway
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16", "bf16"})  # /proc/cpuinfo, or OpenVINO's capability name
# The measured choice per CPU kind (python -m benchmarks.precision; docs/precision.md): the fastest
# precision whose held-out accuracy is within 0.3 points of fp32 on CIFAR-10, flowers5 and hymenoptera.
# Neither int8 (NNCF, both recipes) nor bf16 met it where measured: fp32 on every kind.
CHOICE_BF16_CPU = "fp32"  # AMX: bf16 2.3x faster, but 1.0 point lower on flowers5 (+0.7 CIFAR-10, = hymenoptera);
# keeping the pooled-feature nodes fp32 is not possible through OpenVINO 2026.4's Python API (rt_info marks
# such as disable_fp16_compression leave the compiled bf16 graph unchanged: measured, identical outputs)
CHOICE_OTHER_CPU = "fp32"  # AVX2: int8 measured (see the docs), bf16 emulated (slower)


@functools.lru_cache(maxsize=1)
def cpu_capabilities() -> frozenset[str]:
    """The CPU's instruction-set flags (lower case): /proc/cpuinfo's, else OpenVINO's
    ``OPTIMIZATION_CAPABILITIES`` (e.g. ``bf16``, ``int8``) where there is no /proc/cpuinfo.

    The one place that reads the CPU for the choice of precision (tests replace only this).
    """
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        import openvino as ov

        return frozenset(c.lower() for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # no OpenVINO: nothing known, fp32
        return frozenset()


def choose_precision(runtime: str = "auto") -> str:
    """The precision ``auto`` means on this CPU for ``runtime``: the measured decision table above."""
    if runtime in ("onnx", "keras"):
        return "fp32"
    return CHOICE_BF16_CPU if cpu_capabilities() & BF16_FLAGS else CHOICE_OTHER_CPU


def resolve_precision(precision: str, runtime: str = "auto") -> str:
    """``precision`` itself, or what ``auto`` means here (what a run records and keys its features by)."""
    return choose_precision(runtime) if precision == "auto" else precision


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run the extractor.

    Attributes:
        runtime: auto (OpenVINO, else ONNX Runtime, else Keras), openvino, onnx or keras.
        precision: auto (the default: the measured choice for this CPU, ``choose_precision``),
            fp32 (matches Keras to 1e-4), bf16 (OpenVINO on CPUs with bf16 support: about 2x
            faster, less exact) or int8 (OpenVINO, NNCF post-training quantization on
            ``calibration``).
        batch_size: Images per OpenVINO inference request (ONNX Runtime and Keras use
            ``4 * batch_size``).
        streams: OpenVINO streams (parallel requests); None lets OpenVINO choose.
        threads: Inference threads; None uses every core.
        calibration: int8 only: the training images NNCF calibrates on (``features.quantize.Calibration``).
    """

    runtime: str = "auto"
    precision: str = "auto"
    batch_size: int = 4  # measured best with 2 streams on 2 cores (python -m benchmarks.run --sweep)
    streams: int | None = None
    threads: int | None = None
    calibration: Any = field(default=None, compare=False, repr=False)

    def validate(self) -> RuntimeOptions:
        if self.runtime not in RUNTIMES:
            raise unknown_choice("runtime", self.runtime, RUNTIMES)
        if self.precision not in PRECISIONS:
            raise unknown_choice("precision", self.precision, PRECISIONS)
        if self.precision not in ("fp32", "auto") and self.runtime in ("onnx", "keras"):
            raise ConfigError(f"precision {self.precision} needs the openvino runtime",
                              "--runtime auto or openvino", f"--runtime {self.runtime}")
        return self

    def resolved(self) -> RuntimeOptions:
        """These options with ``auto`` precision replaced by this CPU's choice."""
        return replace(self, precision=resolve_precision(self.precision, self.runtime))

    def key(self) -> dict:
        """What the precision adds to a feature identity: the resolved precision (never "auto"),
        and for int8 the quantization recipe and the calibration set's hash."""
        precision = resolve_precision(self.precision, self.runtime)
        if precision != "int8":
            return {"precision": precision}
        from keras_transfer.features.quantize import INT8_RECIPE, QUANTIZE_VERSION

        return {"precision": precision, "int8": f"{INT8_RECIPE}-v{QUANTIZE_VERSION}",
                "calibration": _calibration(self).key}


def _calibration(options: RuntimeOptions):
    if options.calibration is None:
        raise ConfigError("--precision int8 needs training images to calibrate on",
                          "a training run on the local executor", "no calibration set",
                          hint="use --precision fp32")
    return options.calibration


@dataclass
class Runtime:
    """A runtime that runs batches one after another through ``infer``."""

    name: str
    infer: Any  # Callable[[np.ndarray], np.ndarray]
    batch_size: int = 32

    def stream(self, batches: Iterable[tuple[Any, np.ndarray]]) -> Iterator[tuple[Any, np.ndarray]]:
        for tag, images in batches:
            yield tag, np.asarray(self.infer(images), dtype=np.float32)


@dataclass
class OpenVinoRuntime(Runtime):
    """OpenVINO with a dynamic batch, uint8 input cast inside the model and requests in flight."""

    compiled: Any = None
    requests: int = 2
    shape: tuple[int, ...] = ()  # of one image's features
    streams: int = 1  # requests that run at the same time

    def stream(self, batches: Iterable[tuple[Any, np.ndarray]]) -> Iterator[tuple[Any, np.ndarray]]:
        free = deque(self.compiled.create_infer_request() for _ in range(self.requests))
        inflight: deque = deque()  # (item, request, offset, count), in submission order
        items: deque = deque()  # [tag, features, parts left], in submission order

        def retire() -> None:
            item, request, offset, count = inflight.popleft()
            request.wait()
            item[1][offset:offset + count] = request.get_output_tensor(0).data[:count]
            item[2] -= 1
            free.append(request)

        def finished() -> Iterator[tuple[Any, np.ndarray]]:
            while items and items[0][2] == 0:
                tag, features, _ = items.popleft()
                yield tag, features

        b = self.batch_size
        for tag, images in batches:
            item = [tag, np.empty((len(images), *self.shape), np.float32), -(-len(images) // b)]
            items.append(item)
            for offset in range(0, len(images), b):
                if not free:
                    retire()
                    yield from finished()
                part = images[offset:offset + b]  # the batch dimension is dynamic: a short part is not padded
                count = len(part)
                request = free.popleft()
                request.start_async({0: np.ascontiguousarray(part, np.uint8)})
                inflight.append((item, request, offset, count))
            yield from finished()
        while inflight:
            retire()
            yield from finished()


def openvino_runtime(path, size: int, options: RuntimeOptions) -> OpenVinoRuntime:
    """Compiles the ONNX file at ``path`` with OpenVINO for uint8 (B, size, size, 3) input."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    options = options.resolved()
    core = ov.Core()
    core.set_property({"CACHE_DIR": str(cache_dir("openvino"))})
    if options.precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        raise ConfigError("this CPU has no bf16 support", "a CPU with AVX512-BF16 or AMX",
                          hint="use --precision fp32 (or auto)")
    if options.precision == "int8":
        from keras_transfer.features.quantize import INT8_RECIPE, quantize_model

        path = quantize_model(path, size, _calibration(options), INT8_RECIPE)
    model = core.read_model(str(path))
    model.reshape([-1, size, size, 3])  # dynamic batch: one image runs as one (serve), measured as fast as static
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8)
    model = ppp.build()
    config = {"INFERENCE_PRECISION_HINT": _OV_PRECISION[options.precision], "PERFORMANCE_HINT": "THROUGHPUT",
              "CPU_DENORMALS_OPTIMIZATION": True}  # flush denormals to zero: ~15% faster, same features
    if options.streams:
        config["NUM_STREAMS"] = str(options.streams)
    if options.threads:
        config["INFERENCE_NUM_THREADS"] = options.threads
    compiled = core.compile_model(model, "CPU", config)
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) + 1
    shape = tuple(d.get_length() for d in compiled.output(0).get_partial_shape()[1:])
    streams = int(compiled.get_property("NUM_STREAMS"))
    return OpenVinoRuntime("openvino", None, options.batch_size, compiled, requests, shape, streams)


def onnx_runtime(path, options: RuntimeOptions) -> Runtime:
    """ONNX Runtime on the CPU, float32 input."""
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = options.threads or os.cpu_count() or 1
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return Runtime("onnx", lambda images: session.run(None, {name: images.astype(np.float32)})[0],
                   4 * options.batch_size)


def keras_runtime(extractor, options: RuntimeOptions) -> Runtime:
    """Keras ``predict_on_batch``: the reference, and the fallback when export fails."""
    from keras_transfer.features.extractor import resolve

    extractor = resolve(extractor)
    return Runtime("keras", lambda images: np.asarray(extractor.predict_on_batch(images)), 4 * options.batch_size)


def _reason(error: Exception | None) -> str:
    """First line of an error (a failing torch export can print a whole graph)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:300] if text else ''}"


def _compiled(name: str, extractor, model_identity: dict, options: RuntimeOptions, size: int) -> Runtime:
    path = export_onnx(extractor, model_identity)
    return openvino_runtime(path, size, options) if name == "openvino" else onnx_runtime(path, options)


def make_runtime(extractor, model_identity: dict, options: RuntimeOptions, size: int) -> Runtime:
    """The requested runtime for ``size`` px input; ``auto`` tries OpenVINO, then ONNX Runtime, then Keras.

    ``extractor`` (a Keras model or a ``Deferred`` one) is built only to export it once.

    An explicitly requested runtime that fails raises; ``auto`` warns and falls back.
    """
    options = options.validate().resolved()
    if options.runtime == "keras":
        return keras_runtime(extractor, options)
    order = ["openvino", "onnx"] if options.runtime == "auto" else [options.runtime]
    last_error: Exception | None = None
    for name in order:
        for attempt in range(2):
            try:
                return _compiled(name, extractor, model_identity, options, size)
            except KerasTransferError:  # the user's to fix (bad option, missing weights): say so, do not fall back
                raise
            except Exception as error:  # exotic backbone or missing package: stay correct, just slower
                if attempt == 0 and discard_if_damaged(model_identity):  # a damaged cached file: export again
                    continue
                if options.runtime != "auto":
                    raise ConfigError(f"the {name} runtime cannot run {model_identity.get('backbone')}",
                                      received=_reason(error), hint="use --runtime auto to fall back") from error
                last_error = error
                break
    if options.precision != "fp32":
        raise ConfigError(f"precision {options.precision} needs the openvino runtime, which failed",
                          received=_reason(last_error))
    log.warn(f"fast runtimes unavailable ({_reason(last_error)}); using Keras predict")
    return keras_runtime(extractor, options)

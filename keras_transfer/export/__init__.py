"""Exporting a run to a file a runtime loads alone: ``export_run(run, "onnx" | "openvino")``."""

from keras_transfer.export.build import FORMATS, export_run

__all__ = ["FORMATS", "export_run"]

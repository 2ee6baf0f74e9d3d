"""Run reports: metrics with confidence intervals, confusion, curves, mistakes, calibration, dataset."""

from keras_transfer.report.build import ReportFiles, build_report, write_report
from keras_transfer.report.context import ReportOptions
from keras_transfer.report.model import Plot, Report, Section, Table

__all__ = ["Plot", "Report", "ReportFiles", "ReportOptions", "Section", "Table", "build_report", "write_report"]

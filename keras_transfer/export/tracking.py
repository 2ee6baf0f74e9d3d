"""MLflow: a finished run logged to a tracking store (``train --mlflow [URI]``).

Parameters (the TrainConfig), held-out metrics with the images they came from (tags
``evaluated_on`` / ``evaluated_images``), the report, the model card, ``model.keras`` and the
ONNX export as artifacts, and a pyfunc model (``export.kt_pyfunc``: the ONNX file with its
preprocessing, logged with ``loader_module`` + ``code_paths``, so loading it unpickles nothing
and needs no keras-transfer) that ``mlflow models predict`` / ``serve`` answer with.

It lives in the deploy layer because it exports and reports; mlflow is imported here only, and
only when asked for (``pip install 'keras-transfer[mlflow]'``).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from keras_transfer.base import log
from keras_transfer.base.errors import ConfigError
import keras_transfer.export.kt_pyfunc as kt_pyfunc
from keras_transfer.export.build import export_run
from keras_transfer.run.folder import Files, Run

EXPERIMENT = "keras-transfer"
LOGGED_FILES = (Files.CONFIG, Files.METRICS, Files.DATASET, Files.CALIBRATION, Files.TIMING, Files.AUDIT,
                Files.CLASSES, Files.MODEL_CARD, Files.MODEL)


def require_mlflow() -> None:
    """Nothing when MLflow is installed, else the error that says how to install it (without
    importing it: its background threads must not exist yet when the report forks workers)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):  # a module set to None, a broken install
        found = False
    if not found:
        raise ConfigError("--mlflow needs MLflow", "the mlflow package installed", "no module named mlflow",
                          hint="pip install 'keras-transfer[mlflow]'")


def log_run(run: str | Path | Run, uri: str | None = None, report: bool = True) -> str:
    """Logs a run folder to MLflow; returns the MLflow run id.

    Args:
        run: The run folder (``train`` wrote it).
        uri: The tracking URI (``sqlite:///mlflow.db``, ``file:./mlruns``, ``http://...``); None or
            "" keeps MLflow's own choice (``MLFLOW_TRACKING_URI``).
        report: Also write and log the HTML report.

    Example:
        >>> log_run("runs/flowers", "sqlite:///mlflow.db")  # doctest: +SKIP
        '3f2a...'
    """
    require_mlflow()
    run = Run.open(run)
    onnx = export_run(run, "onnx")  # exported and reported before mlflow is imported (see require_mlflow)
    report_folder = None
    if report:
        from keras_transfer.report.build import write_report

        report_folder = Path(write_report(run).html).parent
    import mlflow

    if uri:
        mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=run.path.name) as active:
        mlflow.log_params({k: _param(v) for k, v in dataclasses.asdict(run.config).items() if k != "mlflow"})
        mlflow.log_metrics(metrics_of(run.metrics))
        mlflow.set_tags(tags_of(run))
        for name in LOGGED_FILES:
            if run.file(name).is_file():
                mlflow.log_artifact(str(run.file(name)))
        mlflow.log_artifacts(str(run.export_dir), artifact_path=Files.EXPORT)
        if report_folder is not None:
            mlflow.log_artifacts(str(report_folder), artifact_path="report")
        _log_pyfunc(mlflow, onnx)
    log.info(f"logged to MLflow: run {active.info.run_id} of experiment {EXPERIMENT!r} at "
             f"{mlflow.get_tracking_uri()} (model: runs:/{active.info.run_id}/model)")
    return active.info.run_id


def metrics_of(metrics: dict) -> dict[str, float]:
    """The numbers of ``metrics.json`` MLflow charts: held-out accuracy, kappa, log loss, per-class F1,
    the baseline, calibration error and the measured unknown rejection."""
    out = {k: metrics[k] for k in ("accuracy", "cohen_kappa", "log_loss") if isinstance(metrics.get(k), (int, float))}
    for name, row in (metrics.get("per_class") or {}).items():
        if isinstance(row.get("f1"), (int, float)):
            out[f"f1.{_key(name)}"] = row["f1"]
    if "baseline" in metrics:
        out["baseline_accuracy"] = metrics["baseline"]["accuracy"]
    if isinstance((metrics.get("calibration") or {}).get("ece_after"), (int, float)):
        out["ece"] = metrics["calibration"]["ece_after"]
    rate = (((metrics.get("selection") or {}).get("unknown") or {}).get("measured_false_rejection") or {}).get("rate")
    if isinstance(rate, (int, float)):
        out["unknown_false_rejection"] = rate
    return {k: float(v) for k, v in out.items()}


def tags_of(run: Run) -> dict[str, str]:
    metrics = run.metrics
    return {"keras_transfer.run_folder": str(run.path.absolute()), "evaluated_on": str(metrics.get("evaluated_on")),
            "evaluated_images": str(metrics.get("evaluated_images")), "held_out": str(metrics.get("held_out")),
            "classes": ", ".join(run.class_names)[:5000]}


def _log_pyfunc(mlflow, onnx: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:  # the data path holds the ONNX file alone
        data = Path(folder) / "onnx"
        data.mkdir()
        (data / kt_pyfunc.MODEL_FILE).write_bytes(onnx.read_bytes())
        mlflow.pyfunc.log_model(name="model", loader_module=kt_pyfunc.__name__.rsplit(".", 1)[-1],
                                data_path=str(data), code_paths=[kt_pyfunc.__file__],
                                pip_requirements=["onnxruntime", "numpy", "pandas", "pillow"])


def _param(value) -> str:
    return str(value)[:6000]


def _key(name: str) -> str:
    """A class name as an MLflow metric key (letters, digits, _ - . / and spaces)."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in name)[:200]


def train(config, out: str | Path) -> Run:
    """``run.train.train``, then, when ``config.mlflow`` is set (a URI, or "" for MLflow's default),
    the run logged to MLflow (``log_run``). ``keras_transfer.train`` and ``keras-transfer train``.

    Example:
        >>> from keras_transfer import TrainConfig, train
        >>> run = train(TrainConfig(data="flowers", mlflow="sqlite:///mlflow.db"), "runs/flowers")  # doctest: +SKIP
    """
    from keras_transfer.run.train import train as train_run

    if config.mlflow is not None:
        require_mlflow()  # before the training, not after it
    run = train_run(config, out)
    if config.mlflow is not None:
        log_run(run, config.mlflow)
    return run

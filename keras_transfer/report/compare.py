"""The tutorials' comparison table: runs of different strategies on the same data, side by side."""

from __future__ import annotations

from pathlib import Path

from keras_transfer.base.log import table
from keras_transfer.run import Files, Run

COLUMNS = ("run", "strategy", "backbone", "epochs", "s/epoch", "total s", "log loss", "accuracy", "kappa")


def compare_runs(paths: list[str | Path]) -> list[dict]:
    """One row per run: strategy, backbone, epochs, time per epoch, total time, log loss,
    accuracy and kappa on its held-out split.

    Example:
        >>> rows = compare_runs(["runs/bottleneck", "runs/finetune"])  # doctest: +SKIP
    """
    rows = []
    for path in paths:
        run = Run.open(path)
        metrics, timing = run.read(Files.METRICS) or {}, run.read(Files.TIMING) or {}
        epochs = int(timing.get("epochs", 0))
        fit_seconds = timing.get("fit_seconds", timing.get("total_seconds", 0.0))
        rows.append({"run": str(path), "strategy": run.config.strategy, "backbone": run.config.backbone,
                     "epochs": epochs, "s/epoch": fit_seconds / epochs if epochs else None,
                     "total s": timing.get("total_seconds"), "log loss": metrics.get("log_loss"),
                     "accuracy": metrics.get("accuracy"), "kappa": metrics.get("cohen_kappa"),
                     "split": metrics.get("split")})
    return rows


def format_table(rows: list[dict]) -> str:
    """A plain-text table of ``compare_runs`` rows."""
    return table(list(COLUMNS), [[row[c] for c in COLUMNS] for row in rows])

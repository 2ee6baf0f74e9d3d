"""Everything the report reads from a run folder, loaded once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keras_transfer.base.errors import ConfigError
from keras_transfer.config import dataset_of
from keras_transfer.data.dataset import Dataset
from keras_transfer.evaluation.predictions import Predictions
from keras_transfer.run import Files, Run, eval_predictions


@dataclass(frozen=True)
class ReportOptions:
    """Knobs of the report.

    Attributes:
        sample: Images sampled for the colour and size exploration.
        resamples: Bootstrap resamples of the confidence intervals.
        mistakes: Most confident mistakes shown.
        per_class: Sample images shown per class.
        bins: Confidence bins of the reliability diagram.
        seed: Seed of every random sample.
    """

    sample: int = 200
    resamples: int = 1000
    mistakes: int = 12
    per_class: int = 6
    bins: int = 10
    seed: int = 0

    def validate(self) -> ReportOptions:
        """Checks every count is at least 1; returns self."""
        for name in ("sample", "resamples", "mistakes", "per_class", "bins"):
            if getattr(self, name) < 1:
                raise ConfigError(f"invalid report option {name}", "at least 1", repr(getattr(self, name)))
        return self


@dataclass(frozen=True)
class ReportContext:
    """A run, its dataset (splits as at training) and its held-out predictions."""

    run: Run
    dataset: Dataset
    predictions: Predictions  # calibrated: what predict gives
    options: ReportOptions
    raw: Predictions | None = None  # the head's own output, before the calibration temperature

    @property
    def class_names(self) -> list[str]:
        return self.run.class_names


def load_context(run: str | Path | Run, options: ReportOptions | None = None) -> ReportContext:
    """Opens a run; reads its saved predictions, or predicts its held-out split once (by its
    ``RunModel``) and saves them."""
    run = Run.open(run)
    predictions = run.predictions()
    if predictions is None:  # runs written before predictions were saved
        predictions = eval_predictions(run)
        predictions.save(run.file(Files.PREDICTIONS))
    return ReportContext(run, dataset_of(run.config), predictions.with_temperature(run.temperature),
                         (options or ReportOptions()).validate(), predictions)

"""Calibration measured on held-out images: ``python -m benchmarks.calibration [--only ...]``.

Per dataset (hymenoptera, flowers5; held-out = each one's ``val/``, which nothing was fit or
chosen on), the expected calibration error (ECE, 10 bins) and log loss of:
- ``solver``: the default run's solved head as it is, and with a temperature fit on the
  out-of-fold probabilities of its own cross-validation (the one calibration a solved head
  could get without spending images): why the default keeps T = 1;
- ``keras``: Keras-trained heads (``--solver keras``; ``--strategy frozen``), before and after
  the temperature ``train`` chose on the selection split (or kept at 1, with the reason).
Writes ``benchmarks/results/calibration.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras_transfer  # noqa: F401  (sets the Keras backend before keras is imported)
from benchmarks.default_path import run_cases, write_results
from benchmarks.predict import FLOWERS, HYMENOPTERA

DATASETS = {"hymenoptera": HYMENOPTERA, "flowers5": FLOWERS}


def _train(work: Path, name: str, args: dict) -> Path:
    from keras_transfer.run import train
    from keras_transfer.config import TrainConfig

    os.environ["KERAS_TRANSFER_CACHE"] = str(work / "cache-predict")
    tag = "-".join(f"{k}_{v}" for k, v in args.items()) or "default"
    out = work / "runs-calibration" / f"{name}-{tag}"
    if not (out / "calibration.json").exists():
        train(TrainConfig(data=str(DATASETS[name]), **args), out)
    return out


def case_solver(work: Path) -> list[dict]:
    from keras_transfer.run import split_features
    from keras_transfer.evaluation.calibration import apply_temperature, calibration, fit_temperature
    from keras_transfer.evaluation.metrics import sample_losses
    from keras_transfer.evaluation.predictions import Predictions
    from keras_transfer.run import Run
    from keras_transfer.strategies.solver import fit_linear_head

    rows = []
    for name in DATASETS:
        run = Run.open(_train(work, name, {}))
        split, features, indices = split_features(run, "train")
        fit = fit_linear_head(features[None], split.labels[indices], len(run.class_names), seed=run.config.seed)
        t = fit_temperature(fit.oof_labels, fit.oof_probabilities)
        held = Predictions.load(run.path / "predictions.npz")
        after = apply_temperature(held.probabilities, t)
        rows.append({"case": f"{name}: solved head, T fit on its out-of-fold probabilities", "seconds": 0.0,
                     "temperature": t, "evaluated_on": f"{held.split} ({len(held.labels)} held-out images)",
                     "ece_before": calibration(held.labels, held.probabilities).ece,
                     "ece_after": calibration(held.labels, after).ece,
                     "log_loss_before": float(sample_losses(held.labels, held.probabilities).mean()),
                     "log_loss_after": float(sample_losses(held.labels, after).mean())})
    return rows


def case_keras(work: Path) -> list[dict]:
    rows = []
    for name, args in (("hymenoptera", {"solver": "keras"}), ("hymenoptera", {"strategy": "frozen", "epochs": 6}),
                       ("flowers5", {"solver": "keras"})):
        record = json.loads((_train(work, name, args) / "calibration.json").read_text())
        rows.append({"case": f"{name}: {' '.join(f'--{k} {v}' for k, v in args.items())}", "seconds": 0.0,
                     **{k: record[k] for k in ("temperature", "evaluated_on", "ece_before", "ece_after",
                                               "log_loss_before", "log_loss_after", "method")},
                     "chosen_on": record.get("fit_on") or record["why"], "why": record["why"]})
    return rows


CASES = {"solver": case_solver, "keras": case_keras}


def main(argv: list[str] | None = None) -> None:
    rows = run_cases("python -m benchmarks.calibration", __doc__.splitlines()[0], CASES, argv)
    print(f"{'case':<66}{'T':>7}{'ECE before':>12}{'ECE after':>11}{'LL before':>11}{'LL after':>10}  held-out")
    for r in rows:
        print(f"{r['case']:<66}{r['temperature']:>7.3f}{r['ece_before']:>12.4f}{r['ece_after']:>11.4f}"
              f"{r['log_loss_before']:>11.4f}{r['log_loss_after']:>10.4f}  {r['evaluated_on']}")
    write_results("calibration", rows)


if __name__ == "__main__":
    main()

"""``keras-transfer train``: its options are generated from ``TrainConfig``'s fields."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

from keras_transfer.cli.options import add_common, command
from keras_transfer.base.paths import strict_json


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per ``TrainConfig`` field: flag, type, default and help from the field itself
    (``config.option``), so a new training option is one new field."""
    from keras_transfer.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        meta = field.metadata
        if not meta.get("cli", True):
            continue
        flag = meta.get("flag") or "--" + field.name.replace("_", "-")
        names = [flag, meta["short"]] if meta.get("short") else [flag]
        kind = hints[field.name]
        if kind is bool and field.default:
            parser.add_argument("--no-" + field.name.replace("_", "-"), dest=field.name, action="store_false",
                                help="do not " + meta["help"])
        elif kind is bool:
            parser.add_argument(*names, dest=field.name, action="store_true", help=meta["help"])
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(*names, dest=field.name, type=typing.get_args(kind)[0], nargs="*",
                                default=list(field.default), help=meta["help"])
        else:
            base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)  # X | None -> X
            optional = {"nargs": "?", "const": meta["const"], "metavar": "URI"} if meta.get("const") is not None else {}
            parser.add_argument(*names, dest=field.name, type=meta.get("parse") or base, default=field.default,
                                help=meta["help"], **optional)


def register(sub) -> None:
    p = command(sub, "train", "train a classifier on a dataset and write a run folder",
                ["keras-transfer train                      # the bundled flower photos (the demo)",
                 "keras-transfer train photos/ --out runs/photos",
                 "keras-transfer train photos/ --strategy auto --time-budget 120"], _cmd_train)
    p.add_argument("data", nargs="?", default="flowers",
                   help="dataset folder, images.npy+labels.npy folder, .npz, or a built-in: 'flowers' (the "
                        "bundled demo photos, the default) or 'digits'")
    p.add_argument("--out", "-o", help="run folder (default: runs/<dataset name>)")
    add_config_options(p)
    add_common(p)


def _splits_line(dataset: dict) -> str:
    """Where each split came from, e.g. ``splits: train 196 from train/, val 49 from cut from train (20%...)``."""
    def origin(place: str) -> str:
        return f"{Path(place).name}/" if Path(place).is_dir() else place

    parts = [f"{name} {count} from {origin(dataset.get('layout', {}).get(name, '?'))}"
             for name, count in dataset["splits"].items()]
    skipped = f"; {dataset['skipped']} file(s) skipped (dataset.json lists them)" if dataset.get("skipped") else ""
    return f"splits: {', '.join(parts)}{skipped}"


def _cmd_train(args) -> int:
    from keras_transfer.export.tracking import train
    from keras_transfer.run import Files
    from keras_transfer.config import TrainConfig
    from keras_transfer.evaluation.metrics import format_metrics

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    config = TrainConfig(**{**values, "hidden_units": tuple(args.hidden_units)})
    out = Path(args.out or Path("runs") / (Path(args.data).name or "run"))
    run = train(config, out)
    metrics, timing, dataset = run.read(Files.METRICS), run.read(Files.TIMING), run.read(Files.DATASET)
    if args.json:
        print(strict_json({"run": str(run.path), "metrics": metrics, "timing": timing, "dataset": dataset}))
    else:
        print(_splits_line(dataset))
        print(format_metrics(metrics))
        print(f"held-out {metrics['evaluated_on']} split ({metrics['n']} images no choice was made on); "
              f"trained in {timing['total_seconds']:.1f} s (features {timing['feature_seconds']:.1f} s); "
              f"run saved to {run.path}")
        if "baseline" in metrics:
            gain = 100 * (metrics["accuracy"] - metrics["baseline"]["accuracy"])
            verdict = f"transfer helped: {gain:+.1f} points" if gain > 0 else "transfer did NOT help"
            print(f"baseline: {metrics['baseline']['method']}: accuracy {metrics['baseline']['accuracy']:.4f} "
                  f"on the same images ({verdict})")
        if pseudo := metrics.get("selection", {}).get("pseudo_labels"):  # train --unlabelled
            held = pseudo.get("held_out_accuracy", {})
            print(f"pseudo-labels: {pseudo['used']} used of {pseudo['unlabelled_images']} unlabelled images "
                  f"(share {pseudo['threshold']}, {pseudo['why']})" + (
                      f"; held-out accuracy {held['with']:.4f} with them, {held['without']:.4f} without" if held else ""))
    return 0

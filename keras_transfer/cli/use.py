"""Using a run: evaluate, predict, compare runs, list backbones."""

from __future__ import annotations

import json
from pathlib import Path

from keras_transfer.base import log
from keras_transfer.cli.options import add_common, add_executor, command
from keras_transfer.base.paths import strict_json
from keras_transfer.base.errors import ConfigError


def register(sub) -> None:
    from keras_transfer.backbones import DEFAULT_BACKBONE
    from keras_transfer.config import weights_choice

    p = command(sub, "evaluate", "metrics of a run on its held-out split (and calibration, or unknown-image scores)",
                ["keras-transfer evaluate runs/ants", "keras-transfer evaluate runs/ants --outliers photos_of_other_things/"],
                _cmd_evaluate)
    p.add_argument("run", help="run folder")
    p.add_argument("--data", help="evaluate on another dataset with the same classes")
    p.add_argument("--outliers", metavar="FOLDER",
                   help="images of none of the classes: report how well 'unknown' scores separate them (AUROC)")
    add_common(p)
    p = command(sub, "predict", "top-k predictions for images and folders",
                ["keras-transfer predict runs/ants photos/ --top-k 2 --output preds.csv",
                 "keras-transfer predict --imagenet photo.jpg"], _cmd_predict)
    p.add_argument("paths", nargs="+", metavar="PATH", help="a run folder, then image files or folders "
                                                            "(with --imagenet: only images)")
    p.add_argument("--top-k", type=int, default=3, help="classes listed per image")
    p.add_argument("--output", "-o", help="write one row per image to this .csv or .json file")
    p.add_argument("--imagenet", action="store_true", help="zero-shot: ImageNet classes of a pretrained backbone")
    p.add_argument("--backbone", "-b", default=DEFAULT_BACKBONE, help="backbone for --imagenet")
    p.add_argument("--weights", default="imagenet", type=weights_choice,
                   help="--imagenet: 'imagenet', a local weights file, or 'none' (random)")
    p.add_argument("--offline", action="store_true", help="never use the network (also KERAS_TRANSFER_OFFLINE=1)")
    add_executor(p)
    add_common(p)
    p = command(sub, "backbones", "list the registered backbones, or measure some on your images (--try)",
                ["keras-transfer backbones --json", "keras-transfer backbones flowers --try auto"], _cmd_backbones)
    p.add_argument("data", nargs="?", help="with --try: a dataset folder (its training images only are used)")
    p.add_argument("--try", dest="candidates", help="backbones to measure, comma-separated (e.g. lite0,lite2,"
                                                    "onnx:enc.onnx), or auto (those usable offline)")
    p.add_argument("--max-per-class", type=int, help="--try: at most N images per class (a quicker probe)")
    p.add_argument("--plot", help="--try: accuracy-vs-speed PNG (default: backbones-try.png)",
                   default="backbones-try.png")
    p.add_argument("--seed", type=int, default=0, help="--try: split and fold seed")
    add_common(p)
    p = command(sub, "compare", "the tutorials' comparison table of several runs",
                ["keras-transfer compare runs/ants runs/ants-finetune"], _cmd_compare)
    p.add_argument("runs", nargs="+", help="run folders")
    add_common(p)


def _cmd_evaluate(args) -> int:
    from keras_transfer.run import evaluate, evaluate_outliers
    from keras_transfer.evaluation.metrics import format_metrics

    if args.outliers:
        report = evaluate_outliers(args.run, args.outliers)
        if args.json:
            print(strict_json(report))
        else:
            print(f"known: {report['known']}   unknown: {report['outliers']}")
            for name in ("knn", "energy", "max_softmax"):
                print(f"  {name:<12} AUROC {report[name]['auroc']:.4f}   FPR at 95% TPR {report[name]['fpr_at_95_tpr']:.4f}")
            print(f"  stored k-NN threshold flags {report['knn']['outliers_flagged']:.1%} of the unknown images "
                  f"and {report['knn']['known_rejected']:.1%} of the known ones")
        return 0
    metrics = evaluate(args.run, args.data)
    if args.json:
        print(strict_json(metrics))
        return 0
    print(f"{format_metrics(metrics)}\n({metrics['split']} split)")
    if c := metrics.get("calibration"):  # single-label runs
        print(f"calibration: temperature {c['temperature']:.3f}; expected calibration error "
              f"{c['ece_before']:.4f} before, {c['ece_after']:.4f} after")
    return 0


def _cmd_predict(args) -> int:
    from keras_transfer.run.predict import check_top_k, predict

    check_top_k(args.top_k)  # before any work, --imagenet too
    if args.imagenet:
        from keras_transfer.run.zero_shot import predict_imagenet

        results = predict_imagenet(args.paths, args.backbone, args.weights, args.top_k, args.offline)
    elif len(args.paths) < 2:
        raise ConfigError("predict needs a run folder and at least one image", received=" ".join(args.paths),
                          hint="keras-transfer predict RUN IMAGE...; or --imagenet IMAGE... for ImageNet classes")
    else:
        from keras_transfer.features.executor import check_executor, make_executor

        check_executor(args.executor)
        results = predict(args.paths[0], args.paths[1:], top_k=args.top_k,
                          executor=make_executor(args.executor, args.ray_address))
    if args.output:
        _write_predictions(Path(args.output), results)
    if args.json:
        print(strict_json(results))
    elif not args.output:
        for r in results:
            text = r.get("error") or "  ".join(f"{p['label']} {p['probability']:.3f}" for p in r["predictions"])
            text = f"[{', '.join(r['labels']) or 'no label'}]  {text}" if "labels" in r else text
            text += "  (unknown: unlike every training image)" if r.get("unknown") else ""
            print(f"{r['path']}: {text}")
    errors = [r for r in results if "error" in r]
    for r in errors:
        log.warn(f"{r['path']}: {r['error']}")
    return 1 if errors and len(errors) == len(results) else 0


def _write_predictions(path: Path, results: list[dict]) -> None:
    """One row per image: ``.json`` as printed by --json, else CSV (path, label, confidence, unknown,
    labels (several-label runs: every label the image carries, ``;``-joined), top_k, error), its
    cells safe to open in a spreadsheet."""
    from keras_transfer.base.csv_cells import csv_text
    from keras_transfer.base.paths import atomic_file

    if path.suffix.lower() == ".json":
        text = strict_json(results)  # exact names
    else:  # cells that would start a spreadsheet formula get a leading ' (csv_cells)
        rows = []
        for r in results:
            top = r.get("predictions") or [{}]
            labels = r.get("labels", [top[0]["label"]] if "label" in top[0] else [])
            rows.append([r["path"], top[0].get("label", ""), top[0].get("probability", ""), r.get("unknown", ""),
                         ";".join(labels), json.dumps(r.get("predictions", [])), r.get("error", "")])
        text = csv_text(["path", "label", "confidence", "unknown", "labels", "top_k", "error"], rows)
    try:
        atomic_file(path, lambda tmp: Path(tmp).write_text(text, errors="surrogateescape"))  # names as on disk
    except OSError as error:
        raise ConfigError(f"cannot write predictions to {path}", "a writable file path", str(error)) from error
    log.info(f"wrote {len(results)} rows to {path}")


def _cmd_backbones(args) -> int:
    from keras_transfer.backbones.catalog import backbone_table, format_table

    if args.candidates or args.data:
        if not (args.candidates and args.data):
            raise ConfigError("backbones --try needs a dataset and candidates", "keras-transfer backbones DATA --try a,b",
                              f"data {args.data!r}, --try {args.candidates!r}")
        from keras_transfer.strategies.backbone_probe import format_trial, try_backbones

        trial = try_backbones(args.data, args.candidates, args.seed, args.max_per_class, args.plot)
        print(strict_json({**trial.as_dict(), "plot": args.plot}) if args.json
              else f"{format_trial(trial)}\nplot: {args.plot}")
        return 0
    rows = backbone_table()
    print(strict_json(rows) if args.json else format_table(rows))
    return 0


def _cmd_compare(args) -> int:
    from keras_transfer.report.compare import compare_runs, format_table

    rows = compare_runs(args.runs)
    print(strict_json(rows) if args.json else format_table(rows))
    return 0

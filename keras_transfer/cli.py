"""Command-line interface: a thin layer over keras_transfer.api.

Errors caused by the user print one message on stderr and exit 1 (or 2 for bad options);
``--json`` prints machine-readable output on stdout; ``--quiet`` silences progress.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keras_transfer import log
from keras_transfer.errors import ConfigError, KerasTransferError, unknown_choice


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every default, and examples as written."""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars or info messages")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def _add_weights(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default="imagenet", type=lambda w: None if w.lower() == "none" else w,
                        help="'imagenet', a local weights file (e.g. a keras *_notop.h5), or 'none' (random)")
    parser.add_argument("--offline", action="store_true",
                        help="never use the network: ImageNet weights only from the bundle or the keras cache "
                             "(also KERAS_TRANSFER_OFFLINE=1)")


def block_count(text: str) -> int:
    """--unfreeze value: a block count, or 'all' (stored as 0)."""
    return 0 if text.strip().lower() == "all" else int(text)


def _train_parser(sub) -> None:
    from keras_transfer.config import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train a classifier on a dataset and write a run folder",
                       formatter_class=_Help,
                       epilog="examples:\n  keras-transfer train                      # the embedded digits default\n"
                              "  keras-transfer train photos/ --out runs/photos\n"
                              "  keras-transfer train photos/ --strategy auto --time-budget 120")
    p.add_argument("data", nargs="?", default="digits",
                   help="dataset folder, images.npy+labels.npy folder, .npz, or 'digits' (default)")
    p.add_argument("--out", "-o", help="run folder (default: runs/<dataset name>)")
    p.add_argument("--backbone", "-b", default=d.backbone, help=f"registered backbone (default {d.backbone})")
    _add_weights(p)
    p.add_argument("--input-size", type=int, help="input side in pixels (default: the backbone's)")
    p.add_argument("--resize", default=d.resize, help="stretch | pad | crop")
    p.add_argument("--pooling", default=d.pooling, help="avg | max | spatial (the h x w feature map)")
    p.add_argument("--strategy", default=d.strategy, help="bottleneck | frozen | finetune | scratch | auto")
    p.add_argument("--head", default=d.head, help="linear | gap_dense_bn | flatten_bn | conv (spatial features)")
    p.add_argument("--hidden", dest="hidden_units", type=int, nargs="*", default=list(d.hidden_units),
                   help="hidden sizes of the head")
    p.add_argument("--solver", default=d.solver,
                   help="bottleneck head: auto (L-BFGS, L2 by 5-fold CV on the training images, for the linear "
                        "head) | lbfgs | keras (the epoch loop, early-stopped on a validation split)")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip the raw-pixel logistic-regression baseline reported beside the accuracy")
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--epochs", type=int, default=d.epochs, help="default: the strategy's")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", dest="learning_rate", type=float, default=d.learning_rate, help="learning rate")
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience (epochs)")
    p.add_argument("--class-weight", default=d.class_weight, help="'auto': balance imbalanced classes")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing,
                   help="default: 0.1 for --strategy finetune, else 0")
    p.add_argument("--unfreeze", type=block_count, default=d.unfreeze,
                   help="finetune: top blocks to unfreeze, or 'all' (default)")
    p.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs)
    p.add_argument("--finetune-lr", type=float, default=d.finetune_lr)
    p.add_argument("--finetune-views", type=int, default=d.finetune_views,
                   help="finetune: augmented views per image cached at the freeze point")
    p.add_argument("--mixup", type=float, default=d.mixup,
                   help="finetune (all blocks): mixup strength alpha, e.g. 0.4 (default 0: off)")
    p.add_argument("--refit", action="store_true",
                   help="bottleneck: after early stopping, train the head again on train + val (needs a test split)")
    p.add_argument("--time-budget", type=float, default=d.time_budget, help="auto: seconds to spend")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--test-fraction", type=float, default=d.test_fraction)
    p.add_argument("--max-per-class", type=int, default=d.max_per_class,
                   help="at most N images per class in each split on disk (e.g. 100-per-class experiments)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--augment-views", type=int, default=d.augment_views,
                   help="cached augmented views per training image (flip, rotate, zoom, shift, shear, colour)")
    p.add_argument("--tta-views", type=int, default=d.tta_views, help="augmented views averaged at evaluation")
    p.add_argument("--runtime", default=d.runtime, help="feature runtime: auto | openvino | onnx | keras")
    p.add_argument("--precision", default=d.precision, help="fp32 (default) | bf16 (OpenVINO, faster, less exact)")
    _add_common(p)


def _cmd_train(args) -> int:
    import dataclasses

    from keras_transfer.api import train
    from keras_transfer.config import TrainConfig
    from keras_transfer.evaluation.metrics import format_metrics

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    config = TrainConfig(**{**values, "hidden_units": tuple(args.hidden_units)})
    out = Path(args.out or Path("runs") / (Path(args.data).name or "run"))
    run = train(config, out)
    metrics, timing = run.read("metrics.json"), run.read("timing.json")
    if args.json:
        print(json.dumps({"run": str(run.path), "metrics": metrics, "timing": timing}, indent=2))
    else:
        print(format_metrics(metrics))
        print(f"held-out {metrics['evaluated_on']} split ({metrics['n']} images no choice was made on); "
              f"trained in {timing['total_seconds']:.1f} s (features {timing['feature_seconds']:.1f} s); "
              f"run saved to {run.path}")
        if "baseline" in metrics:
            verdict = "transfer helped" if metrics["accuracy"] > metrics["baseline"]["accuracy"] else "transfer did NOT help"
            print(f"baseline: {metrics['baseline']['method']}: accuracy {metrics['baseline']['accuracy']:.4f} "
                  f"on the same images ({verdict})")
    return 0


def _cmd_compare(args) -> int:
    from keras_transfer.evaluation.compare import compare_runs, format_table

    rows = compare_runs(args.runs)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


def _cmd_evaluate(args) -> int:
    from keras_transfer.api import evaluate, evaluate_outliers
    from keras_transfer.evaluation.metrics import format_metrics

    if args.outliers:
        report = evaluate_outliers(args.run, args.outliers)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(f"known: {report['known']}   unknown: {report['outliers']}")
            for name in ("knn", "max_softmax"):
                print(f"  {name:<12} AUROC {report[name]['auroc']:.4f}   FPR at 95% TPR {report[name]['fpr_at_95_tpr']:.4f}")
            print(f"  stored k-NN threshold flags {report['knn']['outliers_flagged']:.1%} of the unknown images "
                  f"and {report['knn']['known_rejected']:.1%} of the known ones")
        return 0
    metrics = evaluate(args.run, args.data)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    c = metrics["calibration"]
    print(f"{format_metrics(metrics)}\n({metrics['split']} split)\n"
          f"calibration: temperature {c['temperature']:.3f}; expected calibration error "
          f"{c['ece_before']:.4f} before, {c['ece_after']:.4f} after")
    return 0


def _cmd_predict(args) -> int:
    from keras_transfer.api import predict

    if args.imagenet:
        from keras_transfer.zero_shot import predict_imagenet

        results = predict_imagenet(args.paths, args.backbone, args.weights, args.top_k, args.offline)
    elif len(args.paths) < 2:
        raise ConfigError("predict needs a run folder and at least one image", received=" ".join(args.paths),
                          hint="keras-transfer predict RUN IMAGE...; or --imagenet IMAGE... for ImageNet classes")
    else:
        results = predict(args.paths[0], args.paths[1:], top_k=args.top_k)
    if args.output:
        _write_predictions(Path(args.output), results)
    if args.json:
        print(json.dumps(results, indent=2))
    elif not args.output:
        for r in results:
            text = r.get("error") or "  ".join(f"{p['label']} {p['probability']:.3f}" for p in r["predictions"])
            text += "  (unknown: unlike every training image)" if r.get("unknown") else ""
            print(f"{r['path']}: {text}")
    errors = [r for r in results if "error" in r]
    for r in errors:
        log.warn(f"{r['path']}: {r['error']}")
    return 1 if errors and len(errors) == len(results) else 0


def _write_predictions(path: Path, results: list[dict]) -> None:
    """One row per image: ``.json`` as printed by --json, else CSV (path, label, confidence, top_k, error)."""
    import csv
    import io

    from keras_transfer.paths import atomic_file

    if path.suffix.lower() == ".json":
        text = json.dumps(results, indent=2)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["path", "label", "confidence", "unknown", "top_k", "error"])
        for r in results:
            top = r.get("predictions") or [{}]
            writer.writerow([r["path"], top[0].get("label", ""), top[0].get("probability", ""), r.get("unknown", ""),
                             json.dumps(r.get("predictions", [])), r.get("error", "")])
        text = buffer.getvalue()
    try:
        atomic_file(path, lambda tmp: Path(tmp).write_text(text))
    except OSError as error:
        raise ConfigError(f"cannot write predictions to {path}", "a writable file path", str(error)) from error
    log.info(f"wrote {len(results)} rows to {path}")


def _export_parser(sub) -> None:
    p = sub.add_parser("export", help="export a run for ONNX Runtime, OpenVINO or LiteRT alone (uint8 images in, "
                                      "calibrated probabilities out)", formatter_class=_Help,
                       epilog="example: keras-transfer export runs/ants --format onnx openvino --int8")
    p.add_argument("run", help="run folder")
    p.add_argument("--format", nargs="+", default=["onnx"], help="onnx, openvino and/or litert (.tflite)")
    p.add_argument("--int8", action="store_true",
                   help="also write onnx / openvino quantized to int8 by NNCF (calibrated on training images)")
    p.add_argument("--out", "-o", help="output file (one format, no --int8) or folder (default: <run>/export/)")
    _add_common(p)


def _cmd_export(args) -> int:
    from keras_transfer.export import FORMATS, export_run
    from keras_transfer.export.build import SUFFIX
    from keras_transfer.export.parity import format_parity, parity_table
    from keras_transfer.run import Run, write_json

    run = Run.open(args.run)
    for fmt in args.format:  # every format checked before the first file is written
        if fmt not in FORMATS:
            raise unknown_choice("export format", fmt, FORMATS)
    from keras_transfer.export.build import INT8_FORMATS, require_litert, require_nncf

    if args.int8:  # a missing package or a format without int8 is said before any file is written
        if not_int8 := [f for f in args.format if f not in INT8_FORMATS]:
            raise ConfigError(f"--int8 is not available for {', '.join(not_int8)}",
                              f"--int8 with --format {' and/or '.join(INT8_FORMATS)}", " ".join(args.format),
                              hint=f"export {', '.join(not_int8)} in a command without --int8")
        require_nncf()
    if "litert" in args.format:
        require_litert()
    folder = Path(args.out) if args.out and (len(args.format) > 1 or args.int8) else None
    files = {}
    for fmt in args.format:
        for int8 in (False, True) if args.int8 else (False,):
            name = f"model{'.int8' if int8 else ''}{SUFFIX[fmt]}"
            files[f"{fmt}-int8" if int8 else fmt] = export_run(run, fmt, folder / name if folder else args.out, int8)
    rows = parity_table(run, files)
    write_json(next(iter(files.values())).parent / "parity.json", rows)
    print(json.dumps(rows, indent=2) if args.json else format_parity(rows))
    return 0


def _serve_parser(sub) -> None:
    from keras_transfer.serve.limits import Limits

    d = Limits()
    p = sub.add_parser("serve", help="serve runs over HTTP: REST API (/v1/predict) and a web page at /",
                       formatter_class=_Help,
                       epilog="example:\n  keras-transfer serve runs/ants --port 8000\n"
                              "  curl -F files=@bee.jpg http://127.0.0.1:8000/v1/predict")
    p.add_argument("runs", nargs="+", help="run folders (the first is the default model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    p.add_argument("--workers", type=int, default=1, help="server processes (each loads every run)")
    p.add_argument("--max-files", type=int, default=d.max_files, help="images per request")
    p.add_argument("--max-file-mb", type=float, default=d.max_file_bytes / 1e6, help="megabytes per image file")
    p.add_argument("--max-request-mb", type=float, default=d.max_request_bytes / 1e6, help="megabytes per request")
    p.add_argument("--max-megapixels", type=float, default=d.max_pixels / 1e6, help="pixels of one image, millions")
    p.add_argument("--max-batch", type=int, default=d.max_batch, help="images gathered into one engine call")
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                   help="how long a waiting image waits for others to join its batch")
    p.add_argument("--max-queue", type=int, default=d.max_queue, help="requests waiting; beyond: 503 + Retry-After")
    p.add_argument("--quiet", "-q", action="store_true", help="log warnings only")


def _cmd_serve(args) -> int:
    from keras_transfer.serve import Limits, serve

    for name in ("port", "workers", "max_files", "max_batch", "max_queue"):
        if getattr(args, name) < 1 or (name == "port" and args.port > 65535):
            raise ConfigError(f"invalid --{name.replace('_', '-')}", "a whole number >= 1" + (
                " and <= 65535" if name == "port" else ""), str(getattr(args, name)))
    for name in ("max_file_mb", "max_request_mb", "max_megapixels", "max_wait_ms"):
        if not getattr(args, name) > 0 or getattr(args, name) == float("inf"):
            raise ConfigError(f"invalid --{name.replace('_', '-')}", "a positive number", str(getattr(args, name)))
    limits = Limits(args.max_files, int(args.max_file_mb * 1e6), int(args.max_request_mb * 1e6),
                    int(args.max_megapixels * 1e6), args.max_batch, args.max_wait_ms, args.max_queue)
    serve(args.runs, args.host, args.port, args.workers, limits, args.quiet)
    return 0


def _report_parser(sub) -> None:
    p = sub.add_parser("report", help="write an HTML report (metrics, confusion, curves, mistakes, calibration, data)")
    p.add_argument("run", help="run folder")
    p.add_argument("--out", "-o", help="output folder (default: <run>/report)")
    p.add_argument("--pdf", action="store_true", help="also write report.pdf")
    p.add_argument("--sample", type=int, default=200, help="images sampled for the colour and size exploration")
    _add_common(p)


def _cmd_report(args) -> int:
    from keras_transfer.report import ReportOptions, write_report

    files = write_report(args.run, args.out, args.pdf, ReportOptions(sample=args.sample))
    written = {"html": str(files.html), "pdf": files.pdf and str(files.pdf), "figures": list(map(str, files.figures)),
               "seconds": files.seconds}
    print(json.dumps(written, indent=2) if args.json else f"report written to {files.html} in {files.seconds:.1f} s")
    return 0


def _explain_parser(sub) -> None:
    p = sub.add_parser("explain", help="Grad-CAM (and CAM) overlays showing where the model looks")
    p.add_argument("run", help="run folder")
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--out", "-o", help="output folder (default: <run>/explain)")
    p.add_argument("--target", help="class to explain (default: the predicted class)")
    _add_common(p)


def _cmd_explain(args) -> int:
    from keras_transfer.explain import explain

    results = explain(args.run, args.inputs, args.out or Path(args.run) / "explain", args.target)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    for r in [] if args.json else results:
        print(f"{r.path}: {r.label} {r.probability:.3f} -> {', '.join(r.files.values())}")
    return 0


def _similar_parser(sub) -> None:
    p = sub.add_parser("similar", help="nearest training images by cosine similarity of backbone embeddings")
    p.add_argument("run", help="run folder")
    p.add_argument("inputs", nargs="+", help="query image files or folders")
    p.add_argument("--k", type=int, default=5, help="neighbours per query")
    p.add_argument("--split", default="train", help="split to search (default train)")
    _add_common(p)


def _cmd_similar(args) -> int:
    from keras_transfer.explain import similar

    table = similar(args.run, args.inputs, args.k, args.split)
    if args.json:
        print(json.dumps(table.to_dict(orient="records"), indent=2))
    for query, group in [] if args.json else table.groupby("query", sort=False):
        print(query)
        for r in group.itertuples():
            print(f"  {r.rank}. {r.score:.4f}  {r.label:<12} {r.path}")
    return 0


def _similarity_parser(sub) -> None:
    p = sub.add_parser("similarity", help="cosine-similarity matrix heatmap of sampled images, grouped by class")
    p.add_argument("run", help="run folder")
    p.add_argument("--sample", type=int, default=100, help="images drawn, spread over the classes")
    p.add_argument("--split", default="train")
    p.add_argument("--out", "-o", help="PNG file (default: <run>/similarity.png)")
    p.add_argument("--seed", type=int, default=0)
    _add_common(p)


def _cmd_similarity(args) -> int:
    from keras_transfer.explain import write_similarity

    path, result = write_similarity(args.run, args.out, args.sample, args.split, args.seed)
    means = result.class_means()
    summary = {"figure": str(path), "images": len(result.ids), "class_means": dict(zip(result.class_names, means.tolist()))}
    print(json.dumps(summary, indent=2) if args.json else f"similarity matrix of {len(result.ids)} images written to {path}")
    return 0


def _cache_parser(sub) -> None:
    p = sub.add_parser("cache", help="inspect, verify or clear the on-disk caches (features, exported models)")
    p.add_argument("action", choices=("info", "clear", "verify"))
    p.add_argument("--backbone", help="clear: only this backbone's cached features")
    _add_common(p)


def _cmd_cache(args) -> int:
    from keras_transfer.features.maintenance import cache_info, clear_cache, verify_cache

    result = {"info": cache_info, "verify": verify_cache}.get(args.action, lambda: clear_cache(args.backbone))()
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.action == "info":
        print(f"{result['root']}: {result['bytes'] / 1e6:.1f} MB, {result['feature_entries']} feature entries")
        for item in result["identities"]:
            print(f"  {item['backbone']} {item['size']}px {item['precision']} [{item['identity']}]: "
                  f"{item['entries']} entries, {item['views']} view(s), {item['bytes'] / 1e6:.1f} MB")
    else:
        print("  ".join(f"{k}: {v}" for k, v in result.items()))
    return 1 if result.get("corrupt") else 0


def build_parser() -> argparse.ArgumentParser:
    from keras_transfer import __version__
    from keras_transfer.config import TrainConfig

    parser = argparse.ArgumentParser(prog="keras-transfer", description=__doc__.splitlines()[0],
                                     epilog="example: keras-transfer train photos/ --out runs/photos && "
                                            "keras-transfer predict runs/photos new_photo.jpg")
    parser.add_argument("--version", action="version", version=f"keras-transfer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    p = sub.add_parser("evaluate", help="metrics of a run on its held-out split")
    p.add_argument("run", help="run folder")
    p.add_argument("--data", help="evaluate on another dataset with the same classes")
    p.add_argument("--outliers", metavar="FOLDER",
                   help="images of none of the classes: report how well 'unknown' scores separate them (AUROC)")
    _add_common(p)
    p = sub.add_parser("predict", help="top-k predictions for images and folders",
                       epilog="example: keras-transfer predict runs/ants photos/ --top-k 2 --output preds.csv")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a run folder, then image files or folders "
                                                            "(with --imagenet: only images)")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--output", "-o", help="write one row per image to this .csv or .json file")
    p.add_argument("--imagenet", action="store_true", help="zero-shot: ImageNet classes of a pretrained backbone")
    p.add_argument("--backbone", "-b", default=TrainConfig.backbone, help="backbone for --imagenet")
    _add_weights(p)
    _add_common(p)
    p = sub.add_parser("backbones", help="list the registered backbones")
    _add_common(p)
    p = sub.add_parser("compare", help="the tutorials' comparison table of several runs")
    p.add_argument("runs", nargs="+", help="run folders")
    _add_common(p)
    for add_parser in (_export_parser, _serve_parser, _report_parser, _explain_parser, _similar_parser, _similarity_parser,
                       _cache_parser):
        add_parser(sub)
    return parser


def _cmd_backbones(args) -> int:
    from keras_transfer.backbones.catalog import backbone_table, format_table

    rows = backbone_table()
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


COMMANDS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict, "backbones": _cmd_backbones,
            "report": _cmd_report, "explain": _cmd_explain, "similar": _cmd_similar, "similarity": _cmd_similarity,
            "cache": _cmd_cache, "compare": _cmd_compare, "export": _cmd_export, "serve": _cmd_serve}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``keras-transfer`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    log.set_quiet(args.quiet)
    try:
        return COMMANDS[args.command](args)
    except KerasTransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

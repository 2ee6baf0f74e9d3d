"""Looking inside a run: the HTML report, Grad-CAM explanations, similar images, the caches."""

from __future__ import annotations

from pathlib import Path

from keras_transfer.cli.options import add_common, command
from keras_transfer.base.paths import strict_json


def register(sub) -> None:
    p = command(sub, "report", "write an HTML report (metrics, confusion, curves, mistakes, calibration, data)",
                ["keras-transfer report runs/ants --pdf"], _cmd_report)
    p.add_argument("run", help="run folder")
    p.add_argument("--out", "-o", help="output folder (default: <run>/report)")
    p.add_argument("--pdf", action="store_true", help="also write report.pdf")
    p.add_argument("--sample", type=int, default=200, help="images sampled for the colour and size exploration")
    add_common(p)
    p = command(sub, "explain", "Grad-CAM (and CAM) overlays showing where the model looks",
                ["keras-transfer explain runs/ants bee.jpg more_photos/"], _cmd_explain)
    p.add_argument("run", help="run folder")
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--out", "-o", help="output folder (default: <run>/explain)")
    p.add_argument("--target", help="class to explain (default: the predicted class)")
    p.add_argument("--boxes", action="store_true", help="also boxes from each Grad-CAM map, as localize draws and "
                                                        "writes them (<image>_boxes.png, boxes.json)")
    add_common(p)
    p = command(sub, "similar", "nearest training images by cosine similarity of backbone embeddings",
                ["keras-transfer similar runs/ants bee.jpg --k 5"], _cmd_similar)
    p.add_argument("run", help="run folder")
    p.add_argument("inputs", nargs="+", help="query image files or folders")
    p.add_argument("--k", type=int, default=5, help="neighbours per query")
    p.add_argument("--split", default="train", help="split to search (default train)")
    add_common(p)
    p = command(sub, "similarity", "cosine-similarity matrix heatmap of sampled images, grouped by class",
                ["keras-transfer similarity runs/ants --sample 100"], _cmd_similarity)
    p.add_argument("run", help="run folder")
    p.add_argument("--sample", type=int, default=100, help="images drawn, spread over the classes")
    p.add_argument("--split", default="train")
    p.add_argument("--out", "-o", help="PNG file (default: <run>/similarity.png)")
    p.add_argument("--seed", type=int, default=0)
    add_common(p)
    p = command(sub, "cache", "inspect, verify or clear the on-disk caches (features, exported models)",
                ["keras-transfer cache info", "keras-transfer cache clear --backbone efficientnet_lite0"], _cmd_cache)
    p.add_argument("action", choices=("info", "clear", "verify"))
    p.add_argument("--backbone", help="clear: only this backbone's cached features")
    add_common(p)


def _cmd_report(args) -> int:
    from keras_transfer.report import ReportOptions, write_report

    files = write_report(args.run, args.out, args.pdf, ReportOptions(sample=args.sample))
    written = {"html": str(files.html), "pdf": files.pdf and str(files.pdf), "figures": list(map(str, files.figures)),
               "seconds": files.seconds}
    print(strict_json(written) if args.json else f"report written to {files.html} in {files.seconds:.1f} s")
    return 0


def _cmd_explain(args) -> int:
    from keras_transfer.explain import explain

    results = explain(args.run, args.inputs, args.out or Path(args.run) / "explain", args.target)
    if args.boxes:
        from keras_transfer.explain.localize import explanation_boxes

        explanation_boxes(args.run, results, args.out or Path(args.run) / "explain")
    if args.json:
        print(strict_json([r.as_dict() for r in results]))
    for r in [] if args.json else results:
        print(f"{r.path}: {r.label} {r.probability:.3f} -> {', '.join(r.files.values())}")
    return 0


def _cmd_similar(args) -> int:
    from keras_transfer.explain import similar

    table = similar(args.run, args.inputs, args.k, args.split)
    if args.json:
        print(strict_json(table.to_dict(orient="records")))
    for query, group in [] if args.json else table.groupby("query", sort=False):
        print(query)
        for r in group.itertuples():
            print(f"  {r.rank}. {r.score:.4f}  {r.label:<12} {r.path}")
    return 0


def _cmd_similarity(args) -> int:
    from keras_transfer.explain import write_similarity

    path, result = write_similarity(args.run, args.out, args.sample, args.split, args.seed)
    means = result.class_means()
    summary = {"figure": str(path), "images": len(result.ids), "class_means": dict(zip(result.class_names, means.tolist()))}
    print(strict_json(summary) if args.json else f"similarity matrix of {len(result.ids)} images written to {path}")
    return 0


def _cmd_cache(args) -> int:
    from keras_transfer.features.maintenance import cache_info, clear_cache, verify_cache

    result = {"info": cache_info, "verify": verify_cache}.get(args.action, lambda: clear_cache(args.backbone))()
    if args.json:
        print(strict_json(result))
    elif args.action == "info":
        print(f"{result['root']}: {result['bytes'] / 1e6:.1f} MB, {result['feature_entries']} feature entries")
        for item in result["identities"]:
            print(f"  {item['backbone']} {item['size']}px {item['precision']} [{item['identity']}]: "
                  f"{item['entries']} entries, {item['views']} view(s), {item['bytes'] / 1e6:.1f} MB")
    else:
        print("  ".join(f"{k}: {v}" for k, v in result.items()))
    return 1 if result.get("corrupt") else 0

"""Where the object is: ``keras-transfer localize RUN IMAGES`` (boxes from CAM / Grad-CAM maps)."""

from __future__ import annotations

from pathlib import Path

from keras_transfer.base.paths import strict_json
from keras_transfer.cli.options import add_common, command

DEFAULT_THRESHOLD = 0.3  # explain.localize.DEFAULT_THRESHOLD, written here to keep the parser light (a test checks)


def register(sub) -> None:
    p = command(sub, "localize", "boxes around the objects of the top classes, from class-activation maps "
                                 "(drawn, and written as JSON / PASCAL VOC)",
                ["keras-transfer localize runs/pets photo.jpg more_photos/",
                 "keras-transfer localize runs/pets two_cats.jpg --top-k 2 --crops --voc"], _cmd_localize)
    p.add_argument("run", help="run folder")
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--out", "-o", help="output folder (default: <run>/localize)")
    add_box_options(p)
    p.add_argument("--method", default="gradcam", help="map: gradcam | cam (classic CAM, a head on one backbone)")
    p.add_argument("--top-k", type=int, default=1, help="classes (the most probable) whose maps give boxes")
    p.add_argument("--crops", action="store_true",
                   help="classify each box's crop through the run; keep the boxes whose crop gets the box's class")
    add_common(p)


def add_box_options(p) -> None:
    """``--threshold`` and ``--voc``: shared with ``explain --boxes``."""
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="share of a map's peak above which pixels belong to an object")
    p.add_argument("--voc", action="store_true", help="also write a PASCAL VOC XML file per image")


def print_boxes(results, as_json: bool) -> None:
    if as_json:
        print(strict_json([r.as_dict() for r in results]))
        return
    for r in results:
        boxes = "; ".join(f"{b.label} {b.score:.2f} [{b.x0},{b.y0},{b.x1},{b.y1}]" for b in r.boxes) or "no box"
        print(f"{r.path}: {boxes}" + (f" -> {r.files['boxes']}" if "boxes" in r.files else ""))


def _cmd_localize(args) -> int:
    from keras_transfer.explain.localize import localize

    results = localize(args.run, args.inputs, args.out or Path(args.run) / "localize", args.method, args.top_k,
                       args.threshold, args.crops, args.voc)
    print_boxes(results, args.json)
    return 0

"""Object localisation from class-activation maps, measured on pets3: ``python -m benchmarks.localize``.

Two runs are trained through the CLI on the three breeds' trainval images: the default flags
(EfficientNet-Lite0+Lite2 features, linear head: Grad-CAM only, no classic CAM) and
``--backbone efficientnet_lite0`` (one backbone, GAP -> Dense: CAM and Grad-CAM). On the 298
test images, the ground truth is the bounding box of the trimap's pet pixels (value 1):

- CorLoc: share of images whose top-scoring box (top-1 class of the run) has IoU >= 0.5;
- pointing game: the map's peak lies on the pet (a pet pixel within 15 px, as Zhang et al. 2016);
- ``+crops``: the boxes kept after re-classifying their crops (the top kept one scored; no box
  left is a miss); its pointing game is the kept box's centre on the pet.

The map threshold (share of the peak) is chosen per method on 60 trainval images (CorLoc),
never on the test images; test figures at the library default are shown too. Diagnostics explain
the misses: the oracle CorLoc (best of all boxes), and the median area of the top box relative
to the pet's box. Writes ``benchmarks/results/localize.json`` and ``docs/localize_pets3.png``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.data import REPO, cpu
from benchmarks.default_path import write_results

PETS = REPO.parent / "shared" / "datasets" / "pets3"
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.1, 0.65, 0.05))
TUNE_IMAGES = 60
TOLERANCE = 15  # pixels, the pointing game's
FIGURE = REPO / "docs" / "localize_pets3.png"
RUNS = {"default": [], "lite0": ["--backbone", "efficientnet_lite0"]}


def _labels(work: Path) -> Path:
    rows = ["file,label,split"]
    for split, name in (("train", "trainval.txt"), ("test", "test.txt")):
        for line in (PETS / "annotations" / name).read_text().splitlines():
            if line.strip():
                stem = line.split()[0]
                rows.append(f"{stem}.jpg,{stem.rsplit('_', 1)[0]},{split}")
    path = work / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _train(work: Path, name: str, retrain: bool) -> tuple[Path, float]:
    out = work / f"run_{name}"
    if (out / "config.json").exists() and not retrain:
        return out, float("nan")
    cli = Path(sys.executable).parent / "keras-transfer"
    start = time.perf_counter()
    subprocess.run([str(cli), "train", str(PETS / "images"), "--labels", str(_labels(work)), "--out", str(out),
                    "--quiet", *RUNS[name]], check=True)
    return out, time.perf_counter() - start


def _truth(stem: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    with Image.open(PETS / "annotations" / "trimaps" / f"{stem}.png") as image:
        pet = np.asarray(image) == 1
    rows, cols = np.flatnonzero(pet.any(1)), np.flatnonzero(pet.any(0))
    return pet, (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _on_pet(pet: np.ndarray, x: int, y: int) -> bool:
    y0, x0 = max(0, y - TOLERANCE), max(0, x - TOLERANCE)
    window = pet[y0:y + TOLERANCE + 1, x0:x + TOLERANCE + 1]
    yy, xx = np.nonzero(window)
    return bool(((yy + y0 - y) ** 2 + (xx + x0 - x) ** 2 <= TOLERANCE ** 2).any())


def _maps(run_dir: Path, stems: list[str]) -> tuple[object, list[dict]]:
    """Per image: the picture, the run's top class and probabilities, and its maps by method."""
    from keras_transfer.backbones import get_backbone
    from keras_transfer.explain.boxes import Picture
    from keras_transfer.explain.gradcam import GradCAM
    from keras_transfer.run import Run, RunModel

    run = Run.open(run_dir)
    model = RunModel.open(run)
    explainer = GradCAM(run.model, get_backbone(run.config.backbone).gradcam_layer)
    items = []
    for start in range(0, len(stems), 8):
        pictures = [Picture.read(PETS / "images" / f"{s}.jpg", model.size, model.resize_mode) for s in stems[start:start + 8]]
        pixels = np.stack([p.pixels for p in pictures])
        probabilities = model.predict_pixels(pixels).probabilities  # the run's answer
        top = probabilities.argmax(1)
        maps = explainer(pixels, top)
        for i, picture in enumerate(pictures):
            found = {"gradcam": maps.gradcam[i]} | ({"cam": maps.cam[i]} if maps.cam is not None else {})
            items.append({"stem": stems[start + i], "picture": picture, "probabilities": probabilities[i],
                          "top": int(top[i]), "maps": found})
        print(f"  maps {min(start + 8, len(stems))}/{len(stems)}", end="\r", file=sys.stderr)
    return model, items


def _score(model, items: list[dict], method: str, threshold: float, crops: bool = False) -> dict:
    from keras_transfer.explain.boxes import check_crops, image_boxes, peak_xy

    hits, points, oracle, areas, boxes_n, correct = [], [], [], [], [], []
    for item in items:
        pet, truth = _truth(item["stem"])
        picture, heat = item["picture"], item["maps"][method]
        boxes = image_boxes(picture, {item["top"]: heat}, item["probabilities"], model.class_names,
                            model.resize_mode, threshold)
        if crops:
            boxes = check_crops(model, picture, boxes, model.resize_mode)
        ious = [b.iou(truth) for b in boxes]
        hits.append(bool(ious) and ious[0] >= 0.5)
        oracle.append(bool(ious) and max(ious) >= 0.5)
        boxes_n.append(len(boxes))
        correct.append(model.class_names[item["top"]] == item["stem"].rsplit("_", 1)[0])
        if boxes:
            b = boxes[0]
            areas.append((b.x1 - b.x0) * (b.y1 - b.y0) / ((truth[2] - truth[0]) * (truth[3] - truth[1])))
        if crops:
            points.append(bool(boxes) and _on_pet(pet, (boxes[0].x0 + boxes[0].x1) // 2, (boxes[0].y0 + boxes[0].y1) // 2))
        else:
            x, y = peak_xy(heat, model.size, picture.decoded.shape[:2], picture.original, model.resize_mode)
            points.append(_on_pet(pet, x, y))
    return {"corloc": float(np.mean(hits)), "pointing": float(np.mean(points)), "oracle_corloc": float(np.mean(oracle)),
            "median_area_ratio": float(np.median(areas)) if areas else float("nan"),
            "boxes_per_image": float(np.mean(boxes_n)), "no_box": float(np.mean(np.array(boxes_n) == 0)),
            "corloc_when_class_right": float(np.mean([h for h, c in zip(hits, correct) if c])),
            "class_accuracy": float(np.mean(correct)), "images": len(items)}


def _figure(model, items: list[dict], threshold: float) -> None:
    from keras_transfer.explain.boxes import Localization, image_boxes
    from keras_transfer.explain.localize import draw

    item = next((i for i in items if i["stem"].startswith("Bengal")), items[0])  # the first test Bengal, not a chosen one
    picture = item["picture"]
    boxes = image_boxes(picture, {item["top"]: item["maps"]["gradcam"]}, item["probabilities"], model.class_names,
                        model.resize_mode, threshold)
    found = Localization(picture.path, picture.original[1], picture.original[0], "gradcam", boxes, [])
    _, truth = _truth(item["stem"])
    image = Image.fromarray(draw(found, model.class_names))
    image.thumbnail((480, 480))
    FIGURE.parent.mkdir(exist_ok=True)
    image.save(FIGURE, optimize=True)
    print(f"wrote {FIGURE} ({FIGURE.stat().st_size // 1024} KB; pet box {truth})")


def main(argv: list[str] | None = None) -> None:
    from keras_transfer.explain.localize import DEFAULT_THRESHOLD

    parser = argparse.ArgumentParser(prog="python -m benchmarks.localize", description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "keras-transfer-bench-localize"))
    parser.add_argument("--retrain", action="store_true", help="train the runs again even if they exist")
    parser.add_argument("--limit", type=int, default=None, help="test images used (default: all)")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu()}")
    read = lambda name: [l.split()[0] for l in (PETS / "annotations" / name).read_text().splitlines() if l.strip()]  # noqa: E731,E741
    trainval, test = read("trainval.txt"), read("test.txt")[:args.limit]
    tune = [trainval[int(i)] for i in np.linspace(0, len(trainval) - 1, TUNE_IMAGES)]
    rows = []
    for name in RUNS:
        run_dir, train_s = _train(work, name, args.retrain)
        start = time.perf_counter()
        model, tune_items = _maps(run_dir, tune)
        _, test_items = _maps(run_dir, test)
        maps_s = (time.perf_counter() - start) / (len(tune) + len(test))
        for method in test_items[0]["maps"]:
            best = max(THRESHOLDS, key=lambda t: (_score(model, tune_items, method, t)["corloc"], -abs(t - DEFAULT_THRESHOLD)))
            for crops in (False, True):
                for threshold, chosen in ((best, "tuned on trainval"), (DEFAULT_THRESHOLD, "library default")):
                    row = {"run": name, "method": method + ("+crops" if crops else ""), "threshold": threshold,
                           "threshold_from": chosen, "seconds_per_image_maps": round(maps_s, 3),
                           "train_seconds": train_s} | _score(model, test_items, method, threshold, crops)
                    rows.append(row)
        if name == "default":
            _figure(model, test_items, DEFAULT_THRESHOLD)
    print(f"\n{'run':<8}{'method':<15}{'thr':>5}{'CorLoc':>8}{'point':>7}{'oracle':>8}{'area':>6}{'boxes':>7}"
          f"{'acc':>6}  threshold from")
    for r in rows:
        print(f"{r['run']:<8}{r['method']:<15}{r['threshold']:>5.2f}{r['corloc']:>8.3f}{r['pointing']:>7.3f}"
              f"{r['oracle_corloc']:>8.3f}{r['median_area_ratio']:>6.2f}{r['boxes_per_image']:>7.2f}"
              f"{r['class_accuracy']:>6.3f}  {r['threshold_from']}")
    print("goal: CorLoc >= 0.6 and pointing game >= 0.85")
    write_results("localize", rows)


if __name__ == "__main__":
    main()

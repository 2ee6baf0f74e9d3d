"""``localize``: boxes for image files from a run's class-activation maps, drawn, and written as
JSON (pixel coordinates of the original image) and optionally PASCAL VOC XML; ``explain --boxes``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.base.errors import ConfigError, DatasetError
from keras_transfer.base.paths import atomic_file, write_json
from keras_transfer.explain.boxes import Localization, Picture, check_crops, check_options, image_boxes, peak_xy
from keras_transfer.run import Run, RunModel

DEFAULT_THRESHOLD = 0.3  # share of the map's peak: chosen on pets3 trainval images (benchmarks/localize.py)
MAX_DRAWN = 800  # longest side of the pictures written
COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240))


def _stem(path: str, used: set[str]) -> str:
    base = Path(path).stem
    if len(os.fsencode(base)) > 120:
        base = base[:60] + "~" + hashlib.sha1(os.fsencode(base)).hexdigest()[:8]
    stem, n = base, 2
    while stem in used:
        stem, n = f"{base}_{n}", n + 1
    used.add(stem)
    return stem


def draw(item: Localization, names: list[str]) -> np.ndarray:
    """The image (longest side at most ``MAX_DRAWN``) with its boxes, each labelled with class and score."""
    from PIL import Image, ImageDraw

    from keras_transfer.data.images import read_image

    image = Image.fromarray(read_image(item.path, MAX_DRAWN))
    image.thumbnail((MAX_DRAWN, MAX_DRAWN))
    scale = image.width / item.width
    pen = ImageDraw.Draw(image)
    line = max(2, round(image.width / 200))
    for box in reversed(item.boxes):  # the best drawn last, on top
        colour = COLOURS[names.index(box.label) % len(COLOURS)] if box.label in names else COLOURS[0]
        xy = [box.x0 * scale, box.y0 * scale, max(box.x0 * scale, box.x1 * scale - 1), max(box.y0 * scale, box.y1 * scale - 1)]
        pen.rectangle(xy, outline=colour, width=line)
        text = f"{log.printable(box.label)} {box.score:.2f}"
        left, top, right, bottom = pen.textbbox((xy[0] + line, xy[1] + line), text)
        pen.rectangle([left - 2, top - 2, right + 2, bottom + 2], fill=colour)
        pen.text((xy[0] + line, xy[1] + line), text, fill=(255, 255, 255))
    return np.asarray(image)


def voc_xml(item: Localization) -> str:
    """The boxes as a PASCAL VOC annotation (1-based inclusive pixel coordinates)."""
    import xml.etree.ElementTree as ET

    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = Path(item.path).parent.name
    ET.SubElement(root, "filename").text = Path(item.path).name
    size = ET.SubElement(root, "size")
    for key, value in (("width", item.width), ("height", item.height), ("depth", 3)):
        ET.SubElement(size, key).text = str(value)
    for box in item.boxes:
        obj = ET.SubElement(root, "object")
        for key, value in (("name", box.label), ("pose", "Unspecified"), ("truncated", 0), ("difficult", 0),
                           ("score", f"{box.score:.4f}")):
            ET.SubElement(obj, key).text = str(value)
        where = ET.SubElement(obj, "bndbox")
        for key, value in (("xmin", box.x0 + 1), ("ymin", box.y0 + 1), ("xmax", box.x1), ("ymax", box.y1)):
            ET.SubElement(where, key).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _write(item: Localization, out: Path, stem: str, names: list[str], voc: bool) -> Localization:
    from PIL import Image

    files = {}
    try:
        picture = draw(item, names)
        files["boxes"] = str(atomic_file(out / f"{stem}_boxes.png",
                                         lambda tmp: Image.fromarray(picture).save(tmp, format="PNG", optimize=True)))
        if voc:
            text = voc_xml(item)
            files["voc"] = str(atomic_file(out / f"{stem}.xml", lambda tmp: Path(tmp).write_text(text)))
    except OSError as error:
        raise ConfigError(f"cannot write boxes into {out}", "a writable folder", f"{type(error).__name__}: {error}") from error
    return Localization(**{**item.__dict__, "files": files})


def _out_folder(out: str | Path | None) -> Path | None:
    if out is None:
        return None
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create {out}", "a writable folder", f"{type(error).__name__}: {error}") from error
    return out


def _finish(results: list[Localization], out: Path | None, inputs) -> list[Localization]:
    if not results:
        raise DatasetError("no readable image to localize", "image files or folders holding images",
                           ", ".join(map(str, inputs)))
    if out is not None:
        write_json(out / "boxes.json", [r.as_dict() for r in results])
    return results


def localize(run: str | Path | Run, inputs: list[str | Path], out: str | Path | None = None, method: str = "gradcam",
             top_k: int = 1, threshold: float = DEFAULT_THRESHOLD, crops: bool = False, voc: bool = False,
             batch_size: int = 8) -> list[Localization]:
    """Boxes around the objects of the run's top classes in image files and folders.

    Args:
        run: The run folder.
        inputs: Image files and/or folders (searched recursively).
        out: Folder for ``<image>_boxes.png``, ``boxes.json`` (and ``<image>.xml``); None writes nothing.
        method: ``gradcam`` or ``cam`` (classic CAM: a head straight on one backbone's pooled map).
        top_k: Classes (the run's most probable) whose maps give boxes.
        threshold: Share of a map's peak above which pixels belong to an object.
        crops: Classify each box's crop through the run; keep the boxes whose crop agrees.
        voc: Also write PASCAL VOC XML files.

    Example:
        >>> found = localize("runs/pets", ["pets/"], out="runs/pets/boxes", crops=True)  # doctest: +SKIP
        >>> found[0].boxes[0]  # doctest: +SKIP
        Box(label='Bengal', score=0.91, x0=31, y0=12, x1=402, y1=377, crop_label='Bengal', crop_probability=0.98)
    """
    from keras_transfer.explain.occlusion import explainer_for
    from keras_transfer.run import collect_images

    check_options(method, threshold, top_k)
    run = Run.open(run)
    model = RunModel.open(run)
    explainer = explainer_for(run, model)  # occlusion for a backbone with no layer to explain
    if method == "cam" and not explainer.cam_available:
        raise ConfigError("this run has no classic CAM", "a head straight on one backbone's pooled map (GAP -> Dense)",
                          f"backbone {run.config.backbone}, head {run.config.head}", hint="use --method gradcam")
    paths, problems = collect_images(inputs)
    out, names, mode, used, results = _out_folder(out), model.class_names, model.resize_mode, set(), []
    for path, reason in problems:
        log.warn(f"{path}: {reason}")
    for start in log.progress(range(0, len(paths), batch_size), desc="localize", unit="batch"):
        pictures = []
        for path in paths[start:start + batch_size]:
            try:
                pictures.append(Picture.read(path, model.size, mode))
            except Exception as error:  # Pillow raises many types for bad files
                log.warn(f"{path}: not a readable image ({type(error).__name__}: {error})")
        if not pictures:
            continue
        pixels = np.stack([p.pixels for p in pictures])
        probabilities = model.predict_pixels(pixels).probabilities  # the run's answer: the one inference rule
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :min(top_k, len(names))]
        maps = [getattr(explainer(pixels, order[:, k]), method) for k in range(order.shape[1])]
        shown = explainer.method if method == "gradcam" else method  # the main map: Grad-CAM or occlusion
        for i, picture in enumerate(pictures):
            by_class = {int(order[i, k]): maps[k][i] for k in range(order.shape[1])}
            boxes = image_boxes(picture, by_class, probabilities[i], names, mode, threshold)
            if crops:
                boxes = check_crops(model, picture, boxes, mode)
            top = [{"label": names[c], "probability": float(probabilities[i, c])} for c in order[i]]
            peak = peak_xy(maps[0][i], model.size, picture.decoded.shape[:2], picture.original, mode)
            item = Localization(picture.path, picture.original[1], picture.original[0], shown + ("+crops" if crops else ""),
                                boxes, top, {shown: peak})
            results.append(item if out is None else _write(item, out, _stem(picture.path, used), names, voc))
    return _finish(results, out, inputs)


def explanation_boxes(run: str | Path | Run, explanations: list, out: str | Path | None = None,
                      threshold: float = DEFAULT_THRESHOLD, voc: bool = False) -> list[Localization]:
    """``explain --boxes``: the boxes of each explanation's Grad-CAM map (the class it explains)."""
    model = RunModel.open(Run.open(run))
    out, names, mode, used, results = _out_folder(out), model.class_names, model.resize_mode, set(), []
    for item in explanations:
        picture = Picture.read(item.path, model.size, mode)
        probabilities = np.zeros(len(names), np.float32)
        probabilities[names.index(item.label)] = item.probability
        boxes = image_boxes(picture, {names.index(item.label): item.gradcam}, probabilities, names, mode, threshold)
        peak = peak_xy(item.gradcam, model.size, picture.decoded.shape[:2], picture.original, mode)
        found = Localization(item.path, picture.original[1], picture.original[0], "gradcam", boxes,
                             [{"label": item.label, "probability": item.probability}], {"gradcam": peak})
        results.append(found if out is None else _write(found, out, _stem(item.path, used), names, voc))
    return _finish(results, out, [e.path for e in explanations])

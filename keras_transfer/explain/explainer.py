"""``explain``: Grad-CAM / CAM overlays for image files, returned and written as PNG files."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from keras_transfer.base import log
from keras_transfer.data.images import read_batch, read_image, square
from keras_transfer.base.errors import ConfigError, DatasetError, unknown_choice
from keras_transfer.explain.gradcam import GradCAM, Heatmaps
from keras_transfer.explain.occlusion import Occlusion, explainer_for
from keras_transfer.explain.overlay import overlay, peak
from keras_transfer.base.paths import atomic_file
from keras_transfer.run import Run, RunModel, collect_images


@dataclass(frozen=True)
class Explanation:
    """Why the classifier gave one image its class.

    Attributes:
        path: The image file.
        image: The model's input: the image resized as the classifier resizes it (S, S, 3) uint8.
        label: The class explained (the predicted one unless a target was given).
        probability: The predicted probability of ``label``.
        predicted: The predicted class.
        gradcam: The main map (h, w) in [0, 1]: Grad-CAM, or occlusion (``method``) for a backbone
            with no layer to explain (``onnx:``, ``hub:``, ``timm:``).
        cam: Classic CAM map (h, w) in [0, 1], or None when the head is not GAP -> Dense.
        files: PNG overlays written, by method (``gradcam`` or ``occlusion``, ``cam``).
        method: What ``gradcam`` holds.
    """

    path: str
    image: np.ndarray
    label: str
    probability: float
    predicted: str
    gradcam: np.ndarray
    cam: np.ndarray | None
    files: dict[str, str]
    shown: np.ndarray | None = None  # the picture at its own aspect ratio (what the model saw of it)
    true_label: str | None = None  # the class folder the image sits in, when it is one of the classes
    method: str = "gradcam"

    def maps(self) -> dict[str, np.ndarray]:
        return {self.method: self.gradcam} | ({"cam": self.cam} if self.cam is not None else {})

    def peak(self, method: str | None = None) -> tuple[int, int]:
        """(row, column) in the model input of the hottest point of a map (default: the main one)."""
        return peak(self.maps()[method or self.method], self.image.shape[:2])

    def overlay(self, method: str | None = None) -> np.ndarray:
        """A map (default: the main one) over the picture at its own aspect ratio (the model input if there is none)."""
        return overlay(self.image if self.shown is None else self.shown, self.maps()[method or self.method])

    def figure(self) -> Figure:
        """The picture beside its overlays at its own aspect ratio, titled with the predicted
        (and true) class and confidence, with the maps' colour bar."""
        from matplotlib import colormaps
        from matplotlib.cm import ScalarMappable

        maps = self.maps()
        picture = self.image if self.shown is None else self.shown
        height, width = picture.shape[:2]
        panel = 3.2 * min(1.6, max(0.6, width / height))
        figure = Figure(figsize=(panel * (1 + len(maps)) + 0.8, 3.6), layout="constrained")
        axes = figure.subplots(1, 1 + len(maps), squeeze=False)[0]
        for ax, (title, shown) in zip(axes, [("image", picture)] + [(m, self.overlay(m)) for m in maps]):
            ax.imshow(shown)
            ax.set_title({"image": "image", "gradcam": "Grad-CAM", "cam": "CAM", "occlusion": "occlusion"}[title])
            ax.axis("off")
        bar = figure.colorbar(ScalarMappable(cmap=colormaps["jet"]), ax=axes[1:].tolist(), fraction=0.04, pad=0.02)
        bar.set_label("relevance to the explained class")
        name = Path(self.path).name
        title = f"{name}: predicted {self.predicted} ({self.probability:.1%})"
        if self.label != self.predicted:
            title = f"{name}: explained {self.label} ({self.probability:.1%}), predicted {self.predicted}"
        if self.true_label is not None:
            title += f"; true {self.true_label}" + ("" if self.true_label == self.predicted else " (mistake)")
        figure.suptitle(log.figure_text(title))
        return figure

    def as_dict(self) -> dict:
        return {"path": self.path, "label": self.label, "probability": self.probability,
                "predicted": self.predicted, "peak": {m: list(self.peak(m)) for m in self.maps()},
                "files": self.files}


def _explanations(names: list[str], paths: list[Path], images: list[np.ndarray], maps: Heatmaps) -> list[Explanation]:
    items = []
    for i, path in enumerate(paths):
        target, probabilities = int(maps.targets[i]), maps.probabilities[i]
        cam = None if maps.cam is None else maps.cam[i]
        items.append(Explanation(str(path), images[i], names[target], float(probabilities[target]),
                                 names[int(probabilities.argmax())], maps.gradcam[i], cam, {}, method=maps.method))
    return items


def heatmaps(model: RunModel, explainer: GradCAM | Occlusion, images: np.ndarray, targets: np.ndarray | None = None) -> Heatmaps:
    """The maps of ``images`` for ``targets`` (default: the class the run answers), with the run's
    own probabilities (its ``RunModel``: views, temperature), not those of one Keras pass."""
    probabilities = model.predict_pixels(images).probabilities
    targets = probabilities.argmax(axis=1) if targets is None else targets
    return replace(explainer(images, targets), probabilities=probabilities)


_MAX_STEM_BYTES = 150  # file names are at most 255 bytes: room for "_gradcam.png" and a temp prefix


def _unique_stem(path: Path, used: set[str]) -> str:
    base = path.stem
    if len(os.fsencode(base)) > _MAX_STEM_BYTES:  # keep a readable start and a hash of the whole name
        digest = hashlib.sha1(os.fsencode(base)).hexdigest()[:8]
        while len(os.fsencode(base)) > _MAX_STEM_BYTES - 9:
            base = base[:-1]
        base += "~" + digest
    stem, n = base, 2
    while stem in used:
        stem, n = f"{base}_{n}", n + 1
    used.add(stem)
    return stem


def explain(run: str | Path | Run, inputs: list[str | Path], out: str | Path | None = None,
            target: str | None = None, batch_size: int = 8) -> list[Explanation]:
    """Grad-CAM (and classic CAM where the head allows it) for image files and folders; occlusion
    maps for a backbone with no layer to explain (``onnx:``, ``hub:``, ``timm:``: ``explain.occlusion``).

    Args:
        run: The run folder.
        inputs: Image files and/or folders (searched recursively).
        out: Folder for ``<image>_gradcam.png`` / ``<image>_cam.png`` overlays; None writes nothing.
        target: Class to explain for every image; default: each image's predicted class.
        batch_size: Images per forward/backward pass.

    Example:
        >>> found = explain("runs/ants", ["bee.jpg"], out="runs/ants/explain")  # doctest: +SKIP
        >>> found[0].label, found[0].files["gradcam"]  # doctest: +SKIP
        ('bees', 'runs/ants/explain/bee_gradcam.png')
    """
    run = Run.open(run)
    model = RunModel.open(run)
    if target is not None and target not in run.class_names:
        raise unknown_choice("class", target, run.class_names)
    paths, problems = collect_images(inputs)
    for path, reason in problems:
        log.warn(f"{path}: {reason}")
    explainer = explainer_for(run, model)
    if out is not None:
        out = Path(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"cannot create {out}", "a writable folder", f"{type(error).__name__}: {error}") from error
    results, used = [], set()
    for start in log.progress(range(0, len(paths), batch_size), desc="explain", unit="batch"):
        ok, images, failures = read_batch(paths[start:start + batch_size], explainer.size, run.config.resize)
        for path, reason in failures:
            log.warn(f"{path}: {reason}")
        if not ok:
            continue
        targets = None if target is None else np.full(len(ok), run.class_names.index(target))
        maps = heatmaps(model, explainer, np.stack(images), targets)
        for item, path in zip(_explanations(run.class_names, ok, images, maps), ok):
            item = _shown(item, Path(path), run.class_names, run.config.resize)
            results.append(item if out is None else _write(item, out, _unique_stem(path, used)))
    if not results:
        raise DatasetError("no readable image to explain", "image files or folders holding images",
                           ", ".join(map(str, inputs)))
    return results


MAX_SHOWN = 800  # longest side of the pictures written


def _shown(item: Explanation, path: Path, names: list[str], resize_mode: str) -> Explanation:
    """The explanation with its picture as the model saw it, at the image's own aspect ratio
    (``stretch``: the whole image; ``crop`` / ``pad``: the centre square / the padded square),
    and its true class when the image sits in a class folder."""
    try:
        picture = read_image(path, MAX_SHOWN)
    except Exception:  # decoded a moment ago for the model; keep the model input if not now
        return item
    if resize_mode != "stretch":
        picture = square(picture, resize_mode)
    image = Image.fromarray(picture)
    image.thumbnail((MAX_SHOWN, MAX_SHOWN))
    true = path.parent.name if path.parent.name in names else None
    return replace(item, shown=np.asarray(image), true_label=true)


def _write(item: Explanation, out: Path, stem: str) -> Explanation:
    """``<stem>_explain.png`` (the figure) and one ``<stem>_<method>.png`` overlay per map."""
    files = {}
    try:
        for method in item.maps():
            files[method] = str(atomic_file(out / f"{stem}_{method}.png",
                                            lambda tmp: Image.fromarray(item.overlay(method)).save(tmp, format="PNG")))
        figure = item.figure()
        files["figure"] = str(atomic_file(out / f"{stem}_explain.png",
                                          lambda tmp: figure.savefig(tmp, format="png", dpi=110)))
    except OSError as error:
        raise ConfigError(f"cannot write explanations into {out}", "a writable folder",
                          f"{type(error).__name__}: {error}") from error
    return replace(item, files=files)

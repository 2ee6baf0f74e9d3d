"""Occlusion sensitivity: the heat map of a run whose backbone has no layer to take gradients from.

An ``onnx:``, ``hub:`` or ``timm:`` backbone runs as one ONNX graph, so Grad-CAM (gradients at a
convolutional layer) has nothing to work on, and a ViT has no spatial feature map at all. Occlusion
(Zeiler & Fergus, 2014) needs neither: it greys out one square of the image at a time and measures
how much the run's log-odds of the explained class drop (log-odds, not probability: a confident
run's probability sits at 1.0 in float32 whatever is hidden); where the drop is large, the class
lives. It asks the run itself (``RunModel.predict_pixels``: its views, temperature and head), so the
map explains the answer ``predict`` and ``serve`` give. Attention-free on purpose: attention maps
of a ViT show where tokens look, not what the class depends on, and need the graph's internals.

Written here because the maintained implementations (Captum's ``Occlusion``, tf-keras-vis) take
gradients-capable framework models, not an ONNX graph behind a run's inference rule. Cost: one
batch of ``STEPS**2`` occluded copies per image (49 forward passes at the default).
"""

from __future__ import annotations

import numpy as np

from keras_transfer.explain.gradcam import Heatmaps, _normalise

STEPS = 7  # window positions per side; the window spans two steps (half-overlapping windows)


class Occlusion:
    """Occlusion maps of a run, called like :class:`~keras_transfer.explain.gradcam.GradCAM`.

    Example:
        >>> maps = Occlusion(RunModel.open("runs/photos"))(images)  # doctest: +SKIP
        >>> maps.method, maps.gradcam.shape  # doctest: +SKIP
        ('occlusion', (1, 8, 8))
    """

    method = "occlusion"
    cam_available = False

    def __init__(self, model, steps: int = STEPS):
        self.model, self.size, self.steps = model, int(model.size), steps

    def _windows(self) -> list[tuple[slice, slice, tuple[slice, slice]]]:
        """(rows, columns) in pixels and (rows, columns) in cells of each window: ``steps + 1`` cells a side."""
        edges = np.linspace(0, self.size, self.steps + 2).round().astype(int)
        return [(slice(edges[r], edges[r + 2]), slice(edges[c], edges[c + 2]), (slice(r, r + 2), slice(c, c + 2)))
                for r in range(self.steps) for c in range(self.steps)]

    def __call__(self, images: np.ndarray, targets: np.ndarray | None = None) -> Heatmaps:
        """Maps (N, steps + 1, steps + 1) for uint8 images (N, S, S, 3) at the run's input size."""
        images = np.asarray(images, np.uint8)
        probabilities = self.model.predict_pixels(images).probabilities
        targets = probabilities.argmax(axis=1) if targets is None else np.asarray(targets)
        windows = self._windows()
        cells = self.steps + 1
        maps = np.zeros((len(images), cells, cells), np.float32)
        for i, image in enumerate(images):
            grey = image.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)  # the image's own mean colour
            batch = np.repeat(image[None], len(windows), axis=0)
            for k, (rows, columns, _) in enumerate(windows):
                batch[k, rows, columns] = grey
            occluded = self.model.predict_pixels(batch).probabilities
            drop = self._log_odds(probabilities[i:i + 1], targets[i]) - self._log_odds(occluded, targets[i])
            covered = np.zeros((cells, cells), np.float32)
            for k, (_, _, (r, c)) in enumerate(windows):
                maps[i, r, c] += drop[k]
                covered[r, c] += 1
            maps[i] /= covered
        return Heatmaps(probabilities, targets, _normalise(np.maximum(maps, 0), low=0.0), None, self.method)


    def _log_odds(self, probabilities: np.ndarray, target: int) -> np.ndarray:
        """log p / (1 - p) of ``target``; 1 - p as the sum of the other classes' probabilities (exact
        where p rounds to 1), or for several labels per image (independent labels) as it is."""
        p = probabilities.astype(np.float64)
        rest = 1 - p[:, target] if self.model.multi_label else np.delete(p, target, axis=1).sum(axis=1)
        return np.log(np.maximum(p[:, target], 1e-300)) - np.log(np.maximum(rest, 1e-300))


def explainer_for(run, model):
    """The run's explainer: Grad-CAM where its backbone has a layer to explain, else :class:`Occlusion`
    (decided from the reference: a converted encoder's spec is not needed, nor its weights)."""
    from keras_transfer.backbones import get_backbone
    from keras_transfer.config import CONVERTED
    from keras_transfer.explain.gradcam import GradCAM

    if run.config.backbone.startswith(CONVERTED):
        return Occlusion(model)
    return GradCAM(run.model, get_backbone(run.config.backbone).gradcam_layer)

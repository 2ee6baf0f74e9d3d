"""Occlusion maps: the heat map of a run whose backbone has no layer to take gradients from.

An ``onnx:``, ``hub:`` or ``timm:`` backbone runs as one ONNX graph, so Grad-CAM (gradients at a
convolutional layer) has nothing to work on, and a ViT has no spatial feature map at all. Random-mask
occlusion (RISE, Petsiuk et al. 2018) needs neither: the image is shown to the run under 256 random
masks (7 x 7 cells, half kept, smoothed and shifted; hidden parts take the image's mean colour), and
each pixel's heat is the mean probability of the explained class over the masks that kept it.
Hiding many parts at once finds evidence that is repeated in the image (a field of sunflowers), which
greying one window at a time misses. It asks the run itself (``RunModel.predict_pixels``: its views,
temperature and head), so the map explains the answer ``predict`` and ``serve`` give. Attention-free
on purpose: a ViT's attention shows where tokens look, not what the class depends on.

Written here because the maintained implementations (Captum's ``Occlusion``, tf-keras-vis) take
gradient-capable framework models, not an ONNX graph behind a run's inference rule. Cost: 256
passes of the run per image (Lite0: about 1.6 s on 2 cores; a ViT-S/14 about ten times that).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from keras_transfer.explain.gradcam import Heatmaps, _normalise

MASKS, CELLS, KEEP, RESOLUTION = 256, 7, 0.5, 56  # RISE's settings (7 x 7 cells, half kept); map side
CHUNK = 32  # masked images per call of the run


class Occlusion:
    """Random-mask occlusion maps (RISE) of a run, called like :class:`~keras_transfer.explain.gradcam.GradCAM`.

    Example:
        >>> maps = Occlusion(RunModel.open("runs/photos"))(images)  # doctest: +SKIP
        >>> maps.method, maps.gradcam.shape  # doctest: +SKIP
        ('occlusion', (1, 56, 56))
    """

    method = "occlusion"
    cam_available = False

    def __init__(self, model, masks: int = MASKS, seed: int = 0):
        self.model, self.size = model, int(model.size)
        rng = np.random.default_rng(seed)  # the same masks for every image: maps are reproducible
        cell = RESOLUTION / CELLS
        side = int(np.ceil(RESOLUTION + cell))
        grids = (rng.random((masks, CELLS + 1, CELLS + 1)) < KEEP).astype(np.float32)
        shifts = rng.integers(0, int(cell), (masks, 2))
        self.masks = np.stack([np.asarray(Image.fromarray(g).resize((side, side), Image.BILINEAR))
                               [dy:dy + RESOLUTION, dx:dx + RESOLUTION] for g, (dy, dx) in zip(grids, shifts)])

    def _masked(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """``image`` with each mask applied at the input size: hidden parts take the image's mean colour."""
        grey = image.reshape(-1, 3).mean(axis=0)
        full = np.stack([np.asarray(Image.fromarray(m).resize((self.size, self.size), Image.BILINEAR)) for m in masks])
        return (image * full[..., None] + grey * (1 - full[..., None])).round().astype(np.uint8)

    def __call__(self, images: np.ndarray, targets: np.ndarray | None = None) -> Heatmaps:
        """Maps (N, 56, 56) for uint8 images (N, S, S, 3) at the run's input size."""
        images = np.asarray(images, np.uint8)
        probabilities = self.model.predict_pixels(images).probabilities
        targets = probabilities.argmax(axis=1) if targets is None else np.asarray(targets)
        maps = np.zeros((len(images), RESOLUTION, RESOLUTION), np.float32)
        for i, image in enumerate(images):
            scores = np.concatenate([self.model.predict_pixels(self._masked(image, self.masks[k:k + CHUNK]))
                                     .probabilities[:, targets[i]] for k in range(0, len(self.masks), CHUNK)])
            maps[i] = np.tensordot(scores, self.masks, axes=1) / self.masks.sum(axis=0)
        return Heatmaps(probabilities, targets, _normalise(maps), None, self.method)


def explainer_for(run, model):
    """The run's explainer: Grad-CAM where its backbone has a layer to explain, else :class:`Occlusion`
    (decided from the reference: a converted encoder's spec is not needed, nor its weights)."""
    from keras_transfer.backbones import get_backbone
    from keras_transfer.config import CONVERTED
    from keras_transfer.explain.gradcam import GradCAM

    if run.config.backbone.startswith(CONVERTED):
        return Occlusion(model)
    return GradCAM(run.model, get_backbone(run.config.backbone).gradcam_layer)

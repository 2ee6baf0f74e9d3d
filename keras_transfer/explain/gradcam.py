"""Grad-CAM and classic CAM for a saved classifier whose backbone is nested inside it.

The classifier is ``resize -> features (normalize -> backbone(s) -> pool(s) [-> concatenate])
-> head``. Keras cannot expose a layer *inside* a nested model as an output of the outer model,
so :class:`GradCAM` rebuilds ``features`` (``keras.models.clone_model``, same layers and
weights) with the nested backbone behind a tap: a model of the same layers that also outputs the
Grad-CAM layer's activation and keeps it; then the head with its last Dense taken before the
softmax (class scores = logits). With several pooled stages the gradient reaches the activation
through its own pooled slice only, which is Grad-CAM's d score / d A.
The rebuilt pass is checked against the classifier once, on the first image explained.

Gradients use the backend's autograd (PyTorch, the library's backend); nothing is retrained.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from keras_transfer.base.errors import ConfigError, RunError


@dataclass(frozen=True)
class Heatmaps:
    """Class-activation maps of a batch, each normalised to [0, 1] per image.

    Attributes:
        probabilities: Predicted class probabilities (N, C).
        targets: The class index explained for each image (N,).
        gradcam: Grad-CAM maps (N, h, w) at the resolution of the explained layer.
        cam: Classic CAM maps (N, h, w), or None when the head is not GAP -> Dense.
        method: What ``gradcam`` holds: ``gradcam``, or ``occlusion`` (``explain.occlusion``) for a
            backbone with no layer to explain.
    """

    probabilities: np.ndarray
    targets: np.ndarray
    gradcam: np.ndarray
    cam: np.ndarray | None
    method: str = "gradcam"


def _find(model: keras.Model, name: str):
    """The layer called ``name`` anywhere inside ``model`` (nested models included), or None."""
    for layer in model.layers:
        if layer.name == name:
            return layer
        if isinstance(layer, keras.Model) and (found := _find(layer, name)) is not None:
            return found
    return None


def _unsupported(received: str) -> RunError:
    return RunError("cannot rebuild the classifier layer by layer for Grad-CAM",
                    "features: a chain of layers with the backbone nested; head: a chain ending in Dense", received)


def _normalise(maps: np.ndarray, low: np.ndarray | float | None = None) -> np.ndarray:
    """Scales each map so ``low`` (default: its minimum) becomes 0 and its maximum 1; flat maps become zeros."""
    low = maps.min(axis=(1, 2), keepdims=True) if low is None else low
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.divide(maps - low, span, out=np.zeros_like(maps), where=span > 0)


class _Tap(keras.layers.Layer):
    """Stands in for ``layer`` (a nested model holding ``target``, or ``target`` itself) in a
    rebuilt extractor: same outputs, and ``seen["activation"]`` keeps ``target``'s of the last call."""

    def __init__(self, layer, target):
        super().__init__(name=layer.name)
        self.is_output = target is layer or target.output is layer.outputs[0]
        self.probe = layer if target is layer else keras.Model(layer.inputs, [target.output, *layer.outputs])
        self.plain = target is layer
        self.seen: dict = {}

    def call(self, x, training=None, mask=None):  # the replaced layer's call arguments; always inference
        out = self.probe(x, training=False)
        if self.plain:
            self.seen["activation"] = out
            return out
        self.seen["activation"], *outputs = out
        return outputs[0] if len(outputs) == 1 else outputs


class GradCAM:
    """Computes Grad-CAM (and classic CAM where possible) for a run's classifier.

    Args:
        classifier: The saved end-to-end model (layers ``features`` and ``head``).
        layer: Name of the convolutional layer to explain, inside ``features`` at any depth
            (the backbone spec's ``gradcam_layer``).

    Example:
        >>> explainer = GradCAM(run.model, "head_act")  # doctest: +SKIP
        >>> maps = explainer(images)  # uint8 (N, S, S, 3) at the model's input size  # doctest: +SKIP
    """

    method = "gradcam"

    def __init__(self, classifier: keras.Model, layer: str):
        if keras.backend.backend() != "torch":
            raise ConfigError("Grad-CAM needs the torch backend", "KERAS_BACKEND=torch",
                              keras.backend.backend())
        if not layer:  # onnx: / hub: / timm: encoders run as an ONNX graph: no layer, no gradients
            raise ConfigError("Grad-CAM is not available for this run's backbone (an ONNX encoder runs as one "
                              "graph: no convolution to explain, no gradients through it)",
                              "a run on a Keras backbone (efficientnet_lite0, resnet50, ...)",
                              "a backbone with no Grad-CAM layer", hint="explain.occlusion.explainer_for "
                              "gives such a run occlusion maps")
        features, head = classifier.get_layer("features"), classifier.get_layer("head")
        self.size = int(features.input_shape[1])
        self._stages, self._probe_index = self._features_stages(features, layer)
        *self._head_hidden, self._dense = head.layers[1:]
        if not isinstance(self._dense, keras.layers.Dense):
            raise RunError("the classifier's head does not end in a Dense layer", "features -> ... -> Dense",
                           type(self._dense).__name__)
        self.cam_available = self._is_gap_dense()
        self._features, self._head, self._checked = features, head, False

    def _features_stages(self, features: keras.Model, name: str) -> tuple[list, int]:
        """The top-level layers of ``features`` and the index of the one holding ``name``;
        sets ``self._rebuilt``: ``features`` with that layer behind a :class:`_Tap`."""
        stages = list(features.layers[1:])
        for i, layer in enumerate(stages):
            target = layer if layer.name == name else _find(layer, name) if isinstance(layer, keras.Model) else None
            if target is not None:
                self._tap = _Tap(layer, target)
                self._activation_is_output = self._tap.is_output
                self._rebuilt = keras.models.clone_model(features, clone_function=lambda op: self._tap if op is layer else op)
                return stages, i
        raise ConfigError(f"layer {name!r} not found in the classifier's feature extractor",
                          "the backbone spec's gradcam_layer")

    def _is_gap_dense(self) -> bool:
        """Classic CAM needs: explained activation -> global average pooling -> (dropout) -> Dense.

        With several pooled stages (or backbones) the explained activation is pooled first, so its
        channels are the first rows of the Dense kernel: CAM then shows that map's share of the score.
        """
        after = self._stages[self._probe_index + 1:]
        pools = keras.layers.GlobalAveragePooling2D
        chain = len(after) == 1 or (len(after) > 2 and isinstance(after[-1], keras.layers.Concatenate)
                                    and all(isinstance(layer, pools) for layer in after[:-1]))
        return (self._activation_is_output and chain and isinstance(after[0], pools)
                and all(isinstance(layer, keras.layers.Dropout) for layer in self._head_hidden))

    def _forward(self, x):
        """(activation, pooled features, logits) of a batch, through the inner layers in inference mode."""
        x = self._rebuilt(x, training=False)
        activation = self._tap.seen.pop("activation")
        pooled = x
        for layer in self._head_hidden:
            x = layer(x, training=False)
        logits = ops.matmul(x, self._dense.kernel)
        return activation, pooled, logits + self._dense.bias if self._dense.use_bias else logits

    def _check(self, image: np.ndarray, pooled: np.ndarray, probabilities: np.ndarray) -> None:
        """Fails loudly, once, if the rebuilt forward pass does not reproduce the classifier on an image."""
        features = ops.convert_to_numpy(self._features(image, training=False))
        expected = ops.convert_to_numpy(self._head(features, training=False))
        scale = max(1.0, float(np.abs(features).max()))
        if not (np.allclose(pooled, features, atol=1e-4 * scale) and np.allclose(probabilities, expected, atol=1e-4)):
            raise _unsupported(f"max probability difference {np.abs(probabilities - expected).max():.2e}")
        self._checked = True

    def __call__(self, images: np.ndarray, targets: np.ndarray | None = None) -> Heatmaps:
        """Heatmaps for uint8 images (N, S, S, 3) already resized to the model's input size.

        Args:
            images: The model inputs.
            targets: Class index to explain per image; default: the predicted class.
        """
        import torch

        x = ops.convert_to_tensor(np.asarray(images, dtype=np.float32)).requires_grad_(True)
        with torch.enable_grad():
            try:
                activation, pooled, logits = self._forward(x)
            except Exception as error:  # e.g. a feature extractor that is not a chain of layers
                if self._checked:
                    raise
                raise _unsupported(f"{type(error).__name__}: {error}") from error
            targets = logits.argmax(dim=-1).detach().cpu().numpy() if targets is None else np.asarray(targets)
            index = torch.as_tensor(targets, device=logits.device)
            (gradients,) = torch.autograd.grad(logits.gather(1, index[:, None]).sum(), activation)
        weights = gradients.mean(dim=(1, 2), keepdim=True)  # alpha_k: spatial mean of d score / d A_k
        gradcam = torch.relu((weights * activation).sum(dim=-1)).detach().cpu().numpy()
        cam = None
        if self.cam_available:
            channels = activation.shape[-1]  # the first rows: the explained map's pooled channels
            kernel = self._dense.kernel.value.detach()[:channels, index].T[:, None, None, :]  # (N, 1, 1, K)
            cam = _normalise((activation.detach() * kernel).sum(dim=-1).cpu().numpy())
        probabilities = torch.softmax(logits.detach(), dim=-1).cpu().numpy()
        if not self._checked:
            self._check(np.asarray(images[:1]), pooled[:1].detach().cpu().numpy(), probabilities[:1])
        return Heatmaps(probabilities, targets, _normalise(gradcam, low=0.0), cam)

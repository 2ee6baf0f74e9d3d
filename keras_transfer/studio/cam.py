"""The heat map of one image in the drill-down: an exact class activation map, without gradients.

For a solved linear head on pooled features the class score is linear in the feature maps, so
the classic CAM (Zhou et al. 2016) is exact. The pooled feature vector is the concatenation,
in the order ``backbones.network.build_extractor`` builds it, of the global average of each
pooled map s: ``[member 1: last map, stage ends...] [member 2: ...]``, map s having C_s channels
at its own h_s x w_s resolution. The kernel's rows split the same way into blocks W_s, so

    logit_c = b_c + sum_s mean_ij ( A_s[i, j, :] @ W_s[:, c] ) = b_c + sum_s mean_ij M_s[i, j]

Each M_s is a map of class evidence at its stage's resolution whose mean is that stage's share
of the logit; the map shown is the sum of the M_s, each resized to the finest grid (bilinear),
min-max scaled. ``cam_maps`` returns the stage maps themselves, so the identity above can be
checked (``tests/test_studio_backend.py`` does).

The feature maps come from the run's own Keras extractor (``RunModel.source.model``, built
once, then kept on the workspace): a model of the same layers that outputs the maps before
their pooling layers. A head Keras trained (hidden layers, a fine-tuned backbone) has no exact
CAM: it falls back to the existing Grad-CAM (``explain.gradcam``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from keras_transfer.data.images import read_image, resize
from keras_transfer.explain.overlay import overlay, upsample

SHOWN = 384  # longest side of the overlay image


@dataclass(frozen=True)
class CamMaps:
    """One image's class activation maps.

    Attributes:
        target: The class explained (the predicted one).
        logit: Its logit (head bias + the stage maps' means); NaN for Grad-CAM.
        stages: The maps M_s (h_s, w_s) of each pooled map, in the feature vector's order (exact
            CAM only; empty for Grad-CAM).
        heatmap: The map shown, (h, w) in [0, 1].
        image: The model input (S, S, 3) uint8.
        method: ``"cam"`` (exact), ``"gradcam"``, or ``"occlusion"`` (a backbone with no layer to explain).
    """

    target: int
    logit: float
    stages: list[np.ndarray]
    heatmap: np.ndarray
    image: np.ndarray
    method: str


def _scale(heat: np.ndarray) -> np.ndarray:
    low, span = heat.min(), heat.max() - heat.min()
    return (heat - low) / span if span > 0 else np.zeros_like(heat)


def _map_model(ws):
    """A function: pixels (1, S, S, 3) -> the maps before the extractor's pooling layers (a list),
    or None when the features are max-pooled (not linear: no exact CAM).

    Built once per backbone and kept on the workspace: the run's Keras extractor with the pooling
    layers' inputs as outputs, exported to ONNX once (``features.export``, cached like the feature
    engine's file) and run by ONNX Runtime: eager Keras takes seconds per image on two busy cores.
    """
    import keras

    model = ws.model
    key = repr(sorted(model.source.identity.items()))
    cached = ws.__dict__.get("_cam_model")
    if cached is None or cached[0] != key:
        extractor = model.source.model
        pools = [layer for layer in extractor.layers if isinstance(layer, (keras.layers.GlobalAveragePooling2D,
                                                                             keras.layers.GlobalMaxPooling2D))]
        pools.sort(key=lambda layer: int(layer.name.rsplit("_", 1)[1]) if "_" in layer.name else 0)
        if not pools or any(isinstance(layer, keras.layers.GlobalMaxPooling2D) for layer in pools):
            return None
        maps = keras.Model(extractor.inputs, [layer.input for layer in pools], name="cam_maps")
        cached = (key, _compiled(maps, {**model.source.identity, "outputs": "maps before pooling (studio CAM)"}))
        ws.__dict__["_cam_model"] = cached
    return cached[1]


def _compiled(maps, identity: dict):
    """ONNX Runtime on the exported maps model; the Keras model itself if the export fails."""
    try:
        import onnxruntime as ort

        from keras_transfer.features.export import export_onnx

        session = ort.InferenceSession(str(export_onnx(maps, identity)), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda pixels: session.run(None, {name: pixels.astype(np.float32)})
    except Exception:  # an export the runtime cannot take: the same maps, slower
        return lambda pixels: maps.predict_on_batch(pixels.astype(np.float32))


def cam_maps(ws, image_id: str) -> CamMaps:
    """The class activation maps of the current run's predicted class for an image."""
    model = ws.model
    pixels = resize(read_image(ws.path_of(image_id), model.size), model.size, model.resize_mode)
    maps_model = _map_model(ws) if model.solved and not model.multi_label else None
    if maps_model is None:
        return _gradcam(ws, pixels)
    outputs = maps_model(pixels[None])
    maps = [np.asarray(m, np.float32)[0] for m in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    pooled = np.concatenate([m.mean(axis=(0, 1)) for m in maps])
    kernel, bias = model.head.kernel, model.head.bias
    target = int(np.argmax(pooled @ kernel + bias))
    stages, offset = [], 0
    for m in maps:  # each map's block of kernel rows
        stages.append(m @ kernel[offset:offset + m.shape[-1], target])
        offset += m.shape[-1]
    finest = max((s.shape for s in stages), key=lambda shape: shape[0] * shape[1])
    total = sum(s if s.shape == finest else upsample(s, finest) for s in stages)
    logit = float(bias[target] + sum(s.mean() for s in stages))
    return CamMaps(target, logit, stages, _scale(total), pixels, "cam")


def _gradcam(ws, pixels: np.ndarray) -> CamMaps:
    """Grad-CAM of a Keras-trained head (``explain.gradcam``), or occlusion for a backbone with no
    layer to explain (``explain.occlusion``), built once per run."""
    from keras_transfer.explain.occlusion import explainer_for

    run = ws.run
    cached = ws.__dict__.get("_gradcam")
    if cached is None or cached[0] != run.path:
        cached = (run.path, explainer_for(run, ws.model))
        ws.__dict__["_gradcam"] = cached
    heat = cached[1](pixels[None])
    return CamMaps(int(heat.targets[0]), float("nan"), [], heat.gradcam[0], pixels, heat.method)


def cam_png(ws, image_id: str) -> bytes:
    """The map of the predicted class over the image (at its own aspect ratio for stretched
    inputs, at most ``SHOWN`` pixels), as PNG bytes."""
    maps = cam_maps(ws, image_id)
    picture = maps.image
    if ws.model.resize_mode == "stretch":  # the map covers the whole picture: show it as it is
        original = read_image(ws.path_of(image_id))
        scale = SHOWN / max(original.shape[:2])
        if scale < 1:
            size = (max(1, round(original.shape[1] * scale)), max(1, round(original.shape[0] * scale)))
            original = np.asarray(Image.fromarray(original).resize(size, Image.BILINEAR))
        picture = original
    buffer = io.BytesIO()
    Image.fromarray(overlay(picture, maps.heatmap)).save(buffer, format="PNG")
    return buffer.getvalue()

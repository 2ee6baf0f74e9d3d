"""The classic ``keras.applications`` backbones, each registered in a few lines.

Weights (the ``weights`` argument of ``spec.build``):

- ``"imagenet"``: keras' own download (``weights="imagenet"``), kept in keras' cache
  (``~/.keras/models``). With ``offline=True`` or ``KERAS_TRANSFER_OFFLINE=1`` only that
  cache is read, and a missing file fails at once instead of trying the network.
- a path: a local weights file, e.g. the ``*_notop.h5`` a user downloaded by hand.
- ``None``: random initialisation (tests, benchmarks, training from scratch).

Each spec's preprocessing equals the model's own ``keras.applications.<module>.preprocess_input``
(tested), applied by ``ImageNormalization`` inside the saved model.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from keras_transfer.backbones.registry import register_backbone
from keras_transfer.backbones.spec import BackboneSpec, Preprocessing, Weights
from keras_transfer.backbones.weights import (file_identity, file_sha256, keras_models_dir, local_weights_file,
                                              offline_requested)
from keras_transfer.base.errors import ConfigError, WeightsError

if TYPE_CHECKING:
    import keras

_TF_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

CAFFE = Preprocessing(mean=(103.939, 116.779, 123.68), bgr=True)  # BGR, ImageNet mean subtracted
TORCH = Preprocessing(mean=tuple(255 * m for m in _IMAGENET_MEAN), std=tuple(255 * s for s in _IMAGENET_STD))
TF = Preprocessing(mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5))  # scaled to [-1, 1]
IN_MODEL = Preprocessing()  # raw [0, 255]: the model rescales and normalises itself (EfficientNet)
_DESCRIBED = {CAFFE: "Caffe preprocessing (BGR, mean subtracted)", TORCH: "torch preprocessing (ImageNet mean/std)",
              TF: "tf preprocessing (scaled to [-1, 1])", IN_MODEL: "normalisation inside the model"}


@dataclass(frozen=True)
class KerasApp:
    """How to build and describe one ``keras.applications`` model.

    Attributes:
        name: Registry name, e.g. ``"resnet50"``.
        constructor: The ``keras.applications`` function, e.g. ``"ResNet50"``.
        input_size: Native square input size.
        feature_dim: Channels of the last feature map.
        preprocessing: The model's ``preprocess_input`` as mean/std/bgr.
        url: Folder keras downloads the weights from.
        files: (with top, without top) weight file names in keras' cache; ``{rows}``
            stands for the input size (MobileNetV2 ships one file per size).
        gradcam_layer: Last convolutional activation, to explain.
        finetune_groups: Layer-name prefix groups, input to output.
        min_input_size: Smallest input keras accepts.
        after_load: Called on a model after a weights file was loaded by path.
    """

    name: str
    constructor: str
    input_size: int
    feature_dim: int
    preprocessing: Preprocessing
    url: str
    files: tuple[str, str]
    gradcam_layer: str
    finetune_groups: tuple[tuple[str, ...], ...]
    min_input_size: int = 32
    after_load: Callable[[keras.Model], None] | None = None

    def weights_file(self, size: int, include_top: bool = False) -> str:
        """Name of the ImageNet weights file keras uses for this input size."""
        rows = size if size in (96, 128, 160, 192, 224) else 224  # MobileNetV2's rule
        return self.files[0 if include_top else 1].format(rows=rows)


def _tf_kernels(stem: str) -> tuple[str, str]:
    """keras' usual pair of file names: ``<stem>_weights_tf_dim_ordering_tf_kernels[_notop].h5``."""
    return f"{stem}_weights_tf_dim_ordering_tf_kernels.h5", f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _groups(*groups: str) -> tuple[tuple[str, ...], ...]:
    """``_groups("conv1_ pool1_", "conv2_")`` -> ``(("conv1_", "pool1_"), ("conv2_",))``."""
    return tuple(tuple(g.split()) for g in groups)


def _efficientnet_scale(model: keras.Model) -> None:
    """Matches keras' ``weights="imagenet"`` EfficientNet when its file is loaded by path.

    Only for ``"imagenet"`` does keras add ``Rescaling(1 / sqrt(std))`` after the input
    ``Normalization``, because its ImageNet file expects that extra scale (tensorflow#49930).
    The same factor is folded into the Normalization variance here.
    """
    import keras

    norm = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))
    norm.adapt_variance.assign(norm.adapt_variance * np.asarray(_IMAGENET_STD, np.float32))
    norm.finalize_state()


# --------------------------------------------------------------------------- building


def _imagenet_file(app: KerasApp, size: int, include_top: bool) -> str:
    """The weights file in keras' cache, or a WeightsError that says how to supply it."""
    name = app.weights_file(size, include_top)
    path = keras_models_dir() / name
    if not path.is_file():
        raise WeightsError(f"the ImageNet weights of {app.name} are not in the keras cache and "
                           "offline mode forbids downloading them",
                           expected=str(path), received="no such file",
                           hint=f"download {app.url}{name} by hand and pass `--weights <file>` (or copy "
                                f"it to {path.parent}), or use random weights: `--weights none`")
    return str(path)


def _download(app: KerasApp, constructor, kwargs: dict) -> keras.Model:
    """``constructor(weights="imagenet")``: keras' real download; failures become WeightsError."""
    name = app.weights_file(kwargs["input_shape"][0], kwargs["include_top"])
    try:
        with contextlib.redirect_stdout(sys.stderr):  # keras prints "Downloading data from ..."
            return constructor(weights="imagenet", **kwargs)
    except Exception as exc:  # keras raises a bare Exception for a failed fetch
        raise WeightsError(f"cannot download the ImageNet weights of {app.name}",
                           expected=f"{app.url}{name} reachable, or already in {keras_models_dir()}",
                           received=f"{type(exc).__name__}: {exc}",
                           hint="without network: download that file elsewhere and pass `--weights <file>`; "
                                "`--offline` never tries the network; `--weights none` for random weights") from exc


def _load_file(app: KerasApp, model: keras.Model, path: str) -> None:
    """Loads a weights file into ``model`` (WeightsError when it does not fit)."""
    try:
        model.load_weights(path)
    except Exception as exc:
        raise WeightsError(f"cannot load weights file {path!r} into {app.name}",
                           expected=f"keras' {app.weights_file(model.input_shape[1], False)} or a "
                                    "weights file saved from the same architecture",
                           received=f"{type(exc).__name__}: {exc}") from exc
    if app.after_load is not None:
        app.after_load(model)


def build_keras_app(app: KerasApp, input_size: int | None = None, weights: Weights = "imagenet",
                    offline: bool = False, include_top: bool = False) -> keras.Model:
    """Builds a ``keras.applications`` model.

    Args:
        app: What to build.
        input_size: Square input side; the native size when None (always native with the top).
        weights: ``"imagenet"``, a local weights file, or None (random).
        offline: Never touch the network (also set by ``KERAS_TRANSFER_OFFLINE=1``).
        include_top: False: the last feature map ``(N, h, w, feature_dim)``.
            True: the ImageNet classifier, 1000 logits (no softmax).

    Raises:
        ConfigError: The input size is below the architecture's minimum.
        WeightsError: The weights cannot be found, downloaded or loaded.
    """
    import keras

    size = app.input_size if input_size is None or include_top else int(input_size)
    if size < app.min_input_size:
        raise ConfigError(f"input size {size} is too small for {app.name}",
                          expected=f"at least {app.min_input_size}", received=str(size))
    constructor = getattr(keras.applications, app.constructor)
    kwargs = {"include_top": include_top, "input_shape": (size, size, 3)}
    if include_top:
        kwargs["classifier_activation"] = None
    if weights == "imagenet" and not offline_requested(offline):
        return _download(app, constructor, kwargs)
    if weights == "imagenet":
        path = _imagenet_file(app, size, include_top)
    else:
        path = None if weights is None else str(local_weights_file(weights, "a keras weights file (.h5)"))
    model = constructor(weights=None, **kwargs)
    if path is not None:
        _load_file(app, model, path)
    return model


def _weights_identity(app: KerasApp, weights: Weights) -> str:
    """``random``, ``file:<sha12>``, or ``<name>:imagenet:<sha12 of the cached file>``."""
    if weights is None:
        return "random"
    if weights != "imagenet":
        return file_identity(weights)
    cached = keras_models_dir() / app.weights_file(app.input_size)
    return f"{app.name}:imagenet:{file_sha256(cached)[:12] if cached.is_file() else 'keras'}"


def keras_app_spec(app: KerasApp) -> BackboneSpec:
    """The registry spec of a ``keras.applications`` model."""
    return BackboneSpec(
        name=app.name, input_size=app.input_size, feature_dim=app.feature_dim,
        preprocessing=app.preprocessing,
        build=functools.partial(build_keras_app, app),
        build_imagenet=lambda weights, offline=False: build_keras_app(app, None, weights, offline, True),
        weights_identity=functools.partial(_weights_identity, app),
        gradcam_layer=app.gradcam_layer, finetune_groups=app.finetune_groups,
        offline_weights=lambda: (keras_models_dir() / app.weights_file(app.input_size)).is_file(),
        min_input_size=app.min_input_size,
        description=f"keras.applications.{app.constructor}, {_DESCRIBED[app.preprocessing]}, "
                    f"ImageNet weights from keras' download or a local file")


# --------------------------------------------------------------------------- registry

_VGG_GROUPS = _groups("block1_", "block2_", "block3_", "block4_", "block5_")


@register_backbone
def resnet50() -> BackboneSpec:
    """ResNet50 (He et al., 2015)."""
    return keras_app_spec(KerasApp(
        "resnet50", "ResNet50", 224, 2048, CAFFE, _TF_URL + "resnet/", _tf_kernels("resnet50"),
        "conv5_block3_out", _groups("conv1_ pool1_", "conv2_", "conv3_", "conv4_", "conv5_")))


@register_backbone
def vgg16() -> BackboneSpec:
    """VGG16 (Simonyan & Zisserman, 2014)."""
    return keras_app_spec(KerasApp(
        "vgg16", "VGG16", 224, 512, CAFFE, _TF_URL + "vgg16/", _tf_kernels("vgg16"),
        "block5_conv3", _VGG_GROUPS))


@register_backbone
def vgg19() -> BackboneSpec:
    """VGG19 (Simonyan & Zisserman, 2014)."""
    return keras_app_spec(KerasApp(
        "vgg19", "VGG19", 224, 512, CAFFE, _TF_URL + "vgg19/", _tf_kernels("vgg19"),
        "block5_conv4", _VGG_GROUPS))


@register_backbone
def densenet121() -> BackboneSpec:
    """DenseNet121 (Huang et al., 2016)."""
    return keras_app_spec(KerasApp(
        "densenet121", "DenseNet121", 224, 1024, TORCH, _TF_URL + "densenet/", _tf_kernels("densenet121"),
        "relu", _groups("conv1_ pool1", "conv2_ pool2_", "conv3_ pool3_", "conv4_ pool4_", "conv5_ bn relu")))


@register_backbone
def mobilenet_v2() -> BackboneSpec:
    """MobileNetV2 (Sandler et al., 2018), width 1.0."""
    files = ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}.h5",
             "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5")
    return keras_app_spec(KerasApp(
        "mobilenet_v2", "MobileNetV2", 224, 1280, TF, _TF_URL + "mobilenet_v2/", files, "out_relu",
        _groups("Conv1 bn_Conv1 expanded_conv_", "block_1_ block_2_", "block_3_ block_4_ block_5_",
                "block_6_ block_7_ block_8_ block_9_", "block_10_ block_11_ block_12_",
                "block_13_ block_14_ block_15_", "block_16_ Conv_1 out_relu")))


@register_backbone
def efficientnet_b0() -> BackboneSpec:
    """EfficientNetB0 (Tan & Le, 2019); rescales and normalises inside the model."""
    return keras_app_spec(KerasApp(
        "efficientnet_b0", "EfficientNetB0", 224, 1280, IN_MODEL, "https://storage.googleapis.com/keras-applications/",
        ("efficientnetb0.h5", "efficientnetb0_notop.h5"), "top_activation",
        _groups("stem_", *(f"block{i}" for i in range(1, 8)), "top_"), after_load=_efficientnet_scale))


@register_backbone
def inception_v3() -> BackboneSpec:
    """InceptionV3 (Szegedy et al., 2015)."""
    return keras_app_spec(KerasApp(
        "inception_v3", "InceptionV3", 299, 2048, TF, _TF_URL + "inception_v3/", _tf_kernels("inception_v3"),
        "mixed10", _groups(*(f"mixed{i}" for i in range(10)), "mixed9_1 mixed10"),  # mixed9_1 is inside block 10
        min_input_size=75))


@register_backbone
def xception() -> BackboneSpec:
    """Xception (Chollet, 2016)."""
    return keras_app_spec(KerasApp(
        "xception", "Xception", 299, 2048, TF, _TF_URL + "xception/", _tf_kernels("xception"),
        "block14_sepconv2_act", _groups(*(f"block{i}_" for i in range(1, 15))), min_input_size=71))


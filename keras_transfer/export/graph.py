"""ONNX graph pieces of an exported classifier, each appended to (or put in front of) a graph.

Written by hand with ``onnx.helper``: the pieces are a few standard operators each (a linear
head, the temperature, the k-NN unknown score, the mirror-image view), which no converter
emits on its own from NumPy weights.
"""

from __future__ import annotations

import numpy as np


def int64_constants(**values):
    from onnx import numpy_helper

    return [numpy_helper.from_array(np.array(v, np.int64), name) for name, v in values.items()]


def first_view(graph, features: str, dim: int) -> str:
    """Features (2N, dim) of the images then their mirror images -> the images' own (N, dim); its name."""
    from onnx import helper

    graph.initializer.extend(int64_constants(views_shape=[2, -1, dim], first_view=0))
    graph.node.extend([helper.make_node("Reshape", [features, "views_shape"], ["views_features"], name="views"),
                       helper.make_node("Gather", ["views_features", "first_view"], ["image_features"], axis=0,
                                        name="image_features")])
    return "image_features"


def mean_of_views(graph, probabilities: str, classes: int, out: str) -> None:
    """(2N, classes) probabilities of the images and their mirror images -> their mean (N, classes)."""
    from onnx import helper, numpy_helper

    graph.initializer.extend([*int64_constants(second_view=1, probabilities_shape=[2, -1, classes]),
                              numpy_helper.from_array(np.array(0.5, np.float32), "half")])
    graph.node.extend([helper.make_node("Reshape", [probabilities, "probabilities_shape"], ["views_probabilities"],
                                        name="views_probabilities"),
                       helper.make_node("Gather", ["views_probabilities", "first_view"], ["p_image"], axis=0,
                                        name="p_image"),
                       helper.make_node("Gather", ["views_probabilities", "second_view"], ["p_mirror"], axis=0,
                                        name="p_mirror"),
                       helper.make_node("Add", ["p_image", "p_mirror"], ["p_sum"], name="p_sum"),
                       helper.make_node("Mul", ["p_sum", "half"], [out], name="views_mean")])


def linear_head(graph, features: str, head, temperature: float, out: str = "probabilities") -> str:
    """MatMul + Add + Softmax of a solved head (Sigmoid for several labels per image), its logits
    divided by ``temperature``; the output name."""
    from onnx import helper, numpy_helper

    graph.initializer.extend([numpy_helper.from_array((head.kernel / temperature).astype(np.float32), "head_kernel"),
                              numpy_helper.from_array((head.bias / temperature).astype(np.float32), "head_bias")])
    graph.node.extend([helper.make_node("MatMul", [features, "head_kernel"], ["head_matmul"], name="head_matmul"),
                       helper.make_node("Add", ["head_matmul", "head_bias"], ["logits"], name="head_add"),
                       helper.make_node("Sigmoid", ["logits"], [out], name="head_sigmoid") if head.multi_label else
                       helper.make_node("Softmax", ["logits"], [out], axis=1, name="head_softmax")])
    return out


def keras_head(backbone, head, temperature: float):
    """``backbone`` with the Keras head's own ONNX export merged behind it (and the temperature)."""
    import onnx
    from onnx import helper, numpy_helper

    from keras_transfer.features.export import export_onnx
    from keras_transfer.backbones.network import weights_digest

    head_model = onnx.load(str(export_onnx(head, {"backbone": "head", "weights": weights_digest(head),
                                                  "shape": list(head.input_shape[1:])})))
    merged = onnx.compose.merge_models(backbone, head_model, prefix2="head/",
                                       io_map=[(backbone.graph.output[0].name, head_model.graph.input[0].name)])
    graph, out = merged.graph, merged.graph.output[0].name
    if temperature != 1.0:
        graph.initializer.extend([numpy_helper.from_array(np.array(1e-30, np.float32), "tiny"),
                                  numpy_helper.from_array(np.array(1 / temperature, np.float32), "inverse_t")])
        graph.node.extend([helper.make_node("Max", [out, "tiny"], ["clipped"], name="clip"),
                           helper.make_node("Log", ["clipped"], ["log_p"], name="log"),
                           helper.make_node("Mul", ["log_p", "inverse_t"], ["scaled"], name="temperature")])
        graph.node.append(helper.make_node("Softmax", ["scaled"], ["probabilities"], axis=1, name="calibrated"))
    else:
        graph.node.append(helper.make_node("Identity", [out], ["probabilities"], name="probabilities"))
    return merged


def unknown_score(graph, features: str, unknown) -> str:
    """The k-NN unknown score in the graph: 1 - cosine similarity to the k-th nearest training
    image, the same as ``KnnUnknown.scores`` (the reference features ride along as a constant)."""
    from onnx import helper, numpy_helper

    reference = unknown.reference.astype(np.float32)
    graph.initializer.extend([
        numpy_helper.from_array(np.ones((reference.shape[1], 1), np.float32), "unknown_ones"),
        numpy_helper.from_array(np.array(1e-12, np.float32), "unknown_eps"),
        numpy_helper.from_array(np.ascontiguousarray(reference.T), "unknown_reference"),
        numpy_helper.from_array(np.array([unknown.k], np.int64), "unknown_k"),
        numpy_helper.from_array(np.array(unknown.k - 1, np.int64), "unknown_kth"),
        numpy_helper.from_array(np.array(1.0, np.float32), "unknown_one")])
    nodes = [("Mul", [features, features], "unknown_sq"), ("MatMul", ["unknown_sq", "unknown_ones"], "unknown_sum"),
             ("Sqrt", ["unknown_sum"], "unknown_norm"), ("Max", ["unknown_norm", "unknown_eps"], "unknown_safe"),
             ("Div", [features, "unknown_safe"], "unknown_query"),
             ("MatMul", ["unknown_query", "unknown_reference"], "unknown_sims")]
    graph.node.extend(helper.make_node(op, inputs, [out], name=out) for op, inputs, out in nodes)
    graph.node.append(helper.make_node("TopK", ["unknown_sims", "unknown_k"], ["unknown_top", "unknown_top_index"],
                                       axis=1, largest=1, sorted=1, name="unknown_topk"))
    graph.node.extend([helper.make_node("Gather", ["unknown_top", "unknown_kth"], ["unknown_kth_sim"], axis=1,
                                        name="unknown_kth_sim"),
                       helper.make_node("Sub", ["unknown_one", "unknown_kth_sim"], ["unknown_score"],
                                        name="unknown_score")])
    return "unknown_score"


def with_mirror_images(graph, image: str, pixels: str) -> None:
    """In front of the graph: uint8 ``image`` (N, S, S, 3) -> float ``pixels`` (2N, S, S, 3), the images then
    their mirror images (width reversed), as ``first_view`` and ``mean_of_views`` expect."""
    from onnx import TensorProto, helper

    graph.initializer.extend(int64_constants(mirror_start=[-1], mirror_end=[-2**63], mirror_axis=[2], mirror_step=[-1]))
    graph.node.insert(0, helper.make_node("Concat", ["image_float", "image_mirror"], [pixels], axis=0,
                                          name="with_mirror"))
    graph.node.insert(0, helper.make_node("Slice", ["image_float", "mirror_start", "mirror_end", "mirror_axis",
                                                    "mirror_step"], ["image_mirror"], name="mirror"))
    graph.node.insert(0, helper.make_node("Cast", [image], ["image_float"], to=TensorProto.FLOAT, name="to_float"))

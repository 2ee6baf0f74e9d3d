"""Explanations: Grad-CAM / CAM heatmaps and embedding similarity."""

from keras_transfer.explain.explainer import Explanation, explain
from keras_transfer.explain.gradcam import GradCAM, Heatmaps
from keras_transfer.explain.similarity import (SimilarityMatrix, similar, similarity_figure, similarity_matrix,
                                               write_similarity)

__all__ = ["Explanation", "GradCAM", "Heatmaps", "SimilarityMatrix", "explain", "similar", "similarity_figure",
           "similarity_matrix", "write_similarity"]

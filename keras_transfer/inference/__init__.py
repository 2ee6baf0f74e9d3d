"""Keras-free inference on a trained run: the engine's compiled backbone and the NumPy head."""

from keras_transfer.inference.predictor import HEAD_FILE, Predictor

__all__ = ["HEAD_FILE", "Predictor"]

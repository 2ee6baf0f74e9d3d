"""Training strategies: each turns a dataset into a trained end-to-end classifier."""

from keras_transfer.strategies.base import FitResult, Strategy, TrainContext, get_strategy

__all__ = ["FitResult", "Strategy", "TrainContext", "get_strategy"]

"""Feature extraction through a frozen backbone: fast runtimes, a shared cache, augmented views."""

from keras_transfer.features.cache import FeatureCache
from keras_transfer.features.engine import FeatureEngine
from keras_transfer.features.executor import EXECUTORS, Executor, make_executor
from keras_transfer.features.extractor import Deferred, input_side, resolve
from keras_transfer.features.runtime import PRECISIONS, RUNTIMES, RuntimeOptions
from keras_transfer.features.source import FeatureSource, view_numbers

__all__ = ["EXECUTORS", "PRECISIONS", "RUNTIMES", "Deferred", "Executor", "FeatureCache", "FeatureEngine",
           "FeatureSource", "RuntimeOptions", "input_side", "make_executor", "resolve", "view_numbers"]

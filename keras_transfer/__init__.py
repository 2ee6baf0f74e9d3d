"""keras-transfer: transfer learning from ImageNet CNNs on a CPU, the Keras way."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

from keras_transfer.api import evaluate, predict, train  # noqa: E402
from keras_transfer.config import TrainConfig  # noqa: E402
from keras_transfer.data.dataset import Dataset, load_dataset  # noqa: E402
from keras_transfer.errors import KerasTransferError  # noqa: E402
from keras_transfer.run import Run  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Dataset", "KerasTransferError", "Run", "TrainConfig", "evaluate", "load_dataset", "predict", "train"]

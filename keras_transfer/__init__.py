"""keras-transfer: transfer learning from ImageNet CNNs on a CPU, the Keras way."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

__version__ = "0.1.0"

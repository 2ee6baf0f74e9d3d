"""keras-transfer: transfer learning from ImageNet CNNs on a CPU, the Keras way.

The public names are imported on first use (PEP 562), so ``import keras_transfer`` and the
command line start in a fraction of a second; keras and torch load only when a job needs them.
"""

import importlib
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

__version__ = "0.2.0"
_PUBLIC = {"train": "export.tracking", "evaluate": "run", "predict": "run", "Run": "run", "RunModel": "run", "TrainConfig": "config",
           "Dataset": "data.dataset", "load_dataset": "data.dataset", "KerasTransferError": "base.errors"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'keras_transfer' has no attribute {name!r}")
    return getattr(importlib.import_module(f"keras_transfer.{_PUBLIC[name]}"), name)

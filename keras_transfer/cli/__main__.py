"""``python -m keras_transfer.cli``."""

from keras_transfer.cli import entry

entry()

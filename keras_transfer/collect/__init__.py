"""Collecting a dataset from a list of image URLs (``keras-transfer collect``)."""

from keras_transfer.collect.core import collect
from keras_transfer.collect.options import CollectOptions
from keras_transfer.collect.sources import Item, read_urls

__all__ = ["CollectOptions", "Item", "collect", "read_urls"]

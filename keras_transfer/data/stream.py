"""Streaming batches for strategies that run images through a network every epoch."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np

from keras_transfer.data.augment import mixup, shift_flip
from keras_transfer.data.dataset import Split
from keras_transfer.data.images import resize


class ImageBatches(keras.utils.PyDataset):
    """(uint8 images (B, size, size, 3), one-hot labels) batches of a split, decoded on the fly.

    Memory stays flat whatever the dataset size: only a few batches are ever decoded at once.
    Images that fail to decode are dropped from their batch.

    Args:
        split: The images and labels.
        size: Side the images are resized to.
        num_classes: Width of the one-hot labels.
        batch_size: Images per batch.
        resize_mode: stretch, pad or crop.
        shuffle_seed: Reshuffle every epoch with this seed (None keeps the order).
    """

    def __init__(self, split: Split, size: int, num_classes: int, batch_size: int = 32,
                 resize_mode: str = "stretch", shuffle_seed: int | None = None):
        super().__init__(workers=1, use_multiprocessing=False, max_queue_size=4)
        self.split, self.size, self.num_classes = split, size, num_classes
        self.batch_size, self.resize_mode, self.shuffle_seed = batch_size, resize_mode, shuffle_seed
        self.epoch, self.pool = 0, ThreadPoolExecutor(2)
        self.order = self._order()

    def _order(self) -> np.ndarray:
        if self.shuffle_seed is None:
            return np.arange(len(self.split))
        return np.random.default_rng([self.shuffle_seed, self.epoch]).permutation(len(self.split))

    def __len__(self) -> int:
        return math.ceil(len(self.split) / self.batch_size)

    def _load(self, index: int) -> np.ndarray | None:
        try:
            return resize(self.split.image(index, self.size), self.size, self.resize_mode)
        except Exception:  # corrupt files were listed at extraction time; here just skip
            return None

    def __getitem__(self, batch: int):
        indices = self.order[batch * self.batch_size:(batch + 1) * self.batch_size]
        images = list(self.pool.map(self._load, indices))
        keep = [k for k, image in enumerate(images) if image is not None]
        labels = np.eye(self.num_classes, dtype=np.float32)[self.split.labels[indices[keep]]]
        return np.stack([images[k] for k in keep]), labels

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()


class AugmentedBatches(ImageBatches):
    """ImageBatches with on-the-fly random shift + flip and optional mixup, reshuffled each epoch.

    Each batch's randomness depends only on (seed, epoch, batch), so a resumed run sees the
    same augmentation as an uninterrupted one.
    """

    def __init__(self, split: Split, size: int, num_classes: int, batch_size: int = 32,
                 resize_mode: str = "stretch", seed: int = 0, mixup_alpha: float = 0.0):
        super().__init__(split, size, num_classes, batch_size, resize_mode, shuffle_seed=seed)
        self.seed, self.mixup_alpha = seed, mixup_alpha

    def __getitem__(self, batch: int):
        images, labels = super().__getitem__(batch)
        rng = np.random.default_rng([self.seed, self.epoch, batch])
        return mixup(shift_flip(images, rng), labels, rng, self.mixup_alpha)

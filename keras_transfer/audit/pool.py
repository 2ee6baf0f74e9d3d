"""Every image of a dataset in one pool: which split and class it is in, and its content hash.

The audit looks at a dataset as a whole (a duplicate across splits is the finding it is
after), so the splits are laid end to end and each image keeps its (split, index) address.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from keras_transfer.data.dataset import Dataset, Split
from keras_transfer.features.keys import content_keys


@dataclass
class Pool:
    """The images of every split of ``dataset``, in split order.

    Attributes:
        dataset: The dataset.
        ids: Printable id of every image (its path, or ``split[i]`` for arrays).
        labels: Class index of every image (several labels per image: the index of its label set
            in ``class_names``, e.g. ``sea+sunset``).
        split_names: Split name of every image.
        index: Index of every image inside its split.
    """

    dataset: Dataset
    ids: list[str]
    labels: np.ndarray
    split_names: np.ndarray
    index: np.ndarray
    set_names: list[str] | None = None  # several labels per image: the name of each label set

    @classmethod
    def of(cls, dataset: Dataset) -> Pool:
        splits = list(dataset.splits.values())
        ids = [i for s in splits for i in s.ids()]
        labels = np.concatenate([s.labels for s in splits]) if splits else np.zeros(0, np.int64)
        names = np.array([s.name for s in splits for _ in range(len(s))], dtype=object)
        index = np.concatenate([np.arange(len(s)) for s in splits]) if splits else np.zeros(0, np.int64)
        if labels.ndim == 2:  # several labels per image: each distinct label set is one 'class' here
            sets, labels = np.unique(labels, axis=0, return_inverse=True)
            set_names = ["+".join(np.array(dataset.class_names)[row.astype(bool)]) or "(no label)" for row in sets]
            return cls(dataset, ids, labels.reshape(-1).astype(np.int64), names, index, set_names)
        return cls(dataset, ids, labels.astype(np.int64), names, index)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def class_names(self) -> list[str]:
        return self.set_names or self.dataset.class_names

    @property
    def is_array(self) -> bool:
        return any(s.is_array for s in self.dataset.splits.values())

    @cached_property
    def split(self) -> Split:
        """The whole pool as one split (file paths, or one stacked array), for the feature engine."""
        splits = list(self.dataset.splits.values())
        if self.is_array:
            items = np.concatenate([s.items for s in splits])
        else:
            items = [p for s in splits for p in s.items]
        return Split("audit", items, self.labels)

    @cached_property
    def hashes(self) -> list[str | None]:
        """The content hash of every image (the feature cache's key); None: unreadable."""
        return content_keys(self.split)

    def image(self, i: int, min_size: int | None = None) -> np.ndarray:
        return self.split.image(i, min_size)

    def describe(self, i: int) -> dict:
        """What a finding says about one image: file, class and split."""
        return {"file": self.ids[i], "class": self.class_names[self.labels[i]], "split": str(self.split_names[i])}

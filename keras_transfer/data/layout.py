"""What the folders of a dataset are called: split folders under the names datasets use."""

from __future__ import annotations

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test"}
# Kaggle-style names: ``training_set``, ``test-images``, ``Validation Data`` ... (any letter case)
_SPLIT_SUFFIXES = ("set", "sets", "data", "images", "imgs", "split")


def split_role(folder_name: str) -> str | None:
    """``train`` / ``val`` / ``test`` for a split folder's name, None for any other folder."""
    words = folder_name.lower().replace("-", "_").replace(" ", "_").split("_")
    while len(words) > 1 and words[-1] in _SPLIT_SUFFIXES:
        words = words[:-1]
    return SPLIT_ALIASES.get("_".join(words))

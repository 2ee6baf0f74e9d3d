"""Exact duplicates by content hash: within a class, across classes (conflicting labels), across splits.

Cheap (one read of every file, hashed in threads; the same hash keys the feature cache), so
train runs it on every dataset.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from keras_transfer.audit.pool import Pool


def scope_of(pool: Pool, members: list[int]) -> str:
    """``across splits`` (leakage) before ``across classes`` (conflicting labels) before ``within class``."""
    if len({pool.split_names[i] for i in members}) > 1:
        return "across splits"
    if len({int(pool.labels[i]) for i in members}) > 1:
        return "across classes"
    return "within class"


def exact_duplicates(pool: Pool) -> list[dict]:
    """Groups of images with identical bytes (arrays: identical pixels), largest first.

    Each finding names every copy; ``score`` is 1.0 (identical) and the evidence is the hash.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(pool.hashes):
        if key is not None:
            groups[key].append(i)
    findings = []
    for key, members in groups.items():
        if len(members) < 2:
            continue
        findings.append({"kind": "exact_duplicate", "scope": scope_of(pool, members), "score": 1.0,
                         "images": [pool.describe(i) for i in members], "evidence": f"same content hash {key}"})
    findings.sort(key=lambda f: (-len(f["images"]), f["images"][0]["file"]))
    return findings


def name_twins(pool: Pool) -> list[dict]:
    """Files in one folder whose names differ only by letter case (one file on Windows and macOS).

    Written by hand: neither cleanlab nor cleanvision looks at names.
    """
    if pool.is_array:
        return []
    folders: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, name in enumerate(pool.ids):
        path = Path(name)
        folders[(str(path.parent), path.name.casefold())].append(i)
    return [{"kind": "odd_file", "check": "name differs only by case", "score": 1.0,
             "images": [pool.describe(i) for i in members],
             "evidence": "these names are one file on case-insensitive file systems (Windows, macOS)"}
            for members in folders.values() if len(members) > 1]

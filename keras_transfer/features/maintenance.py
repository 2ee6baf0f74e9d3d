"""``keras-transfer cache info|clear|verify``: inspecting and cleaning the on-disk caches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from keras_transfer.features.cache import FeatureCache, checksum
from keras_transfer.base.paths import cache_dir

_VERIFY_CHUNK = 2000
# What the library writes under the cache root; ``clear`` removes only these, so a cache root
# pointed at a folder holding other things never loses them.
CACHE_PARTS = ("features", "onnx", "openvino", "weights", "backbones")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _identities(cache: FeatureCache) -> list[dict]:
    """One dict per backbone identity in the feature cache: its spec, entries, views and bytes."""
    if not cache.path.exists():
        return []
    rows = cache.db.execute(
        "SELECT i.hash, i.spec, COUNT(f.content), COUNT(DISTINCT f.view), COALESCE(SUM(LENGTH(f.data)), 0) "
        "FROM identities i LEFT JOIN features f ON f.identity = i.hash GROUP BY i.hash ORDER BY i.created").fetchall()
    cache.close()
    return [{"identity": h, **json.loads(spec), "entries": n, "views": v, "bytes": b} for h, spec, n, v, b in rows]


def cache_info() -> dict:
    """What the cache root holds: size of each part, and feature entries per backbone identity.

    Example:
        >>> cache_info()["root"]  # doctest: +SKIP
        '/home/me/.cache/keras-transfer'
    """
    root = cache_dir()
    parts = {p.name: _size(p) for p in sorted(root.iterdir())}
    identities = _identities(FeatureCache())
    return {"root": str(root), "bytes": sum(parts.values()), "parts": parts,
            "feature_entries": sum(i["entries"] for i in identities), "identities": identities}


def clear_cache(backbone: str | None = None) -> dict:
    """Deletes the library's caches (features, exported models, converted weights), or only
    one backbone's feature entries.

    Returns:
        ``{"removed_bytes": ...}`` or ``{"removed_entries": ...}`` with ``backbone``.
    """
    if backbone is None:
        parts = [cache_dir() / name for name in CACHE_PARTS if (cache_dir() / name).exists()]
        removed = sum(_size(part) for part in parts)
        for part in parts:
            shutil.rmtree(part)
        return {"removed_bytes": removed}
    cache = FeatureCache()
    db = cache.db
    hashes = [h for h, spec in db.execute("SELECT hash, spec FROM identities")
              if json.loads(spec).get("backbone") == backbone]
    removed = 0
    for h in hashes:
        removed += db.execute("DELETE FROM features WHERE identity = ?", (h,)).rowcount
        db.execute("DELETE FROM identities WHERE hash = ?", (h,))
    db.execute("VACUUM")
    cache.close()
    return {"backbone": backbone, "removed_entries": removed}


def verify_cache() -> dict:
    """Re-checks every feature entry's checksum and SQLite's own integrity; deletes bad entries.

    Returns:
        ``{"checked": n, "corrupt": n, "integrity": "ok" | problem}``.
    """
    cache = FeatureCache()
    db = cache.db
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    checked, bad, last = 0, [], 0
    while True:
        rows = db.execute("SELECT rowid, identity, view, content, data, checksum FROM features "
                          "WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, _VERIFY_CHUNK)).fetchall()
        if not rows:
            break
        for rowid, identity, view, content, data, check in rows:
            if check != checksum(identity, view, content, data) or len(data) % 4:
                bad.append(rowid)
        checked, last = checked + len(rows), rows[-1][0]
    db.executemany("DELETE FROM features WHERE rowid = ?", [(r,) for r in bad])
    cache.close()
    return {"checked": checked, "corrupt": len(bad), "integrity": integrity}

"""The shared feature cache: content-addressed, crash-safe, checksum-verified, in one SQLite file.

An entry is one pooled feature vector, keyed by

- ``identity``: hash of everything that defines the extractor's function (architecture,
  weights hash, input size, resize mode, preprocessing, pooling, precision);
- ``view``: ``"orig"`` or the name of a deterministic augmented view (see ``data/augment.py``);
- ``content``: hash of the image's bytes (file bytes, or array bytes + shape + dtype), so renamed
  or moved files are hits and edited files are misses.

Crash safety comes from SQLite transactions in WAL mode: a batch of entries is committed
atomically, so a process killed at any instant leaves only whole, committed entries behind and
the next run resumes from there. Every entry also carries a checksum of its key and bytes; an
entry that fails it is deleted and recomputed, never returned. A file SQLite cannot read at all
is moved aside (``*.corrupt-<time>``) and a fresh cache started. A folder that cannot be written
(read-only, full, or the corrupt file cannot be moved) gets one warning, and the run goes on with
an in-memory database: same results, nothing kept for the next run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.base.paths import cache_dir

DB_NAME = "features.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS identities (hash TEXT PRIMARY KEY, spec TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS features (
    identity TEXT NOT NULL, view TEXT NOT NULL, content TEXT NOT NULL,
    data BLOB NOT NULL, checksum TEXT NOT NULL,
    PRIMARY KEY (identity, view, content));
"""
_CHUNK = 500  # keys per SELECT (well under SQLite's bound-parameter limit)
Row = tuple[str, str, np.ndarray]  # (view, content, float32 vector)
_warned: set[Path] = set()  # cache files whose "cannot be written" warning was shown in this process


def checksum(identity: str, view: str, content: str, data: bytes) -> str:
    """Checksum of one entry: its full key and its bytes."""
    digest = hashlib.blake2b(f"{identity}|{view}|{content}|".encode(), digest_size=16)
    digest.update(data)
    return digest.hexdigest()


def _is_busy(error: sqlite3.Error) -> bool:
    return any(word in str(error).lower() for word in ("locked", "busy"))


def _folder_fault(error: BaseException) -> bool:
    """True for errors of an unusable folder (cannot open, read-only, full, I/O), not of a corrupt file."""
    return isinstance(error, OSError) or (isinstance(error, sqlite3.OperationalError) and not _is_busy(error))


def _insert(db: sqlite3.Connection, records: list[tuple]) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?)", records)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back already (a full disk does)
            db.execute("ROLLBACK")
        raise


class FeatureCache:
    """Feature vectors shared by every run, in ``<root>/features.sqlite``.

    Args:
        root: Folder of the cache file (default: ``cache_dir("features")``, which honours
            ``$KERAS_TRANSFER_CACHE``).

    Example:
        >>> cache = FeatureCache(tmp_path)  # doctest: +SKIP
        >>> cache.put("id", [("orig", "c0ffee", np.ones(4, np.float32))])  # doctest: +SKIP
        >>> dict(cache.get("id", "orig", ["c0ffee"]))["c0ffee"]  # doctest: +SKIP
        array([1., 1., 1., 1.], dtype=float32)
    """

    def __init__(self, root: Path | None = None):
        self.path = Path(root or cache_dir("features")) / DB_NAME
        self._db: sqlite3.Connection | None = None
        self.in_memory = False  # True once the folder refused a write: entries live in this process only

    # ------------------------------------------------------------------ connection

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                try:
                    self._db = self._connect()
                except sqlite3.OperationalError:
                    raise
                except sqlite3.DatabaseError as error:  # not a database, malformed: the file is damaged
                    self.quarantine(error)
                    self._db = self._db or self._connect()
            except (sqlite3.OperationalError, OSError) as error:
                if not _folder_fault(error):
                    raise
                self._to_memory(error)
        return self._db

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash keeps every committed batch
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _to_memory(self, error: BaseException) -> None:
        """Goes on with an empty in-memory database (same schema) after the folder refused a write."""
        if self.in_memory:
            raise error
        self.close()
        if self.path not in _warned:
            _warned.add(self.path)
            reason = error.strerror or str(error) if isinstance(error, OSError) else str(error)
            log.warn(f"feature cache {self.path} cannot be written ({reason}): this run keeps its features in "
                     "memory only (extracted again next time); set KERAS_TRANSFER_CACHE to a writable folder "
                     "with space")
        self._db = sqlite3.connect(":memory:", isolation_level=None)
        self._db.executescript(_SCHEMA)
        self.in_memory = True

    def _write(self, action):
        """``action(db)``, repeated on the in-memory database if the folder refuses the write."""
        try:
            return action(self.db)
        except (sqlite3.OperationalError, OSError) as error:
            if not _folder_fault(error):
                raise
            self._to_memory(error)
            return action(self.db)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self.in_memory = False  # the next use tries the file again

    def quarantine(self, error: Exception) -> None:
        """Moves an unreadable cache file aside so a fresh one can start."""
        self.close()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            for suffix in ("", "-wal", "-shm"):
                part = self.path.with_name(self.path.name + suffix)
                if part.exists():
                    part.rename(part.with_name(f"{part.name}.corrupt-{stamp}"))
        except OSError as failed:  # a read-only folder: the damaged file stays, this run uses memory
            self._to_memory(OSError(failed.errno, f"{error}; moving it aside failed: {failed.strerror}"))
            return
        log.warn(f"feature cache {self.path} is unreadable ({error}); moved aside, starting a fresh one")

    # ------------------------------------------------------------------ entries

    def register(self, identity: str, spec: dict) -> None:
        """Records what an identity hash stands for (shown by ``keras-transfer cache info``)."""
        row = (identity, json.dumps(spec, sort_keys=True), time.time())
        self._write(lambda db: db.execute("INSERT OR IGNORE INTO identities VALUES (?, ?, ?)", row))

    def get(self, identity: str, view: str, contents: Sequence[str]) -> Iterator[tuple[str, np.ndarray]]:
        """Yields (content, vector) for every verified entry among ``contents``.

        Entries failing their checksum are deleted (so they get recomputed) and not yielded.
        """
        bad = []
        try:
            for start in range(0, len(contents), _CHUNK):
                chunk = list(contents[start:start + _CHUNK])
                rows = self.db.execute(
                    "SELECT content, data, checksum FROM features WHERE identity = ? AND view = ? "
                    f"AND content IN ({','.join('?' * len(chunk))})", (identity, view, *chunk)).fetchall()
                for content, data, check in rows:
                    if check != checksum(identity, view, content, data) or len(data) % 4:
                        bad.append(content)
                        continue
                    yield content, np.frombuffer(data, np.float32)
        except sqlite3.OperationalError as error:
            if not _folder_fault(error):
                raise
            self._to_memory(error)
            return
        except sqlite3.DatabaseError as error:
            self.quarantine(error)
            return
        if bad:
            log.warn(f"{len(bad)} feature cache entr{'y' if len(bad) == 1 else 'ies'} failed the checksum; "
                     "recomputing")
            keys = [(identity, view, c) for c in bad]
            self._write(lambda db: db.executemany(
                "DELETE FROM features WHERE identity = ? AND view = ? AND content = ?", keys))

    def put(self, identity: str, rows: Sequence[Row]) -> None:
        """Stores (view, content, vector) rows in one atomic transaction."""
        records = []
        for view, content, vector in rows:
            data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
            records.append((identity, view, content, data, checksum(identity, view, content, data)))
        self._write(lambda db: _insert(db, records))

    def count(self, identity: str | None = None) -> int:
        """Number of entries (of one identity, or in total)."""
        if identity is None:
            return self.db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM features WHERE identity = ?", (identity,)).fetchone()[0]

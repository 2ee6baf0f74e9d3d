"""What ``collect`` keeps in ``--out``: the downloads' outcomes (``.collect/state.jsonl``, one JSON line
per URL, appended as each finishes, so an interrupted run loses nothing), where each kept image
lies (``.collect/placed.json``) and the report (``collect_report.csv``, one row per listed URL).

Every path is made here, from a content hash and a cleaned class name, and checked to lie inside
``--out`` before anything is written: nothing from a URL becomes a path.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from keras_transfer.base.csv_cells import csv_text
from keras_transfer.base.errors import ConfigError
from keras_transfer.base.paths import atomic_file, strict_json

STATE_DIR = ".collect"
REPORT = "collect_report.csv"
COLUMNS = ("row", "url", "label", "split", "status", "reason", "http_status", "detail", "file", "sha256",
           "duplicate_of", "width", "height", "attempts")


def safe_name(label: str) -> str:
    """A class name usable as one folder name: path parts (``..``, separators) dropped, no control
    characters, no leading dot. ``"../../cats"`` -> ``"cats"``, ``"a/b"`` -> ``"a_b"``."""
    parts = [part for part in re.split(r"[/\\:]", label) if part.strip() not in ("", ".", "..")]
    cleaned = "".join("_" if ord(c) < 32 or c == "\x7f" else c for c in "_".join(parts)).strip().lstrip(".")
    return cleaned[:120] or "_"


class Store:
    """The ``--out`` folder of a collect run."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        try:
            (self.out / STATE_DIR / "pool").mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"cannot create {self.out}", "a writable folder for --out",
                              f"{type(error).__name__}: {error}") from error
        self.root = self.out.resolve()
        self.state_file = self.out / STATE_DIR / "state.jsonl"
        self.records: dict[str, dict] = {}
        self.placed: dict[str, str] = {}
        self._load()

    def _load(self) -> None:
        if self.state_file.exists():
            for line in self.state_file.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: that URL is fetched again
                    continue
                if isinstance(record, dict) and isinstance(record.get("url"), str):
                    self.records[record["url"]] = record
        placed = self.out / STATE_DIR / "placed.json"
        try:
            self.placed = {k: v for k, v in json.loads(placed.read_text()).items() if isinstance(v, str)}
        except (OSError, ValueError, AttributeError):
            self.placed = {}

    def inside(self, relative: str | Path) -> Path:
        """``--out`` / ``relative``, refused unless it resolves inside ``--out`` (no ``..``, no link out)."""
        path = self.out / relative
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise ConfigError(f"refusing to write {path}", f"a path inside {self.out}", str(resolved))
        return path

    def pool_name(self, sha: str, extension: str) -> str:
        return f"{STATE_DIR}/pool/{sha}{extension}"

    def where(self, record: dict) -> Path | None:
        """The file of a saved record where it lies now (placed, or still in the pool), None if gone."""
        for relative in (self.placed.get(record["sha256"]), self.pool_name(record["sha256"], record["extension"])):
            if relative and self.inside(relative).is_file():
                return self.out / relative
        return None

    def add(self, record: dict, content: bytes | None = None) -> None:
        """Records a URL's outcome; a saved image's bytes go to the pool first (atomically)."""
        if content is not None:
            target = self.inside(self.pool_name(record["sha256"], record["extension"]))
            atomic_file(target, lambda tmp: Path(tmp).write_bytes(content))
        self.records[record["url"]] = record
        with open(self.state_file, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, allow_nan=False) + "\n")
            handle.flush()

    def move(self, sha: str, source: Path, relative: str) -> None:
        """Moves a kept image to ``relative`` (inside ``--out``) and remembers it there."""
        target = self.inside(relative)
        if source != target:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.inside(target.parent.relative_to(self.out))  # the folder made did not lead outside
            os.replace(source, target)
        self.placed[sha] = relative

    def save_placed(self) -> None:
        text = strict_json(self.placed)
        atomic_file(self.out / STATE_DIR / "placed.json", lambda tmp: Path(tmp).write_text(text))

    def write_report(self, rows: list[dict]) -> Path:
        # a URL, class or reason that would start a spreadsheet formula gets a leading ' (csv_cells)
        text = csv_text(list(COLUMNS), ([row.get(column, "") for column in COLUMNS] for row in rows))
        return atomic_file(self.inside(REPORT), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

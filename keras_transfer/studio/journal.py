"""Apply the fixes to the data folder, and undo it: the one place the studio writes into DATA.

``apply_to_folder`` plans every file operation first (relabelled files move to their class
folder, excluded ones move to ``<workspace>/trash/apply-NNN/``, added images are copied into
their class folder), writes the plan to a journal (JSON, atomically) and only then touches the
files. ``undo`` walks the last journal backwards and checks the file system at every step, so
it also finishes an apply that was interrupted half-way (a crash, a power cut): a move that
happened is moved back, one that did not is left; a copy is removed only if its bytes are the
copied ones. Folders the apply created are removed once empty again. The corrections table as
it was before the apply is kept in the journal and put back by undo.

Example:
    >>> ws.apply_to_folder()["moved"]  # doctest: +SKIP
    12
    >>> ws.undo()["restored"]  # doctest: +SKIP
    12
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from keras_transfer.base.errors import DatasetError
from keras_transfer.base.paths import write_json
from keras_transfer.data.corrections import write_corrections

JOURNALS = "journals"
TRASH = "trash"


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _free(path: Path, taken: set[Path]) -> Path:
    """``path``, or ``name-1.ext``, ``name-2.ext``... when a file (or an earlier planned one) has it."""
    candidate, n = path, 0
    while candidate.exists() or candidate in taken:
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    taken.add(candidate)
    return candidate


def _class_folder(ws, source: Path | None, label: str) -> Path:
    """The folder of class ``label`` beside the image's own class folder (an added image: the
    training class folders' parent)."""
    if source is not None:
        return source.parent.parent / label
    train = ws.data / "train"
    return (train if train.is_dir() else ws.data) / label


def plan(ws, number: int) -> list[dict]:
    """The file operations of an apply: ``{"op": "move" | "copy", "src", "dst", "sha256"}``."""
    operations, taken = [], set()
    for key, fix in sorted(ws.corrections().items()):
        source = Path(fix.path) if fix.added else ws.data / key
        if not source.is_file():
            raise DatasetError(f"cannot apply: {source} vanished", "every fixed image on disk", "no such file",
                               hint="restore the file, or undo its fix in the studio")
        if fix.action == "exclude":
            target = ws.root / TRASH / f"apply-{number:03d}" / key
        else:
            target = _class_folder(ws, None if fix.added else source, fix.label) / source.name
        operations.append({"op": "copy" if fix.added else "move", "src": str(source),
                           "dst": str(_free(target, taken)), "sha256": file_hash(source)})
    return operations


def _new_folders(operations: list[dict]) -> list[str]:
    """Folders the operations will create (removed again by undo once empty), deepest first."""
    missing = set()
    for operation in operations:
        folder = Path(operation["dst"]).parent
        while not folder.exists():
            missing.add(folder)
            folder = folder.parent
    return sorted(map(str, missing), key=lambda p: -len(Path(p).parts))


def apply_to_folder(ws) -> dict:
    """Moves / copies the fixed files (journal written before any of it); clears the table.

    Returns:
        ``{"journal", "moved", "trashed", "copied"}``.
    """
    state = ws.state()
    applied = list(state.get("applied", []))
    number = len(list((ws.root / JOURNALS).glob("apply-*.json"))) + 1 if (ws.root / JOURNALS).is_dir() else 1
    operations = plan(ws, number)
    table_text = ws.corrections_path.read_text(encoding="utf-8") if ws.corrections_path.is_file() else ""
    journal = ws.root / JOURNALS / f"apply-{number:03d}.json"
    journal.parent.mkdir(parents=True, exist_ok=True)
    write_json(journal, {"data": str(ws.data), "operations": operations, "created": _new_folders(operations),
                         "table": table_text, "current_run": state.get("current_run")})  # first: crash-safe
    ws.update_state(applied=[*applied, str(journal)])
    for operation in operations:
        source, target = Path(operation["src"]), Path(operation["dst"])
        target.parent.mkdir(parents=True, exist_ok=True)
        if operation["op"] == "copy":
            shutil.copy2(source, target)
        else:
            shutil.move(source, target)
    write_corrections(ws.corrections_path, {})  # applied: the folder now says what the table said
    ws.reload()
    trashed = sum(op["op"] == "move" and Path(op["dst"]).is_relative_to(ws.root) for op in operations)
    return {"journal": str(journal), "moved": sum(op["op"] == "move" for op in operations) - trashed,
            "trashed": trashed, "copied": sum(op["op"] == "copy" for op in operations)}


def undo(ws) -> dict:
    """Restores the data folder exactly as before the last apply (and the table as it was then).

    Raises:
        DatasetError: Nothing to undo, or a file the apply moved is neither where it went nor
            where it came from (changed by hand since).
    """
    state = ws.state()
    applied = list(state.get("applied", []))
    if not applied:
        raise DatasetError("nothing to undo", "an earlier apply to folder", "no apply journal in the workspace")
    journal = Path(applied[-1])
    record = json.loads(journal.read_text())
    restored = 0
    for operation in reversed(record["operations"]):
        source, target = Path(operation["src"]), Path(operation["dst"])
        if operation["op"] == "copy":
            if target.is_file() and file_hash(target) == operation["sha256"]:
                target.unlink()
                restored += 1
        elif target.is_file() and not source.exists():
            source.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(target, source)
            restored += 1
        elif not source.is_file():
            raise DatasetError(f"cannot undo: {source} is gone", f"it at {target} (where the apply moved it)",
                               "no file at either place", hint=f"the journal {journal} lists every move")
    for folder in record["created"]:  # deepest first
        if Path(folder).is_dir() and not any(Path(folder).iterdir()):
            Path(folder).rmdir()
    ws.corrections_path.write_text(record["table"], encoding="utf-8")
    journal.rename(journal.with_suffix(".undone.json"))
    ws.update_state(applied=applied[:-1])
    ws.reload()
    return {"journal": str(journal), "restored": restored}

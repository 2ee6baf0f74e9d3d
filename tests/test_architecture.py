"""The package's layers (ARCHITECTURE.md) hold: no module imports from a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "keras_transfer"

# Lowest first; a module may import its own layer and those before it.
LAYERS = {
    "base": {"errors", "paths", "log"},
    "data": {"data"},
    "backbones": {"backbones", "model", "layers", "heads"},
    "features": {"features"},
    "config": {"config"},
    "evaluation": {"evaluation"},
    "strategies": {"strategies"},
    "run": {"run", "api", "inference", "classifier_file", "zero_shot", "audit"},
    "deploy": {"export", "serve", "report", "explain"},
    "cli": {"cli"},
}
RANK = {room: rank for rank, rooms in enumerate(LAYERS.values()) for room in rooms}
LAYER = {room: layer for layer, rooms in LAYERS.items() for room in rooms}
SUBMODULES = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
              if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}


def room_of(module: str) -> str | None:
    """``keras_transfer.features.engine`` -> ``features``; the package root itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every keras_transfer import in ``path``, function-level ones included;
    ``from keras_transfer import log`` counts as ``keras_transfer.log``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("keras_transfer")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_transfer"):
            if node.module == "keras_transfer":
                found += [(node.lineno, f"keras_transfer.{a.name}") for a in node.names if a.name in SUBMODULES]
            else:
                found.append((node.lineno, node.module))
    return found


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)
        room = room_of(module)
        if room is None:  # the package root: its lazy __getattr__ is the public facade
            continue
        for line, target in imports(path):
            other = room_of(target)
            if other is not None and RANK[other] > RANK[room]:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {room} ({LAYER[room]} layer) imports "
                             f"{target} ({LAYER[other]} layer, above)")
    return found


def test_every_module_belongs_to_a_layer():
    assert SUBMODULES <= set(RANK), f"add to LAYERS (and ARCHITECTURE.md): {sorted(SUBMODULES - set(RANK))}"


def test_no_import_points_up():
    assert violations() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """Control: an import from a higher layer, function-level, is found."""
    fake = tmp_path / "keras_transfer"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "bad.py").write_text("def f():\n    from keras_transfer.api import train\n")
    (fake / "api.py").write_text("")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert violations() == ["keras_transfer/data/bad.py:2: data (data layer) imports keras_transfer.api "
                            "(run layer, above)"]


def test_modules_stay_small():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 350}
    assert long == {}

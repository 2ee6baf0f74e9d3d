"""The package's layers (ARCHITECTURE.md) hold: no module imports from a layer above its own, no
two modules import each other (directly or round a circle), and every module stays small."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "keras_transfer"

# Lowest first; a module may import its own layer and those before it. Each room is a folder.
LAYERS = {
    "base": {"base"},
    "data": {"data", "collect"},
    "backbones": {"backbones"},
    "features": {"features"},
    "config": {"config"},
    "evaluation": {"evaluation"},
    "inference": {"inference"},
    "strategies": {"strategies"},
    "audit": {"audit"},
    "run": {"run"},
    "deploy": {"export", "serve", "report", "explain"},
    "studio": {"studio"},
    "cli": {"cli"},
}
RANK = {room: rank for rank, rooms in enumerate(LAYERS.values()) for room in rooms}
LAYER = {room: layer for layer, rooms in LAYERS.items() for room in rooms}


def modules(package: Path) -> dict[str, Path]:
    """Dotted name -> file of every module of ``package`` (a package is its ``__init__``)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).with_suffix("")
        found[".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)] = path
    return found


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (never executed, so no import cycle)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for body in node.body for n in ast.walk(body)}
    return skip


def imports(path: Path, known: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, module) of every keras_transfer module ``path`` imports, function-level ones included;
    ``from keras_transfer.run import Run`` counts as ``keras_transfer.run``, ``from keras_transfer.base
    import log`` as ``keras_transfer.base.log``."""
    tree = ast.parse(path.read_text())
    skip, found = _type_checking_only(tree), []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("keras_transfer")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_transfer"):
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.append((node.lineno, name if name in known else node.module))
    return found


def graph(package: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports. Importing ``a.b.c`` also runs ``a.b``'s
    ``__init__``, so that counts as imported too, unless it is a package of the importing module
    itself (Python has run those before the module)."""
    known = modules(package)
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for _, target in imports(path, known):
            while target not in known:
                target = target.rsplit(".", 1)[0]
            if target != name and "." in target:
                edges[name].add(target)
            parent = target.rsplit(".", 1)[0]
            while parent in known and not name.startswith(parent + "."):
                edges[name].add(parent)
                parent = parent.rsplit(".", 1)[0]
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                component.append(stack.pop())
                if component[-1] == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def room_of(module: str) -> str | None:
    """``keras_transfer.features.engine`` -> ``features``; the package root itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def violations(package: Path = PACKAGE) -> list[str]:
    found = []
    known = modules(package)
    for module, path in known.items():
        room = room_of(module)
        if room is None:  # the package root: its lazy __getattr__ is the public facade
            continue
        for line, target in imports(path, known):
            other = room_of(target)
            if other is not None and RANK[other] > RANK[room]:
                found.append(f"{path.relative_to(package.parent)}:{line}: {room} ({LAYER[room]} layer) imports "
                             f"{target} ({LAYER[other]} layer, above)")
    return found


def test_every_room_is_a_folder_of_a_layer():
    entries = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" and p.stem != "__init__"}
    assert entries == set(), f"loose modules beside the layers' folders: {sorted(entries)}"
    rooms = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert rooms == set(RANK), f"rooms not in LAYERS (and ARCHITECTURE.md): {sorted(rooms ^ set(RANK))}"


def test_no_import_points_up():
    assert violations() == []


def test_no_import_cycle():
    assert cycles(graph(PACKAGE)) == []


def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "keras_transfer"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_check_sees_an_upward_import(tmp_path):
    """Control: an import from a higher layer, function-level, is found."""
    fake = _fake_package(tmp_path, {"data/__init__.py": "", "run/__init__.py": "",
                                    "data/bad.py": "def f():\n    from keras_transfer.run import train\n"})
    assert violations(fake) == ["keras_transfer/data/bad.py:2: data (data layer) imports keras_transfer.run "
                                "(run layer, above)"]


def test_the_check_sees_a_cycle(tmp_path):
    """Control: a circle inside one layer, closed by a function-level import, is found, and so is one
    closed through a package's ``__init__``; an import under ``TYPE_CHECKING`` closes none."""
    fake = _fake_package(tmp_path, {
        "data/__init__.py": "from keras_transfer.data.a import A\n",
        "data/a.py": "from keras_transfer.data.b import B\nA = 1\n",
        "data/b.py": "B = 2\ndef f():\n    from keras_transfer.data.a import A\n",
        "features/__init__.py": "from keras_transfer.features.engine import E\n",
        "features/engine.py": "E = 1\n",
        "features/runtime.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                               "    from keras_transfer.features.engine import E\n",
        "features/export.py": "from keras_transfer.features import E\n",
        "features/cache.py": "from keras_transfer.features.export import x\n"})
    assert cycles(graph(fake)) == [["keras_transfer.data.a", "keras_transfer.data.b"]]
    (fake / "features" / "engine.py").write_text("def f():\n    from keras_transfer.features.cache import c\n")
    assert cycles(graph(fake))[-1] == ["keras_transfer.features", "keras_transfer.features.cache",
                                       "keras_transfer.features.engine", "keras_transfer.features.export"]


def test_modules_stay_small():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 350}
    assert long == {}

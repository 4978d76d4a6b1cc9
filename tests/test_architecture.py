"""The layout's rules, read from the source (docs/architecture.md): imports flow down the layers, no
import loop (imports inside functions count; those under ``TYPE_CHECKING`` do not), the renderers and
the results never touch torch, and no function runs over 80 lines."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_clipcompress"

#: Each top-level module or sub-package of the package, and its layer: a module imports only from its
#: own package or from a lower layer.
LAYERS = {
    "_version": 0,
    "errors": 0,
    "demo": 0,
    "inputs": 1,
    "files": 1,
    "config": 2,
    "codecs": 3,
    "results": 3,
    "data": 4,
    "models": 4,
    "render": 4,
    "engine": 5,
    "compare": 6,
    "ig": 6,
    "assertions": 7,
    "strategies": 7,
    "plugin": 8,
    "cli": 8,
    "__main__": 9,
    "__init__": 9,
}
#: Third-party packages some parts must never import, not even inside a function.
FORBIDDEN = {
    "render": {"torch", "captum", "open_clip", "torchvision", "pytest"},
    "results": {"torch", "captum", "open_clip", "torchvision", "pytest"},
    "config": {"torch", "open_clip", "numpy", "PIL"},
    "codecs": {"torch", "open_clip"},
    "data": {"open_clip"},
}
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, Path]:
    """Dotted module name (without the package) -> file, e.g. ``render.charts`` -> render/charts/__init__.py."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _type_checking_blocks(tree: ast.Module) -> set[int]:
    """The ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            inside |= {id(child) for statement in node.body for child in ast.walk(statement)}
    return inside


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int, bool]]:
    """(imported name, line, is ours) for every import in the module, at any depth, outside ``TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_blocks(tree)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                ours = alias.name.startswith("pytest_clipcompress")
                yield (alias.name.removeprefix("pytest_clipcompress").lstrip(".") if ours else alias.name), node.lineno, ours
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                ours = (node.module or "").startswith("pytest_clipcompress")
                base = (node.module or "").removeprefix("pytest_clipcompress").lstrip(".") if ours else node.module or ""
            else:
                ours = True
                anchor = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if not ours:
                yield base, node.lineno, False
                continue
            for alias in node.names:  # ``from . import cifar10`` imports a module; ``from .x import y`` imports x
                candidate = f"{base}.{alias.name}" if base else alias.name
                yield (candidate if candidate in known else base), node.lineno, True


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {target for target, _, ours in imports(name, path, known) if ours and target and target != name} for name, path in known.items()}


def top(name: str) -> str:
    return name.split(".")[0] or "__init__"


def test_every_module_has_a_layer() -> None:
    assert {top(name) for name in modules()} <= set(LAYERS), "a new top-level module needs a layer here and in docs/architecture.md"


def test_imports_flow_down_the_layers() -> None:
    upward = [
        f"{name} imports {target} ({top(name)}: layer {LAYERS[top(name)]}, {top(target)}: layer {LAYERS[top(target)]})"
        for name, targets in graph().items()
        for target in targets
        if top(target) != top(name) and LAYERS[top(target)] >= LAYERS[top(name)]
    ]
    assert upward == []


def test_there_is_no_import_loop() -> None:
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    loops: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert loops == []


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_parts_never_import_what_they_must_not(part: str) -> None:
    known = modules()
    found = [
        f"{name}:{line} imports {target}"
        for name, path in known.items()
        if top(name) == part
        for target, line, ours in imports(name, path, known)
        if not ours and target.split(".")[0] in FORBIDDEN[part]
    ]
    assert found == []


def test_no_function_runs_over_80_lines() -> None:
    long = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in modules().values()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_the_rules_see_real_imports() -> None:
    """The checks above would pass on an empty graph: make sure they read the package's imports."""
    edges = graph()
    assert "engine.evaluator" in edges["plugin.session"] or "engine.evaluator" in edges["plugin"] or any("engine" in t for t in edges["plugin.session"])
    assert "results.schema" in edges["render.view"] and "codecs.images" in edges["data.folder"]
    assert "data.cifar10" in edges["data.registry"]  # ``from . import cifar10``

"""The engine never imports Qt, and nothing but the registry reaches a provider module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QT = ("PySide6", "PyQt5", "PyQt6", "qasync", "pyqtgraph", "shiboken6")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_app_never_imports_qt_or_providers() -> None:
    bad = []
    for path in sorted((REPO / "app").rglob("*.py")):
        for name in imports_of(path):
            root = name.split(".")[0]
            if root in QT or root == "providers" or root == "ui":
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert bad == []


def test_ui_never_imports_a_provider_module() -> None:
    bad = [
        f"{p.relative_to(REPO)} imports {n}"
        for p in sorted((REPO / "ui").rglob("*.py"))
        for n in imports_of(p)
        if n.split(".")[0] == "providers"
    ]
    assert bad == []


def test_importing_the_whole_engine_loads_no_qt() -> None:
    mods = [_module(p) for p in (REPO / "app").rglob("*.py") if p.stem not in ("__main__", "__init__")]
    code = "import sys\n" + "".join(f"import {m}\n" for m in mods) + (
        f"print([m for m in {QT!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _module(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def _app_graph() -> dict[str, set[str]]:
    """app module → the app modules it imports (at any depth: lazy imports count too)."""
    mods = {_module(p): p for p in (REPO / "app").rglob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        deps = set()
        for name in imports_of(path):
            while name and name not in mods:  # `from app.engine import events` names a package
                name = name.rpartition(".")[0]
            if name and name != mod:
                deps.add(name)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):  # from app.engine import events → app.engine.events
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods)
        graph[mod] = deps - {mod}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d):], d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def test_no_import_cycles_in_app() -> None:
    cycles = find_cycles(_app_graph())
    assert cycles == [], "import cycles in app/: " + "; ".join(" → ".join(c) for c in cycles)


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []

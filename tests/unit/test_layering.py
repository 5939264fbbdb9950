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
    mods = [f"app.{p.stem}" for p in (REPO / "app").glob("*.py") if p.stem not in ("__main__",)]
    code = "import sys\n" + "".join(f"import {m}\n" for m in mods) + (
        f"print([m for m in {QT!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

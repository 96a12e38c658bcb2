"""The package's layering: every module imports, no cycles, dependencies point down the layers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


PACKAGE = Path(__file__).resolve().parent.parent / "pypiproxy"

# Each layer may import the layers after it in this list, and itself; never one before it.
LAYERS = ["server", "commands", "web", "auth", "private", "guard", "cache", "upstream", "simple", ""]
# The bottom: modules of the top package that any layer may use.
SHARED = {"pypiproxy", "pypiproxy.config", "pypiproxy.interfaces", "pypiproxy.stats"}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def project_imports(name: str, path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import of a pypiproxy module."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [target]
            if node.module is None or not node.level:
                # ``from . import simple``: the names may be modules themselves.
                targets += [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "pypiproxy" or target.startswith("pypiproxy."):
                found.append((target, id(node) in top_level))
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    if module in SHARED or len(parts) == 1:
        return ""
    return parts[1] if parts[1] in LAYERS else ""


def resolve(target: str, known: dict[str, Path]) -> str | None:
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def test_no_project_import_hides_inside_a_function():
    hidden = [
        f"{name} imports {target} inside a function"
        for name, path in modules().items()
        for target, top in project_imports(name, path)
        if not top
    ]
    assert hidden == []


def test_dependencies_point_down_the_layers():
    known = modules()
    wrong = []
    for name, path in known.items():
        mine = LAYERS.index(layer_of(name))
        for target, _ in project_imports(name, path):
            module = resolve(target, known)
            if module is None:
                continue
            theirs = LAYERS.index(layer_of(module))
            if theirs < mine:
                wrong.append(f"{name} ({LAYERS[mine] or 'shared'}) imports {module} ({LAYERS[theirs] or 'shared'})")
    assert wrong == []


def test_the_import_graph_has_no_cycle():
    known = modules()
    graph = {
        name: {m for target, _ in project_imports(name, path) if (m := resolve(target, known)) and m != name}
        for name, path in known.items()
    }
    # A package's __init__ re-exporting its own modules is no cycle of meaning: leave those edges out.
    for name, edges in graph.items():
        edges.difference_update({m for m in edges if m.startswith(name + ".")})
    state: dict[str, str] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [node, nxt]) if nxt in trail else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_every_module_imports_first_in_a_fresh_interpreter():
    # One interpreter, each module imported first with no pypiproxy module loaded before it:
    # a cycle shows up as an ImportError whichever module an import starts from.
    script = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "pypiproxy" or m.startswith("pypiproxy.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as e:
        failed.append(f"{name}: {type(e).__name__}: {e}")
print("\\n".join(failed))
"""
    result = subprocess.run([sys.executable, "-c", script, *sorted(modules())], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_every_module_says_what_it_is_for_and_stays_small():
    problems = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        if not ast.get_docstring(tree):
            problems.append(f"{name}: no docstring")
        lines = path.read_text().count("\n")
        if lines > 400 and "lines" not in (ast.get_docstring(tree) or ""):
            problems.append(f"{name}: {lines} lines without a reason at its top")
    assert problems == []

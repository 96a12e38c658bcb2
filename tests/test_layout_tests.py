"""The tests' own layout: fixtures in conftest.py, helpers in support/, no test module imports another."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SUPPORT = TESTS / "support"
TEST_MODULES = sorted(TESTS.glob("test_*.py"))
SUPPORT_MODULES = sorted(p for p in SUPPORT.glob("*.py") if p.name != "__init__.py")


def imported_modules(path: Path) -> list[str]:
    """Every module a file imports, at any depth (``from . import x`` counts as ``.``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


@pytest.mark.parametrize("path", [*TEST_MODULES, TESTS / "conftest.py", *SUPPORT_MODULES], ids=lambda p: p.name)
def test_nothing_imports_a_test_module_or_conftest(path):
    for name in imported_modules(path):
        top = name.lstrip(".").split(".")[0]
        assert not top.startswith("test_") and top != "conftest", f"{path.name} imports {name}"


@pytest.mark.parametrize("path", SUPPORT_MODULES, ids=lambda p: p.name)
def test_support_modules_import_each_other_relatively(path):
    for name in imported_modules(path):
        assert not name.startswith("support"), f"{path.name}: import siblings relatively, not {name}"


def test_conftest_holds_fixtures_only():
    tree = ast.parse((TESTS / "conftest.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            raise AssertionError(f"class {node.name} in conftest.py: it belongs in support/")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decorators = [ast.unparse(d) for d in node.decorator_list]
            assert any("fixture" in d for d in decorators), f"{node.name} in conftest.py is not a fixture"


@pytest.mark.parametrize("path", [SUPPORT / "__init__.py", *SUPPORT_MODULES], ids=lambda p: p.name)
def test_each_support_module_says_its_job_in_one_docstring_line(path):
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring, f"{path.name} has no docstring"
    assert len(docstring.splitlines()) == 1, f"{path.name}: one line says the job; more goes below"

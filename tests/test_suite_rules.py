"""Rules of the test suite itself, checked so that they stay true."""

from __future__ import annotations

import ast
import re

from tests.support import ROOT

TESTS = ROOT / "tests"


#: what a test module or conftest.py may import from ``tests``: the one support package, and the
#: fixture channel that ``--rpc-host=python:tests.channels:…`` loads
SHARED = {"tests.support", "tests.channels"}

#: the modules directly in ``tests/`` that are not test modules
NOT_TESTS = {"__init__.py", "conftest.py", "channels.py"}


def imported_from_tests(text: str) -> list[str]:
    """The ``tests`` modules that ``text`` imports (``from tests import x`` names ``tests.x``)."""
    found = []
    for line in text.splitlines():
        if match := re.match(r"\s*from tests import (\w+)", line):
            found.append(f"tests.{match[1]}")
        elif match := re.match(r"\s*(?:from|import) (tests(?:\.\w+)*)", line):
            found.append(match[1])
    return found


def test_no_test_module_imports_another():
    for path in sorted(TESTS.glob("*.py")):
        text = path.read_text("utf-8")
        assert not re.search(r"^\s*(from|import) tests\.test_", text, re.M), path.name


def test_tests_import_shared_helpers_only_from_the_support_package():
    for path in sorted(TESTS.glob("*.py")):
        imported = set(imported_from_tests(path.read_text("utf-8")))
        assert imported <= SHARED, (path.name, imported - SHARED)


def test_shared_helpers_live_in_the_support_package_only():
    helpers = {path.name for path in TESTS.glob("*.py") if not path.name.startswith("test_")}
    assert helpers <= NOT_TESTS, helpers - NOT_TESTS


def test_support_modules_import_no_test_module():
    for path in sorted((TESTS / "support").glob("*.py")):
        imported = imported_from_tests(path.read_text("utf-8"))
        assert all(name.startswith("tests.support.") for name in imported), path.name


def test_the_support_package_exports_every_helper_its_modules_define():
    import tests.support

    for path in sorted((TESTS / "support").glob("*.py")):
        if path.name != "__init__.py":
            tree = ast.parse(path.read_text("utf-8"))
            for name in top_level_names(tree):
                assert name.startswith("_") or name in tests.support.__all__, (path.name, name)
    for name in tests.support.__all__:
        assert hasattr(tests.support, name), name


def top_level_names(tree: ast.Module) -> list[str]:
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [target.id for target in targets if isinstance(target, ast.Name)]
    return names

"""Rules of the test suite itself, checked so that they stay true."""

from __future__ import annotations

import re

from tests.support import ROOT

TESTS = ROOT / "tests"


def test_no_test_module_imports_another():
    for path in sorted(TESTS.glob("*.py")):
        text = path.read_text("utf-8")
        assert not re.search(r"^\s*(from|import) tests\.test_", text, re.M), path.name


def test_ci_runs_the_readme_test_command_as_written_then_the_bench_smoke_test():
    readme = (ROOT / "README.rst").read_text("utf-8")
    [command] = [line.strip() for line in readme.splitlines() if line.strip().endswith("-m pytest")]
    ci = (ROOT / ".ci" / "run").read_text("utf-8").splitlines()
    assert command in ci
    assert ".venv/bin/python -m pytest -m bench" in ci[ci.index(command) + 1 :]

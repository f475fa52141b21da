"""The project's documents stand alone: every reference to one of them, from the code, the tests
or another document, names a file and a section that exist."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.support import ROOT

DOCS = ROOT / "docs"

#: ``docs/contract.md, "Bad input"`` or ```operations.md`, "Redis"`` (across a line break and
#: a ``#:`` comment marker too)
SECTION_REFERENCE = re.compile(
    r'(?:docs/)?([a-z-]+\.md)`?,?\s+(?:#:?\s*)?"([^"\n]+(?:\n[^"\n]+)?)"'
)
DOC_PATH = re.compile(r"docs/([a-z-]+\.md)")
HEADING = re.compile(r"^#+ (.+)$", re.M)


def _normalized(title: str) -> str:
    return " ".join(title.replace("`", "").split())


def _sources() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "*.py", "*.md", "*.rst"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [name for name in listed if not name.startswith("ocppcable/protos/")]


def _headings(name: str) -> set[str]:
    return {_normalized(h) for h in HEADING.findall((DOCS / name).read_text("utf-8"))}


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    return {name: (ROOT / name).read_text("utf-8") for name in _sources()}


def test_every_section_reference_names_an_existing_heading(sources):
    found = 0
    for name, text in sources.items():
        for document, section in SECTION_REFERENCE.findall(text):
            if not (DOCS / document).exists():
                continue  # etc/README.md and others are not sections of docs/
            found += 1
            assert _normalized(section) in _headings(document), (name, document, section)
    assert found >= 10  # the pattern still finds the references


def test_every_docs_path_exists(sources):
    for name, text in sources.items():
        for document in DOC_PATH.findall(text):
            assert (DOCS / document).exists(), (name, document)


#: a section of a document that is not in the repository: the contract the code was written
#: from was cited by its name and a section sign; sections of RFCs are public and fine
FOREIGN_SECTION = re.compile(r"\b" + "S" + r"PEC\b|§\s*\d")


def test_no_reference_to_a_document_outside_the_repository(sources):
    for name, text in sources.items():
        assert not FOREIGN_SECTION.search(re.sub(r"RFC \d+ §", "", text)), name

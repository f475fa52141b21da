"""A fresh copy of the checkout and a clean environment to install and run it in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.support.common import ROOT


def fresh_copy(destination: Path) -> None:
    """The repository's files (tracked, and new ones not ignored) as they are now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # not a file deleted in the work tree
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


#: what the test run's own environment must not lend the new virtualenv: ocppcable itself,
#: Twisted (whose twisted/plugins/ the wheel's plugin joins), and pip's own tools
NOT_LENT = ("ocppcable", "twisted", "pip", "setuptools", "pkg_resources", "_distutils_hack", "__")


def lent_dependencies(destination: Path) -> Path:
    """A folder of links to this test run's installed distributions but :data:`NOT_LENT`: a
    ``.pth`` file naming it lends them to a new virtualenv, so that pip checks requirements
    against them instead of installing them again (a third of the time)."""
    destination.mkdir()
    for folder in {Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}:
        for entry in folder.iterdir():
            if not entry.name.lower().startswith(NOT_LENT) and entry.suffix != ".pth":
                (destination / entry.name).symlink_to(entry)
    return destination


def clean_environment() -> dict[str, str]:
    """This process's environment (pip's settings included) without anything that would
    configure the gateway or point at this test run's virtualenv."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ANYCABLE_", "OCPPCABLE_"))
        and name not in ("PORT", "REDIS_URL", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    # pip compiles no bytecode (a third of an install's time): Python compiles what it imports
    env["PIP_COMPILE"] = "0"
    if sys.prefix != sys.base_prefix:  # run from a virtualenv: "python3" must not be its own
        ours = str(Path(sys.prefix) / "bin")
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != ours)
    return env

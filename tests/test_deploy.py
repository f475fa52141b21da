"""The deployment kit in ``etc/``: the unit, and ``etc/README.md``'s steps run as written.

The install test is slow (a wheel built with ``python -m build`` and installed into a new
virtualenv); it carries the ``readme`` mark: ``-m "not readme"``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ocppcable import __version__
from tests.support import TIMEOUT, clean_environment, fresh_copy, lent_dependencies

ETC = Path(__file__).resolve().parents[1] / "etc"
GUIDE = ETC / "README.md"
#: where the unit and the guide install the gateway
PREFIX = "/opt/ocppcable"


def steps() -> dict[str, list[str]]:
    """The shell blocks of each "## N. Title" section of etc/README.md, by title."""
    sections = re.split(r"^## \d+\. ", GUIDE.read_text(), flags=re.M)[1:]
    return {
        section.splitlines()[0].strip(): re.findall(r"```sh\n(.*?)```", section, re.S)
        for section in sections
    }


def test_the_guide_covers_a_whole_deployment():
    titles = " ".join(steps()).lower()
    for topic in ("install", "plugin cache", "user", "file descriptors", "logs", "upgrade"):
        assert topic in titles, topic


#: every unit in etc/ (the single-process one and the per-core template), as systemd names one
UNITS = {path: path.name.replace("@.", "@9101.") for path in sorted(ETC.glob("*.service"))}


@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_the_unit_runs_what_the_guide_installs(path):
    unit = path.read_text()
    assert f"ExecStart={PREFIX}/venv/bin/twistd -n " in unit
    assert "EnvironmentFile=/etc/ocppcable/ocppcable.env" in unit
    assert "Documentation=file:/etc/ocppcable/README.md" in unit
    guide = GUIDE.read_text()
    assert f"python3 -m venv {PREFIX}/venv" in guide
    assert "install -m 0640 ocppcable.env README.md /etc/ocppcable/" in guide
    assert "pip install ocppcable\n" not in guide + unit  # not on a package index


@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_the_unit_passes_systemd_analyze_verify(path, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at this environment's twistd
    twistd = Path(sys.executable).with_name("twistd")
    (tmp_path / path.name).write_text(
        path.read_text().replace(f"{PREFIX}/venv/bin/twistd", str(twistd))
    )
    unit = tmp_path / UNITS[path]  # a template is verified through one of its instances
    out = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=TIMEOUT * 3
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert unit.name not in out.stdout + out.stderr, out.stdout + out.stderr


@pytest.mark.readme
@pytest.mark.timeout(600)
def test_the_guide_installs_a_wheel_that_twistd_runs():
    """Steps 1 and 2 as written, in a fresh copy, with PREFIX moved to a temporary folder.

    One line is added after the step that makes the target's virtualenv: a ``.pth`` file lending
    it this test run's installed dependencies, so that pip checks the wheel's requirements
    against them and installs only the wheel and Twisted (a third of the time). That every
    dependency installs from the package index is what README.rst's quick start proves (its
    ``pip install .`` reads the same requirements); here the wheel, its plugin in a Twisted of
    its own, the plugin cache and ``twistd ocppcable`` are what is proven."""
    workdir = Path(tempfile.mkdtemp(prefix="ocppcable-deploy-"))
    try:
        fresh_copy(workdir / "checkout")
        lent = lent_dependencies(workdir / "lent")
        guide = steps()
        script = "\n".join(
            ["set -euo pipefail", *guide["Install"], *guide["Build the plugin cache"]]
        )
        script = script.replace(PREFIX, str(workdir / "opt")).replace("<version>", __version__)
        venv = f"python3 -m venv {workdir / 'opt'}/venv\n"
        assert venv in script, script
        lend = f"""{workdir / "opt"}/venv/bin/python -c "import sysconfig, pathlib; \
pathlib.Path(sysconfig.get_paths()['purelib'], 'lent.pth').write_text('{lent}')"
"""
        script = script.replace(venv, venv + lend)
        # the commands run in the checkout, and "on the target host" too: dist/ is relative
        out = subprocess.run(
            ["bash", "-c", script],
            cwd=workdir / "checkout",
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=540,
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        # the last command of step 2 is `twistd ocppcable --version`
        assert f"ocppcable {__version__} " in out.stdout, out.stdout[-3000:]
        assert "Traceback" not in out.stdout + out.stderr
        # both plugin caches are built: twistd's and ocppcable's
        caches = {p.parent.parent.name for p in (workdir / "opt").rglob("plugins/dropin.cache")}
        assert caches >= {"twisted", "ocppcable"}, caches
        installed = workdir / "opt" / "venv" / "lib"
        assert list(installed.glob("python3*/site-packages/twisted/plugins/ocppcable_plugin.py"))
        assert list(installed.glob("python3*/site-packages/ocppcable/tap.py"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

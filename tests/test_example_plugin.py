"""The example third-party plugin (examples/ocppcable-journal), installed as a third party's
would be: pip installs the gateway and the example into a fresh virtualenv (lent this run's
dependencies but Twisted, see ``support.lent_dependencies``), the example's own
unit tests pass there with ocppcable.testing, and ``twistd ocppcable --hooks journal`` finds the
hook and journals a station's frames.

Slow (a real ``pip install``, about 15-60 s depending on pip's cache): deselect it with
``-m "not install"``.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import Process, clean_environment, free_port, fresh_copy, lent_dependencies

pytestmark = [pytest.mark.install, pytest.mark.timeout(600)]

STARTED = "ocppcable serving OCPP"
BOOT = [2, "b1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]


def _run(*command: str, cwd: Path, timeout: float = 400) -> str:
    out = subprocess.run(
        command, cwd=cwd, env=clean_environment(), capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, f"$ {' '.join(command)}\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    return out.stdout + out.stderr


def test_a_third_party_hook_is_installed_found_and_run():
    from websockets.sync.client import connect

    workdir = Path(tempfile.mkdtemp(prefix="ocppcable-plugin-"))
    try:
        checkout = workdir / "checkout"
        fresh_copy(checkout)
        example = checkout / "examples" / "ocppcable-journal"
        venv = workdir / "venv"
        _run(sys.executable, "-m", "venv", str(venv), cwd=workdir)
        # the gateway's dependencies (but Twisted) lent by this run's environment: pip checks the
        # requirements against them; the quick start's test proves they install from the index
        lent = lent_dependencies(workdir / "lent")
        _run(
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()['purelib'],"
            f" 'lent.pth').write_text({str(lent)!r})",
            cwd=workdir,
        )
        pip = str(venv / "bin" / "pip")
        _run(pip, "install", "-q", str(checkout), str(example), "pytest", cwd=workdir)
        python = str(venv / "bin" / "python")
        _run(python, "-P", "-m", "ocppcable.plugincache", cwd=workdir)
        assert list(venv.rglob("ocppcable/plugins/journal.py"))
        assert list(venv.rglob("ocppcable/plugins/dropin.cache"))
        # the example's own unit tests, with the installed gateway's test doubles
        (workdir / "pytest.ini").write_text("[pytest]\n")
        _run(python, "-m", "pytest", "-q", "-c", "pytest.ini", str(example / "tests"), cwd=workdir)
        # its option is in the gateway's --help
        assert "--journal-dir=" in _run(
            str(venv / "bin" / "twistd"), "ocppcable", "--help", cwd=workdir
        )

        port, journal = free_port(), workdir / "journal"
        twistd = (
            f"{venv}/bin/twistd -n --pidfile= ocppcable --rpc-host=demo --hooks=journal "
            f"--journal-dir={journal} --host=127.0.0.1 --port={port} "
            f"--http-broadcast-port={free_port()}"
        )
        gateway = Process(f"exec {twistd}", workdir, clean_environment())
        try:
            started = gateway.wait_for(STARTED + ".*", 60).group(0)
            assert "; cluster: none; hooks: journal; " in started
            url = f"ws://127.0.0.1:{port}/ocpp/CP-J1"
            with connect(url, subprotocols=["ocpp1.6"], open_timeout=10) as ws:
                ws.send(json.dumps(BOOT))
                reply = json.loads(ws.recv(timeout=10))
                assert reply[:2] == [3, "b1"]
            gateway.popen.send_signal(signal.SIGTERM)
            assert gateway.finish(30) == 0, gateway
        finally:
            gateway.kill()
        [day] = journal.glob("*.jsonl")
        records = [json.loads(line) for line in day.read_text().splitlines()]
        assert {r["station_id"] for r in records} == {"CP-J1"}
        directions = [r["direction"] for r in records]
        assert directions[:3] == ["connected", "in", "out"] and directions[-1] == "closed"
        assert json.loads(records[1]["frame"]) == BOOT
        assert json.loads(records[2]["frame"])[:2] == [3, "b1"]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

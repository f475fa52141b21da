"""The README test: the commands of README.rst's "Quick start", executed as written.

The literal blocks of that section are read from README.rst (nothing here repeats them) and run
with bash in a fresh copy of the repository, so the install really happens: a new virtualenv,
``pip install .`` from PyPI, the gateway started by ``twistd``, then the simulated stations and
the curl remote command of "Try it". Only the port numbers change, so that the test never
touches the machine's 8080/8090.

"As written" is kept to the letter: the install is the one a user makes, every dependency from
the package index into a virtualenv of its own (the deployment test, tests/test_deploy.py, lends
its virtualenv this run's dependencies and so relies on this test for that proof). Only pip's
environment changes, as a user's pip configuration would: ``PIP_COMPILE=0`` (see
``clean_environment``) skips compiling every installed module to bytecode, which Python does
for the modules it imports anyway.

Slow (a real ``pip install``, about 15-60 s depending on the machine's load): deselect it with
``-m "not readme"``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT, Process, clean_environment, free_port, fresh_copy

pytestmark = [pytest.mark.readme, pytest.mark.timeout(300)]

README = ROOT / "README.rst"
SECTION = "Quick start"

#: the whole test should stay under about two minutes; the install and start may take this long
#: before the test fails, saying how long it waited
START_TIMEOUT = 150.0
#: the simulator's progress line comes every 5 s
STEP_TIMEOUT = 30.0
STARTED = "ocppcable serving OCPP"
#: the simulator's progress line once all its stations are booted: "connected 2/2  booted 2"
ALL_BOOTED = re.compile(r"connected (\d+)/\1\s+booted \1\b")


# --- README.rst -------------------------------------------------------------------------------


def section(text: str, title: str) -> str:
    """The body of the top-level section ``title`` (underlined with ``-``), subsections
    included."""
    match = re.search(rf"^{re.escape(title)}\n-+\n(.*?)(?=^[^\n]+\n-+\n|\Z)", text, re.M | re.S)
    assert match, f"README.rst has no section {title!r}"
    return match.group(1)


def literal_blocks(text: str) -> Iterator[str]:
    """The literal blocks (after a paragraph ending in ``::``), each joined into one line."""
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if not line.rstrip().endswith("::"):
            continue
        block = []
        for following in lines[n + 1 :]:
            if following and not following[0].isspace():
                break
            block.append(following.strip())
        yield " ".join(part for part in block if part)


def quick_start() -> dict[str, str]:
    """The install-and-run, simulator and curl commands of the quick start."""
    blocks = list(literal_blocks(section(README.read_text("utf-8"), SECTION)))

    def the(what: str, test: object) -> str:
        found = [block for block in blocks if test(block)]
        assert len(found) == 1, f"expected one {what} command in the quick start: {blocks}"
        return found[0]

    return {
        "gateway": the("gateway", lambda b: "twistd -n ocppcable" in b),
        "stations": the("simulator", lambda b: b.startswith(".venv/bin/ocppcable-station ")),
        "curl": the("curl", lambda b: b.startswith("curl ")),
    }


def published(curl: str) -> tuple[str, str]:
    """The station id and the remote command the curl command publishes."""
    words = shlex.split(curl)
    body = json.loads(words[words.index("-d") + 1])
    station_id = body["stream"].rsplit("/", 1)[-1]
    return station_id, json.loads(body["data"])["command"]


def on_ports(command: str, ports: dict[int, int]) -> str:
    """``command`` with ``localhost:<default>`` rewritten to the test's ports."""
    rewritten = command
    for default, port in ports.items():
        rewritten = re.sub(rf"\blocalhost:{default}\b", f"localhost:{port}", rewritten)
    assert rewritten != command, f"no port to rewrite in {command!r}"
    return rewritten


def test_the_remote_command_goes_to_a_station_the_simulator_starts():
    from ocppcable.simulator.cli import parse_args

    commands = quick_start()
    simulated = parse_args(shlex.split(commands["stations"])[1:])
    station_id, _ = published(commands["curl"])
    assert station_id in simulated.station_ids()


# --- the test -----------------------------------------------------------------------------------


def test_readme_quick_start_as_written():
    from ocppcable.options import Options

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: the quick start's remote command needs it")
    commands = quick_start()
    defaults = {name: default for name, _, default, *_ in Options.optParameters}
    port, broadcast_port = free_port(), free_port()
    ports = {defaults["port"]: port, defaults["http-broadcast-port"]: broadcast_port}
    station_id, command = published(commands["curl"])

    env = clean_environment()
    # the gateway takes every option from an OCPPCABLE_<OPTION> environment variable too, so the
    # install-and-run command stays exactly as written and still listens on free ports
    env["OCPPCABLE_PORT"] = str(port)
    env["OCPPCABLE_HTTP_BROADCAST_PORT"] = str(broadcast_port)

    workdir = Path(tempfile.mkdtemp(prefix="ocppcable-readme-"))
    started: list[Process] = []
    try:
        fresh_copy(workdir)
        began = time.monotonic()
        gateway = Process(commands["gateway"], workdir, env)
        started.append(gateway)
        gateway.wait_for(STARTED, START_TIMEOUT)
        install = time.monotonic() - began
        print(f"venv + pip install + gateway start: {install:.1f} s")
        assert "cannot listen" not in gateway.output, gateway

        stations = Process(on_ports(commands["stations"], ports), workdir, env)
        started.append(stations)
        stations.wait_for(ALL_BOOTED, STEP_TIMEOUT)

        curl = subprocess.run(
            ["bash", "-c", on_ports(commands["curl"], ports)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )
        assert curl.returncode == 0, curl.stderr
        assert re.search(r"^HTTP/[\d.]+ 201\b", curl.stdout, re.M), curl.stdout

        answered = rf"station {re.escape(station_id)} answered {re.escape(command)}: Accepted"
        stations.wait_for(answered, STEP_TIMEOUT)
        gateway.wait_for("demo backend: ack", STEP_TIMEOUT)

        # bash runs a single command by exec, so the signal reaches the simulator itself
        stations.popen.send_signal(signal.SIGTERM)
        assert stations.finish(STEP_TIMEOUT) == 0, stations
        assert re.search(rf"commands\s+1 \({re.escape(command)} 1\)", stations.output), stations
        assert stations.output.rstrip().endswith("result      OK"), stations

        # twistd is the last command of an && list: bash waits for it and exits with its status
        pid = int((workdir / "twistd.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        assert gateway.finish(STEP_TIMEOUT) == 0, gateway
        assert "Server Shut Down." in gateway.output, gateway
    finally:
        for process in started:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)

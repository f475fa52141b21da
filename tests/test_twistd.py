"""The gateway as operators run it: ``twistd -n ocppcable`` in a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.task import deferLater

from tests.support import TIMEOUT, TWISTD, aio, free_port, raw_socket, twistd


def test_help_lists_every_option():
    out = subprocess.run(
        [*TWISTD, "ocppcable", "--help"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert out.returncode == 0, out.stderr
    from ocppcable.options import Options

    for param in Options.optParameters:
        assert f"--{param[0]}=" in out.stdout


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--rpc-concurrency=0"], "--rpc-concurrency"),
        (["--ocpp-path=ocpp"], "--ocpp-path"),
        (["--broadcast-adapter=kafka"], "--broadcast-adapter"),
        (["--http-broadcast-port=70000"], "--http-broadcast-port"),
        (["--ocpp-granular-actions=maybe"], "--ocpp-granular-actions"),
    ],
)
def test_invalid_configuration_fails_with_one_clear_line(args, flag):
    out = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "ocppcable", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert out.returncode != 0
    # the usage text lists every flag: the error itself is the last line and must name it
    last = (out.stdout + out.stderr).strip().splitlines()[-1]
    assert flag in last


async def _wait_listening(process: subprocess.Popen[str], reactor) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        line = await deferLater(reactor, 0, process.stdout.readline)
        if "ocppcable serving OCPP" in line:
            return
        if not line and process.poll() is not None:
            break
    raise AssertionError("twistd did not start")


@pytest_twisted.ensureDeferred
async def test_serves_stations_and_exits_cleanly_on_sigterm(redis_server, reactor):
    port = free_port()
    process = twistd(
        f"--port={port}",
        "--host=127.0.0.1",
        "--rpc-host=demo",
        f"--redis-url={redis_server.url}",
        "--ocpp-path=/api/ocpp",
        "--http-broadcast-port=0",
    )
    try:
        await _wait_listening(process, reactor)
        ws = await aio(raw_socket(f"ws://127.0.0.1:{port}/api/ocpp/CP-TWISTD"))
        boot = [2, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
        await aio(ws.send(json.dumps(boot)))
        reply = json.loads(await aio(ws.recv()))
        assert reply[:2] == [3, "1"] and reply[2]["status"] == "Accepted"
        process.send_signal(signal.SIGTERM)
        await aio(ws.wait_closed())
        code = await deferLater(reactor, 0, process.wait, TIMEOUT)
        assert code == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()


def test_example_environment_file_names_every_option():
    text = (Path(__file__).parent.parent / "etc" / "ocppcable.env").read_text()
    from ocppcable.options import Options

    for param in Options.optParameters:
        assert f"ANYCABLE_{param[0].upper().replace('-', '_')}=" in text, param[0]


def test_a_port_in_use_fails_the_start():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [*TWISTD, "-n", "--pidfile=", "ocppcable", "--rpc-host=demo", "--host=127.0.0.1"]
            + [f"--port={port}", "--http-broadcast-port=0"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    assert out.returncode != 0
    assert "Couldn't listen" in out.stdout + out.stderr
    assert "ocppcable serving OCPP" not in out.stdout + out.stderr

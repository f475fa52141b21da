"""The gateway as operators run it: ``twistd -n ocppcable`` in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.task import deferLater

from tests.support import (
    PROCESS_TIMEOUT,
    TWISTD,
    aio,
    free_port,
    raw_socket,
    twistd,
    wait_exit,
    wait_output,
)


def test_help_lists_every_option():
    out = subprocess.run(
        [*TWISTD, "ocppcable", "--help"], capture_output=True, text=True, timeout=PROCESS_TIMEOUT
    )
    assert out.returncode == 0, out.stderr
    from ocppcable.options import Options

    for param in Options.optParameters:
        assert f"--{param[0]}=" in out.stdout


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--rpc-concurrency=0"], "--rpc-concurrency"),
        (["--admission-rate=-1"], "--admission-rate"),
        (["--admission-burst=0"], "--admission-burst"),
        (["--overload-queue=-1"], "--overload-queue"),
        (["--overload-latency=x"], "--overload-latency"),
        (["--overload-latency=nan"], "--overload-latency"),
        (["--ping-interval=inf"], "--ping-interval"),
        (["--ocpp-rate-limit=nan"], "--ocpp-rate-limit"),
        (["--broadcast-adapter=http,redis", "--redis-url=redis://[::1"], "--redis-url"),
        (["--overload-boot-interval=0"], "--overload-boot-interval"),
        (["--ocpp-path=ocpp"], "--ocpp-path"),
        (["--broadcast-adapter=kafka"], "--broadcast-adapter"),
        (["--http-broadcast-port=70000"], "--http-broadcast-port"),
        (["--ocpp-granular-actions=maybe"], "--ocpp-granular-actions"),
        (["--port=70000"], "--port"),
        (["--port=http"], "--port"),
        (["--listen=tcp:abc"], "--listen"),
        (["--listen=tcp:0,nosuchtype:1"], "--listen"),
        (["--listen=ssl:0:privateKey=missing.pem"], "--listen"),
        (["--rpc-host=foo"], "--rpc-host"),
        (["--rpc-host=ftp://example"], "--rpc-host"),
        (["--rpc-host=localhost:99999"], "--rpc-host"),
        (["--rpc-host=http://localhost:99999/_anycable"], "--rpc-host"),
        (["--nats-servers=redis://localhost"], "--nats-servers"),
        (["--nats-channel=a b"], "--nats-channel"),
        (["--rpc-host=python:no_such_package.channels:OCPPChannel"], "--rpc-host"),
        (["--rpc-host=python:ocppcable.demo:Missing"], "--rpc-host"),
        (["--rpc-host=python:ocppcable.demo:OCPPApplication"], "--rpc-host"),
    ],
)
def test_invalid_configuration_fails_with_one_clear_line(args, flag):
    out = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "ocppcable", *args],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )
    assert out.returncode != 0
    # the usage text lists every flag: the error itself is the last line and must name it
    last = (out.stdout + out.stderr).strip().splitlines()[-1]
    assert flag in last
    assert "Traceback" not in out.stdout + out.stderr
    # not the ~100 lines of usage that would bury the error: a pointer to --help instead
    assert len((out.stdout + out.stderr).strip().splitlines()) < 5
    assert "ocppcable serving OCPP" not in out.stdout


@pytest.mark.parametrize(
    ("variable", "value", "flag"),
    [
        ("OCPPCABLE_PORT", "99999", "--port"),
        ("ANYCABLE_LISTEN", "tcp:abc", "--listen"),
        ("ANYCABLE_RPC_HOST", "localhost", "--rpc-host"),
    ],
)
def test_an_invalid_environment_variable_names_the_variable(variable, value, flag):
    out = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "ocppcable"],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        env={**os.environ, variable: value},
    )
    assert out.returncode != 0
    last = (out.stdout + out.stderr).strip().splitlines()[-1]
    assert variable in last and flag in last
    assert "Traceback" not in out.stdout + out.stderr


def test_help_says_what_each_value_is():
    out = subprocess.run(
        [*TWISTD, "ocppcable", "--help"], capture_output=True, text=True, timeout=PROCESS_TIMEOUT
    )
    text = "".join(out.stdout.split())  # the usage text wraps lines, at spaces and hyphens
    assert ".." not in text
    assert "0:off).[default:20.0].Persecond,>=0." in text  # --ocpp-rate-limit
    assert "shutdown).[default:100.0].Persecond,>0." in text  # --disconnect-rate
    assert "(--ocpp-validate=falseturnsitoff)" in text
    assert "(--ocpp-require-cert-match=trueturnsiton)" in text


def test_version_is_ours():
    from ocppcable import __version__

    out = subprocess.run(
        [*TWISTD, "ocppcable", "--version"], capture_output=True, text=True, timeout=PROCESS_TIMEOUT
    )
    assert out.returncode == 0
    assert out.stdout.startswith(f"ocppcable {__version__} ")


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
        await wait_output(process, reactor)
        ws = await aio(raw_socket(f"ws://127.0.0.1:{port}/api/ocpp/CP-TWISTD"))
        boot = [2, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
        await aio(ws.send(json.dumps(boot)))
        reply = json.loads(await aio(ws.recv()))
        assert reply[:2] == [3, "1"] and reply[2]["status"] == "Accepted"
        process.send_signal(signal.SIGTERM)
        await aio(asyncio.wait_for(ws.wait_closed(), PROCESS_TIMEOUT))
        assert await wait_exit(process, reactor) == 0
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
            timeout=PROCESS_TIMEOUT,
        )
    assert out.returncode != 0
    assert "Couldn't listen" in out.stdout + out.stderr
    assert "ocppcable serving OCPP" not in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    last = (out.stdout + out.stderr).strip().splitlines()[-1]
    assert "--port: cannot listen" in last and "Address already in use" in last


@pytest.mark.parametrize("logfile", [False, True])
@pytest_twisted.ensureDeferred
async def test_default_logging_leaves_out_debug_lines(logfile, tmp_path, reactor):
    """Issue 12 item 14: at the default level (text, info) no debug line, and so no payload,
    is written, whether to stdout or to twistd's --logfile."""
    port = free_port()
    path = tmp_path / "ocppcable.log"
    args = [f"--logfile={path}"] if logfile else []
    process = subprocess.Popen(
        [*TWISTD, "-n", "--pidfile=", *args, "ocppcable", f"--port={port}", "--host=127.0.0.1"]
        + ["--rpc-host=demo", "--http-broadcast-port=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    def written() -> str:
        return path.read_text() if path.exists() else ""

    async def wait_logged(text: str) -> None:
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while text not in written():
            assert time.monotonic() < deadline, f"{text!r} not logged"
            await deferLater(reactor, 0.05, lambda: None)

    try:
        if logfile:
            await wait_logged("ocppcable serving OCPP")
        else:
            await wait_output(process, reactor)
        ws = await aio(raw_socket(f"ws://127.0.0.1:{port}/ocpp/CP-QUIET"))
        boot = [2, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
        await aio(ws.send(json.dumps(boot)))
        await aio(ws.recv())
        await aio(ws.send(json.dumps([2, "2", "Authorize", {"idTag": "TAG-SECRET-14"}])))
        await aio(ws.recv())
        await aio(ws.close())
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process, reactor) == 0
        output = written() if logfile else process.stdout.read()
        assert "demo backend: authorize" in output  # info lines are there
        assert "TAG-SECRET-14" not in output and "payload" not in output
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()


def test_a_port_out_of_range_in_an_endpoint_fails_the_start_with_one_line():
    out = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "ocppcable", "--rpc-host=demo"]
        + ["--listen=tcp:70000:interface=127.0.0.1", "--http-broadcast-port=0"],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stdout + out.stderr
    last = (out.stdout + out.stderr).strip().splitlines()[-1]
    assert "--listen: cannot listen on tcp:70000" in last


def test_a_daemon_reports_a_port_in_use_in_full(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [*TWISTD, f"--pidfile={tmp_path / 'twistd.pid'}", f"--logfile={tmp_path / 'log'}"]
            + ["ocppcable", "--rpc-host=demo", "--host=127.0.0.1", "--port=0"]
            + [f"--http-broadcast-port={port}"],
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT,
            cwd=tmp_path,
        )
    assert out.returncode != 0
    # twistd's parent prints the first 100 bytes of the error: ours fits, not cut mid-word
    assert "--http-broadcast-port: Address already in use'" in out.stderr
    log = (tmp_path / "log").read_text()
    assert "Traceback" not in out.stderr + log
    assert f"--http-broadcast-port: cannot listen on tcp:{port}" in log
    # the daemon removes its pid file just after reporting the failure to its parent, which
    # may have exited (and so returned here) in between
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while (tmp_path / "twistd.pid").exists():
        assert time.monotonic() < deadline, "the daemon left its pid file"
        time.sleep(0.02)

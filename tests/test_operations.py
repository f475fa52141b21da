"""Operations: graceful shutdown, /health, /metrics, JSON logs, TLS and client certificates."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import ssl
import subprocess

import pytest
import pytest_twisted
import websockets
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater
from websockets.exceptions import InvalidStatus

from ocppcable.protos.rpc_pb2 import SUCCESS, CommandResponse
from tests.support import (
    PKI,
    PROCESS_TIMEOUT,
    TIMEOUT,
    TWISTD,
    aio,
    free_port,
    http_client,
    raw_socket,
    read_line,
    twistd,
    wait_exit,
    wait_for,
    wait_output,
)

BOOT = [2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]


async def _boot(ws) -> None:
    await ws.send(json.dumps(BOOT))
    reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert reply[:2] == [3, "b"], reply


async def _get(reactor, url: str) -> tuple[int, bytes]:
    response = await http_client(reactor).get(url)
    return response.code, await response.content()


@pytest_twisted.ensureDeferred
async def test_sigterm_closes_every_station_and_makes_every_disconnect(backend, reactor):
    port = free_port()
    process = twistd(
        f"--port={port}",
        "--host=127.0.0.1",
        f"--rpc-host=127.0.0.1:{backend.port}",
        "--broadcast-adapter=http",
        "--http-broadcast-port=0",
        "--shutdown-timeout=6",
        "--disconnect-rate=5",  # a slow queue in normal operation: drained at shutdown anyway
    )
    try:
        await wait_output(process, reactor)

        async def stations():
            sockets = []
            for n in range(50):
                ws = await raw_socket(f"ws://127.0.0.1:{port}/ocpp/CP-{n:03}")
                await _boot(ws)
                sockets.append(ws)
            return sockets

        sockets = await aio(stations())
        process.send_signal(signal.SIGTERM)

        async def closed():
            await asyncio.gather(
                *(asyncio.wait_for(ws.wait_closed(), PROCESS_TIMEOUT) for ws in sockets)
            )
            return {ws.close_code for ws in sockets}

        assert await aio(closed()) == {1001}
        assert await wait_exit(process, reactor) == 0
        # the log names the code the gateway sent, not the one the station echoed
        assert "CP-000 disconnected (code 1001, going away; closed by the gateway)" in (
            process.stdout.read()
        )
        disconnected = {
            json.loads(c.request.identifiers)["station_id"] for c in backend.recorded("disconnect")
        }
        assert disconnected == {f"CP-{n:03}" for n in range(50)}
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()


@pytest_twisted.ensureDeferred
async def test_health_turns_503_while_draining(start_gateway, backend, reactor):
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}", "--broadcast-adapter=http", "--shutdown-timeout=4"
    )
    health = f"http://127.0.0.1:{gateway.port}/health"
    assert await _get(reactor, health) == (200, b"ok\n")
    ws = await aio(raw_socket(gateway.url("CP-DRAIN")))
    await aio(_boot(ws))
    backend.disconnects_flow.clear()  # the drain waits for the Disconnect RPC
    stopping = ensureDeferred(gateway.stop())
    assert (await _get(reactor, health))[0] == 503
    try:
        await aio(raw_socket(gateway.url("CP-LATE")))
    except InvalidStatus as refused:
        assert refused.response.status_code == 503
    else:
        raise AssertionError("a new station was accepted while draining")
    await aio(ws.wait_closed())
    assert (ws.close_code, ws.close_reason) == (1001, "going away")
    backend.disconnects_flow.set()
    await stopping
    assert len(backend.recorded("disconnect")) == 1


@pytest_twisted.ensureDeferred
async def test_stop_answers_the_call_in_flight_before_closing(start_gateway, backend, reactor):
    """Issue 12 item 9: a station is closed only once the CALL the backend is processing has
    its answer written; CALLs after the stop began are refused."""
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}", "--broadcast-adapter=http", "--shutdown-timeout=8"
    )
    release = asyncio.Event()
    loop = asyncio.get_event_loop()

    def slow(request):
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(TIMEOUT)
        return CommandResponse(status=SUCCESS)

    backend.replies["data_transfer"] = slow
    ws = await aio(raw_socket(gateway.url("CP-INFLIGHT")))
    await aio(_boot(ws))
    await aio(ws.send(json.dumps([2, "d1", "DataTransfer", {"vendorId": "v"}])))
    await wait_for(lambda: backend.recorded("message", "data_transfer"), reactor)
    stopping = ensureDeferred(gateway.stop())

    async def station():
        await ws.send(json.dumps([2, "late", "Heartbeat", {}]))
        refused = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert refused == [4, "late", "InternalError", "gateway shutting down", {}]
        release.set()  # the backend answers the CALL in flight: its reply comes, then the close
        assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) == [
            3, "d1", {"status": "Accepted"}
        ]  # fmt: skip
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        return ws.close_code

    assert await aio(station()) == 1001
    await stopping
    assert len(backend.recorded("disconnect")) == 1


@pytest_twisted.ensureDeferred
async def test_drain_waits_for_a_disconnect_behind_an_unanswered_connect(
    start_gateway, backend, reactor
):
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}", "--broadcast-adapter=http", "--shutdown-timeout=6"
    )
    backend.connects_flow.clear()
    try:
        ws = await aio(raw_socket(gateway.url("CP-SLOW")))
        await aio(ws.send(json.dumps(BOOT)))  # the first CALL makes the Connect RPC, held
        await wait_for(lambda: backend.recorded("connect"), reactor)
        stopping = ensureDeferred(gateway.stop())
        await aio(ws.wait_closed())
        # the station is gone; its Disconnect can only be made once the Connect is answered
        await deferLater(reactor, 0.5, lambda: None)
        assert not stopping.called
    finally:
        backend.connects_flow.set()
    await stopping
    assert [
        json.loads(c.request.identifiers)["station_id"] for c in backend.recorded("disconnect")
    ] == ["CP-SLOW"]


@pytest_twisted.ensureDeferred
async def test_metrics_after_a_scripted_session(start_gateway, backend, reactor):
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}", "--broadcast-adapter=http"
    )

    async def script():
        ws = await raw_socket(gateway.url("CP-M"))
        await _boot(ws)
        await ws.send(json.dumps([2, "h", "Heartbeat", {}]))
        await ws.recv()
        await ws.send(json.dumps([2, "x", "Nope", {}]))
        await ws.recv()
        await ws.send(json.dumps([2, "a", "Authorize", {"idTag": "TAG-OK"}]))
        await ws.recv()
        return ws

    ws = await aio(script())
    gateway.service.hub.publish(
        "ocpp:ev/CP-M", json.dumps({"command": "Reset", "id": "r", "payload": {"type": "Soft"}})
    )

    async def answer():
        assert json.loads(await ws.recv())[:3] == [2, "r", "Reset"]
        await ws.send(json.dumps([3, "r", {"status": "Accepted"}]))

    await aio(answer())
    await wait_for(lambda: backend.recorded("message", "ack"), reactor)
    code, body = await _get(reactor, f"http://127.0.0.1:{gateway.port}/metrics")
    assert code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }

    def value(name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))), 0)

    assert value("ocppcable_stations_connected") == 1
    assert value("ocppcable_sessions_authenticated") == 1
    assert value("ocppcable_ocpp_calls_in_total", action="BootNotification", result="ok") == 1
    assert value("ocppcable_ocpp_calls_in_total", action="Heartbeat", result="ok") == 1
    assert value("ocppcable_ocpp_calls_in_total", action="Authorize", result="ok") == 1
    assert value("ocppcable_ocpp_call_errors_total", code="NotImplemented") == 1
    assert value("ocppcable_ocpp_calls_out_total", action="Reset", result="ok") == 1
    assert value("ocppcable_rpc_calls_total", method="connect", status="SUCCESS") == 1
    assert value("ocppcable_rpc_calls_total", method="command", status="SUCCESS") >= 4
    assert value("ocppcable_rpc_duration_seconds_count", method="command") >= 4
    assert value("ocppcable_rpc_in_flight") == 0
    assert value("ocppcable_broadcast_deliveries_total") == 0  # hub.publish is not a broadcast
    await aio(ws.close())


@pytest_twisted.ensureDeferred
async def test_json_logs_carry_the_station_id(redis_server, reactor):
    port = free_port()
    process = twistd(
        f"--port={port}",
        "--host=127.0.0.1",
        "--rpc-host=demo",
        "--log-format=json",
        "--log-level=debug",
        "--http-broadcast-port=0",
    )
    try:
        lines: list[dict] = []

        async def read_until(predicate) -> None:
            while not any(predicate(r) for r in lines):
                line = await read_line(process, reactor)
                assert line, "twistd ended"
                lines.append(json.loads(line))  # every line is one JSON object

        await read_until(lambda r: "ocppcable serving OCPP" in r["msg"])
        ws = await aio(raw_socket(f"ws://127.0.0.1:{port}/ocpp/CP-JSON"))
        await aio(_boot(ws))
        await read_until(lambda r: r.get("station_id") == "CP-JSON")
        record = next(r for r in lines if r.get("station_id") == "CP-JSON")
        assert {"ts", "level", "ns", "msg", "sid"} <= set(record) and record["sid"]
        await read_until(lambda r: "payload" in r and "chargePointVendor" in r["payload"])
        await aio(ws.close())
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process, reactor) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()


# --- TLS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ssl", "reuseport"])
@pytest_twisted.ensureDeferred
async def test_tls_with_basic_auth_forwards_the_authorization(
    kind, start_gateway, backend, tmp_path
):
    pki = PKI(tmp_path)
    port = free_port()
    await start_gateway(
        f"--listen={kind}:{port}:privateKey={pki.server_key}:certKey={pki.server_cert}"
        ":interface=127.0.0.1",
        f"--rpc-host=127.0.0.1:{backend.port}",
        "--broadcast-adapter=http",
    )
    basic = "Basic " + base64.b64encode(b"CP-TLS:secret").decode()

    async def station():
        ws = await websockets.connect(
            f"wss://localhost:{port}/ocpp/CP-TLS",
            subprotocols=["ocpp1.6"],
            ssl=pki.client_context(None),
            additional_headers={"Authorization": basic},
            open_timeout=TIMEOUT,
        )
        await _boot(ws)
        await ws.close()

    await aio(station())
    env = backend.recorded("connect")[0].request.env
    assert env.url == f"https://localhost:{port}/ocpp/CP-TLS"
    assert env.headers["authorization"] == basic


@pytest.mark.parametrize("kind", ["mtls", "reuseport"])
@pytest_twisted.ensureDeferred
async def test_mutual_tls_forwards_and_checks_the_certificate(
    kind, start_gateway, backend, tmp_path
):
    pki = PKI(tmp_path)
    port = free_port()
    await start_gateway(
        f"--listen={kind}:{port}:privateKey={pki.server_key}:certKey={pki.server_cert}"
        f":caCerts={pki.ca}:interface=127.0.0.1",
        f"--rpc-host=127.0.0.1:{backend.port}",
        "--broadcast-adapter=http",
        "--ocpp-require-cert-match=true",
    )
    url = f"wss://localhost:{port}/ocpp/CP-MTLS"

    async def connect(context):
        return await websockets.connect(
            url, subprotocols=["ocpp1.6"], ssl=context, open_timeout=TIMEOUT
        )

    async def scenario():
        ws = await connect(pki.client_context("CP-MTLS"))
        await _boot(ws)
        await ws.close()
        try:
            await connect(pki.client_context("CP-OTHER"))
        except InvalidStatus as refused:
            assert refused.response.status_code == 403
        else:
            raise AssertionError("a certificate for another station was accepted")
        try:
            ws = await connect(pki.client_context(None))
            await ws.recv()
        except (ssl.SSLError, OSError, websockets.ConnectionClosed, websockets.InvalidHandshake):
            pass
        else:
            raise AssertionError("a station without a certificate was accepted")

    await aio(scenario())
    (connect_call,) = backend.recorded("connect")
    assert connect_call.request.env.headers["x-client-cert-cn"] == "CP-MTLS"


def test_plugin_endpoint_refuses_mtls_without_cas():
    out = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "ocppcable", "--listen=mtls:0:privateKey=x"]
        + ["--http-broadcast-port=0"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert out.returncode != 0
    assert "caCerts" in out.stdout + out.stderr

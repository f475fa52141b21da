"""Who a station is, as the backend hears it: env.url, the station id header, the sid and the
client certificate rule (issue 12, items 2, 12 and 13), over real sockets."""

from __future__ import annotations

import asyncio
import json

import pytest_twisted
import websockets
from websockets.exceptions import InvalidStatus

from tests.support import PKI, TIMEOUT, aio, free_port, http_status, upgrade_request

BOOT = [2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]


async def _boot(ws) -> None:
    await ws.send(json.dumps(BOOT))
    reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert reply[:2] == [3, "b"], reply


async def _station(url: str, **kwargs):
    return await websockets.connect(url, subprotocols=["ocpp1.6"], open_timeout=TIMEOUT, **kwargs)


@pytest_twisted.ensureDeferred
async def test_a_host_that_is_not_a_plain_host_is_refused(start_gateway, backend):
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}", "--broadcast-adapter=http"
    )
    for host in ("gw/ocpp/VICTIM?", "gw?x=", "user@gw", "gw#x", "gw:80/p", "", "gw:port"):
        request = upgrade_request("/ocpp/TLS-1", host)
        assert await aio(http_status(gateway.port, request)) == 400, host
    assert await aio(http_status(gateway.port, upgrade_request("/ocpp/TLS-1", "[::1]:80"))) == 101
    assert not backend.calls


@pytest_twisted.ensureDeferred
async def test_env_url_names_the_station_we_serve(start_gateway, backend):
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}", "--broadcast-adapter=http"
    )

    async def scenario():
        # a valid Host of the station's choosing; the path is ours, percent-decoded
        ws = await _station(
            "ws://gw.example:8443/ocpp/CP%2D2?token=a%20b", host="127.0.0.1", port=gateway.port
        )
        await _boot(ws)
        await ws.close()

    await aio(scenario())
    [connect] = backend.recorded("connect")
    assert connect.request.env.url == "http://gw.example:8443/ocpp/CP-2?token=a%20b"
    assert connect.request.env.headers["x-ocpp-station-id"] == "CP-2"
    [subscribe] = backend.recorded("subscribe")
    assert json.loads(subscribe.request.identifier)["id"] == "CP-2"


@pytest_twisted.ensureDeferred
async def test_a_station_cannot_set_its_own_station_id_header(start_gateway, backend):
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}",
        "--broadcast-adapter=http",
        "--headers=authorization,x-ocpp-station-id",
    )

    async def scenario():
        ws = await _station(
            gateway.url("CP-REAL"), additional_headers={"X-OCPP-Station-Id": "VICTIM"}
        )
        await _boot(ws)
        await ws.close()

    await aio(scenario())
    [connect] = backend.recorded("connect")
    assert connect.request.env.headers["x-ocpp-station-id"] == "CP-REAL"


@pytest_twisted.ensureDeferred
async def test_dot_segments_are_not_station_ids(start_gateway, backend):
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}", "--broadcast-adapter=http"
    )
    for path in ("/ocpp/..", "/ocpp/.", "/ocpp/%2E%2E"):
        assert await aio(http_status(gateway.port, upgrade_request(path))) == 404, path


@pytest_twisted.ensureDeferred
async def test_session_ids_are_ours_whatever_the_request_id(start_gateway, backend):
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}", "--broadcast-adapter=http"
    )

    async def scenario():
        for station_id, request_id in (("CP-S1", "shared-sid"), ("CP-S2", "shared-sid")):
            ws = await _station(
                gateway.url(station_id), additional_headers={"X-Request-Id": request_id}
            )
            await _boot(ws)
            await ws.close()
        ws = await _station(gateway.url("CP-S3"), additional_headers={"X-Request-Id": "x" * 10_000})
        await _boot(ws)
        await ws.close()

    await aio(scenario())
    sids = [c.meta["sid"] for c in backend.recorded("connect")]
    assert len(set(sids)) == 3
    assert all(len(sid) == 21 and sid != "shared-sid" for sid in sids)


@pytest_twisted.ensureDeferred
async def test_cert_match_applies_to_mtls_listeners_only(start_gateway, backend, tmp_path):
    pki = PKI(tmp_path)
    mtls, tls = free_port(), free_port()
    gateway = await start_gateway(
        f"--listen=tcp:0:interface=127.0.0.1,"
        f"mtls:{mtls}:privateKey={pki.server_key}:certKey={pki.server_cert}"
        f":caCerts={pki.ca}:interface=127.0.0.1,"
        f"ssl:{tls}:privateKey={pki.server_key}:certKey={pki.server_cert}:interface=127.0.0.1",
        f"--rpc-host=127.0.0.1:{backend.port}",
        "--broadcast-adapter=http",
        "--ocpp-require-cert-match=true",
    )

    async def scenario():
        ws = await _station(gateway.url("CP-TCP"))
        await _boot(ws)
        await ws.close()
        ws = await _station(f"wss://localhost:{tls}/ocpp/CP-TLS", ssl=pki.client_context(None))
        await _boot(ws)
        await ws.close()
        ws = await _station(
            f"wss://localhost:{mtls}/ocpp/CP-MTLS", ssl=pki.client_context("CP-MTLS")
        )
        await _boot(ws)
        await ws.close()
        try:
            await _station(
                f"wss://localhost:{mtls}/ocpp/CP-MTLS", ssl=pki.client_context("CP-OTHER")
            )
        except InvalidStatus as refused:
            assert refused.response.status_code == 403
        else:
            raise AssertionError("a certificate for another station was accepted")

    await aio(scenario())
    connected = [c.request.env.headers["x-ocpp-station-id"] for c in backend.recorded("connect")]
    assert connected == ["CP-TCP", "CP-TLS", "CP-MTLS"]

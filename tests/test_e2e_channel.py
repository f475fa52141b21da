"""A channel written in Python (``tests/channels.py``), loaded with
``--rpc-host=python:tests.channels:ChargingChannel``, driving whole 1.6 and 2.0.1 sessions of
stations we did not write (PyPI ``ocpp``) over real sockets."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import pytest
import pytest_twisted
import websockets
from ocpp.routing import on
from ocpp.v16 import call
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from tests.channels import SEEN
from tests.support import (
    ROOT,
    TIMEOUT,
    aio,
    free_port,
    http_client,
    open_station,
    raw_socket,
    twistd,
    wait_exit,
    wait_for,
    wait_output,
)

TARGET = "--rpc-host=python:tests.channels:ChargingChannel"
NOW = "2026-01-01T00:00:00Z"


@pytest.fixture(autouse=True)
def seen():
    SEEN.clear()
    yield SEEN
    SEEN.clear()


def _seen(method: str, station_id: str) -> list[Any]:
    return [data for name, station, data in SEEN if (name, station) == (method, station_id)]


async def _broadcast_port(gateway: Any) -> int:
    [listener] = gateway.service.getServiceNamed("broadcast-http")
    return (await listener.when_listening()).getHost().port


async def _post(reactor: Any, port: int, body: dict[str, Any]) -> int:
    url = f"http://127.0.0.1:{port}/_broadcast"
    request = http_client(reactor).request("POST", url, data=json.dumps(body).encode())
    response = await request.addTimeout(TIMEOUT, reactor)
    await response.content()
    return response.code


@pytest_twisted.ensureDeferred
async def test_a_16_session_through_a_python_channel(start_gateway, reactor, seen):
    gateway = await start_gateway(TARGET)
    assert "ChargingChannel" in gateway.service.client.target
    conn = await aio(open_station(gateway.url("CP-E1") + "?token=t-1", "CP-E1"))
    cp = conn.station

    async def session() -> int:
        boot = await cp.call(
            call.BootNotification(
                charge_point_model="M", charge_point_vendor="V", charge_point_serial_number="SN"
            )
        )
        assert boot.status == "Accepted" and boot.interval == 60
        assert (await cp.call(call.Authorize(id_tag="TAG-OK"))).id_tag_info == {
            "status": "Accepted"
        }
        assert (await cp.call(call.Authorize(id_tag="TAG-NO"))).id_tag_info == {"status": "Invalid"}
        start = await cp.call(
            call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=0, timestamp=NOW)
        )
        assert start.id_tag_info == {"status": "Accepted"}
        sample = {"timestamp": NOW, "sampledValue": [{"value": "10"}]}
        transaction = start.transaction_id
        await cp.call(
            call.MeterValues(connector_id=1, transaction_id=transaction, meter_value=[sample])
        )
        await cp.call(
            call.StopTransaction(meter_stop=10, timestamp=NOW, transaction_id=transaction)
        )
        # the Reset the channel transmitted from stop_transaction
        assert await asyncio.wait_for(cp.commands.get(), TIMEOUT) == ("Reset", {"type": "Soft"})
        return transaction

    transaction = await aio(session())
    [params] = _seen("subscribed", "CP-E1")
    assert params == {"channel": "OCPPChannel", "id": "CP-E1", "sn": "SN"}
    [[meter_values]] = [_seen("meter_values", "CP-E1")]
    assert meter_values["command"] == "MeterValues"
    # the channel state start_transaction set came back to stop_transaction
    state = {"protocol": "ocpp1.6", "transaction": str(transaction)}
    assert _seen("stop_transaction", "CP-E1") == [state]
    [ack] = await wait_for(lambda: _seen("ack", "CP-E1"), reactor)
    assert ack == {
        "action": "ack",
        "id": "reset-1",
        "command": "Reset",
        "payload": {"status": "Accepted"},
    }

    # a remote command broadcast to the stream the channel chose (charging:ev/<id>)
    port = await _broadcast_port(gateway)
    trigger = {
        "command": "TriggerMessage",
        "id": "tm-1",
        "payload": {"requestedMessage": "Heartbeat"},
    }
    assert await _post(reactor, port, {"stream": "charging:ev/CP-E1", "data": trigger}) == 201
    command = await aio(asyncio.wait_for(cp.commands.get(), TIMEOUT))
    assert command == ("TriggerMessage", {"requestedMessage": "Heartbeat"})
    acks = await wait_for(lambda: _seen("ack", "CP-E1")[1:], reactor)
    assert acks[0]["id"] == "tm-1" and acks[0]["payload"] == {"status": "Accepted"}

    await aio(conn.close())
    await wait_for(lambda: _seen("disconnect", "CP-E1"), reactor)
    # the Disconnect carried the channel state, without the transaction stop_transaction deleted
    assert _seen("unsubscribed", "CP-E1") == [{"protocol": "ocpp1.6"}]


class Station201(ChargePoint201):
    """A 2.0.1 station that accepts a Reset."""

    def __init__(self, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection, response_timeout=TIMEOUT)
        self.resets: asyncio.Queue[str] = asyncio.Queue()

    @on("Reset")
    async def on_reset(self, type: str, **kwargs: Any) -> Any:
        await self.resets.put(type)
        return result201.Reset(status="Accepted")


@pytest_twisted.ensureDeferred
async def test_a_201_session_through_a_python_channel(start_gateway, reactor, seen):
    gateway = await start_gateway(TARGET)

    async def session() -> tuple[Any, Any]:
        ws = await websockets.connect(
            gateway.url("CS-E2"), subprotocols=["ocpp2.0.1"], open_timeout=TIMEOUT
        )
        station = Station201("CS-E2", ws)
        task = asyncio.ensure_future(station.start())
        boot = await station.call(
            call201.BootNotification(
                charging_station={"model": "M", "vendorName": "V", "serialNumber": "SN-2"},
                reason="PowerUp",
            )
        )
        assert boot.status == "Accepted" and boot.interval == 60
        token = {"idToken": "TAG-OK", "type": "ISO14443"}
        auth = await station.call(call201.Authorize(id_token=token))
        assert auth.id_token_info == {"status": "Accepted"}
        bad = await station.call(call201.Authorize(id_token={**token, "idToken": "TAG-NO"}))
        assert bad.id_token_info == {"status": "Invalid"}
        for seq, (event, reason) in enumerate(
            [("Started", "Authorized"), ("Updated", "MeterValuePeriodic"), ("Ended", "EVDeparted")]
        ):
            await station.call(
                call201.TransactionEvent(
                    event_type=event,
                    timestamp=NOW,
                    trigger_reason=reason,
                    seq_no=seq,
                    transaction_info={"transactionId": "tx-1"},
                    id_token=token if event == "Started" else None,
                )
            )
        assert await asyncio.wait_for(station.resets.get(), TIMEOUT) == "OnIdle"
        return ws, task

    ws, task = await aio(session())
    [params] = _seen("subscribed", "CS-E2")
    assert params == {
        "channel": "OCPPChannel",
        "id": "CS-E2",
        "sn": "SN-2",
        "protocol": "ocpp2.0.1",
    }
    events = [data["payload"]["eventType"] for data in _seen("transaction_event", "CS-E2")]
    assert events == ["Started", "Updated", "Ended"]
    [ack] = await wait_for(lambda: _seen("ack", "CS-E2"), reactor)
    assert (ack["id"], ack["command"], ack["payload"]) == (
        "reset-2",
        "Reset",
        {"status": "Accepted"},
    )

    async def close() -> None:
        await ws.close()
        task.cancel()

    await aio(close())
    await wait_for(lambda: _seen("disconnect", "CS-E2"), reactor)
    assert _seen("unsubscribed", "CS-E2") == [{"protocol": "ocpp2.0.1"}]


@pytest_twisted.ensureDeferred
async def test_a_refused_station_is_closed_after_a_rejected_boot(start_gateway, reactor):
    gateway = await start_gateway(TARGET)
    conn = await aio(open_station(gateway.url("CP-E3") + "?token=bad", "CP-E3"))

    async def boot() -> Any:
        return await conn.station.call(
            call.BootNotification(charge_point_model="M", charge_point_vendor="V")
        )

    try:
        assert (await aio(boot())).status == "Rejected"
    finally:
        await aio(conn.close())
    assert not _seen("subscribed", "CP-E3")


@pytest_twisted.ensureDeferred
async def test_twistd_runs_a_python_channel_as_operators_start_it(reactor, monkeypatch):
    """The module is found on PYTHONPATH, as an operator's package not installed would be."""
    port = free_port()
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    process = twistd(TARGET, f"--port={port}", "--host=127.0.0.1", "--http-broadcast-port=0")
    try:
        banner = await wait_output(process, reactor)
        assert "ChargingChannel" in banner[-1]
        ws = await aio(raw_socket(f"ws://127.0.0.1:{port}/ocpp/CP-T1"))
        boot = [2, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
        await aio(ws.send(json.dumps(boot)))
        assert json.loads(await aio(ws.recv()))[2]["interval"] == 60
        await aio(ws.send(json.dumps([2, "2", "Authorize", {"idTag": "TAG-OK"}])))
        assert json.loads(await aio(ws.recv())) == [3, "2", {"idTagInfo": {"status": "Accepted"}}]
        await aio(ws.close())
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process, reactor) == 0
        assert "Traceback" not in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()

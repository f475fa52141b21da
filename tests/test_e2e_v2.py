"""OCPP 2.0.1 and 2.1 stations (PyPI ``ocpp`` clients) beside 1.6 ones on one gateway."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import pytest_twisted
import websockets
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call as call21
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.exceptions import InvalidStatus

from tests.support import TIMEOUT, aio, open_station, raw_socket, wait_for

NOW = "2026-01-01T00:00:00Z"


class Station201(ChargePoint201):
    """A 2.0.1 station that accepts remote starts and reports them."""

    def __init__(self, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection, response_timeout=TIMEOUT)
        self.commands: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    @on("RequestStartTransaction")
    async def on_request_start_transaction(self, id_token, remote_start_id, **kwargs):
        await self.commands.put(("RequestStartTransaction", {"remoteStartId": remote_start_id}))
        return result201.RequestStartTransaction(status="Accepted")


async def _connect(cls, url: str, station_id: str, subprotocol: str):
    ws = await websockets.connect(url, subprotocols=[subprotocol], open_timeout=TIMEOUT)
    station = cls(station_id, ws)
    task = asyncio.ensure_future(station.start())
    return station, ws, task


async def _close(ws, task) -> None:
    await ws.close()
    task.cancel()


async def _gateway(start_gateway, backend, *args):
    return await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}", "--broadcast-adapter=http", *args
    )


def _boot201(serial: str | None = "SN-201"):
    station = {"model": "M", "vendorName": "V"}
    if serial:
        station["serialNumber"] = serial
    return call201.BootNotification(charging_station=station, reason="PowerUp")


@pytest_twisted.ensureDeferred
async def test_201_station_full_flow_and_remote_start(start_gateway, backend, reactor):
    gateway = await _gateway(start_gateway, backend)

    async def scenario():
        station, ws, task = await _connect(Station201, gateway.url("CS-201"), "CS-201", "ocpp2.0.1")
        assert ws.subprotocol == "ocpp2.0.1"
        boot = await station.call(_boot201())
        assert boot.status == "Accepted"
        token = {"idToken": "TAG-OK", "type": "ISO14443"}
        auth = await station.call(call201.Authorize(id_token=token))
        assert auth.id_token_info["status"] == "Accepted"
        for seq, (event, reason) in enumerate(
            [("Started", "Authorized"), ("Updated", "MeterValuePeriodic"), ("Ended", "EVDeparted")]
        ):
            reply = await station.call(
                call201.TransactionEvent(
                    event_type=event,
                    timestamp=NOW,
                    trigger_reason=reason,
                    seq_no=seq,
                    transaction_info={"transactionId": "tx-1"},
                    id_token=token if event == "Started" else None,
                )
            )
            assert reply is not None  # schema-validated by the client
        beat = await station.call(call201.Heartbeat())
        assert beat.current_time.endswith("Z")

        command = {
            "command": "RequestStartTransaction",
            "id": "rs-1",
            "payload": {"idToken": token, "remoteStartId": 7},
        }
        assert gateway.service.hub.publish("ocpp:ev/CS-201", json.dumps(command)) == 1
        assert await asyncio.wait_for(station.commands.get(), TIMEOUT) == (
            "RequestStartTransaction",
            {"remoteStartId": 7},
        )
        return ws, task

    ws, task = await aio(scenario())
    acks = await wait_for(lambda: backend.recorded("message", "ack"), reactor)
    assert acks[0].data == {
        "action": "ack",
        "id": "rs-1",
        "command": "RequestStartTransaction",
        "payload": {"status": "Accepted"},
    }
    subscribe = backend.recorded("subscribe")[0].request
    assert json.loads(subscribe.identifier) == {
        "channel": "OCPPChannel",
        "id": "CS-201",
        "sn": "SN-201",
        "protocol": "ocpp2.0.1",
    }
    assert subscribe.env.headers["sec-websocket-protocol"] == "ocpp2.0.1"
    actions = [c.action for c in backend.recorded("message")]
    assert actions[:5] == [
        "boot_notification",
        "authorize",
        "transaction_event",
        "transaction_event",
        "transaction_event",
    ]
    await aio(_close(ws, task))


@pytest_twisted.ensureDeferred
async def test_invalid_2x_command_is_reported_not_sent(start_gateway, backend, reactor):
    gateway = await _gateway(start_gateway, backend)

    async def scenario():
        ws = await raw_socket(gateway.url("CS-BADCMD"), subprotocols=("ocpp2.0.1",))
        await ws.send(json.dumps([2, "b", "BootNotification", _boot_payload()]))
        assert json.loads(await ws.recv())[:2] == [3, "b"]
        # RequestStartTransaction without the required remoteStartId
        bad = {"command": "RequestStartTransaction", "id": "x1", "payload": {"idToken": {}}}
        gateway.service.hub.publish("ocpp:ev/CS-BADCMD", json.dumps(bad))
        # Reset without its required "type": invalid too
        gateway.service.hub.publish("ocpp:ev/CS-BADCMD", json.dumps({"command": "Reset"}))
        # only the valid command reaches the station
        good = {"command": "Reset", "id": "r1", "payload": {"type": "Immediate"}}
        gateway.service.hub.publish("ocpp:ev/CS-BADCMD", json.dumps(good))
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert frame == [2, "r1", "Reset", {"type": "Immediate"}]
        await ws.close()

    await aio(scenario())

    # both reports are in flight at once: the backend's threads may record them in either order
    # (and the station's disconnect reports the Reset it left unanswered, r1)
    def invalid_reported() -> dict[tuple[str, str], str]:
        reported = [c.data for c in backend.recorded("message", "error")]
        return {(d["command"], d["code"]): d["id"] for d in reported if d["id"] != "r1"}

    invalid = await wait_for(lambda: len(invalid_reported()) >= 2 and invalid_reported(), reactor)
    assert invalid.keys() == {
        ("RequestStartTransaction", "OccurrenceConstraintViolation"),
        ("Reset", "OccurrenceConstraintViolation"),
    }
    assert invalid["RequestStartTransaction", "OccurrenceConstraintViolation"] == "x1"


def _boot_payload() -> dict[str, Any]:
    return {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}


@pytest_twisted.ensureDeferred
async def test_2x_error_codes(start_gateway, backend):
    gateway = await _gateway(start_gateway, backend)

    async def scenario():
        ws = await raw_socket(gateway.url("CS-ERR"), subprotocols=("ocpp2.0.1",))
        await ws.send("nonsense")
        assert json.loads(await ws.recv())[:3] == [4, "-1", "RpcFrameworkError"]
        await ws.send(json.dumps([2, "p", "Heartbeat", []]))
        assert json.loads(await ws.recv())[:3] == [4, "p", "FormatViolation"]
        await ws.send(json.dumps([2, "ok", "Heartbeat", {}]))  # 3 bad frames in a row close
        assert json.loads(await ws.recv())[:2] == [3, "ok"]
        await ws.send(json.dumps([7, "t", "Heartbeat", {}]))
        assert json.loads(await ws.recv())[:3] == [4, "t", "MessageTypeNotSupported"]
        await ws.send(json.dumps([2, "o", "BootNotification", {"reason": "PowerUp"}]))
        assert json.loads(await ws.recv())[:3] == [4, "o", "OccurrenceConstraintViolation"]
        await ws.send(json.dumps([2, "n", "StartTransaction", {}]))  # a 1.6 action
        assert json.loads(await ws.recv())[:3] == [4, "n", "NotImplemented"]
        await ws.close()

    await aio(scenario())
    assert not backend.calls


@pytest_twisted.ensureDeferred
async def test_21_station_boots_and_sends_unconfirmed_messages(start_gateway, backend, reactor):
    gateway = await _gateway(start_gateway, backend)

    async def scenario():
        station, ws, task = await _connect(ChargePoint21, gateway.url("CS-21"), "CS-21", "ocpp2.1")
        assert ws.subprotocol == "ocpp2.1"
        boot = await station.call(
            call21.BootNotification(
                charging_station={"model": "M", "vendorName": "V", "serialNumber": "SN-21"},
                reason="PowerUp",
            )
        )
        assert boot.status == "Accepted"
        await _close(ws, task)

        # SEND (type 6) is performed without any reply; a CALLRESULTERROR (5) is only logged
        ws = await raw_socket(gateway.url("CS-21"), subprotocols=("ocpp2.1",))
        stream = {"id": 1, "pending": 0, "basetime": NOW, "data": [{"t": 0.0, "v": "1"}]}
        await ws.send(json.dumps([6, "s1", "NotifyPeriodicEventStream", stream]))
        await ws.send(json.dumps([5, "z", "InternalError", "bad reply", {}]))
        await ws.send(json.dumps([2, "h", "Heartbeat", {}]))
        assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))[:2] == [3, "h"]
        return ws

    ws = await aio(scenario())
    sends = await wait_for(
        lambda: backend.recorded("message", "notify_periodic_event_stream"), reactor
    )
    assert sends[0].data["command"] == "NotifyPeriodicEventStream"
    assert json.loads(backend.recorded("subscribe")[0].request.identifier)["protocol"] == "ocpp2.1"
    await aio(ws.close())


@pytest_twisted.ensureDeferred
async def test_mixed_versions_on_one_gateway(start_gateway, backend):
    gateway = await _gateway(start_gateway, backend)

    async def scenario():
        old = await open_station(gateway.url("CP-16"), "CP-16")
        new, ws, task = await _connect(Station201, gateway.url("CS-20"), "CS-20", "ocpp2.0.1")
        newest, ws21, task21 = await _connect(
            ChargePoint21, gateway.url("CS-21"), "CS-21", "ocpp2.1"
        )
        replies = await asyncio.gather(
            old.station.call(
                call16.BootNotification(charge_point_model="M", charge_point_vendor="V")
            ),
            new.call(_boot201()),
            newest.call(
                call21.BootNotification(
                    charging_station={"model": "M", "vendorName": "V"}, reason="PowerUp"
                )
            ),
        )
        assert [r.status for r in replies] == ["Accepted"] * 3
        await old.close()
        await _close(ws, task)
        await _close(ws21, task21)

    await aio(scenario())
    identifiers = sorted(c.request.identifier for c in backend.recorded("subscribe"))
    assert identifiers == [
        '{"channel":"OCPPChannel","id":"CP-16"}',
        '{"channel":"OCPPChannel","id":"CS-20","sn":"SN-201","protocol":"ocpp2.0.1"}',
        '{"channel":"OCPPChannel","id":"CS-21","protocol":"ocpp2.1"}',
    ]


@pytest_twisted.ensureDeferred
async def test_subprotocol_choice_follows_station_order_and_versions_flag(start_gateway, backend):
    gateway = await _gateway(start_gateway, backend)
    restricted = await _gateway(start_gateway, backend, "--ocpp-versions=ocpp1.6")

    async def scenario():
        ws = await raw_socket(gateway.url("CS-O"), subprotocols=("ocpp1.6", "ocpp2.0.1"))
        assert ws.subprotocol == "ocpp1.6"
        await ws.close()
        ws = await raw_socket(gateway.url("CS-O"), subprotocols=("ocpp2.1", "ocpp1.6"))
        assert ws.subprotocol == "ocpp2.1"
        await ws.close()
        with pytest.raises(InvalidStatus) as refused:
            await raw_socket(restricted.url("CS-O"), subprotocols=("ocpp2.0.1",))
        assert refused.value.response.status_code == 400

    await aio(scenario())

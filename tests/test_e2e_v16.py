"""OCPP 1.6 stations through the gateway to a real gRPC backend and a real Redis."""

from __future__ import annotations

import json

import pytest_twisted
from ocpp.v16 import call

from tests.support import aio, open_station, wait_for


async def _gateway(start_gateway, backend, redis_server, *args):
    return await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}",
        f"--redis-url={redis_server.url}",
        "--redis-channel=__anycable_e2e__",
        *args,
    )


@pytest_twisted.ensureDeferred
async def test_charging_session_and_remote_command(start_gateway, backend, redis_server, reactor):
    gateway = await _gateway(start_gateway, backend, redis_server)
    await wait_for(lambda: redis_server.subscribers("__anycable_e2e__") == 1, reactor)
    conn = await aio(open_station(gateway.url("CP-1"), "CP-1"))
    cp = conn.station

    boot = await aio(
        cp.call(
            call.BootNotification(
                charge_point_model="M1", charge_point_vendor="V", meter_serial_number="SN-1"
            )
        )
    )
    assert boot.status == "Accepted" and boot.interval == 60
    auth = await aio(cp.call(call.Authorize(id_tag="TAG-OK")))
    assert auth.id_tag_info["status"] == "Accepted"
    start = await aio(
        cp.call(
            call.StartTransaction(
                connector_id=1, id_tag="TAG-OK", meter_start=0, timestamp="2026-01-01T00:00:00Z"
            )
        )
    )
    assert start.transaction_id == 1
    values = await aio(
        cp.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=1,
                meter_value=[
                    {"timestamp": "2026-01-01T00:01:00Z", "sampledValue": [{"value": "10"}]}
                ],
            )
        )
    )
    assert values is not None  # {} (default reply), schema-validated by the client
    stop = await aio(
        cp.call(
            call.StopTransaction(meter_stop=10, timestamp="2026-01-01T00:02:00Z", transaction_id=1)
        )
    )
    assert stop is not None
    heartbeat = await aio(cp.call(call.Heartbeat()))
    assert heartbeat.current_time.endswith("Z")

    # every step reached the backend, in order, as Action Cable calls
    methods = [c.method for c in backend.calls]
    assert methods[:2] == ["connect", "subscribe"]
    actions = [c.action for c in backend.recorded("message")]
    assert actions == [
        "boot_notification", "authorize", "start_transaction", "meter_values", "stop_transaction"
    ]  # fmt: skip
    assert all(c.meta["protov"] == "v1" and c.meta["sid"] for c in backend.calls)
    subscribe = backend.recorded("subscribe")[0].request
    assert subscribe.identifier == '{"channel":"OCPPChannel","id":"CP-1","sn":"SN-1"}'
    boot_data = backend.recorded("message", "boot_notification")[0].data
    assert boot_data["command"] == "BootNotification" and boot_data["payload"]["meterSerialNumber"]

    # the backend broadcasts a remote command to the station's stream through Redis
    redis_server.publish(
        "__anycable_e2e__",
        {
            "stream": "ocpp:ev/SN-1",
            "data": json.dumps(
                {
                    "command": "TriggerMessage",
                    "id": "trig-1",
                    "payload": {"requestedMessage": "Heartbeat"},
                }
            ),
        },
    )
    command = await aio(cp.commands.get())
    assert command == ("TriggerMessage", {"requestedMessage": "Heartbeat"})
    acks = await wait_for(lambda: backend.recorded("message", "ack"), reactor)
    assert acks[0].data == {
        "action": "ack", "id": "trig-1", "command": "TriggerMessage", "payload": {"status": "Accepted"}
    }  # fmt: skip

    await aio(conn.close())
    disconnects = await wait_for(lambda: backend.recorded("disconnect"), reactor)
    request = disconnects[0].request
    assert json.loads(request.identifiers) == {"station_id": "CP-1"}
    assert list(request.subscriptions) == [subscribe.identifier]
    assert json.loads(request.env.istate[subscribe.identifier]) == {"station_id": "CP-1"}

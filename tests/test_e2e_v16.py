"""OCPP 1.6 stations through the gateway to a real gRPC backend and a real Redis."""

from __future__ import annotations

import json
import time

import pytest
import pytest_twisted
from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from websockets.exceptions import InvalidStatus

from ocppcable.protos.rpc_pb2 import ERROR, FAILURE, SUCCESS, CommandResponse
from tests.support import (
    CHARGING_ACTIONS,
    RedisServer,
    aio,
    charging_session,
    free_port,
    open_station,
    raw_socket,
    wait_for,
)


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

    await aio(charging_session(cp))
    heartbeat = await aio(cp.call(call.Heartbeat()))
    assert heartbeat.current_time.endswith("Z")

    # every step reached the backend, in order, as Action Cable calls
    methods = [c.method for c in backend.calls]
    assert methods[:2] == ["connect", "subscribe"]
    actions = [c.action for c in backend.recorded("message")]
    assert actions == CHARGING_ACTIONS
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


async def _booted(gateway, station_id, serial="SN-X"):
    conn = await aio(open_station(gateway.url(station_id), station_id))
    boot = await aio(
        conn.station.call(
            call.BootNotification(
                charge_point_model="M", charge_point_vendor="V", meter_serial_number=serial
            )
        )
    )
    assert boot.status == "Accepted"
    return conn


async def _call_error(cp, payload):
    """The CallError exception the station gets for ``payload``."""
    try:
        await aio(cp.call(payload, suppress=False))
    except OCPPError as e:
        return e
    raise AssertionError("expected a CALLERROR")


@pytest_twisted.ensureDeferred
async def test_default_replies_and_backend_replies(start_gateway, backend, redis_server):
    gateway = await _gateway(start_gateway, backend, redis_server)
    conn = await _booted(gateway, "CP-D")
    cp = conn.station
    # notifications and DataTransfer: schema-valid defaults (the client validates them)
    status = await aio(
        cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
    )
    assert status is not None
    transfer = await aio(cp.call(call.DataTransfer(vendor_id="acme")))
    assert transfer.status == "Accepted"
    # Authorize with no backend reply: only the backend may decide → InternalError
    backend.replies["authorize"] = lambda request: CommandResponse(status=SUCCESS)
    error = await _call_error(cp, call.Authorize(id_tag="X"))
    assert error.code == "InternalError" and "no reply" in error.description
    # a backend Error transmission becomes the CALLERROR
    backend.replies["authorize"] = lambda request: CommandResponse(
        status=SUCCESS,
        transmissions=[
            json.dumps(
                {
                    "identifier": request.identifier,
                    "message": {
                        "command": "Error",
                        "id": json.loads(request.data)["id"],
                        "error_code": "SecurityError",
                        "error_message": "blocked tag",
                    },
                }
            )
        ],
    )
    error = await _call_error(cp, call.Authorize(id_tag="X"))
    assert (error.code, error.description) == ("SecurityError", "blocked tag")
    # FAILURE status → GenericError; ERROR status → InternalError
    backend.replies.clear()
    backend.message_status = FAILURE
    error = await _call_error(cp, call.DataTransfer(vendor_id="acme"))
    assert error.code == "GenericError"
    backend.message_status = ERROR
    error = await _call_error(cp, call.DataTransfer(vendor_id="acme"))
    assert error.code == "InternalError"
    await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_heartbeat_needs_no_rpc(start_gateway, backend, redis_server):
    gateway = await _gateway(start_gateway, backend, redis_server)
    conn = await aio(open_station(gateway.url("CP-H"), "CP-H"))
    for _ in range(3):
        reply = await aio(conn.station.call(call.Heartbeat()))
        assert reply.current_time.endswith("Z")
    assert not backend.calls
    await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_station_callerror_becomes_error_action(
    start_gateway, backend, redis_server, reactor
):
    gateway = await _gateway(start_gateway, backend, redis_server)
    await wait_for(lambda: redis_server.subscribers("__anycable_e2e__") == 1, reactor)
    conn = await _booted(gateway, "CP-E", serial="SN-E")
    # the PyPI client has no UnlockConnector handler: it answers NotImplemented
    redis_server.publish(
        "__anycable_e2e__",
        {
            "stream": "ocpp:ev/CP-E",
            "data": json.dumps({"command": "UnlockConnector", "payload": {"connectorId": 1}}),
        },
    )
    errors = await wait_for(lambda: backend.recorded("message", "error"), reactor)
    data = errors[0].data
    assert data["command"] == "UnlockConnector" and data["code"] == "NotImplemented"
    assert len(data["id"]) == 36  # generated UUID4 when the backend gave none
    assert set(data) == {"action", "id", "command", "code", "message", "payload"}
    await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_rejected_connect_rejects_boot_and_closes(
    start_gateway, backend, redis_server, reactor
):
    backend.connect_status = FAILURE
    gateway = await _gateway(start_gateway, backend, redis_server)
    ws = await aio(raw_socket(gateway.url("CP-R")))
    await aio(
        ws.send(
            json.dumps(
                [2, "b1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
            )
        )
    )
    reply = json.loads(await aio(ws.recv()))
    assert reply[:2] == [3, "b1"] and reply[2]["status"] == "Rejected"
    assert set(reply[2]) == {"status", "currentTime", "interval"}
    await aio(ws.wait_closed())
    assert ws.close_code == 1008
    assert [c.method for c in backend.calls] == ["connect"]  # no Disconnect after a failed Connect


@pytest_twisted.ensureDeferred
async def test_unreachable_backend_answers_internal_error_in_time(start_gateway, redis_server):
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{free_port()}",
        "--rpc-timeout=1",
        f"--redis-url={redis_server.url}",
    )
    conn = await aio(open_station(gateway.url("CP-U"), "CP-U"))
    started = time.monotonic()
    error = await _call_error(
        conn.station, call.BootNotification(charge_point_model="M", charge_point_vendor="V")
    )
    assert error.code == "InternalError"
    assert time.monotonic() - started < 2.0
    await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_broadcasts_resume_after_redis_restart(start_gateway, backend, reactor):
    redis = RedisServer()
    redis.start()
    try:
        gateway = await start_gateway(
            f"--rpc-host=127.0.0.1:{backend.port}", f"--redis-url={redis.url}"
        )
        await wait_for(lambda: redis.subscribers("__anycable__") == 1, reactor)
        conn = await _booted(gateway, "CP-RR")
        redis.stop()
        redis.start()  # same port, empty server: the gateway must resubscribe by itself
        await wait_for(lambda: redis.subscribers("__anycable__") == 1, reactor)
        redis.publish(
            "__anycable__",
            {
                "stream": "ocpp:ev/CP-RR",
                "data": json.dumps({"command": "Reset", "id": "r-1", "payload": {"type": "Soft"}}),
            },
        )
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Soft"})
        await wait_for(lambda: backend.recorded("message", "ack"), reactor)
        await aio(conn.close())
    finally:
        redis.stop()


@pytest_twisted.ensureDeferred
async def test_handshake_refusals(start_gateway, backend, redis_server):
    gateway = await _gateway(start_gateway, backend, redis_server)
    with pytest.raises(InvalidStatus) as refused:
        await aio(raw_socket(gateway.url("CP-1"), subprotocols=("mqtt",)))
    assert refused.value.response.status_code == 400
    for bad in ("bad%20id", "a" * 49, "x/y"):
        with pytest.raises(InvalidStatus) as refused:
            await aio(raw_socket(gateway.url(bad)))
        assert refused.value.response.status_code == 404
    ws = await aio(raw_socket(gateway.url("CP%3A1")))  # percent-decoded: "CP:1" is valid
    assert ws.subprotocol == "ocpp1.6"
    await aio(ws.close())


@pytest_twisted.ensureDeferred
async def test_idle_station_is_closed(start_gateway, backend, redis_server):
    gateway = await _gateway(start_gateway, backend, redis_server, "--ocpp-idle-timeout=0.3")
    ws = await aio(raw_socket(gateway.url("CP-I")))
    await aio(ws.wait_closed())
    assert (ws.close_code, ws.close_reason) == (1000, "idle")
    assert not backend.calls


@pytest_twisted.ensureDeferred
async def test_second_connection_replaces_the_first(start_gateway, backend, redis_server, reactor):
    gateway = await _gateway(start_gateway, backend, redis_server)
    first = await _booted(gateway, "CP-T")
    second = await _booted(gateway, "CP-T")
    await aio(first.ws.wait_closed())
    assert (first.ws.close_code, first.ws.close_reason) == (1000, "replaced")
    await wait_for(lambda: len(backend.recorded("disconnect")) == 1, reactor)
    assert gateway.service.hub.station("CP-T") is not None
    await aio(second.close())
    await wait_for(lambda: len(backend.recorded("disconnect")) == 2, reactor)


@pytest_twisted.ensureDeferred
async def test_backend_disconnect_flag_closes_after_reply(start_gateway, backend, redis_server):
    gateway = await _gateway(start_gateway, backend, redis_server)
    conn = await _booted(gateway, "CP-X")
    backend.replies["data_transfer"] = lambda request: CommandResponse(
        status=SUCCESS, disconnect=True
    )
    reply = await aio(conn.station.call(call.DataTransfer(vendor_id="acme")))
    assert reply.status == "Accepted"
    await aio(conn.ws.wait_closed())
    assert conn.ws.close_code == 1000


@pytest_twisted.ensureDeferred
async def test_non_granular_actions_go_to_receive(start_gateway, backend, redis_server):
    gateway = await _gateway(start_gateway, backend, redis_server, "--ocpp-granular-actions=false")
    conn = await aio(open_station(gateway.url("CP-G"), "CP-G"))
    await aio(
        conn.station.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Available")
        )
    )
    (message,) = backend.recorded("message")
    assert message.data["action"] == "receive" and message.data["command"] == "StatusNotification"
    # the first CALL was not a boot: the session started anyway, without "sn"
    assert (
        backend.recorded("subscribe")[0].request.identifier
        == '{"channel":"OCPPChannel","id":"CP-G"}'
    )
    await aio(conn.close())

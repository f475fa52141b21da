"""The call API end to end: HTTP requests to the gateway, stations driven by the PyPI ``ocpp``
client over real sockets, the in-process demo backend seeing every answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred
from twisted.python.usage import UsageError

from ocppcable import keys
from ocppcable.api.models import Limits
from ocppcable.api.openapi import OPENAPI
from ocppcable.options import Options
from tests.support import (
    KEY,
    SECRET,
    TIMEOUT,
    aio,
    api,
    backend_reports,
    booted,
    calls_path,
    raw_socket,
    wait_for,
)


@pytest.fixture
def api_gateway(start_gateway):
    """``await api_gateway(*args)``: the demo backend, the call API on the main port."""

    async def start(*args: str) -> Any:
        return await start_gateway(
            "--rpc-host=demo", f"--api-key={KEY}", "--broadcast-adapter=http", *args
        )

    return start


# --- outcomes -----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_result_reaches_the_request_and_the_backend(api_gateway, reactor):
    gateway = await api_gateway()
    conn = await booted(gateway)
    try:
        request = {"action": "Reset", "payload": {"type": "Soft"}, "wait": 5}
        status, body = await api(reactor, gateway.port, "POST", calls_path(), request)
        assert status == 200
        assert body == {
            "station": "CP-1",
            "id": body["id"],
            "action": "Reset",
            "outcome": "result",
            "payload": {"status": "Accepted"},
        }
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Soft"})
        [ack] = await wait_for(lambda: backend_reports(gateway, body["id"]), reactor)
        assert ack == {
            "action": "ack",
            "id": body["id"],
            "command": "Reset",
            "payload": {"status": "Accepted"},
            "source": "api",
        }
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_a_callerror_is_an_error_outcome(api_gateway, reactor):
    gateway = await api_gateway()
    conn = await booted(gateway)
    try:
        request = {"action": "ChangeConfiguration", "payload": {"key": "X", "value": "1"}}
        status, body = await api(reactor, gateway.port, "POST", calls_path(), request)
        assert status == 200
        assert body["outcome"] == "error"
        assert body["code"] == "NotSupported"
        assert body["description"] == "no such key"
        assert body["details"] == {"key": "X"}
        [error] = await wait_for(lambda: backend_reports(gateway, body["id"]), reactor)
        assert error["action"] == "error" and error["code"] == "NotSupported"
        assert error["source"] == "api"
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_timeout_leaves_the_call_pending_and_the_late_answer_reaches_the_backend(
    api_gateway, reactor
):
    gateway = await api_gateway()
    conn = await booted(gateway)
    try:
        conn.station.hold.clear()
        request = {"action": "GetConfiguration", "wait": 0.3}
        status, body = await api(reactor, gateway.port, "POST", calls_path(), request)
        assert status == 504
        assert body == {
            "station": "CP-1",
            "id": body["id"],
            "action": "GetConfiguration",
            "outcome": "timeout",
        }
        assert backend_reports(gateway, body["id"]) == []
        conn.station.hold.set()
        [ack] = await wait_for(lambda: backend_reports(gateway, body["id"]), reactor)
        assert ack["payload"]["configurationKey"][0]["key"] == "HeartbeatInterval"
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_wait_zero_is_sent(api_gateway, reactor):
    gateway = await api_gateway()
    conn = await booted(gateway)
    try:
        request = {"action": "Reset", "payload": {"type": "Hard"}, "wait": 0}
        status, body = await api(reactor, gateway.port, "POST", calls_path(), request)
        assert (status, body["outcome"]) == (202, "sent")
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Hard"})
        await wait_for(lambda: backend_reports(gateway, body["id"]), reactor)
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_an_offline_station_without_ttl_is_404(api_gateway, reactor):
    gateway = await api_gateway()
    request = {"action": "Reset", "payload": {"type": "Soft"}}
    status, body = await api(reactor, gateway.port, "POST", calls_path("CP-9"), request)
    assert status == 404
    assert body == {"station": "CP-9", "id": body["id"], "action": "Reset", "outcome": "offline"}


@pytest.mark.parametrize(
    ("request_body", "error"),
    [
        ({"action": "Launch"}, "Launch is not a command of"),
        ({"action": "Reset", "payload": {"type": "Medium"}}, "type must be one of"),
        ({"action": "Reset", "payload": {"type": "Soft"}, "wait": -1}, "wait must be between"),
        ({"action": "Reset", "payload": {"type": "Soft"}, "wait": 1e9}, "wait must be between"),
        ({"action": "Reset", "payload": {"type": "Soft"}, "ttl": "1h"}, "ttl must be a number"),
        ({"action": "Reset", "payload": {"type": "Soft"}, "tll": 5}, "unknown field 'tll'"),
        ({"payload": {}}, "action must be"),
        (b"not json", "the body is not JSON"),
        (b"[]", "the body is not a JSON object"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_invalid_requests_are_422(api_gateway, reactor, request_body, error):
    gateway = await api_gateway()
    conn = await booted(gateway)
    try:
        status, body = await api(reactor, gateway.port, "POST", calls_path(), request_body)
        assert status == 422
        assert body["outcome"] == "invalid" and body["station"] == "CP-1"
        assert {"id", "action"} <= set(body)
        assert any(error in e for e in body["errors"]), body["errors"]
        assert conn.station.commands.empty()
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_a_command_of_another_version_is_invalid_for_the_station(api_gateway, reactor):
    gateway = await api_gateway()
    conn = await booted(gateway)
    try:
        request = {"action": "GetVariables", "payload": {"getVariableData": []}}
        status, body = await api(reactor, gateway.port, "POST", calls_path(), request)
        assert status == 422
        assert body["errors"] == ["GetVariables is not a command of ocpp1.6"]
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_a_201_station_is_called_with_201_commands(api_gateway, reactor):
    gateway = await api_gateway()
    ws = await aio(raw_socket(gateway.url("CS-2"), subprotocols=("ocpp2.0.1",)))
    try:
        boot = {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}
        await aio(ws.send(json.dumps([2, "b", "BootNotification", boot])))
        assert json.loads(await aio(ws.recv()))[:2] == [3, "b"]
        status, one = await api(reactor, gateway.port, "GET", "/_ocpp/stations/CS-2")
        assert one["protocol"] == "ocpp2.0.1"
        soft = {"action": "Reset", "payload": {"type": "Soft"}}  # 1.6's, not 2.0.1's
        status, body = await api(reactor, gateway.port, "POST", calls_path("CS-2"), soft)
        assert status == 422 and body["errors"][0].startswith("ocpp2.0.1: data.type must be")
        reset = {"action": "Reset", "payload": {"type": "Immediate"}}
        answer = ensureDeferred(api(reactor, gateway.port, "POST", calls_path("CS-2"), reset))
        frame = json.loads(await aio(asyncio.wait_for(ws.recv(), TIMEOUT)))
        assert frame[2:] == ["Reset", {"type": "Immediate"}]
        await aio(ws.send(json.dumps([3, frame[1], {"status": "Scheduled"}])))
        status, body = await answer
        assert (status, body["id"], body["payload"]) == (200, frame[1], {"status": "Scheduled"})
    finally:
        await aio(ws.close())


# --- the queue ---------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_queued_commands_are_delivered_in_order_when_the_station_boots(api_gateway, reactor):
    gateway = await api_gateway()
    ids = []
    for kind in ("Soft", "Hard"):
        request = {"action": "Reset", "payload": {"type": kind}, "ttl": 60}
        status, body = await api(reactor, gateway.port, "POST", calls_path("CP-Q"), request)
        assert (status, body["outcome"]) == (202, "queued")
        ids.append(body["id"])
    conn = await booted(gateway, "CP-Q")
    try:
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Soft"})
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Hard"})
        acks = await wait_for(
            lambda: (
                all(backend_reports(gateway, i) for i in ids)
                and [backend_reports(gateway, i)[0] for i in ids]
            ),
            reactor,
        )
        assert all(ack["source"] == "api" for ack in acks)
        assert all(ack["payload"] == {"status": "Accepted"} for ack in acks)
        await wait_for(lambda: gateway.service.getServiceNamed("call-api").queue.depth() == 0, reactor)  # fmt: skip
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_the_same_key_within_its_ttl_is_delivered_once(api_gateway, reactor):
    gateway = await api_gateway()
    request = {"action": "Reset", "payload": {"type": "Soft"}, "ttl": 60, "key": "reset-42"}
    first = await api(reactor, gateway.port, "POST", calls_path("CP-K"), request)
    again = await api(reactor, gateway.port, "POST", calls_path("CP-K"), request)
    assert first[0] == again[0] == 202
    assert first[1] == again[1]  # the same id, still queued
    conn = await booted(gateway, "CP-K")
    try:
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Soft"})
        after = await api(reactor, gateway.port, "POST", calls_path("CP-K"), request)
        assert after[0] == 202 and after[1]["outcome"] == "sent"
        assert after[1]["id"] == first[1]["id"]
        # the next command the station sees is a new one: the key's was not sent twice
        marker = {"action": "Reset", "payload": {"type": "Hard"}}
        assert (await api(reactor, gateway.port, "POST", calls_path("CP-K"), marker))[0] == 200
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Hard"})
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_an_expired_command_is_reported_to_the_backend_and_never_sent(api_gateway, reactor):
    gateway = await api_gateway()
    calls = gateway.service.getServiceNamed("call-api")
    request = {"action": "Reset", "payload": {"type": "Soft"}, "ttl": 0.2}
    status, body = await api(reactor, gateway.port, "POST", calls_path("CP-E"), request)
    assert (status, body["outcome"]) == (202, "queued")
    await wait_for(lambda: calls.queue.depth() == 0, reactor)
    conn = await booted(gateway, "CP-E")
    try:
        [error] = await wait_for(lambda: backend_reports(gateway, body["id"]), reactor)
        assert error["action"] == "error" and error["code"] == "Expired"
        assert error["command"] == "Reset" and error["source"] == "api"
        marker = {"action": "Reset", "payload": {"type": "Hard"}}
        assert (await api(reactor, gateway.port, "POST", calls_path("CP-E"), marker))[0] == 200
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Hard"})
        metrics = gateway.service.metrics.exposition().decode()
        assert "ocppcable_api_queue_expired_total 1.0" in metrics
        assert 'ocppcable_api_calls_total{outcome="queued"} 1.0' in metrics
        assert 'ocppcable_api_calls_total{outcome="result"} 1.0' in metrics
        assert "ocppcable_api_queue_depth 0.0" in metrics
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_a_full_station_queue_refuses_with_429(api_gateway, reactor):
    gateway = await api_gateway()
    calls = gateway.service.getServiceNamed("call-api")
    calls.queue.queues.per_station = 2
    request = {"action": "Reset", "payload": {"type": "Soft"}, "ttl": 60}
    outcomes = [
        await api(reactor, gateway.port, "POST", calls_path("CP-F"), request) for _ in range(3)
    ]
    assert [status for status, _ in outcomes] == [202, 202, 429]
    assert outcomes[2][1]["outcome"] == "refused"
    assert "the queue for CP-F is full" in outcomes[2][1]["errors"][0]


@pytest_twisted.ensureDeferred
async def test_a_broadcast_with_a_ttl_waits_for_an_offline_station(api_gateway, reactor):
    gateway = await api_gateway()
    conn = await booted(gateway, "CP-B")
    await aio(conn.close())
    await wait_for(lambda: gateway.service.hub.station("CP-B") is None, reactor)
    data = {"command": "Reset", "id": "bc-1", "payload": {"type": "Soft"}, "ttl": 60}
    publication = {"stream": "ocpp:ev/CP-B", "data": json.dumps(data)}
    broadcast = await start_broadcaster(gateway)
    assert (await api(reactor, broadcast, "POST", "/_broadcast", publication, key=None))[0] == 201
    calls = gateway.service.getServiceNamed("call-api")
    assert calls.queue.depth() == 1
    conn = await booted(gateway, "CP-B")
    try:
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Soft"})
        [ack] = await wait_for(lambda: backend_reports(gateway, "bc-1"), reactor)
        assert ack["action"] == "ack" and "source" not in ack
    finally:
        await aio(conn.close())


async def start_broadcaster(gateway: Any) -> int:
    """The port of the gateway's keyless HTTP broadcaster."""
    [listener] = gateway.service.getServiceNamed("broadcast-http")
    return (await listener.when_listening()).getHost().port


# --- batch --------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_batch_answers_each_station_with_partial_results(api_gateway, reactor):
    gateway = await api_gateway()
    fast = await booted(gateway, "CP-A")
    slow = await booted(gateway, "CP-B")
    try:
        slow.station.hold.clear()
        request = {"stations": ["CP-A", "CP-B", "CP-C"], "action": "GetConfiguration", "wait": 1}
        status, body = await api(reactor, gateway.port, "POST", "/_ocpp/calls", request)
        assert status == 200
        results = body["results"]
        assert results["CP-A"]["outcome"] == "result"
        assert results["CP-A"]["payload"]["configurationKey"][0]["value"] == "60"
        assert results["CP-B"]["outcome"] == "timeout"
        assert results["CP-C"]["outcome"] == "offline"
        assert {r["station"] for r in results.values()} == {"CP-A", "CP-B", "CP-C"}
        slow.station.hold.set()
        await wait_for(lambda: backend_reports(gateway, results["CP-B"]["id"]), reactor)
    finally:
        await aio(fast.close())
        await aio(slow.close())


@pytest.mark.parametrize(
    ("request_body", "error"),
    [
        ({"stations": [], "action": "Reset"}, "stations must be a non-empty list"),
        ({"stations": ["a b"], "action": "Reset"}, "not a station id"),
        ({"stations": ["A", "A"], "action": "Reset"}, "listed twice"),
        ({"stations": [f"S{i}" for i in range(1001)], "action": "Reset"}, "at most 1000"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_invalid_batches_are_422(api_gateway, reactor, request_body, error):
    gateway = await api_gateway()
    status, body = await api(reactor, gateway.port, "POST", "/_ocpp/calls", request_body)
    assert status == 422
    assert any(error in e for e in body["errors"]), body


# --- presence ----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_presence_lists_connected_stations_a_page_at_a_time(api_gateway, reactor):
    gateway = await api_gateway()
    conns = [await booted(gateway, f"CP-{n}") for n in (3, 1, 2)]
    try:
        status, first = await api(reactor, gateway.port, "GET", "/_ocpp/stations?limit=2")
        assert status == 200
        assert [s["id"] for s in first["stations"]] == ["CP-1", "CP-2"]
        assert first["next"] == "CP-2"
        status, rest = await api(reactor, gateway.port, "GET", "/_ocpp/stations?limit=2&after=CP-2")
        assert [s["id"] for s in rest["stations"]] == ["CP-3"] and rest["next"] is None
        status, one = await api(reactor, gateway.port, "GET", "/_ocpp/stations/CP-1")
        assert status == 200
        assert one["protocol"] == "ocpp1.6" and one["serial_number"] == "SN-CP-1"
        assert one["node"] and one["connected_since"].endswith("Z")
        assert one["last_frame_at"] >= one["connected_since"]
        status, body = await api(reactor, gateway.port, "GET", "/_ocpp/stations/CP-9")
        assert status == 404
        status, body = await api(reactor, gateway.port, "GET", "/_ocpp/stations?limit=0")
        assert status == 422
    finally:
        for conn in conns:
            await aio(conn.close())


# --- auth, where the API is, what it serves ------------------------------------------------------


@pytest.mark.parametrize("key", [None, "wrong", KEY.upper()])
@pytest_twisted.ensureDeferred
async def test_a_missing_or_wrong_key_is_401(api_gateway, reactor, key):
    gateway = await api_gateway()
    for method, path in (("GET", "/_ocpp/stations"), ("POST", calls_path())):
        status, body = await api(reactor, gateway.port, method, path, {"action": "Reset"}, key)
        assert status == 401 and body == {"errors": ["a valid Authorization: Bearer key is needed"]}


@pytest_twisted.ensureDeferred
async def test_the_key_is_derived_from_the_secret(start_gateway, reactor):
    gateway = await start_gateway("--rpc-host=demo", f"--secret={SECRET}")
    derived = keys.derive(SECRET, keys.API_PHRASE)
    assert (await api(reactor, gateway.port, "GET", "/_ocpp/stations", key=derived))[0] == 200
    assert (await api(reactor, gateway.port, "GET", "/_ocpp/stations", key=SECRET))[0] == 401


@pytest_twisted.ensureDeferred
async def test_without_a_key_and_not_in_demo_mode_the_api_is_off(start_gateway, backend, reactor):
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}", "--broadcast-adapter=http"
    )
    assert (await api(reactor, gateway.port, "GET", "/_ocpp/stations", key=None))[0] == 404
    assert "call-api" not in [s.name for s in gateway.service]


@pytest_twisted.ensureDeferred
async def test_in_demo_mode_without_a_key_it_is_beside_the_broadcaster(start_gateway, reactor):
    gateway = await start_gateway("--rpc-host=demo", "--broadcast-adapter=http")
    [listener] = gateway.service.getServiceNamed("broadcast-http")
    port = (await listener.when_listening()).getHost().port
    assert (await api(reactor, port, "GET", "/_ocpp/stations", key=None)) == (
        200,
        {"stations": [], "next": None},
    )
    assert (await api(reactor, gateway.port, "GET", "/_ocpp/stations", key=None))[0] == 404


@pytest.mark.parametrize("flag", ["--ocpp-path=/_ocpp/stations", "--http-broadcast-path=/_ocpp"])
def test_no_other_path_under_the_api(flag):
    with pytest.raises(UsageError, match=flag.split("=")[0] + " must not be under /_ocpp"):
        Options(environ={}).parseOptions(["--rpc-host=demo", flag])


@pytest.mark.parametrize("seconds", ["nan", "inf", "-inf"])
def test_a_number_of_seconds_that_is_not_finite_is_refused(seconds):
    with pytest.raises(UsageError, match=f"expected a finite number, got '{seconds}'"):
        Options(environ={}).parseOptions(["--rpc-host=demo", f"--api-presence-ttl={seconds}"])


@pytest_twisted.ensureDeferred
async def test_the_openapi_document_is_served(api_gateway, reactor):
    gateway = await api_gateway()
    status, body = await api(reactor, gateway.port, "GET", "/_ocpp/openapi.json")
    assert status == 200 and body == json.loads(json.dumps(OPENAPI))


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/_ocpp/stations/CP-1/calls", 405),
        ("POST", "/_ocpp/stations", 405),
        ("GET", "/_ocpp/calls", 405),
        ("GET", "/_ocpp/nothing", 404),
        ("GET", "/_ocpp/stations/CP-1/calls/more", 404),
    ],
)
@pytest_twisted.ensureDeferred
async def test_other_methods_and_paths(api_gateway, reactor, method, path, status):
    gateway = await api_gateway()
    assert (await api(reactor, gateway.port, method, path, b"{}"))[0] == status


# --- bounds --------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_body_over_the_limit_is_413(api_gateway, reactor):
    gateway = await api_gateway()
    big = {"action": "DataTransfer", "payload": {"vendorId": "V", "data": "x" * Limits().max_body}}
    status, _ = await api(reactor, gateway.port, "POST", calls_path(), big)
    assert status == 413
    conn = await booted(gateway)
    try:  # just under the limit it is read (and refused: over --max-message-size)
        big["payload"]["data"] = "x" * (Limits().max_body - 100)
        status, body = await api(reactor, gateway.port, "POST", calls_path(), big)
        assert status == 422 and "bytes exceeds 65536" in body["errors"][0]
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_too_many_waiting_requests_are_refused(api_gateway, reactor):
    gateway = await api_gateway()
    calls = gateway.service.getServiceNamed("call-api")
    calls.limits = Limits(max_waiting=1)
    conn = await booted(gateway)
    try:
        conn.station.hold.clear()
        slow = {"action": "GetConfiguration", "wait": 5}
        waiting = ensureDeferred(api(reactor, gateway.port, "POST", calls_path(), slow))
        await wait_for(lambda: calls.waiting == 1, reactor)
        request = {"action": "Reset", "payload": {"type": "Soft"}}
        status, body = await api(reactor, gateway.port, "POST", calls_path(), request)
        assert status == 429 and body["outcome"] == "refused"
        assert body["errors"] == ["1 requests already wait for stations"]
        conn.station.hold.set()
        assert (await waiting)[0] == 200
    finally:
        await aio(conn.close())

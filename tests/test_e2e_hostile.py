"""Bad input over real sockets (docs/contract.md, "Bad input"): refused precisely, never crashing or hurting others."""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest
import pytest_twisted
import websockets
from ocpp.v16 import call

from ocppcable.protos.rpc_pb2 import SUCCESS, CommandResponse
from tests.support import aio, open_station, raw_socket, wait_for

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


async def _gateway(start_gateway, backend, redis_server, *args):
    return await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}",
        f"--redis-url={redis_server.url}",
        "--redis-channel=__anycable_hostile__",
        *args,
    )


async def _exchange(ws, frame) -> list:
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def _closed(ws) -> tuple[int | None, str | None]:
    await asyncio.wait_for(ws.wait_closed(), 5)
    return ws.close_code, ws.close_reason


@pytest_twisted.ensureDeferred
async def test_refusals_by_kind(start_gateway, backend, redis_server):
    gateway = await _gateway(start_gateway, backend, redis_server)

    async def scenario():
        ws = await raw_socket(gateway.url("CP-BAD"))
        assert await _exchange(ws, "not json") == [
            4, "-1", "FormationViolation", "frame is not valid JSON", {}
        ]  # fmt: skip
        reply = await _exchange(ws, [2, "u1", "NoSuchAction", {}])
        assert reply[:3] == [4, "u1", "NotImplemented"]
        reply = await _exchange(
            ws, [2, "u2", "BootNotification", {"chargePointVendor": 7, "chargePointModel": "M"}]
        )
        assert reply[:3] == [4, "u2", "TypeConstraintViolation"]
        reply = await _exchange(ws, [2, "u3", "BootNotification", {"chargePointVendor": "V"}])
        assert reply[:3] == [4, "u3", "OccurenceConstraintViolation"]
        status = {"connectorId": 1, "errorCode": "Nope", "status": "Available"}
        reply = await _exchange(ws, [2, "u4", "StatusNotification", status])
        assert reply[:3] == [4, "u4", "PropertyConstraintViolation"]
        reply = await _exchange(ws, [2, "u5", "Heartbeat", {}, "extra"])
        assert reply[:3] == [4, "u5", "FormationViolation"]
        reply = await _exchange(ws, [9, "u6", "Heartbeat", {}])
        assert reply[:3] == [4, "u6", "FormationViolation"]
        # a reply to nothing is dropped: the next CALL is still answered normally
        await ws.send(json.dumps([3, "never-sent", {}]))
        reply = await _exchange(ws, [2, "u7", "Heartbeat", {}])
        assert reply[:2] == [3, "u7"]
        await ws.close()

        ws = await raw_socket(gateway.url("CP-BIN"))
        await ws.send(b"\x00\x01")
        assert (await _closed(ws))[0] == 1003

        ws = await raw_socket(gateway.url("CP-BIG"))
        await ws.send(json.dumps([2, "big", "DataTransfer", {"vendorId": "x" * 70_000}]))
        assert (await _closed(ws))[0] == 1009

        ws = await raw_socket(gateway.url("CP-3X"))
        for _ in range(3):
            await ws.send("[")
        assert (await _closed(ws))[0] == 1002

    await aio(scenario())
    assert not backend.calls  # none of it reached the backend


@pytest_twisted.ensureDeferred
async def test_duplicate_unique_id_in_flight(start_gateway, backend, redis_server):
    gateway = await _gateway(start_gateway, backend, redis_server)
    release = asyncio.Event()

    def slow(request):
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(5)
        return CommandResponse(status=SUCCESS)

    loop = asyncio.get_event_loop()
    backend.replies["data_transfer"] = slow

    async def scenario():
        ws = await raw_socket(gateway.url("CP-DUP"))
        frame = json.dumps([2, "same", "DataTransfer", {"vendorId": "v"}])
        await ws.send(frame)
        await ws.send(frame)
        assert json.loads(await ws.recv())[:3] == [4, "same", "ProtocolError"]
        release.set()
        assert json.loads(await ws.recv()) == [3, "same", {"status": "Accepted"}]
        await ws.close()

    await aio(scenario())


@pytest_twisted.ensureDeferred
async def test_flood_is_rate_limited(start_gateway, backend, redis_server):
    gateway = await _gateway(start_gateway, backend, redis_server, "--ocpp-rate-limit=5")

    async def scenario():
        ws = await raw_socket(gateway.url("CP-FLOOD"))
        for i in range(40):
            await ws.send(json.dumps([2, f"h{i}", "Heartbeat", {}]))
        replies = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(40)]
        refused = [r for r in replies if r[0] == 4]
        assert refused and all(r[2:4] == ["GenericError", "rate limit exceeded"] for r in refused)
        assert len(replies) - len(refused) <= 13  # the burst (2.5 × 5) and a little refill
        await ws.close()

    await aio(scenario())


@pytest_twisted.ensureDeferred
async def test_invalid_backend_replies_become_internal_error(start_gateway, backend, redis_server):
    gateway = await _gateway(start_gateway, backend, redis_server)

    def ack(payload):
        def reply(request):
            message = {"command": "Ack", "id": json.loads(request.data)["id"], "payload": payload}
            return CommandResponse(
                status=SUCCESS,
                transmissions=[json.dumps({"identifier": request.identifier, "message": message})],
            )

        return reply

    async def scenario():
        ws = await raw_socket(gateway.url("CP-IB"))
        assert (await _exchange(ws, [2, "b", "BootNotification", BOOT]))[0] == 3
        backend.replies["authorize"] = ack({"idTagInfo": {"status": "Maybe"}})  # not in the enum
        reply = await _exchange(ws, [2, "a1", "Authorize", {"idTag": "T"}])
        assert reply[:4] == [4, "a1", "InternalError", "malformed backend reply"]
        backend.replies["authorize"] = lambda request: CommandResponse(
            status=SUCCESS, transmissions=["{not json"]
        )
        reply = await _exchange(ws, [2, "a2", "Authorize", {"idTag": "T"}])
        assert reply[:4] == [4, "a2", "InternalError", "malformed backend reply"]
        await ws.close()

    await aio(scenario())


@pytest_twisted.ensureDeferred
async def test_deferred_reply_arrives_by_broadcast(start_gateway, backend, redis_server, reactor):
    gateway = await _gateway(start_gateway, backend, redis_server)
    await wait_for(lambda: redis_server.subscribers("__anycable_hostile__") == 1, reactor)

    def defer(request):
        message = {"command": "Defer", "id": json.loads(request.data)["id"]}
        return CommandResponse(
            status=SUCCESS,
            transmissions=[json.dumps({"identifier": request.identifier, "message": message})],
        )

    backend.replies["authorize"] = defer

    async def scenario():
        ws = await raw_socket(gateway.url("CP-DEF"))
        assert (await _exchange(ws, [2, "b", "BootNotification", BOOT]))[0] == 3
        await ws.send(json.dumps([2, "auth-1", "Authorize", {"idTag": "T"}]))
        await asyncio.sleep(0.2)  # the backend answered Defer: nothing is sent yet
        ack = {"command": "Ack", "id": "auth-1", "payload": {"idTagInfo": {"status": "Blocked"}}}
        publication = {"stream": "ocpp:ev/CP-DEF", "data": json.dumps(ack)}
        redis_server.publish("__anycable_hostile__", publication)
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply == [3, "auth-1", {"idTagInfo": {"status": "Blocked"}}]
        redis_server.publish("__anycable_hostile__", publication)  # a duplicate: dropped
        assert (await _exchange(ws, [2, "h", "Heartbeat", {}]))[:2] == [3, "h"]
        await ws.close()

    await aio(scenario())


def _mutations(seed: int):
    """Frames derived from valid ones by the kinds of damage real stations and attackers do."""
    rng = random.Random(seed)
    valid = [
        [2, "id", "BootNotification", BOOT],
        [2, "id", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}],
        [2, "id", "Heartbeat", {}],
        [3, "id", {"status": "Accepted"}],
        [4, "id", "GenericError", "x", {}],
    ]  # fmt: skip
    junk = [None, True, -1, 1.5, "", "x" * 40, [], {}, [[[]]], {"a": {"b": [1]}}, "\u00e9\u2603"]
    while True:
        frame = json.loads(json.dumps(rng.choice(valid)))
        frame[1] = rng.choice(["id", str(rng.random()), "", 7, "y" * 37])
        kind = rng.randrange(7)
        if kind == 0:
            text = json.dumps(frame)
            yield text[: rng.randrange(len(text))]
            continue
        if kind == 1:
            frame[rng.randrange(len(frame))] = rng.choice(junk)
        elif kind == 2:
            frame.append(rng.choice(junk))
        elif kind == 3 and len(frame) > 1:
            frame.pop()
        elif kind == 4 and isinstance(frame[-1], dict):
            frame[-1] = {rng.choice(["idTag", "status", "connectorId", "zzz"]): rng.choice(junk)}
        elif kind == 5:
            frame[0] = rng.choice([0, 1, 5, 6, 7, "2", None])
        yield json.dumps(frame)


@pytest_twisted.ensureDeferred
async def test_fuzz_does_not_affect_a_well_behaved_station(
    start_gateway, backend, redis_server, reactor
):
    gateway = await _gateway(start_gateway, backend, redis_server, "--ocpp-rate-limit=0")
    good = await aio(open_station(gateway.url("CP-GOOD"), "CP-GOOD"))
    await aio(
        good.station.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))
    )
    sent = 0
    done = asyncio.Event()

    async def attacker(n: int) -> None:
        nonlocal sent
        frames = _mutations(n)
        while sent < 2000:
            try:
                ws = await websockets.connect(gateway.url(f"CP-FUZZ-{n}"), subprotocols=["ocpp1.6"])
                drain = asyncio.ensure_future(_drain(ws))
                for frame in frames:
                    await ws.send(frame)
                    sent += 1
                    if sent >= 2000:
                        break
                await ws.close()
                drain.cancel()
            except websockets.ConnectionClosed:
                continue

    async def well_behaved() -> int:
        completed = 0
        while not done.is_set():
            started = time.monotonic()
            status = call.StatusNotification(
                connector_id=1, error_code="NoError", status="Charging"
            )
            await asyncio.wait_for(good.station.call(status), 3)
            await asyncio.wait_for(good.station.call(call.Heartbeat()), 3)
            assert time.monotonic() - started < 3
            completed += 1
        return completed

    async def scenario():
        station = asyncio.ensure_future(well_behaved())
        await asyncio.gather(*(attacker(n) for n in range(4)))
        done.set()
        return await station

    completed = await aio(scenario())
    assert sent >= 2000 and completed > 0
    # the gateway still serves new stations and the good one is still connected
    assert gateway.service.hub.station("CP-GOOD") is not None
    reply = await aio(good.station.call(call.Heartbeat()))
    assert reply.current_time
    await aio(good.close())


async def _drain(ws) -> None:
    try:
        async for _ in ws:
            pass
    except websockets.ConnectionClosed:
        pass


@pytest.fixture
def failures():
    """Tracebacks logged during the test (``log.failure``: critical events with a failure)."""
    from twisted.logger import globalLogPublisher

    events: list[dict] = []

    def observer(event: dict) -> None:
        if "log_failure" in event:
            events.append(event)

    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)


@pytest_twisted.ensureDeferred
async def test_lone_surrogate_is_refused_and_the_session_goes_on(
    start_gateway, backend, redis_server, failures
):
    gateway = await _gateway(start_gateway, backend, redis_server)

    async def scenario():
        ws = await raw_socket(gateway.url("CP-SUR"))
        assert (await _exchange(ws, [2, "b", "BootNotification", BOOT]))[0] == 3
        # json.dumps writes the lone surrogate as the escape "\ud800"
        reply = await _exchange(ws, [2, "s1", "DataTransfer", {"vendorId": "\ud800"}])
        assert reply[:3] == [4, "s1", "FormationViolation"]
        reply = await _exchange(ws, [2, "\udfff", "DataTransfer", {"vendorId": "v"}])
        assert reply[:3] == [4, "-1", "FormationViolation"]  # never echoed back
        # the session goes on: the next CALL reaches the backend and is answered at once
        started = time.monotonic()
        reply = await _exchange(ws, [2, "s2", "DataTransfer", {"vendorId": "v"}])
        assert reply == [3, "s2", {"status": "Accepted"}] and time.monotonic() - started < 2
        await ws.close()

    await aio(scenario())
    assert [c.data["id"] for c in backend.recorded("message", "data_transfer")] == ["s2"]
    assert not failures


@pytest_twisted.ensureDeferred
async def test_deep_nesting_is_refused_and_counted(start_gateway, backend, redis_server, failures):
    gateway = await _gateway(start_gateway, backend, redis_server)
    deep = "[" * 30_000 + "]" * 30_000  # 60 KB, under the frame size limit

    async def scenario():
        ws = await raw_socket(gateway.url("CP-DEEP"))
        nested = '[2,"d1","DataTransfer",{"vendorId":"v","data":' + deep + "}]"
        reply = await _exchange(ws, nested)
        assert reply[:3] == [4, "d1", "FormationViolation"]
        for _ in range(2):  # the third malformed frame in a row closes the connection
            assert (await _exchange(ws, deep))[:3] == [4, "-1", "FormationViolation"]
        assert (await _closed(ws))[0] == 1002

    await aio(scenario())
    assert not backend.calls and not failures


@pytest_twisted.ensureDeferred
async def test_non_finite_numbers_never_reach_the_backend(start_gateway, backend, redis_server):
    gateway = await _gateway(start_gateway, backend, redis_server)

    async def scenario():
        ws = await raw_socket(gateway.url("CS-NAN"), ("ocpp2.0.1",))
        for uid, number in (("n1", "NaN"), ("n2", "1e400"), ("ok", "1e300"), ("n3", "-Infinity")):
            frame = f'[2,"{uid}","DataTransfer",{{"vendorId":"v","data":{number}}}]'
            reply = await _exchange(ws, frame)
            assert (
                reply[:2] == [3, "ok"] if uid == "ok" else reply[:3] == [4, uid, "FormatViolation"]
            )
        await ws.close()

    await aio(scenario())
    sent = [c.request.data for c in backend.recorded("message", "data_transfer")]
    assert len(sent) == 1 and json.loads(sent[0])["payload"]["data"] == 1e300  # standard JSON


@pytest_twisted.ensureDeferred
async def test_a_command_too_large_for_the_station_is_refused_at_once(
    start_gateway, backend, redis_server, reactor
):
    """Issue 12 item 11: a 100 KiB command cannot go out under the 64 KiB frame limit; it is
    reported as TooLarge at once and the next command is not held up."""
    gateway = await _gateway(start_gateway, backend, redis_server)
    ws = await aio(raw_socket(gateway.url("CP-HUGE")))
    assert (await aio(_exchange(ws, [2, "b", "BootNotification", BOOT])))[0] == 3
    huge = {"command": "DataTransfer", "id": "huge", "payload": {"vendorId": "v"}}
    huge["payload"]["data"] = "x" * 100 * 1024
    hub = gateway.service.hub
    assert hub.publish("ocpp:ev/CP-HUGE", json.dumps(huge)) == 1
    reset = {"command": "Reset", "id": "r1", "payload": {"type": "Soft"}}
    assert hub.publish("ocpp:ev/CP-HUGE", json.dumps(reset)) == 1
    frame = json.loads(await aio(asyncio.wait_for(ws.recv(), 5)))
    assert frame == [2, "r1", "Reset", {"type": "Soft"}]
    errors = await wait_for(lambda: backend.recorded("message", "error"), reactor, timeout=5)
    assert (errors[0].data["id"], errors[0].data["code"]) == ("huge", "TooLarge")
    await aio(ws.close())

"""The ``redisx`` broadcaster: Redis Streams read by a consumer group, fanned out through pub/sub.

End-to-end tests run real gateways (one per "node") in this process against a private
redis-server, with OCPP 1.6 stations and the gRPC backend fixture.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from typing import Any

import pytest
import pytest_twisted
from ocpp.v16 import call

from ocppcable.broadcast.redisx import (
    INTERNAL_CHANNEL,
    RedisXBroadcaster,
    claimed_entries,
    consumer_name,
    fan_out,
    idle_consumers,
    internal_channel,
    read_entries,
)
from ocppcable.options import Options
from ocppcable.publication import MalformedPublication
from tests.support import RedisServer, aio, open_station, wait_for

TRIGGER = {"command": "TriggerMessage", "payload": {"requestedMessage": "Heartbeat"}}
RESET = {"command": "Reset", "payload": {"type": "Soft"}}


# --- helpers --------------------------------------------------------------------------------------


def _read_reply(replies: Any) -> Any:
    line = replies.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else replies.read(size + 2)[:-2].decode()
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [_read_reply(replies) for _ in range(size)]
    return rest.decode()


def query(server: RedisServer, *args: str) -> Any:
    """One command and its whole reply (RedisServer.command parses the first line only)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
        out = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        s.sendall(b"".join(out))
        return _read_reply(s.makefile("rb"))


def xadd(server: RedisServer, stream: str, payload: Any) -> str:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return query(server, "XADD", stream, "*", "payload", body)


def publication(station_id: str, command: dict[str, Any], command_id: str) -> dict[str, Any]:
    return {"stream": f"ocpp:ev/{station_id}", "data": json.dumps({**command, "id": command_id})}


def pending(server: RedisServer, stream: str) -> int:
    return query(server, "XPENDING", stream, "bx")[0]


def consumers(server: RedisServer, stream: str) -> list[str]:
    try:
        reply = query(server, "XINFO", "CONSUMERS", stream, "bx")
    except RuntimeError:  # no stream or no group yet
        return []
    return [dict(zip(info[::2], info[1::2], strict=True))["name"] for info in reply]


def consumer(gateway: Any) -> str:
    (broadcaster,) = gateway.service.broadcasters
    return broadcaster.consumer


@pytest.fixture
def stream() -> str:
    return f"__anycable_test_{uuid.uuid4().hex[:8]}__"


async def _node(start_gateway, backend, redis: RedisServer, stream: str, *args: str) -> Any:
    """A gateway reading ``stream``; waits until its consumer has joined the group."""
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}",
        "--broadcast-adapter=redisx",
        f"--redis-url={redis.url}",
        f"--redisx-stream={stream}",
        *args,
    )
    from twisted.internet import reactor

    await wait_for(lambda: consumer(gateway) in consumers(redis, stream), reactor)
    return gateway


async def _station(gateway: Any, station_id: str, redis: RedisServer) -> Any:
    """A booted station; returns once its node listens to the station's pub/sub channel."""
    from twisted.internet import reactor

    conn = await aio(open_station(gateway.url(station_id), station_id))
    boot = await aio(
        conn.station.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))
    )
    assert boot.status == "Accepted"
    await wait_for(lambda: redis.subscribers(f"ocpp:ev/{station_id}") == 1, reactor)
    return conn


def _acks(backend: Any) -> list[str]:
    return [c.data["id"] for c in backend.recorded("message", "ack")]


# --- end to end -----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_one_node_of_the_group_reads_an_entry_and_the_station_gets_it_once(
    start_gateway, backend, redis_server, stream, reactor
):
    a = await _node(start_gateway, backend, redis_server, stream)
    b = await _node(start_gateway, backend, redis_server, stream)
    assert consumer(a) != consumer(b)
    conn = await _station(a, "RX-1", redis_server)

    xadd(redis_server, stream, publication("RX-1", TRIGGER, "t-1"))
    assert await aio(conn.station.commands.get()) == ("TriggerMessage", TRIGGER["payload"])
    await wait_for(lambda: _acks(backend) == ["t-1"], reactor)
    await wait_for(lambda: pending(redis_server, stream) == 0, reactor)
    assert query(redis_server, "XLEN", stream) == 0  # acknowledged entries are deleted

    # a second entry: had the first come twice, it would be in the queue before this one
    xadd(redis_server, stream, publication("RX-1", RESET, "r-1"))
    assert await aio(conn.station.commands.get()) == ("Reset", RESET["payload"])
    await wait_for(lambda: _acks(backend) == ["t-1", "r-1"], reactor)
    assert conn.station.commands.empty()

    # the node leaves the channel with the stream's last station
    await aio(conn.close())
    await wait_for(lambda: redis_server.subscribers("ocpp:ev/RX-1") == 0, reactor)


@pytest_twisted.ensureDeferred
async def test_an_entry_read_by_one_node_reaches_a_station_on_another(
    start_gateway, backend, redis_server, stream, reactor
):
    reader = await _node(start_gateway, backend, redis_server, stream)
    # the station's node reads another stream: only `reader` can read the entry
    host = await _node(start_gateway, backend, redis_server, f"{stream}-other")
    conn = await _station(host, "RX-2", redis_server)

    xadd(redis_server, stream, publication("RX-2", TRIGGER, "t-2"))
    assert await aio(conn.station.commands.get()) == ("TriggerMessage", TRIGGER["payload"])
    await wait_for(lambda: _acks(backend) == ["t-2"], reactor)
    await wait_for(lambda: pending(redis_server, stream) == 0, reactor)
    assert consumers(redis_server, stream) == [consumer(reader)]
    await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_batch_and_remote_disconnect(start_gateway, backend, redis_server, stream, reactor):
    a = await _node(start_gateway, backend, redis_server, stream)
    b = await _node(start_gateway, backend, redis_server, f"{stream}-other")
    await wait_for(lambda: redis_server.subscribers(INTERNAL_CHANNEL) == 2, reactor)
    on_a = await _station(a, "RX-3A", redis_server)
    on_b = await _station(b, "RX-3B", redis_server)

    xadd(
        redis_server,
        stream,
        [publication("RX-3A", TRIGGER, "t-3"), publication("RX-3B", RESET, "r-3")],
    )
    assert await aio(on_a.station.commands.get()) == ("TriggerMessage", TRIGGER["payload"])
    assert await aio(on_b.station.commands.get()) == ("Reset", RESET["payload"])

    # read by node A, executed by node B through the internal channel
    xadd(
        redis_server,
        stream,
        {
            "command": "disconnect",
            "payload": {"identifier": '{"station_id":"RX-3B"}', "reconnect": False},
        },
    )
    await aio(on_b.ws.wait_closed())
    assert (on_b.ws.close_code, on_b.ws.close_reason) == (1000, "disconnected by backend")
    await wait_for(lambda: pending(redis_server, stream) == 0, reactor)
    assert a.service.hub.station("RX-3A") is not None
    await aio(on_a.close())


@pytest_twisted.ensureDeferred
async def test_entries_added_while_the_reader_is_stopped_are_read_when_it_starts(
    start_gateway, backend, redis_server, stream, reactor
):
    host = await _node(start_gateway, backend, redis_server, f"{stream}-other")
    conn = await _station(host, "RX-4", redis_server)
    first = await _node(start_gateway, backend, redis_server, stream)
    await first.stop()  # the stream's only reader

    xadd(redis_server, stream, publication("RX-4", TRIGGER, "t-4"))
    await _node(start_gateway, backend, redis_server, stream)
    assert await aio(conn.station.commands.get()) == ("TriggerMessage", TRIGGER["payload"])
    await wait_for(lambda: pending(redis_server, stream) == 0, reactor)
    await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_entries_of_a_dead_consumer_are_claimed_and_it_is_forgotten(
    start_gateway, backend, redis_server, stream, reactor, monkeypatch
):
    monkeypatch.setattr(RedisXBroadcaster, "block", 100)
    monkeypatch.setattr(RedisXBroadcaster, "claim_every", 0.1)
    monkeypatch.setattr(RedisXBroadcaster, "claim_idle", 0.5)
    monkeypatch.setattr(RedisXBroadcaster, "forget_idle", 1.0)
    host = await _node(start_gateway, backend, redis_server, f"{stream}-other")
    conn = await _station(host, "RX-5", redis_server)
    first = await _node(start_gateway, backend, redis_server, stream)
    await first.stop()

    # a node that read an entry, then died before acknowledging it
    xadd(redis_server, stream, publication("RX-5", TRIGGER, "t-5"))
    read = query(redis_server, "XREADGROUP", "GROUP", "bx", "dead", "STREAMS", stream, ">")
    assert len(read_entries(read)) == 1
    assert pending(redis_server, stream) == 1

    survivor = await _node(start_gateway, backend, redis_server, stream)
    assert await aio(conn.station.commands.get()) == ("TriggerMessage", TRIGGER["payload"])
    await wait_for(lambda: pending(redis_server, stream) == 0, reactor)
    # the dead consumer and the stopped node's one are removed once idle with nothing pending
    await wait_for(lambda: consumers(redis_server, stream) == [consumer(survivor)], reactor)
    await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_malformed_entries_are_acknowledged_and_dropped(
    start_gateway, backend, redis_server, stream, reactor, warnings
):
    a = await _node(start_gateway, backend, redis_server, stream)
    conn = await _station(a, "RX-6", redis_server)

    xadd(redis_server, stream, "not json")
    xadd(redis_server, stream, {"stream": "ocpp:ev/RX-6"})  # no data
    xadd(redis_server, stream, [])
    query(redis_server, "XADD", stream, "*", "body", json.dumps(publication("RX-6", RESET, "x")))
    xadd(redis_server, stream, [{"no": "stream"}, publication("RX-6", TRIGGER, "t-6")])
    assert await aio(conn.station.commands.get()) == ("TriggerMessage", TRIGGER["payload"])
    await wait_for(lambda: pending(redis_server, stream) == 0, reactor)
    assert query(redis_server, "XLEN", stream) == 0
    dropped = [w for w in warnings if "dropped a malformed publication of entry" in w]
    assert len(dropped) == 5
    assert any("no payload field" in w for w in dropped)
    assert conn.station.commands.empty()
    await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_reading_resumes_after_a_redis_restart(start_gateway, backend, stream, reactor):
    redis = RedisServer()
    redis.start()
    try:
        gateway = await _node(start_gateway, backend, redis, stream)
        conn = await _station(gateway, "RX-7", redis)
        redis.stop()
        redis.start()  # same port, empty: no stream, no group, no subscriptions
        await wait_for(lambda: consumer(gateway) in consumers(redis, stream), reactor)
        await wait_for(lambda: redis.subscribers("ocpp:ev/RX-7") == 1, reactor)
        assert gateway.service.broadcasters[0].connected

        xadd(redis, stream, publication("RX-7", RESET, "r-7"))
        assert await aio(conn.station.commands.get()) == ("Reset", RESET["payload"])
        await wait_for(lambda: pending(redis, stream) == 0, reactor)
        await aio(conn.close())
    finally:
        redis.stop()


@pytest_twisted.ensureDeferred
async def test_a_deleted_stream_and_group_are_created_again(
    start_gateway, backend, redis_server, stream, reactor, warnings, monkeypatch
):
    monkeypatch.setattr(RedisXBroadcaster, "retry_delay", 0.1)
    gateway = await _node(start_gateway, backend, redis_server, stream)
    conn = await _station(gateway, "RX-8", redis_server)
    query(redis_server, "DEL", stream)  # and the group with it
    await wait_for(lambda: consumer(gateway) in consumers(redis_server, stream), reactor)

    xadd(redis_server, stream, publication("RX-8", RESET, "r-8"))
    assert await aio(conn.station.commands.get()) == ("Reset", RESET["payload"])
    assert any("stream key no longer exists" in w for w in warnings)
    await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_every_redis_connection_logs_in_with_the_urls_credentials(
    start_gateway, backend, redis_server, stream, reactor
):
    query(redis_server, "ACL", "SETUSER", "gw", "on", ">pw", "~*", "&*", "+@all")
    host = redis_server.url.removeprefix("redis://")
    await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}",
        f"--redis-url=redis://gw:pw@{host}",
        "--broadcast-adapter=http,redis,redisx",
        f"--redisx-stream={stream}",
    )

    def users() -> list[str]:
        clients = query(redis_server, "CLIENT", "LIST").splitlines()
        return sorted(
            field.removeprefix("user=")
            for client in clients
            for field in client.split()
            if field.startswith("user=") and "cmd=client" not in client  # not this query's
        )

    # the redis subscriber, the redisx reader and subscriber, the takeover's subscriber and the
    # shared publisher
    await wait_for(lambda: len(users()) == 5, reactor)
    assert users() == ["gw"] * 5


# --- configuration ----------------------------------------------------------------------------------


def test_options() -> None:
    options = Options(environ={})
    options.parseOptions(["--broadcast-adapter=redisx"])
    assert options["broadcast-adapter"] == ["redisx"]
    assert options["redisx-stream"] == "__anycable__"
    options = Options(environ={"ANYCABLE_REDISX_STREAM": "events"})
    options.parseOptions([])
    assert options["redisx-stream"] == "events"
    from twisted.python.usage import UsageError

    with pytest.raises(UsageError, match="--redis-url"):
        Options(environ={}).parseOptions(["--broadcast-adapter=redisx", "--redis-url=http://x"])


@pytest.mark.parametrize(
    ("adapters", "internal"),
    [
        ("redisx", "__anycable_internal__"),
        ("redisx,redis", "__anycable_internal__"),
        ("redis,redisx", "__anycable_internal__-int"),
    ],
)
def test_wiring(reactor, adapters: str, internal: str) -> None:
    from ocppcable.service import makeService

    options = Options(environ={})
    redis_channel = "__anycable_internal__" if adapters.startswith("redis,") else "__anycable__"
    options.parseOptions(
        [
            "--rpc-host=demo",
            f"--broadcast-adapter={adapters}",
            f"--redis-channel={redis_channel}",
            "--redisx-stream=events",
        ]
    )
    gateway = makeService(options, reactor)
    (redisx,) = [b for b in gateway.broadcasters if isinstance(b, RedisXBroadcaster)]
    assert redisx.parent is gateway
    assert redisx.stream == "events" and redisx.internal == internal
    assert "redisx stream 'events'" in redisx.description


# --- pure helpers ---------------------------------------------------------------------------------


def test_read_entries() -> None:
    assert read_entries(None) == []  # BLOCK timed out
    assert read_entries([["s", []]]) == []
    reply = [
        [
            "s",
            [
                ["1-0", ["payload", "{}", "other", "x"]],
                ["2-0", None],  # pending, deleted since
                ["3-0", ["body", "{}"]],
            ],
        ]
    ]
    assert read_entries(reply) == [("1-0", "{}"), ("2-0", None), ("3-0", None)]


def test_claimed_entries() -> None:
    reply = ["0-0", [["1-0", ["payload", "{}"]], None], ["2-0"]]
    assert claimed_entries(reply) == ("0-0", [("1-0", "{}")])
    assert claimed_entries(["5-0", [], []]) == ("5-0", [])


def test_idle_consumers() -> None:
    reply = [
        ["name", "live", "pending", 0, "idle", 10],
        ["name", "gone", "pending", 0, "idle", 5000, "inactive", 5000],
        ["name", "owes", "pending", 2, "idle", 9000],
    ]
    assert idle_consumers(reply, 1000) == ["gone"]


def test_fan_out_publications_and_commands() -> None:
    skipped: list[MalformedPublication] = []
    body = json.dumps(
        [
            {"stream": "ocpp:ev/1", "data": "{}", "meta": {"exclude_socket": "abc"}},
            {"stream": "ocpp:ev/2", "data": "{}", "meta": "ignored"},
            {"command": "disconnect", "payload": {"identifier": "ident", "reconnect": False}},
            {"no": "stream"},
        ]
    )
    assert fan_out(body, "internal", skipped) == [
        ("ocpp:ev/1", '{"stream":"ocpp:ev/1","data":"{}","meta":{"exclude_socket":"abc"}}'),
        ("ocpp:ev/2", '{"stream":"ocpp:ev/2","data":"{}"}'),
        ("internal", '{"command":"disconnect","payload":{"identifier":"ident","reconnect":false}}'),
    ]
    assert len(skipped) == 1
    assert fan_out(b'{"stream":"s","data":"\xc3\xa9"}', "i", []) == [
        ("s", '{"stream":"s","data":"é"}')
    ]


@pytest.mark.parametrize("payload", [None, "not json", "[]", '{"stream":"s"}', b"\xff"])
def test_fan_out_rejects_what_is_not_a_publication(payload: Any) -> None:
    with pytest.raises(MalformedPublication):
        fan_out(payload, "internal", [])


def test_internal_channel_moves_off_the_legacy_channel() -> None:
    assert internal_channel(None) == INTERNAL_CHANNEL
    assert internal_channel("__anycable__") == INTERNAL_CHANNEL
    assert internal_channel(INTERNAL_CHANNEL) == f"{INTERNAL_CHANNEL}-int"


def test_consumer_names_are_unique_per_process() -> None:
    first, second = consumer_name(), consumer_name()
    assert first != second
    assert first.startswith(f"{socket.gethostname()}-{os.getpid()}-")

"""The call API across a cluster: two gateway nodes in this process on one private Redis,
stations driven by the PyPI ``ocpp`` client over real sockets (docs/call-api.md, "A cluster")."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import pytest_twisted

from tests.support import (
    KEY,
    aio,
    api,
    backend_reports,
    booted,
    calls_path,
    status_of,
    until,
    wait_for,
)

_ids = itertools.count(1)


def station_id() -> str:
    """A station id no other test in this Redis used."""
    return f"CL-{next(_ids)}-{id(object()) % 100000}"


@pytest.fixture
def cluster(start_gateway, redis_server):
    """``await cluster(*args)`` → two nodes (A, B) of the demo backend on one Redis."""

    async def start(*args: str) -> tuple[Any, Any]:
        common = (
            "--rpc-host=demo",
            f"--api-key={KEY}",
            "--broadcast-adapter=redis",
            f"--redis-url={redis_server.url}",
            "--redis-channel=__call_cluster_test__",
            *args,
        )
        a = await start_gateway(*common)
        b = await start_gateway(*common)
        nodes = [a.service.getServiceNamed("call-api"), b.service.getServiceNamed("call-api")]
        channels = [f"__ocppcable_calls__:{calls.node}" for calls in nodes]
        await wait_for(lambda: all(redis_server.subscribers(c) == 1 for c in channels), reactor_)
        return a, b

    from twisted.internet import reactor as reactor_

    return start


@pytest_twisted.ensureDeferred
async def test_a_call_to_node_a_is_answered_by_a_station_on_node_b(cluster, reactor):
    a, b = await cluster()
    cp = station_id()
    conn = await booted(b, cp)
    try:
        request = {"action": "GetConfiguration", "payload": {}, "wait": 10}
        status, body = await api(reactor, a.port, "POST", calls_path(cp), request)
        assert status == 200, body
        assert body["outcome"] == "result"
        assert body["payload"]["configurationKey"][0]["key"] == "HeartbeatInterval"
        # the backend hears of it from the node holding the station
        [ack] = await wait_for(lambda: backend_reports(b, body["id"]), reactor)
        assert ack["action"] == "ack" and ack["source"] == "api"
        metrics = a.service.metrics.exposition().decode()
        assert "ocppcable_api_route_duration_seconds_count 1.0" in metrics
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_presence_is_cluster_wide(cluster, reactor):
    a, b = await cluster()
    cp = station_id()
    conn = await booted(b, cp)
    try:
        node_b = b.service.getServiceNamed("call-api").node

        async def seen() -> Any:
            status, body = await api(reactor, a.port, "GET", f"/_ocpp/stations/{cp}")
            return body if status == 200 and body.get("serial_number") else None

        info = await until(seen, reactor)
        assert info["node"] == node_b and info["protocol"] == "ocpp1.6"
        status, page = await api(reactor, a.port, "GET", "/_ocpp/stations?limit=1000")
        assert status == 200 and cp in [s["id"] for s in page["stations"]]
    finally:
        await aio(conn.close())
    await status_of(reactor, a.port, f"/_ocpp/stations/{cp}", 404)


@pytest_twisted.ensureDeferred
async def test_a_command_queued_on_a_is_delivered_when_the_station_connects_to_b(cluster, reactor):
    a, b = await cluster()
    cp = station_id()
    for kind in ("Soft", "Hard"):
        request = {"action": "Reset", "payload": {"type": kind}, "ttl": 60}
        status, body = await api(reactor, a.port, "POST", calls_path(cp), request)
        assert (status, body["outcome"]) == (202, "queued")
    conn = await booted(b, cp)
    try:
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Soft"})
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Hard"})
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_the_same_key_on_both_nodes_is_queued_once(cluster, reactor):
    a, b = await cluster()
    cp = station_id()
    request = {"action": "Reset", "payload": {"type": "Soft"}, "ttl": 60, "key": "k-1"}
    first = await api(reactor, a.port, "POST", calls_path(cp), request)
    again = await api(reactor, b.port, "POST", calls_path(cp), request)
    assert first[1]["outcome"] == again[1]["outcome"] == "queued"
    assert first[1]["id"] == again[1]["id"]
    conn = await booted(a, cp)
    try:
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Soft"})
        reset = {"action": "Reset", "payload": {"type": "Hard"}, "wait": 10}
        status, body = await api(reactor, b.port, "POST", calls_path(cp), reset)
        assert (status, body["outcome"]) == (200, "result")
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Hard"})  # not Soft
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_an_expired_command_is_reported_as_expired_on_the_next_session(cluster, reactor):
    a, b = await cluster()
    cp = station_id()
    request = {"action": "Reset", "payload": {"type": "Soft"}, "ttl": 0.2}
    status, body = await api(reactor, a.port, "POST", calls_path(cp), request)
    assert (status, body["outcome"]) == (202, "queued")
    await wait_for(
        lambda: (
            "ocppcable_api_queue_expired_total 1.0"
            in (a.service.metrics.exposition() + b.service.metrics.exposition()).decode()
        ),
        reactor,
    )
    conn = await booted(b, cp)
    try:
        [error] = await wait_for(lambda: backend_reports(b, body["id"]), reactor)
        assert error["action"] == "error" and error["code"] == "Expired"
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_a_full_station_queue_in_redis_is_refused(cluster, reactor):
    a, b = await cluster("--api-max-queue=2")
    cp = station_id()
    request = {"action": "Reset", "payload": {"type": "Soft"}, "ttl": 60}
    outcomes = []
    for node in (a, b, a):
        status, body = await api(reactor, node.port, "POST", calls_path(cp), request)
        outcomes.append((status, body["outcome"]))
    assert outcomes == [(202, "queued"), (202, "queued"), (429, "refused")]
    assert "2 commands" in body["errors"][0]


@pytest.mark.parametrize("option", ["--api-max-queue=0", "--api-presence-ttl=0"])
def test_the_cluster_bounds_refuse_nonsense(option):
    from twisted.python.usage import UsageError

    from ocppcable.options import Options

    with pytest.raises(UsageError, match=option.split("=")[0].lstrip("-")):
        Options(environ={}).parseOptions([option])


@pytest_twisted.ensureDeferred
async def test_without_redis_a_call_is_answered_503(start_gateway, reactor, warnings):
    from tests.support import free_port

    gateway = await start_gateway(
        "--rpc-host=demo",
        f"--api-key={KEY}",
        "--broadcast-adapter=redis",
        f"--redis-url=redis://127.0.0.1:{free_port()}",
    )
    request = {"action": "Reset", "payload": {"type": "Soft"}, "ttl": 60}
    status, body = await api(reactor, gateway.port, "POST", calls_path("CP-1"), request)
    assert status == 503
    assert body["errors"][0].startswith("Redis:")


@pytest_twisted.ensureDeferred
async def test_presence_pages_skip_and_delete_a_dead_nodes_entries(
    cluster, redis_server, reactor, monkeypatch
):
    import json

    from ocppcable.api import cluster_presence
    from ocppcable.api.cluster_presence import IDS, STATIONS

    monkeypatch.setattr(cluster_presence, "SCAN_BATCH", 3)  # pages carry on across scripts
    redis_server.command("FLUSHDB")
    a, b = await cluster()
    dead = {"protocol": "ocpp1.6", "node": "gone-node", "connected_since": "t"}
    for n in range(25):  # a node that died without cleaning up (its key is long gone)
        sid = f"PG-{n:02}"
        redis_server.command("HSET", STATIONS, sid, json.dumps({"id": sid, **dead}))
        redis_server.command("ZADD", IDS, "0", sid)
    conns = [await booted(node, f"PG-{n:02}5") for n, node in ((0, a), (1, b), (2, b))]
    try:
        wanted = ["PG-005", "PG-015", "PG-025"]

        async def all_pages() -> Any:
            seen, after = [], ""
            while True:
                status, page = await api(reactor, a.port, "GET", f"/_ocpp/stations?limit=2{after}")
                assert status == 200 and len(page["stations"]) <= 2
                seen += [s["id"] for s in page["stations"]]
                if page["next"] is None:
                    return seen == wanted
                after = f"&after={page['next']}"

        await until(all_pages, reactor)
        assert redis_server.command("HLEN", STATIONS) == 3  # the dead entries were deleted
    finally:
        for conn in conns:
            await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_routing_over_the_nats_cluster_transport(
    start_gateway, redis_server, nats_server, reactor
):
    args = (
        "--rpc-host=demo",
        f"--api-key={KEY}",
        "--pubsub=nats",
        "--broadcast-adapter=redis",
        f"--nats-servers={nats_server.url}",
        f"--redis-url={redis_server.url}",
        "--redis-channel=__call_cluster_nats_test__",
    )
    a = await start_gateway(*args)
    b = await start_gateway(*args)
    await wait_for(
        lambda: all(n.service.getServiceNamed("nats").connected for n in (a, b)), reactor
    )
    cp = station_id()
    conn = await booted(b, cp)
    try:
        await status_of(reactor, a.port, f"/_ocpp/stations/{cp}", 200)
        request = {"action": "GetConfiguration", "wait": 10}
        status, body = await api(reactor, a.port, "POST", calls_path(cp), request)
        assert (status, body["outcome"]) == (200, "result"), body
        assert body["payload"]["configurationKey"][0]["key"] == "HeartbeatInterval"
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_a_cluster_without_redis_serves_each_nodes_stations_and_says_so(
    start_gateway, nats_server, warnings
):
    await start_gateway(
        "--rpc-host=demo",
        f"--api-key={KEY}",
        "--pubsub=nats",
        f"--nats-servers={nats_server.url}",
    )
    assert any("serves this node's stations only" in w for w in warnings), warnings


@pytest_twisted.ensureDeferred
async def test_a_node_writes_its_stations_again_when_redis_lost_them(
    cluster, redis_server, reactor
):
    a, b = await cluster("--api-presence-ttl=0.6")
    cp = station_id()
    conn = await booted(b, cp)
    try:
        await status_of(reactor, a.port, f"/_ocpp/stations/{cp}", 200)
        redis_server.command("FLUSHDB")  # as after a Redis restart without persistence
        await status_of(reactor, a.port, f"/_ocpp/stations/{cp}", 200)
    finally:
        await aio(conn.close())


def test_malformed_routed_messages_are_dropped(warnings):
    from ocppcable.api.cluster_router import ClusterRouter
    from ocppcable.hub import Hub
    from ocppcable.metrics import NoMetrics

    class Transport:
        def subscribe(self, channel: str, receiver: Any) -> None:
            self.channel = channel

    transport = Transport()
    router = ClusterRouter(None, Hub(), None, "n1", transport, NoMetrics())
    ended: list[Any] = []
    router.tracker = type("Tracker", (), {"ended": lambda self, *a: ended.append(a)})()
    assert transport.channel == "__ocppcable_calls__:n1"
    malformed = [
        "not json",
        "[]",
        '{"kind": "deliver"}',
        '{"kind": "deliver", "station": "CP-1", "command": {}}',  # no sender: nothing done
        '{"kind": "ended", "command": {}}',
        '{"kind": "taken"}',
    ]
    for message in malformed:
        router.received(message)
    assert len([w for w in warnings if "malformed routed call message" in w]) == 6
    assert ended == []


@pytest_twisted.ensureDeferred
async def test_a_node_that_does_not_confirm_in_time_does_not_hold_the_station(
    cluster, redis_server, reactor, monkeypatch
):
    import json

    from ocppcable.api import cluster_router
    from ocppcable.api.cluster_presence import IDS, NODE, STATIONS

    monkeypatch.setattr(cluster_router, "ROUTE_TIMEOUT", 0.3)
    a, _ = await cluster()
    cp = station_id()
    entry = {"id": cp, "protocol": "ocpp1.6", "node": "mute-node", "connected_since": "t"}
    redis_server.command("SET", NODE + "mute-node", "1", "EX", "60")  # alive, deaf
    redis_server.command("HSET", STATIONS, cp, json.dumps(entry))
    redis_server.command("ZADD", IDS, "0", cp)
    request = {"action": "Reset", "payload": {"type": "Soft"}, "wait": 5}
    status, body = await api(reactor, a.port, "POST", calls_path(cp), request)
    assert (status, body["outcome"]) == (404, "offline")
    status, body = await api(reactor, a.port, "POST", calls_path(cp), {**request, "ttl": 60})
    assert (status, body["outcome"]) == (202, "queued")

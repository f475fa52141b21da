"""The call API of a cluster of ``twistd`` processes on one private Redis: the flow of
docs/call-api.md ("A cluster") as written, the queue across a SIGTERM restart of every node, and
presence after a node is SIGKILLed. The nodes run the installed package."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.support import (
    KEY,
    PROCESS_TIMEOUT,
    RedisServer,
    aio,
    api,
    booted,
    calls_path,
    free_port,
    status_of,
    twistd,
    wait_exit,
    wait_for,
    wait_output,
)

STATION = Path(sys.executable).with_name("ocppcable-station")


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


class Node:
    """A ``twistd`` gateway process on a free port, the demo backend, the API keyed."""

    def __init__(self, redis: RedisServer, *extra: str) -> None:
        self.port = free_port()
        self.process = twistd(
            "--rpc-host=demo",
            "--broadcast-adapter=redis",
            f"--redis-url={redis.url}",
            f"--api-key={KEY}",
            f"--listen=tcp:{self.port}:interface=127.0.0.1",
            *extra,
        )

    def url(self, station_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{station_id}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(PROCESS_TIMEOUT)


@pytest.fixture
def nodes(redis, reactor) -> Iterator[Any]:
    """``await nodes(n, *args)`` → n started nodes, each listening for routed calls."""
    started: list[Node] = []

    async def start(count: int, *extra: str) -> list[Node]:
        new = [Node(redis, *extra) for _ in range(count)]
        started.extend(new)
        for node in new:
            await wait_output(node.process, reactor)
        live = sum(1 for node in started if node.process.poll() is None)
        await wait_for(lambda: len(redis.channels("__ocppcable_calls__:*")) == live, reactor)
        return new

    yield start
    for node in started:
        node.stop()


async def terminate(node: Node, reactor: Any) -> int:
    node.process.send_signal(signal.SIGTERM)
    return await wait_exit(node.process, reactor)


@pytest_twisted.ensureDeferred
async def test_curl_to_node_a_makes_a_station_on_node_b_answer(nodes, reactor):
    a, b = await nodes(2)
    station = subprocess.Popen(
        [str(STATION), f"ws://127.0.0.1:{b.port}/ocpp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await status_of(reactor, a.port, "/_ocpp/stations/SIM-0001", 200)
        curl = [
            "curl", "-s", "-H", f"Authorization: Bearer {KEY}",
            "-X", "POST", f"http://127.0.0.1:{a.port}/_ocpp/stations/SIM-0001/calls",
            "-d", '{"action": "GetConfiguration", "wait": 10}',
        ]  # fmt: skip
        done = await deferToThread(subprocess.run, curl, capture_output=True, text=True)
        answer = json.loads(done.stdout)
        assert answer["outcome"] == "result", answer
        keys = [entry["key"] for entry in answer["payload"]["configurationKey"]]
        assert "HeartbeatInterval" in keys
    finally:
        station.terminate()
        station.wait(PROCESS_TIMEOUT)


@pytest_twisted.ensureDeferred
async def test_the_queue_survives_a_sigterm_restart_of_every_node(nodes, reactor):
    a, b = await nodes(2)
    for kind in ("Soft", "Hard"):
        request = {"action": "Reset", "payload": {"type": kind}, "ttl": 120, "key": kind}
        status, body = await api(reactor, a.port, "POST", calls_path("CP-Q"), request)
        assert (status, body["outcome"]) == (202, "queued")
    assert [await terminate(a, reactor), await terminate(b, reactor)] == [0, 0]
    a, b = await nodes(2)
    # the same key after the restart: still the one queued command
    again = {"action": "Reset", "payload": {"type": "Soft"}, "ttl": 120, "key": "Soft"}
    status, body = await api(reactor, a.port, "POST", calls_path("CP-Q"), again)
    assert (status, body["outcome"]) == (202, "queued")
    conn = await booted(b, "CP-Q")
    try:
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Soft"})
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Hard"})
        reset = {"action": "Reset", "payload": {"type": "Soft"}, "wait": 10}
        status, body = await api(reactor, a.port, "POST", calls_path("CP-Q"), reset)
        assert (status, body["outcome"]) == (200, "result")
        assert await aio(conn.station.commands.get()) == ("Reset", {"type": "Soft"})
        assert conn.station.commands.empty()  # the repeated key was not delivered again
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_a_sigkilled_nodes_stations_leave_presence_within_its_ttl(nodes, reactor):
    a, b = await nodes(2, "--api-presence-ttl=1")
    conn = await booted(b, "CP-K")
    try:
        await status_of(reactor, a.port, "/_ocpp/stations/CP-K", 200)
        b.process.send_signal(signal.SIGKILL)
        await wait_exit(b.process, reactor)
        await status_of(reactor, a.port, "/_ocpp/stations/CP-K", 404)
        status, page = await api(reactor, a.port, "GET", "/_ocpp/stations")
        assert status == 200 and page["stations"] == []
    finally:
        await aio(conn.close())

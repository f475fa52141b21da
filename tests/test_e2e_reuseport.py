"""Two ``twistd ocppcable`` processes on one ``reuseport:`` port, clustered over Redis (issue 16
items 1 and 5): the kernel spreads stations over both, each takes over the other's duplicates,
and a graceful stop of one hands its stations to the other."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import deferLater

from ocppcable.cluster.takeover import CHANNEL
from tests.support import (
    PROCESS_TIMEOUT,
    TIMEOUT,
    TWISTD,
    aio,
    free_port,
    http_client,
    raw_socket,
    wait_exit,
    wait_for,
)

BOOT = [2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]


class Instance:
    """One gateway process; its output goes to a file, its metrics to a port of its own."""

    def __init__(self, name: str, log: Path, *args: str) -> None:
        self.name = name
        self.log = log
        self.metrics_port = free_port()
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [*TWISTD, "-n", "--pidfile=", "ocppcable", *args]
                + [f"--metrics-listen=tcp:{self.metrics_port}:interface=127.0.0.1"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def output(self) -> str:
        return self.log.read_text()

    async def connected(self, reactor) -> int:
        response = await http_client(reactor).get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        body = (await response.content()).decode()
        for family in text_string_to_metric_families(body):
            if family.name == "ocppcable_stations_connected":
                return int(family.samples[0].value)
        raise AssertionError("no ocppcable_stations_connected in the metrics")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


async def _station(url: str):
    ws = await raw_socket(url)
    await ws.send(json.dumps(BOOT))
    reply = json.loads(await ws.recv())
    assert reply[:2] == [3, "b"] and reply[2]["status"] == "Accepted", reply
    return ws


@pytest_twisted.ensureDeferred
async def test_two_processes_share_a_port_and_take_over_each_others_stations(
    redis_server, reactor, tmp_path
):
    port = free_port()
    shared = (
        f"--listen=reuseport:{port}:interface=127.0.0.1",
        "--host=127.0.0.1",
        f"--http-broadcast-port={free_port()}",  # shared as well
        "--rpc-host=demo",
        "--broadcast-adapter=http,redis",
        f"--redis-url={redis_server.url}",
        "--shutdown-timeout=4",
    )
    instances = [Instance(name, tmp_path / f"{name}.log", *shared) for name in ("A", "B")]
    sockets = []
    try:
        for instance in instances:
            # generous: two processes start at once, on a cold plugin cache after an install
            started = lambda i=instance: "ocppcable serving OCPP" in i.output()  # noqa: E731
            await wait_for(started, reactor, PROCESS_TIMEOUT)
        await wait_for(lambda: redis_server.subscribers(CHANNEL) == 2, reactor)
        counts = [0, 0]

        async def landed() -> int:
            """Which instance the station opened last is on: the one whose count rose."""
            before = list(counts)

            async def moved():
                now = [await i.connected(reactor) for i in instances]
                if sum(now) == sum(before) + 1:
                    counts[:] = now
                    return True
                return False

            deadline = reactor.seconds() + TIMEOUT
            while not await moved():
                assert reactor.seconds() < deadline, f"counts stay at {counts}"
                await deferLater(reactor, 0.05, lambda: None)
            return next(n for n in (0, 1) if counts[n] > before[n])

        # the kernel spreads connections: open stations until both instances serve some
        on: dict[str, int] = {}
        for n in range(40):
            station_id = f"CP-{n}"
            sockets.append(await aio(_station(f"ws://127.0.0.1:{port}/ocpp/{station_id}")))
            on[station_id] = await landed()
            if all(counts):
                break
        assert all(counts), f"every station landed on one instance: {counts}"

        # a duplicate on the other instance takes the station over there (1000 "replaced");
        # one on the same instance replaces it locally: repeat until both directions happened
        url = f"ws://127.0.0.1:{port}/ocpp/CP-DUP"
        old = await aio(_station(url))
        where = await landed()
        taken_from: set[int] = set()
        for _ in range(40):
            new = await aio(_station(url))
            await aio(old.wait_closed())
            assert (old.close_code, old.close_reason) == (1000, "replaced")
            counts[where] -= 1
            now = await landed()
            if now != where:
                taken_from.add(where)
                assert "station CP-DUP connected to node" in instances[where].output()
            old, where = new, now
            if len(taken_from) == 2:
                break
        assert taken_from == {0, 1}
        sockets.append(old)
        on["CP-DUP"] = where

        # graceful stop of A: it leaves the shared port first, so every station it closes
        # (1001) reconnects at once to B
        a, b = instances
        a.process.send_signal(signal.SIGTERM)
        for ws, (station_id, instance) in zip(list(sockets), on.items(), strict=True):
            if instance == 0:
                await aio(ws.wait_closed())
                assert ws.close_code == 1001
                sockets.append(await aio(_station(f"ws://127.0.0.1:{port}/ocpp/{station_id}")))
        assert await wait_exit(a.process, reactor) == 0
        assert await b.connected(reactor) == len(on)
    finally:
        for ws in sockets:
            await aio(ws.close())
        for instance in instances:
            instance.stop()

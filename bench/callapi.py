"""Figure 11: the call API's round trip, on one node and across two, and the queue's drain rate.

``python -m bench.callapi [--calls N] [--queued N] [--smoke] [--gateway-src DIR]`` starts Redis
and two gateways (``twistd``, the in-process demo backend, one Redis) and one station, driven
from this process (asyncio, ``websockets``), that answers every command at once:

- **same node**: ``--calls`` sequential ``POST /_ocpp/stations/<id>/calls`` (``Reset``,
  ``wait`` 10) to the node the station is connected to, over one keep-alive connection;
- **across nodes**: the same to the other node, which routes each call through Redis;
- **drain**: with the station offline, ``--queued`` commands queued (``ttl`` 600, through both
  nodes), then the station connects and boots; the rate is the commands it received per second
  from its BootNotification reply to the last one (one outstanding CALL at a time).

It prints and writes (``--json``) the round trips' p50/p99 in milliseconds and the drain rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

import websockets

from bench.processes import (
    BenchError,
    Processes,
    free_port,
    run_figure,
    wait_http_ok,
)
from bench.run import gateway_args, machine

KEY = "bench-api-key"
STATION = "BENCH-API-1"


class API:
    """One keep-alive HTTP/1.1 connection to a node's call API."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        line = b""
        for _ in range(2):  # the server closes idle connections: once more on a new one
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.reader is not None
            self.writer.write(head.encode() + data)
            line = await self.reader.readline()
            if line:
                break
            self.close()
        status = int(line.split()[1])
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value:
                chunked = True
        if not chunked:
            content = await self.reader.readexactly(length)
        else:
            content = b""
            while size := int((await self.reader.readline()).strip(), 16):
                content += await self.reader.readexactly(size)
                await self.reader.readline()
            await self.reader.readline()
        return status, json.loads(content) if content else None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Station:
    """A 1.6 station that boots and answers every CALL with ``{"status": "Accepted"}``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.received = 0
        self.last_at = 0.0
        self.booted_at = 0.0
        self.wanted = 0
        self.enough = asyncio.Event()
        self.ws: Any = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.ws = await websockets.connect(f"{self.url}/{STATION}", subprotocols=["ocpp1.6"])
        booted = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(self._serve(booted))
        boot = {"chargePointVendor": "Bench", "chargePointModel": "M"}
        await self.ws.send(json.dumps([2, "boot", "BootNotification", boot]))
        await asyncio.wait_for(booted, 30)

    async def _serve(self, booted: asyncio.Future[None]) -> None:
        try:
            async for text in self.ws:
                message = json.loads(text)
                if message[0] == 2:
                    await self.ws.send(json.dumps([3, message[1], {"status": "Accepted"}]))
                    self.received += 1
                    self.last_at = time.perf_counter()
                    if self.wanted and self.received >= self.wanted:
                        self.enough.set()
                elif message[1] == "boot" and not booted.done():
                    self.booted_at = time.perf_counter()
                    booted.set_result(None)
        except websockets.ConnectionClosed:
            pass

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            await self._task


async def until_present(api: API, present: bool) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, _ = await api.request("GET", f"/_ocpp/stations/{STATION}")
        if (status == 200) == present:
            return
        await asyncio.sleep(0.05)
    raise BenchError(f"the station did not {'appear' if present else 'leave'} in presence")


async def round_trips(api: API, count: int) -> dict[str, Any]:
    path = f"/_ocpp/stations/{STATION}/calls"
    request = {"action": "Reset", "payload": {"type": "Soft"}, "wait": 10}
    times = []
    for _ in range(count):
        started = time.perf_counter()
        status, body = await api.request("POST", path, request)
        times.append((time.perf_counter() - started) * 1000)
        if status != 200 or body["outcome"] != "result":
            raise BenchError(f"a call came to {status} {body}")
    times.sort()
    return {
        "calls": count,
        "p50": round(statistics.median(times), 2),
        "p99": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
        "max": round(times[-1], 2),
    }


async def drain(apis: list[API], url: str, count: int) -> dict[str, Any]:
    path = f"/_ocpp/stations/{STATION}/calls"
    for n in range(count):
        request = {"action": "Reset", "payload": {"type": "Soft"}, "ttl": 600}
        status, body = await apis[n % 2].request("POST", path, request)
        if status != 202 or body["outcome"] != "queued":
            raise BenchError(f"queueing came to {status} {body}")
    station = Station(url)
    station.wanted = count
    await station.connect()
    await asyncio.wait_for(station.enough.wait(), 60 + count / 10)
    seconds = station.last_at - station.booted_at
    await station.close()
    return {"commands": count, "seconds": round(seconds, 3), "per_s": round(count / seconds, 1)}


async def scenario(a: int, b: int, calls: int, queued: int) -> dict[str, Any]:
    api_a, api_b = API(a), API(b)
    station = Station(f"ws://127.0.0.1:{a}/ocpp")
    try:
        await station.connect()
        await until_present(api_b, True)
        await round_trips(api_a, 10)  # warm-up
        await round_trips(api_b, 10)
        same = await round_trips(api_a, calls)
        print(f"same node: p50 {same['p50']} ms, p99 {same['p99']} ms", file=sys.stderr)
        across = await round_trips(api_b, calls)
        print(f"across nodes: p50 {across['p50']} ms, p99 {across['p99']} ms", file=sys.stderr)
        await station.close()
        await until_present(api_a, False)
        drained = await drain([api_a, api_b], f"ws://127.0.0.1:{b}/ocpp", queued)
        return {"same_node": same, "across_nodes": across, "drain": drained}
    finally:
        api_a.close()
        api_b.close()


def measure(ps: Processes, args: argparse.Namespace, source: str | None) -> dict[str, Any]:
    redis = ps.redis()
    ports = [free_port(), free_port()]
    extra = [f"--api-key={KEY}", f"--api-max-queue={max(100, args.queued)}"]
    for name, port in zip("ab", ports, strict=True):
        gateway = ps.gateway(
            f"gateway-{name}", port, [*gateway_args("demo", redis.url), *extra], source=source
        )
        wait_http_ok(gateway, f"http://127.0.0.1:{port}/health")
    figures = asyncio.run(scenario(*ports, args.calls, args.queued))
    return {"machine": machine(), "gateway_src": source, **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.callapi", description=__doc__)
    parser.add_argument("--calls", type=int, default=1000, help="round trips per figure")
    parser.add_argument("--queued", type=int, default=1000, help="commands drained")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: it runs end to end")
    parser.add_argument("--gateway-src", help="run the gateway code of another checkout")
    parser.add_argument("--json", help="default bench/results-callapi.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.calls, args.queued = 20, 30
    ran = run_figure("callapi", args, measure)
    if ran is None:
        return 1
    results, out = ran
    for name in ("same_node", "across_nodes"):
        r = results[name]
        print(
            f"11 call API {name:12} p50 {r['p50']:7.2f} ms  p99 {r['p99']:7.2f} ms  ({r['calls']})"
        )
    d = results["drain"]
    print(f"11 queue drain {d['commands']} commands in {d['seconds']} s: {d['per_s']}/s")
    print(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What one ``message`` RPC costs the gateway's process, alone: no WebSocket, no OCPP.

``python -m bench.grpc_cost [--rate 500] [--seconds 6]`` starts the no-op backend, then makes
``Command`` RPCs at ``rate`` per second from this process with the gateway's own client
(:class:`ocppcable.rpc.grpc_client.GRPCClient`: call policy, asyncio bridge, grpc.aio) on the
epoll reactor, and prints this process's CPU per RPC by thread. The same request a station's
StatusNotification produces is sent. Compare with the figure-2 CPU per CALL of the gateway and
of the peer (which makes no RPC at all). ``--client h2`` measures instead a gRPC client on the
reactor thread over the pure-Python ``h2`` (:mod:`bench.h2grpc`, a measurement only), with the
same call policy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import processes
from bench.loadgen import summary
from bench.processes import Processes, pin_cpus, thread_cpu_seconds

REQUEST_DATA = json.dumps(
    {
        "action": "status_notification",
        "id": "1",
        "command": "StatusNotification",
        "payload": {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
    },
    separators=(",", ":"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_cost", description=__doc__)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--client", choices=("aio", "h2"), default="aio")
    args = parser.parse_args(argv)
    pin_cpus(not args.no_pin)
    with Processes(Path(tempfile.mkdtemp(prefix="ocppcable-grpc-cost-"))) as ps:
        backend = ps.python("backend", "bench.backend")
        port = ps.ready(backend)["port"]
        return _measure(f"127.0.0.1:{port}", args.rate, args.seconds, args.client)


def _measure(target: str, rate: float, seconds: float, kind: str = "aio") -> int:
    import os

    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor, task

    from ocppcable.cable import CommandRequest, Env
    from ocppcable.rpc.grpc_client import GRPCClient

    if processes.MEASURED_CPUS:  # like the gateway: a CPU of its own, the backend elsewhere
        os.sched_setaffinity(0, processes.MEASURED_CPUS)
    request = CommandRequest(
        command="message",
        identifier='{"channel":"OCPPChannel","id":"A-00001"}',
        connection_identifiers='{"bench":1}',
        data=REQUEST_DATA,
        env=Env(
            url="http://127.0.0.1:8080/ocpp/A-00001",
            headers={"REMOTE_ADDR": "127.0.0.1", "sec-websocket-protocol": "ocpp1.6"},
        ),
    )
    if kind == "h2":
        from bench.h2grpc import H2GRPCClient

        client: Any = H2GRPCClient(reactor, target, 28, 10.0)
    else:
        client = GRPCClient(reactor, target, 28, 10.0)
    latencies: list[float] = []
    state = {"sent": 0, "answered": 0, "failed": 0}

    def call() -> None:
        started = time.perf_counter()
        state["sent"] += 1

        def answered(_: object) -> None:
            state["answered"] += 1
            latencies.append((time.perf_counter() - started) * 1000)

        def failed(_: object) -> None:
            state["failed"] += 1

        client.command("bench-sid", request).addCallbacks(answered, failed)

    def offer(duration: float) -> object:
        begun = time.perf_counter()
        first = state["sent"]

        def tick() -> None:
            due = int((time.perf_counter() - begun) * rate)
            while state["sent"] - first < due:
                call()

        loop = task.LoopingCall(tick)
        loop.start(0.002)
        return task.deferLater(reactor, duration, loop.stop)

    async def run() -> None:
        if kind == "h2":
            await client.start()
        else:
            client.startService()
        await offer(1.5)  # warm up
        await task.deferLater(reactor, 0.5, lambda: None)
        del latencies[:]
        answered0 = state["answered"]
        cpu0, threads0 = time.process_time(), thread_cpu_seconds(os.getpid())
        await offer(seconds)
        await task.deferLater(reactor, 0.5, lambda: None)
        cpu, threads = time.process_time() - cpu0, thread_cpu_seconds(os.getpid())
        answered = state["answered"] - answered0
        stopped = client.stop() if kind == "h2" else client.stopService()
        if stopped is not None:
            await stopped
        split = {name: cpu_s - threads0.get(name, 0.0) for name, cpu_s in threads.items()}
        split["ended threads"] = cpu - sum(split.values())
        by_thread = ", ".join(
            f"{name} {cpu_s / answered * 1e6:.0f}"
            for name, cpu_s in sorted(split.items(), key=lambda item: -item[1])
            if cpu_s / answered * 1e6 >= 1
        )
        stats = summary(latencies)
        print(
            f"{kind}: {answered} RPCs at {rate:g}/s: {cpu / answered * 1e6:.0f} µs CPU per RPC "
            f"(by thread: {by_thread}); latency p50 {stats['p50']} ms, p99 {stats['p99']} ms; "
            f"{state['failed']} failed"
        )

    from twisted.internet.defer import ensureDeferred

    done = ensureDeferred(run())
    done.addErrback(lambda f: f.printTraceback(sys.stderr))
    done.addBoth(lambda _: reactor.stop())
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

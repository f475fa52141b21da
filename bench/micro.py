"""The gateway's own Python work per station CALL, in-process and deterministic.

``python -m bench.micro [--calls 20000] [--src DIR] [--profile]`` feeds masked WebSocket frames
(StatusNotification and MeterValues) to one real :class:`~ocppcable.websocket.StationProtocol`
over an in-memory transport, with an RPC client that answers at once through the real
:class:`~ocppcable.rpc.policy.CallPolicy`, and prints the CPU per CALL: Autobahn framing, OCPP
parsing and validation, the session, the call policy, metrics and the reply. No sockets, no
reactor, no gRPC (the in-memory station of :mod:`ocppcable.testing`); ``--src`` measures another
checkout's ``ocppcable/`` (one that has ``ocppcable/testing.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

FRAMES = (
    '[2,"%d","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]',
    '[2,"%d","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2026-01-01T00:00:00Z",'
    '"sampledValue":[{"value":"12345","measurand":"Energy.Active.Import.Register","unit":"Wh"}]}]}]',
)


def station(clock: Any) -> tuple[Any, Any]:
    from ocppcable.metrics import PrometheusMetrics
    from ocppcable.testing import AnsweringRPC, MemoryStation, station_factory

    metrics = PrometheusMetrics()
    rpc = AnsweringRPC(clock, metrics)
    rpc.streams = ["bench/A-1"]
    factory = station_factory(clock, rpc, versions=["ocpp1.6"], metrics=metrics)
    memory = MemoryStation(factory)
    response = memory.handshake("/ocpp/A-1", ["ocpp1.6"])
    if b" 101 " not in response:
        raise SystemExit(f"handshake failed: {response!r}")
    memory.send('[2,"b","BootNotification",{"chargePointVendor":"bench","chargePointModel":"x"}]')
    if b"Accepted" not in memory.transport.value():
        raise SystemExit(f"boot failed: {memory.transport.value()!r}")
    return memory.protocol, memory.transport


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--src", help="a directory holding another ocppcable/ to measure")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    args = parser.parse_args(argv)
    if args.src:
        sys.path.insert(0, args.src)
    from twisted.internet.task import Clock

    from ocppcable.testing import client_frame

    protocol, transport = station(Clock())

    def frames(offset: int) -> list[bytes]:
        return [client_frame(FRAMES[i & 1] % (offset + i)) for i in range(args.calls)]

    def run(batch: list[bytes]) -> None:
        for frame in batch:
            protocol.dataReceived(frame)
            transport.clear()

    run(frames(0))  # warm up
    batch = frames(args.calls)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(run, batch)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return 0
    started = time.process_time()
    run(batch)
    cpu = time.process_time() - started
    print(f"{cpu / args.calls * 1e6:.1f} µs CPU per CALL (main-thread Python path, no I/O)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The gateway's own Python work per station CALL, in-process and deterministic.

``python -m bench.micro [--calls 20000] [--src DIR] [--profile]`` feeds masked WebSocket frames
(StatusNotification and MeterValues) to one real :class:`~ocppcable.websocket.StationProtocol`
over an in-memory transport, with an RPC client that answers at once through the real
:class:`~ocppcable.rpc.policy.CallPolicy`, and prints the CPU per CALL: Autobahn framing, OCPP
parsing and validation, the session, the call policy, metrics and the reply. No sockets, no
reactor, no gRPC; ``--src`` measures another checkout's ``ocppcable/``.
"""

from __future__ import annotations

import argparse
import base64
import struct
import sys
import time
from typing import Any

FRAMES = (
    '[2,"%d","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]',
    '[2,"%d","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2026-01-01T00:00:00Z",'
    '"sampledValue":[{"value":"12345","measurand":"Energy.Active.Import.Register","unit":"Wh"}]}]}]',
)


def masked(text: str) -> bytes:
    data, mask = text.encode(), b"\x01\x02\x03\x04"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    n = len(data)
    header = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0xFE]) + struct.pack("!H", n)
    return header + mask + payload


def station(clock: Any) -> tuple[Any, Any]:
    from twisted.internet.address import IPv4Address
    from twisted.internet.defer import succeed
    from twisted.internet.testing import StringTransport

    from ocppcable.cable import CommandReply, ConnectReply, DisconnectReply, Status
    from ocppcable.hub import Hub
    from ocppcable.metrics import PrometheusMetrics
    from ocppcable.ocpp import v16
    from ocppcable.ocpp.validation import validator_for
    from ocppcable.rpc.policy import CallPolicy
    from ocppcable.session import SessionSettings
    from ocppcable.websocket import StationFactory

    class Transport(StringTransport):
        def unregisterProducer(self) -> None:
            self.producer = None

    metrics = PrometheusMetrics()

    class RPC:
        target = "in-process"

        def __init__(self) -> None:
            self.policy = CallPolicy(clock, 28, 10.0, metrics)

        def _run(self, method: str, response: Any) -> Any:
            return self.policy.run(
                method, lambda remaining: succeed(response), lambda e: None, repr
            )

        def connect(self, sid: str, request: Any) -> Any:
            return self._run("connect", ConnectReply(status=Status.SUCCESS, identifiers="{}"))

        def command(self, sid: str, request: Any) -> Any:
            streams = ["bench/A-1"] if request.command == "subscribe" else []
            return self._run("command", CommandReply(status=Status.SUCCESS, streams=streams))

        def disconnect(self, sid: str, request: Any) -> Any:
            return self._run("disconnect", DisconnectReply(status=Status.SUCCESS))

    factory = StationFactory(
        reactor=clock,
        hub=Hub(metrics),
        rpc=RPC(),
        catalogs={"ocpp1.6": v16.CATALOG},
        validators={"ocpp1.6": validator_for(v16.CATALOG)},
        settings=SessionSettings(rate_limit=0),
        ocpp_path="/ocpp",
        forward_headers=["authorization"],
        max_message_size=65536,
        ping_interval=0,
        metrics=metrics,
    )
    address = IPv4Address("TCP", "127.0.0.1", 40000)
    protocol = factory.buildProtocol(address)
    transport = Transport(peerAddress=address)
    protocol.makeConnection(transport)
    key = base64.b64encode(b"0123456789abcdef").decode()
    protocol.dataReceived(
        (
            "GET /ocpp/A-1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        ).encode()
    )
    if b" 101 " not in transport.value():
        raise SystemExit(f"handshake failed: {transport.value()!r}")
    transport.clear()
    boot = '[2,"b","BootNotification",{"chargePointVendor":"bench","chargePointModel":"x"}]'
    protocol.dataReceived(masked(boot))
    if b"Accepted" not in transport.value():
        raise SystemExit(f"boot failed: {transport.value()!r}")
    return protocol, transport


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--src", help="a directory holding another ocppcable/ to measure")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    args = parser.parse_args(argv)
    if args.src:
        sys.path.insert(0, args.src)
    from twisted.internet.task import Clock

    protocol, transport = station(Clock())

    def frames(offset: int) -> list[bytes]:
        return [masked(FRAMES[i & 1] % (offset + i)) for i in range(args.calls)]

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

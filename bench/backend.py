"""A no-op AnyCable RPC backend over real gRPC or HTTP RPC, for benchmarks.

Connect succeeds; ``subscribe`` succeeds and streams the station from ``bench/<station id>``
(broadcast targets); every ``message`` succeeds with no transmissions, so the gateway answers
each CALL with its default reply. Run as ``python -m bench.backend [--workers N]`` for gRPC, or
``python -m bench.backend --http`` for HTTP RPC (``POST /_anycable/<method>``, keep-alive,
pipelined requests answered in order, parsed by ``httptools`` on the epoll reactor): prints
``{"ready": true, "port": …}`` and serves until stdin closes or SIGTERM. With ``--slow-prefix P
--slow-seconds S`` every gRPC ``message`` but BootNotification of a station whose id starts with
P takes S seconds (a backend slow for some stations, :mod:`bench.isolation`). With ``--rate R``
the gRPC backend serves at most R RPCs per second: calls over the rate wait their turn in the
worker thread (a queue, never a refusal), as a backend with a fixed capacity does
(:mod:`bench.storm`). On stdin, the JSON line ``{"cmd": "stats"}`` is answered with the RPCs
received and served, and the most received and served in any one second;
``{"cmd": "rate", "rate": R}`` changes the rate (0: none).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

from ocppcable.protos.rpc_pb2 import (
    SUCCESS,
    CommandResponse,
    ConnectionResponse,
    DisconnectResponse,
)

#: where a station's broadcasts go: ``STREAM_PREFIX + station_id``
STREAM_PREFIX = "bench/"


def reply(method: str, request: dict[str, Any]) -> dict[str, Any]:
    """The no-op application's answer, as AnyCable's JSON fields (snake_case, zero values
    omitted); ``request`` holds the request's fields."""
    if method == "connect":
        return {"status": SUCCESS, "identifiers": '{"bench":1}'}
    if method == "command" and request.get("command") == "subscribe":
        station_id = json.loads(request["identifier"])["id"]
        return {"status": SUCCESS, "streams": [STREAM_PREFIX + station_id]}
    if method == "command" and request.get("command") == "unsubscribe":
        return {"status": SUCCESS, "stop_streams": True}
    return {"status": SUCCESS}


class Meter:
    """Counts RPCs per second as they arrive and as they are served; with a rate, spaces the
    served ones ``1/rate`` apart (each call waits for its turn: a queue, no refusal)."""

    def __init__(self, rate: float = 0.0, clock: Any = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._lock = threading.Lock()
        self._next = 0.0  # when the next call may be served
        self.received: dict[int, int] = {}
        self.served: dict[int, int] = {}
        self.waiting = 0
        self.most_waiting = 0

    def admit(self) -> None:
        """Called by a worker thread when an RPC arrives; returns when it may be served."""
        with self._lock:
            now = self.clock()
            second = int(now)
            self.received[second] = self.received.get(second, 0) + 1
            turn = now
            if self.rate:
                turn = max(now, self._next)
                self._next = turn + 1.0 / self.rate
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
        if turn > now:
            time.sleep(turn - now)
        with self._lock:
            self.waiting -= 1
            second = int(self.clock())
            self.served[second] = self.served.get(second, 0) + 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            received, served = dict(self.received), dict(self.served)
            most_waiting, self.most_waiting = self.most_waiting, self.waiting
        return {
            "cmd": "stats",
            "rate": self.rate,
            "received": sum(received.values()),
            "served": sum(served.values()),
            "peak_received_per_s": max(received.values(), default=0),
            "peak_served_per_s": max(served.values(), default=0),
            "most_waiting": most_waiting,
            # per second (monotonic clock): the caller picks the seconds of its window
            "received_by_second": sorted(received.items()),
            "served_by_second": sorted(served.items()),
        }


class NoOpApplication:
    """:func:`reply` for the gRPC server; thread-safe (its only state is the :class:`Meter`)."""

    def __init__(
        self, slow_prefix: str = "", slow_seconds: float = 0.0, meter: Meter | None = None
    ) -> None:
        self.slow_prefix = slow_prefix
        self.slow_seconds = slow_seconds
        self.meter = meter or Meter()

    def connect(self, request, meta):  # type: ignore[no-untyped-def]
        self.meter.admit()
        return ConnectionResponse(**reply("connect", {}))

    def command(self, request, meta):  # type: ignore[no-untyped-def]
        self.meter.admit()
        if self.slow_prefix and self._slow(request):
            time.sleep(self.slow_seconds)  # this worker thread is busy, as a slow backend's is
        fields = {"command": request.command, "identifier": request.identifier}
        return CommandResponse(**reply("command", fields))

    def _slow(self, request):  # type: ignore[no-untyped-def]
        """Every ``message`` of a slow station but its BootNotification (it boots as usual)."""
        if request.command != "message":
            return False
        station_id = json.loads(request.identifier)["id"]
        action = json.loads(request.data).get("action")
        return station_id.startswith(self.slow_prefix) and action != "boot_notification"

    def disconnect(self, request, meta):  # type: ignore[no-untyped-def]
        self.meter.admit()
        return DisconnectResponse(**reply("disconnect", {}))


def serve_grpc(port: int, workers: int, app: NoOpApplication) -> None:
    from ocppcable.rpc.grpc_server import serve

    server, port = serve(app, f"127.0.0.1:{port}", workers=workers)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"ready": True, "port": port}), flush=True)

    def control() -> None:  # JSON commands until the end of stdin
        for line in sys.stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            if request.get("cmd") == "rate":
                app.meter.rate = float(request["rate"])
                answer = {"cmd": "rate", "rate": app.meter.rate}
            elif request.get("cmd") == "stats":
                answer = app.meter.stats()
            else:
                answer = {"error": f"unknown command {request.get('cmd')!r}"}
            print(json.dumps(answer), flush=True)
        stop.set()

    threading.Thread(target=control, daemon=True).start()
    stop.wait()
    server.stop(1).wait()


def serve_http(port: int) -> None:
    from twisted.internet import epollreactor

    epollreactor.install()
    from httptools import HttpRequestParser
    from twisted.internet import reactor, stdio
    from twisted.internet.protocol import Factory, Protocol

    class RPC(Protocol):
        def connectionMade(self) -> None:
            self.transport.setTcpNoDelay(True)
            self.parser = HttpRequestParser(self)
            self.url = b""
            self.body: list[bytes] = []

        def dataReceived(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_body(self, data: bytes) -> None:
            self.body.append(data)

        def on_message_complete(self) -> None:
            method = self.url.rsplit(b"/", 1)[-1].decode()
            answer = json.dumps(reply(method, json.loads(b"".join(self.body)))).encode()
            self.url, self.body = b"", []
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(answer), answer)
            )

    class Stdin(Protocol):
        def connectionLost(self, reason: Any = None) -> None:
            if reactor.running:
                reactor.stop()

    listening = reactor.listenTCP(port, Factory.forProtocol(RPC), interface="127.0.0.1")
    stdio.StandardIO(Stdin())
    print(json.dumps({"ready": True, "port": listening.getHost().port}), flush=True)
    reactor.run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=32, help="gRPC server threads")
    parser.add_argument("--http", action="store_true", help="serve AnyCable HTTP RPC")
    parser.add_argument("--slow-prefix", default="", help="gRPC: stations whose calls are slow")
    parser.add_argument("--slow-seconds", type=float, default=0.0)
    parser.add_argument("--rate", type=float, default=0.0, help="gRPC: RPCs served per second")
    args = parser.parse_args(argv)
    if args.http:
        serve_http(args.port)
    else:
        app = NoOpApplication(args.slow_prefix, args.slow_seconds, Meter(args.rate))
        serve_grpc(args.port, args.workers, app)


if __name__ == "__main__":
    main()

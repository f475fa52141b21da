"""A no-op AnyCable RPC backend over real gRPC or HTTP RPC, for benchmarks.

Connect succeeds; ``subscribe`` succeeds and streams the station from ``bench/<station id>``
(broadcast targets); every ``message`` succeeds with no transmissions, so the gateway answers
each CALL with its default reply. Run as ``python -m bench.backend [--workers N]`` for gRPC, or
``python -m bench.backend --http`` for HTTP RPC (``POST /_anycable/<method>``, keep-alive,
pipelined requests answered in order, parsed by ``httptools`` on the epoll reactor): prints
``{"ready": true, "port": …}`` and serves until stdin closes or SIGTERM. With ``--slow-prefix P
--slow-seconds S`` every gRPC ``message`` but BootNotification of a station whose id starts with
P takes S seconds (a backend slow for some stations, :mod:`bench.isolation`).
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


class NoOpApplication:
    """:func:`reply` for the gRPC server; thread-safe (it keeps no state)."""

    def __init__(self, slow_prefix: str = "", slow_seconds: float = 0.0) -> None:
        self.slow_prefix = slow_prefix
        self.slow_seconds = slow_seconds

    def connect(self, request, meta):  # type: ignore[no-untyped-def]
        return ConnectionResponse(**reply("connect", {}))

    def command(self, request, meta):  # type: ignore[no-untyped-def]
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
        return DisconnectResponse(**reply("disconnect", {}))


def serve_grpc(port: int, workers: int, app: NoOpApplication) -> None:
    from ocppcable.rpc.grpc_server import serve

    server, port = serve(app, f"127.0.0.1:{port}", workers=workers)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"ready": True, "port": port}), flush=True)

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
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
    args = parser.parse_args(argv)
    if args.http:
        serve_http(args.port)
    else:
        app = NoOpApplication(args.slow_prefix, args.slow_seconds)
        serve_grpc(args.port, args.workers, app)


if __name__ == "__main__":
    main()

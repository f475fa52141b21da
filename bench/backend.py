"""A no-op AnyCable RPC backend over real gRPC, for benchmarks.

Connect succeeds; ``subscribe`` succeeds and streams the station from ``bench/<station id>``
(broadcast targets); every ``message`` succeeds with no transmissions, so the gateway answers
each CALL with its default reply. Run as ``python -m bench.backend [--workers N]``: prints
``{"ready": true, "port": …}`` and serves until stdin closes or SIGTERM. With ``--slow-prefix P
--slow-seconds S`` every ``message`` but BootNotification of a station whose id starts with P
takes S seconds (a backend slow for some stations, :mod:`bench.isolation`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from ocppcable.protos.rpc_pb2 import (
    SUCCESS,
    CommandResponse,
    ConnectionResponse,
    DisconnectResponse,
)
from ocppcable.rpc.grpc_server import serve

#: where a station's broadcasts go: ``STREAM_PREFIX + station_id``
STREAM_PREFIX = "bench/"


class NoOpApplication:
    """The least an AnyCable application can do; thread-safe (it keeps no state)."""

    def __init__(self, slow_prefix: str = "", slow_seconds: float = 0.0) -> None:
        self.slow_prefix = slow_prefix
        self.slow_seconds = slow_seconds

    def connect(self, request, meta):  # type: ignore[no-untyped-def]
        return ConnectionResponse(status=SUCCESS, identifiers='{"bench":1}')

    def command(self, request, meta):  # type: ignore[no-untyped-def]
        if request.command == "subscribe":
            station_id = json.loads(request.identifier)["id"]
            return CommandResponse(status=SUCCESS, streams=[STREAM_PREFIX + station_id])
        if request.command == "unsubscribe":
            return CommandResponse(status=SUCCESS, stop_streams=True)
        if self.slow_prefix and self._slow(request):
            time.sleep(self.slow_seconds)  # this worker thread is busy, as a slow backend's is
        return CommandResponse(status=SUCCESS)

    def _slow(self, request):  # type: ignore[no-untyped-def]
        """Every ``message`` of a slow station but its BootNotification (it boots as usual)."""
        station_id = json.loads(request.identifier)["id"]
        action = json.loads(request.data).get("action")
        return station_id.startswith(self.slow_prefix) and action != "boot_notification"

    def disconnect(self, request, meta):  # type: ignore[no-untyped-def]
        return DisconnectResponse(status=SUCCESS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--slow-prefix", default="")
    parser.add_argument("--slow-seconds", type=float, default=0.0)
    args = parser.parse_args(argv)
    app = NoOpApplication(args.slow_prefix, args.slow_seconds)
    server, port = serve(app, f"127.0.0.1:{args.port}", workers=args.workers)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"ready": True, "port": port}), flush=True)

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    stop.wait()
    server.stop(1).wait()


if __name__ == "__main__":
    main()

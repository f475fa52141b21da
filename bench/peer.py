"""The peer the gateway's CPU cost is compared with: an OCPP 1.6 central system written the usual
way in Python, with the PyPI ``ocpp`` package on asyncio ``websockets``, answering the benchmark's
CALLs itself (no backend, no RPC).

Run as ``python -m bench.peer``: prints ``{"ready": true, "port": …}`` and serves
``ws://127.0.0.1:<port>/<station id>`` until stdin closes or SIGTERM. The ``ocpp`` package runs
with its defaults (schema validation of every CALL and CALLRESULT, in its executor).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, RegistrationStatus
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class CentralSystem(ChargePoint):
    """Answers what the gateway answers in the benchmark."""

    @on(Action.boot_notification)
    def on_boot_notification(self, **kwargs: Any) -> Any:
        return call_result.BootNotification(
            current_time=_now(), interval=30, status=RegistrationStatus.accepted
        )

    @on(Action.heartbeat)
    def on_heartbeat(self) -> Any:
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status_notification(self, **kwargs: Any) -> Any:
        return call_result.StatusNotification()

    @on(Action.meter_values)
    def on_meter_values(self, **kwargs: Any) -> Any:
        return call_result.MeterValues()


async def _station(connection: ServerConnection) -> None:
    station_id = connection.request.path.strip("/").rsplit("/", 1)[-1]
    try:
        await CentralSystem(station_id, connection).start()
    except ConnectionClosed:
        pass


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))

    def stdin_readable() -> None:
        if not os.read(sys.stdin.fileno(), 65536) and not stop.done():
            stop.set_result(None)  # end of input: the benchmark is done with us

    loop.add_reader(sys.stdin.fileno(), stdin_readable)
    async with serve(
        _station,
        "127.0.0.1",
        port,
        subprotocols=["ocpp1.6"],
        ping_interval=None,  # the gateway runs with --ping-interval=0 too
        max_queue=None,
    ) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(json.dumps({"ready": True, "port": bound}), flush=True)
        await stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()

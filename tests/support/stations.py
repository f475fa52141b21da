"""OCPP stations over real WebSockets: a PyPI ``ocpp`` charge point, a charging session, raw
sockets and raw HTTP requests for what no real client sends."""

from __future__ import annotations

import asyncio
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16 import call as calls
from ocpp.v16.enums import Action

from tests.support.common import TIMEOUT


class Station(ChargePoint):
    """A 1.6 charge point from the PyPI ``ocpp`` package that answers a few remote commands."""

    def __init__(self, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection, response_timeout=TIMEOUT)
        self.commands: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message: str, **kwargs: Any) -> Any:
        await self.commands.put(("TriggerMessage", {"requestedMessage": requested_message}))
        return call_result.TriggerMessage(status="Accepted")

    @on(Action.reset)
    async def on_reset(self, type: str) -> Any:
        await self.commands.put(("Reset", {"type": type}))
        return call_result.Reset(status="Accepted")


async def charging_session(cp: Station) -> None:
    """Boot → Authorize → StartTransaction → MeterValues → StopTransaction against the demo
    channel (tests.support.Backend or ocppcable.demo), checking each reply."""
    boot = await cp.call(
        calls.BootNotification(
            charge_point_model="M1", charge_point_vendor="V", meter_serial_number="SN-1"
        )
    )
    assert boot.status == "Accepted" and boot.interval == 60
    auth = await cp.call(calls.Authorize(id_tag="TAG-OK"))
    assert auth.id_tag_info["status"] == "Accepted"
    start = await cp.call(
        calls.StartTransaction(
            connector_id=1, id_tag="TAG-OK", meter_start=0, timestamp="2026-01-01T00:00:00Z"
        )
    )
    assert start.transaction_id == 1
    sample = {"timestamp": "2026-01-01T00:01:00Z", "sampledValue": [{"value": "10"}]}
    values = await cp.call(
        calls.MeterValues(connector_id=1, transaction_id=1, meter_value=[sample])
    )
    assert values is not None  # {} (the default reply), schema-validated by the client
    stop = await cp.call(
        calls.StopTransaction(meter_stop=10, timestamp="2026-01-01T00:02:00Z", transaction_id=1)
    )
    assert stop is not None


CHARGING_ACTIONS = [
    "boot_notification", "authorize", "start_transaction", "meter_values", "stop_transaction"
]  # fmt: skip


class StationConnection:
    """A station connected to the gateway with its message loop running."""

    def __init__(
        self,
        url: str,
        station_id: str,
        subprotocols: tuple[str, ...],
        station_class: type[Station] = Station,
    ) -> None:
        self.url = url
        self.station_id = station_id
        self.subprotocols = subprotocols
        self.station_class = station_class
        self.ws: Any = None
        self.station: Station | None = None
        self._loop: asyncio.Task[Any] | None = None

    async def open(self) -> Station:
        self.ws = await websockets.connect(
            self.url, subprotocols=list(self.subprotocols), open_timeout=TIMEOUT
        )
        self.station = self.station_class(self.station_id, self.ws)
        self._loop = asyncio.ensure_future(self._serve())
        return self.station

    async def _serve(self) -> None:
        try:
            await self.station.start()
        except websockets.ConnectionClosed:
            pass

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._loop is not None:
            self._loop.cancel()


async def open_station(
    url: str,
    station_id: str,
    subprotocols: tuple[str, ...] = ("ocpp1.6",),
    station_class: type[Station] = Station,
) -> StationConnection:
    connection = StationConnection(url, station_id, subprotocols, station_class)
    await connection.open()
    return connection


async def raw_socket(url: str, subprotocols: tuple[str, ...] = ("ocpp1.6",)) -> Any:
    """A bare WebSocket (no OCPP client) for frames no real client would send."""
    return await websockets.connect(url, subprotocols=list(subprotocols), open_timeout=TIMEOUT)


def upgrade_request(path: str, host: str = "localhost", *extra: str) -> bytes:
    """A WebSocket upgrade request for ``path`` offering ocpp1.6, with ``extra`` header lines."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: ocpp1.6",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def http_status(port: int, request: bytes) -> int:
    """Send raw ``request`` bytes to the gateway and return the status code of its answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        status = await asyncio.wait_for(reader.readline(), TIMEOUT)
        return int(status.split()[1])
    finally:
        writer.close()

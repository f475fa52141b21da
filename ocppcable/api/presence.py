# -*- test-case-name: tests.test_api_presence -*-
"""Presence on one node: the hub's connected stations, read when asked (nothing to keep in
sync). A cluster replaces it with entries in Redis that every node refreshes and that expire
when their node dies."""

from __future__ import annotations

import heapq
from datetime import UTC, datetime
from typing import Any, Protocol

from twisted.internet.defer import succeed
from zope.interface import implementer

from ocppcable.api.interfaces import IPresence, StationInfo
from ocppcable.hub import Hub


class PresentStation(Protocol):
    """What presence reads of a connected station (the WebSocket protocol has it)."""

    station_id: str
    #: epoch seconds of the WebSocket opening and of the last frame received (None: none yet)
    connected_at: float
    last_frame_at: float | None

    @property
    def protocol(self) -> str: ...

    @property
    def serial_number(self) -> str | None: ...


def iso_utc(seconds: float) -> str:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def station_info(station: PresentStation, node: str) -> StationInfo:
    last = station.last_frame_at
    return StationInfo(
        id=station.station_id,
        protocol=station.protocol,
        node=node,
        connected_since=iso_utc(station.connected_at),
        last_frame_at=None if last is None else iso_utc(last),
        serial_number=station.serial_number,
    )


@implementer(IPresence)
class LocalPresence:
    """The stations connected to this node (``node`` names it in the answers)."""

    def __init__(self, hub: Hub, node: str) -> None:
        self.hub = hub
        self.node = node

    def lookup(self, station_id: str) -> Any:
        station: Any = self.hub.station(station_id)
        return succeed(None if station is None else station_info(station, self.node))

    def page(self, after: str | None, limit: int) -> Any:
        stations: list[Any] = self.hub.stations()
        if after is not None:
            stations = [s for s in stations if s.station_id > after]
        first = heapq.nsmallest(limit, stations, key=lambda s: s.station_id)
        return succeed([station_info(s, self.node) for s in first])

    def started(self, station_id: str) -> None:
        pass  # read from the hub when asked

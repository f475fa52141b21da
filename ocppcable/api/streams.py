# -*- test-case-name: tests.test_api_calls -*-
"""Which stations streamed from which streams before they went offline, on this node: a
broadcast with a ``ttl`` to a stream no connected station listens to is queued for them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class StreamMemory:
    """Stream → the stations that last left it, the most recently used streams kept."""

    def __init__(self, max_streams: int, max_stations: int) -> None:
        self.max_streams = max_streams
        self.max_stations = max_stations
        self._streams: OrderedDict[str, dict[str, None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._streams)

    def remember(self, station_id: str, streams: Iterable[str]) -> None:
        """``station_id`` left ``streams`` (its session ended)."""
        for stream in streams:
            stations = self._streams.pop(stream, None) or {}
            stations.pop(station_id, None)
            stations[station_id] = None  # the latest last
            while len(stations) > self.max_stations:
                del stations[next(iter(stations))]
            self._streams[stream] = stations
            while len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)

    def stations(self, stream: str) -> list[str]:
        return list(self._streams.get(stream, ()))

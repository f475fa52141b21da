# -*- test-case-name: tests.test_api_queue -*-
"""The in-memory queue of commands for offline stations (one node, lost on restart).

:class:`StationQueues` is the logic, synchronous and driven by an injected clock;
:class:`MemoryQueue` offers it as an :class:`~ocppcable.api.interfaces.ICommandQueue`. A
cluster replaces both with a Redis-backed queue (Redis Streams: one stream per station, the
taken head as the consumer group's pending entry).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import succeed
from zope.interface import implementer

from ocppcable.api.interfaces import Duplicate, ICommandQueue, QueuedCommand
from ocppcable.metrics import IMetrics, NoMetrics

#: seconds an expiry notice is kept for the station's next session, to be reported then
NOTICE_RETENTION = 24 * 3600.0


@dataclass
class _Station:
    live: deque[QueuedCommand] = field(default_factory=deque)
    #: the unique id of the head while it is delivered and not answered
    taken: str | None = None
    #: expired commands not yet reported, with the time they expired
    notices: deque[tuple[QueuedCommand, float]] = field(default_factory=deque)


class StationQueues:
    """Per-station FIFO queues with expiry, idempotency keys and bounds."""

    def __init__(
        self,
        clock: Callable[[], float],
        per_station: int,
        total: int,
        metrics: IMetrics | None = None,
    ) -> None:
        self.clock = clock
        self.per_station = per_station
        self.total = total
        self.metrics = metrics or NoMetrics()
        self._stations: dict[str, _Station] = {}
        self._live = 0
        self._notices = 0
        #: (station, key) → (unique id, claimed until); oldest claims first
        self._keys: dict[tuple[str, str], tuple[str, float]] = {}
        #: the earliest time a sweep has anything to do (it passes over everything then)
        self._due = float("inf")

    def __len__(self) -> int:
        """Commands queued now (taken ones included, expiry notices not)."""
        return self._live

    def put(self, entry: QueuedCommand) -> bool:
        station = self._stations.get(entry.station_id)
        if self._live >= self.total:
            return False
        if station is None:
            station = self._stations[entry.station_id] = _Station()
        if len(station.live) + len(station.notices) >= self.per_station:
            if not station.notices or len(station.live) >= self.per_station:
                return False
            station.notices.popleft()  # room for a command before an old notice
            self._notices -= 1
        station.live.append(entry)
        self._live += 1
        self._due = min(self._due, entry.expires_at)
        return True

    def claim(self, station_id: str, key: str, unique_id: str, ttl: float) -> Duplicate | None:
        now = self.clock()
        held = self._keys.get((station_id, key))
        if held is not None and held[1] > now:
            return Duplicate(held[0], self._queued(station_id, held[0]))
        self._keys.pop((station_id, key), None)
        if len(self._keys) >= self.total:
            self._purge_keys(now)
            if len(self._keys) >= self.total:  # all still valid: the oldest claim goes
                del self._keys[next(iter(self._keys))]
        self._keys[(station_id, key)] = (unique_id, now + ttl)
        self._due = min(self._due, now + ttl)
        return None

    def unclaim(self, station_id: str, key: str) -> None:
        self._keys.pop((station_id, key), None)

    def _queued(self, station_id: str, unique_id: str) -> bool:
        station = self._stations.get(station_id)
        return station is not None and any(e.command.unique_id == unique_id for e in station.live)

    def take(self, station_id: str) -> QueuedCommand | None:
        station = self._stations.get(station_id)
        if station is None or station.taken is not None:
            return None
        self._expire(station_id, station, self.clock())
        if not station.live:
            self._forget_if_empty(station_id, station)
            return None
        head = station.live[0]
        station.taken = head.command.unique_id
        return head

    def release(self, station_id: str, unique_id: str) -> None:
        station = self._stations.get(station_id)
        if station is not None and station.taken == unique_id:
            station.taken = None
            self._due = min(self._due, station.live[0].expires_at)

    def done(self, station_id: str, unique_id: str) -> None:
        station = self._stations.get(station_id)
        if station is None or station.taken != unique_id:
            return
        station.taken = None
        station.live.popleft()
        self._live -= 1
        self._forget_if_empty(station_id, station)

    def expired(self, station_id: str) -> list[QueuedCommand]:
        station = self._stations.get(station_id)
        if station is None:
            return []
        self._expire(station_id, station, self.clock())
        notices = [entry for entry, _ in station.notices]
        self._notices -= len(notices)
        station.notices.clear()
        self._forget_if_empty(station_id, station)
        return notices

    def sweep(self) -> list[QueuedCommand]:
        """Expire what is due everywhere; returns what expired now. Old notices and keys go.
        Until something is due it costs nothing."""
        now = self.clock()
        if now < self._due:
            return []
        expired: list[QueuedCommand] = []
        due = float("inf")
        for station_id, station in list(self._stations.items()):
            expired += self._expire(station_id, station, now)
            while station.notices and station.notices[0][1] + NOTICE_RETENTION <= now:
                station.notices.popleft()
                self._notices -= 1
            self._forget_if_empty(station_id, station)
            for entry in station.live:
                if entry.command.unique_id != station.taken:
                    due = min(due, entry.expires_at)
            if station.notices:
                due = min(due, station.notices[0][1] + NOTICE_RETENTION)
        self._purge_keys(now)
        for _, until in self._keys.values():
            due = min(due, until)
        self._due = due
        return expired

    def _expire(self, station_id: str, station: _Station, now: float) -> list[QueuedCommand]:
        expired = []
        kept: deque[QueuedCommand] = deque()
        for entry in station.live:
            if entry.expires_at <= now and entry.command.unique_id != station.taken:
                expired.append(entry)
            else:
                kept.append(entry)
        if expired:
            self.metrics.queue_expired(len(expired))
            station.live = kept
            self._live -= len(expired)
            for entry in expired:
                if self._notices < self.total:  # beyond that an expiry is only counted
                    station.notices.append((entry, now))
                    self._notices += 1
                    self._due = min(self._due, now + NOTICE_RETENTION)
        return expired

    def _forget_if_empty(self, station_id: str, station: _Station) -> None:
        if not station.live and not station.notices and station.taken is None:
            self._stations.pop(station_id, None)

    def _purge_keys(self, now: float) -> None:
        for held, (_, until) in list(self._keys.items()):
            if until <= now:
                del self._keys[held]


@implementer(ICommandQueue)
class MemoryQueue:
    """:class:`StationQueues` behind :class:`~ocppcable.api.interfaces.ICommandQueue`."""

    def __init__(
        self,
        clock: Callable[[], float],
        per_station: int,
        total: int,
        metrics: IMetrics | None = None,
    ) -> None:
        self.queues = StationQueues(clock, per_station, total, metrics)

    def put(self, entry: QueuedCommand) -> Any:
        return succeed(self.queues.put(entry))

    def claim(self, station_id: str, key: str, unique_id: str, ttl: float) -> Any:
        return succeed(self.queues.claim(station_id, key, unique_id, ttl))

    def unclaim(self, station_id: str, key: str) -> Any:
        return succeed(self.queues.unclaim(station_id, key))

    def take(self, station_id: str) -> Any:
        return succeed(self.queues.take(station_id))

    def release(self, station_id: str, unique_id: str) -> Any:
        return succeed(self.queues.release(station_id, unique_id))

    def done(self, station_id: str, unique_id: str) -> Any:
        return succeed(self.queues.done(station_id, unique_id))

    def expired(self, station_id: str) -> Any:
        return succeed(self.queues.expired(station_id))

    def sweep(self) -> Any:
        return succeed(self.queues.sweep())

    def depth(self) -> int:
        return len(self.queues)

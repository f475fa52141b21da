"""The call API's plug points: where stations are (presence), how a command reaches the node
holding a station (routing), and where commands for offline stations wait (the queue).

A single node uses the in-memory implementations (:mod:`ocppcable.api.presence`,
:mod:`ocppcable.api.router`, :mod:`ocppcable.api.queue`); a cluster provides Redis-backed ones
with the same methods. Every method returns a Deferred, so that either kind fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zope.interface import Interface

from ocppcable.commands import RemoteCommand


class Unavailable(Exception):
    """Where a cluster keeps presence and the queue (Redis) could not be reached: the request
    is answered 503, background work is logged as a warning and retried by its next cause."""


@dataclass(frozen=True)
class StationInfo:
    """A connected station as the presence list shows it (times in ISO 8601 UTC)."""

    id: str
    protocol: str
    node: str
    connected_since: str
    last_frame_at: str | None
    serial_number: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "protocol": self.protocol,
            "node": self.node,
            "connected_since": self.connected_since,
            "last_frame_at": self.last_frame_at,
            "serial_number": self.serial_number,
        }


@dataclass(frozen=True)
class QueuedCommand:
    """A command waiting for its station's next session, until ``expires_at`` (clock time)."""

    station_id: str
    command: RemoteCommand
    expires_at: float
    key: str | None = None


@dataclass(frozen=True)
class Duplicate:
    """An idempotency key already used within its ttl, by the call with ``unique_id``."""

    unique_id: str
    queued: bool


class IPresence(Interface):
    """Which stations are connected, and where (cluster-wide in a cluster)."""

    def lookup(station_id: str) -> Any:
        """Deferred firing with the station's :class:`StationInfo`, or None when offline."""

    def page(after: str | None, limit: int) -> Any:
        """Deferred firing with up to ``limit`` :class:`StationInfo`, ordered by id, with ids
        greater than ``after``."""

    def started(station_id: str) -> None:
        """The station's session started here: what presence shows of it (its serial
        number) may have changed."""


class IRouter(Interface):
    """Hands commands to the session of a connected station, on whichever node holds it."""

    def deliver(station_id: str, command: RemoteCommand) -> Any:
        """Deferred firing True once the station's session took ``command`` (its end then
        comes to :meth:`ocppcable.commands.ICallTracker.ended`), False when the station is not connected."""

    def report_expired(station_id: str, command: RemoteCommand) -> Any:
        """Deferred firing True once the station's session reported ``command`` to the
        backend as expired (``#error`` ``Expired``), False when the station is not connected."""

    def return_ended(station_id: str, ended: Any) -> Any:
        """A session here ended a command that another node handed it (its token names that
        node): tell that node's :meth:`ocppcable.commands.ICallTracker.ended`."""


class ICommandQueue(Interface):
    """Commands for offline stations, per station in order, each until it expires.

    The head of a station's queue is *taken* (delivered, not yet answered) until it is
    :meth:`done` or :meth:`release`-d: one outstanding command per station.
    """

    def put(entry: QueuedCommand) -> Any:
        """Deferred firing True when queued, False when the station's queue (or the whole
        queue) is full."""

    def claim(station_id: str, key: str, unique_id: str, ttl: float) -> Any:
        """Deferred firing None when ``key`` is now claimed for ``unique_id`` for ``ttl``
        seconds, or the :class:`Duplicate` that claimed it earlier and is still within its
        ttl."""

    def unclaim(station_id: str, key: str) -> Any:
        """The call that claimed ``key`` came to nothing (refused, never sent): the key may be
        used again."""

    def take(station_id: str) -> Any:
        """Deferred firing with the station's next live :class:`QueuedCommand` (now taken),
        or None when it has none or its head is already taken."""

    def release(station_id: str, unique_id: str) -> Any:
        """The taken command was not delivered after all: it is the head again."""

    def done(station_id: str, unique_id: str) -> Any:
        """The taken command was delivered and ended: it leaves the queue."""

    def expired(station_id: str) -> Any:
        """Deferred firing with the station's commands that expired since it was last
        connected (each returned once), oldest first."""

    def sweep() -> Any:
        """Deferred firing with the commands that expired now (moved to :meth:`expired`).
        The queue counts every expiry in the metrics (``IMetrics.queue_expired``)."""

    def depth() -> int:
        """Commands queued now (expired ones not counted; in Redis as of the last sweep)."""

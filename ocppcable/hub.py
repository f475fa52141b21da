"""Who is connected and who listens to which stream, on this node."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.task import CooperativeTask, Cooperator, cooperate
from twisted.logger import Logger

from ocppcable import cable, publication
from ocppcable.metrics import IMetrics, NoMetrics

log = Logger()

#: broadcast items delivered in one go; a bigger batch is delivered in slices of this size,
#: each in its own reactor turn, so that the stations' traffic goes on in between
DELIVERY_SLICE = 500


class Station(Protocol):
    """What the hub needs of a connected station (the WebSocket protocol implements it)."""

    station_id: str

    @property
    def identifiers(self) -> str: ...

    def deliver(self, message: dict[str, Any]) -> None: ...

    def replace(self) -> None: ...

    def disconnect(self, reconnect: bool) -> None: ...


class Hub:
    """Stream subscriptions and the station registry. Broadcast adapters feed :meth:`dispatch`."""

    def __init__(
        self, metrics: IMetrics | None = None, cooperator: Cooperator | None = None
    ) -> None:
        self.metrics = metrics or NoMetrics()
        self._cooperate = cooperator.cooperate if cooperator is not None else cooperate
        #: items of big batches still to deliver, in order, with their source
        self._backlog: deque[tuple[deque[publication.Item], str]] = deque()
        self._delivering: CooperativeTask | None = None
        self._streams: dict[str, set[Station]] = {}
        self._stations: dict[str, Station] = {}
        self._watchers: list[tuple[Callable[[str], None], Callable[[str], None]]] = []
        self._registered: list[Callable[[str], None]] = []
        self._unregistered: list[Callable[[str], None]] = []
        #: called with ``(stream, data)`` for a broadcast to a stream no station here listens
        #: to (the call API queues those that carry a ttl)
        self.undelivered: Callable[[str, Any], None] | None = None

    # --- registry -------------------------------------------------------------------------------

    def register(self, station: Station) -> None:
        """Make ``station`` the connection for its id; an older one is replaced (closed)."""
        previous = self._stations.get(station.station_id)
        self._stations[station.station_id] = station
        if previous is not None and previous is not station:
            log.info(
                "station {station_id} connected again: replacing the older connection",
                station_id=station.station_id,
            )
            previous.replace()
        for registered in self._registered:
            registered(station.station_id)

    def on_register(self, registered: Callable[[str], None]) -> None:
        """Call ``registered(station_id)`` whenever a station connects to this node."""
        self._registered.append(registered)

    def on_unregister(self, unregistered: Callable[[str], None]) -> None:
        """Call ``unregistered(station_id)`` whenever a station's connection here goes away
        (not when a newer connection here replaced it)."""
        self._unregistered.append(unregistered)

    def unregister(self, station: Station) -> None:
        if self._stations.get(station.station_id) is station:
            del self._stations[station.station_id]
            for unregistered in self._unregistered:
                unregistered(station.station_id)

    def station(self, station_id: str) -> Station | None:
        return self._stations.get(station_id)

    def stations(self) -> list[Station]:
        return list(self._stations.values())

    def __len__(self) -> int:
        return len(self._stations)

    # --- streams ---------------------------------------------------------------------------------

    def watch(self, added: Callable[[str], None], removed: Callable[[str], None]) -> None:
        """Call ``added(stream)`` when a stream gets its first station on this node and
        ``removed(stream)`` when it loses its last one (pub/sub subscribes to just those)."""
        self._watchers.append((added, removed))

    def join(self, stream: str, station: Station) -> None:
        members = self._streams.get(stream)
        if members is None:
            members = self._streams[stream] = set()
            for added, _ in self._watchers:
                added(stream)
        members.add(station)

    def leave(self, stream: str, station: Station) -> None:
        members = self._streams.get(stream)
        if members is not None:
            members.discard(station)
            if not members:
                del self._streams[stream]
                for _, removed in self._watchers:
                    removed(stream)

    def streams(self) -> list[str]:
        return list(self._streams)

    # --- delivery --------------------------------------------------------------------------------

    def dispatch(self, body: bytes | str, source: str) -> int:
        """Deliver a raw broadcast body; returns how many stations it reached at once.

        A batch of more than :data:`DELIVERY_SLICE` items (and anything dispatched while one is
        being delivered, to keep the order) is delivered in slices over the next reactor turns,
        and 0 is returned. Raises :class:`~ocppcable.publication.MalformedPublication` for a
        body that is not a publication at all; single bad items of a batch are logged and
        skipped.
        """
        items = publication.accept(body, source, self.metrics)
        if not self._backlog and len(items) <= DELIVERY_SLICE:
            return self._deliver(items, source)
        self._backlog.append((deque(items), source))
        if self._delivering is None:
            self._delivering = self._cooperate(self._deliver_backlog())
        return 0

    def _deliver_backlog(self) -> Any:
        while self._backlog:
            items, source = self._backlog[0]
            count = min(DELIVERY_SLICE, len(items))
            self._deliver([items.popleft() for _ in range(count)], source)
            if not items:
                self._backlog.popleft()
            yield None
        self._delivering = None

    def _deliver(self, items: list[publication.Item], source: str) -> int:
        delivered = 0
        for item in items:
            if isinstance(item, publication.RemoteDisconnect):
                delivered += self.remote_disconnect(item.identifiers, item.reconnect)
            else:
                delivered += self.publish(item.stream, item.data, source)
        self.metrics.broadcast(source, "delivered", delivered)
        return delivered

    def publish(self, stream: str, data: Any, source: str = "local") -> int:
        members = self._streams.get(stream)
        if not members:
            if self.undelivered is not None:
                self.undelivered(stream, data)
            return 0
        try:
            message = cable.decode_broadcast(data)
        except cable.MalformedMessage as e:
            log.warn(
                "dropped a malformed broadcast to {stream} from {source}: {reason}",
                stream=stream,
                source=source,
                reason=str(e),
            )
            return 0
        targets = list(members)  # a delivery may change the membership
        for station in targets:
            station.deliver(message)
        return len(targets)

    def remote_disconnect(self, identifiers: str, reconnect: bool) -> int:
        """Disconnects the stations whose Connect returned ``identifiers``; stations without
        identifiers yet (their Connect has not succeeded) never match."""
        if not identifiers:
            return 0
        matching = [s for s in self._stations.values() if s.identifiers == identifiers]
        for station in matching:
            station.disconnect(reconnect)
        return len(matching)

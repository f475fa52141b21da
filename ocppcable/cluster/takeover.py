# -*- test-case-name: tests.test_cluster_takeover -*-
"""Station takeover across the cluster (docs/contract.md, "Replacement").

A station that reconnects lands on whichever node the load balancer picks; its old connection
may still be open on another node (the station saw the network drop, the node did not yet). When
Redis is configured every node announces the stations that connect to it on a pub/sub channel,
and a node holding an older connection for that id closes it with 1000 "replaced" (which makes
its Disconnect RPC), exactly as for a second connection on the same node.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ocppcable.broadcast.redisx import consumer_name
from ocppcable.cluster.publisher import RedisPublisher
from ocppcable.hub import Hub
from ocppcable.redis_connection import RedisLink, Subscriber, SubscriberFactory

log = Logger()

CHANNEL = "__ocppcable_stations__"


class ClusterTakeover(Service):
    """Announces local stations and replaces local connections announced by other nodes."""

    name = "takeover"

    def __init__(self, redis: RedisLink, hub: Hub, publisher: RedisPublisher) -> None:
        self.redis = redis
        self.hub = hub
        self.publisher = publisher
        self.node = consumer_name()
        self._subscriber: SubscriberFactory | None = None
        hub.on_register(self._announce)

    def startService(self) -> None:
        super().startService()
        self._subscriber = SubscriberFactory(self)
        self.redis.connect(self._subscriber)  # it logs outages

    def stopService(self) -> Any:
        super().stopService()
        subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            subscriber.disconnect()

    def _announce(self, station_id: str) -> None:
        if not self.running:
            return
        message = json.dumps({"station_id": station_id, "node": self.node})
        d = self.publisher.publish(CHANNEL, message)
        d.addErrback(
            lambda f: log.info(
                "could not announce station {station_id} to the cluster: {reason}",
                station_id=station_id,
                reason=f.getErrorMessage(),
            )
        )

    # --- SubscriberOwner ---------------------------------------------------------------------------

    def subscriber_ready(self, conn: Subscriber) -> Deferred[Any]:
        return conn.subscribe([CHANNEL])

    def subscriber_lost(self, conn: Subscriber) -> None:
        pass

    def received(self, message: Any) -> None:
        try:
            announcement = json.loads(message)
            station_id, node = announcement["station_id"], announcement["node"]
        except (TypeError, ValueError, KeyError):
            log.warn("dropped a malformed station announcement: {message!r}", message=message)
            return
        station = self.hub.station(station_id)
        if node != self.node and station is not None:
            log.info(
                "station {station_id} connected to node {node}: replacing it here",
                station_id=station_id,
                node=node,
            )
            station.replace()

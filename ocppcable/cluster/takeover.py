# -*- test-case-name: tests.test_cluster_takeover -*-
"""Station takeover across the cluster (docs/contract.md, "Replacement").

A station that reconnects lands on whichever node the load balancer picks; its old connection
may still be open on another node (the station saw the network drop, the node did not yet). In a
cluster (``--pubsub``) every node announces the stations that connect to it on a pub/sub channel,
and a node holding an older connection for that id closes it with 1000 "replaced" (which makes
its Disconnect RPC), exactly as for a second connection on the same node.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.application.service import Service
from twisted.logger import Logger

from ocppcable.broadcast.redisx import consumer_name
from ocppcable.cluster.interface import ICluster
from ocppcable.hub import Hub

log = Logger()

CHANNEL = "__ocppcable_stations__"


class ClusterTakeover(Service):
    """Announces local stations and replaces local connections announced by other nodes."""

    name = "takeover"

    def __init__(self, cluster: ICluster, hub: Hub) -> None:
        self.cluster = cluster
        self.hub = hub
        self.node = consumer_name()
        hub.on_register(self._announce)
        cluster.subscribe(CHANNEL, self.received)

    def _announce(self, station_id: str) -> None:
        if not self.running:
            return
        message = json.dumps({"station_id": station_id, "node": self.node})
        d = self.cluster.publish(CHANNEL, message)
        d.addErrback(
            lambda f: log.info(
                "could not announce station {station_id} to the cluster: {reason}",
                station_id=station_id,
                reason=f.getErrorMessage(),
            )
        )

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

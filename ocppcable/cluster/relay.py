# -*- test-case-name: tests.test_cluster_relay -*-
"""HTTP broadcasts for the whole cluster.

A backend POSTs a broadcast to whichever node its load balancer picks, while the station it is
for may be connected to any node. In a cluster (``--pubsub``), the node that takes the POST
publishes it through the cluster transport and every node, itself included, delivers it to its
own stations (AnyCable 1.6.2+ does the same through its pub/sub layer). With Redis and a Redis
broadcast adapter, on the channels that adapter reads: the legacy ``redis`` channel, to which
every node subscribes, or, with ``redisx`` alone, the pub/sub channels named like the
publications' streams (remote disconnects on the internal channel). Otherwise on
:data:`RELAY_CHANNEL`, to which the relay itself subscribes (:meth:`ClusterRelay.listen`).

When the cluster is not connected, the node delivers the broadcast to its own stations and logs that
the rest of the cluster missed it. A PUBLISH that was sent but failed is only logged: Redis may
have taken it, and a remote command delivered twice is worse than one reported missing (the
backend hears of every command's outcome, or of its ``Timeout``).
"""

from __future__ import annotations

from twisted.internet.defer import gatherResults
from twisted.logger import Logger

from ocppcable.broadcast.interface import Dispatch
from ocppcable.cluster.interface import ICluster
from ocppcable.metrics import IMetrics
from ocppcable.publication import MalformedPublication, accept, pubsub_message

log = Logger()

#: the channel of relayed broadcasts when no broadcast adapter reads the cluster's messages
RELAY_CHANNEL = "__ocppcable_broadcasts__"


class ClusterRelay:
    """A :data:`~ocppcable.broadcast.interface.Dispatch` for the ``http`` broadcaster that hands
    publications to every node through the cluster.

    ``channel`` is the legacy ``redis`` adapter's channel, or None to fan out on the stream
    channels of the ``redisx`` pub/sub layer; ``internal`` is that layer's channel for remote
    disconnects.
    """

    def __init__(
        self,
        publisher: ICluster,
        local: Dispatch,
        metrics: IMetrics,
        channel: str | None,
        internal: str,
    ) -> None:
        self.publisher = publisher
        self.local = local
        self.metrics = metrics
        self.channel = channel
        self.internal = internal

    @property
    def description(self) -> str:
        where = "the stream channels" if self.channel is None else f"channel {self.channel!r}"
        return f"relayed to every node through {self.publisher.description} ({where})"

    def listen(self) -> None:
        """Deliver what any node relays on our channel to this node's stations (when no
        broadcast adapter reads that channel)."""
        assert self.channel is not None
        self.publisher.subscribe(self.channel, self._relayed)

    def _relayed(self, message: str | bytes) -> None:
        try:
            self.local(message, "cluster")
        except MalformedPublication as e:
            log.warn("dropped a malformed relayed broadcast: {reason}", reason=str(e))

    def dispatch(self, body: bytes | str, source: str) -> int:
        """Relays ``body``; returns the stations reached here at once (0 when relayed: the
        nodes' subscribers deliver it). Raises
        :class:`~ocppcable.publication.MalformedPublication` for a body that is not a
        publication, before anything is sent."""
        if not self.publisher.connected:
            log.warn(
                "the cluster is not connected: a broadcast from {source} reaches this node's stations "
                "only",
                source=source,
            )
            return self.local(body, source)
        items = accept(body, source, self.metrics)
        messages = [pubsub_message(item, self.internal) for item in items]
        if self.channel is not None:  # one message, as the backend would have published it
            messages = [(self.channel, "[" + ",".join(m for _, m in messages) + "]")]
        sent = gatherResults(
            [self.publisher.publish(channel, message) for channel, message in messages],
            consumeErrors=True,
        )
        sent.addErrback(
            lambda f: log.error(
                "could not relay a broadcast from {source} through the cluster (other nodes' stations "
                "may miss it): {reason}",
                source=source,
                reason=f.value.subFailure.getErrorMessage(),
            )
        )
        self.metrics.broadcast(source, "relayed", 0)
        return 0

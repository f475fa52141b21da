"""One Redis connection for PUBLISH, shared by everything a node tells the rest of the cluster
(station announcements, relayed HTTP broadcasts)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail

from ocppcable.redis_connection import LazyConnection

#: seconds a PUBLISH may wait (txredisapi queues commands while Redis is away)
PUBLISH_TIMEOUT = 2.0


class RedisPublisher(LazyConnection):
    """The node's PUBLISH connection, made (and remade) in the background."""

    name = "redis-publisher"

    def publish(self, channel: str, message: str | bytes) -> Deferred[Any]:
        """``PUBLISH channel message``; fails after :data:`PUBLISH_TIMEOUT` seconds."""
        if self._factory is None:
            return fail(RuntimeError("the Redis publisher is not running"))
        d = self._factory.handler.publish(channel, message)
        return d.addTimeout(PUBLISH_TIMEOUT, self.reactor)

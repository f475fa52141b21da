"""One Redis connection for PUBLISH, shared by everything a node tells the rest of the cluster
(station announcements, relayed HTTP broadcasts)."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail

from ocppcable.redis_connection import RedisLink, WatchedFactory

#: seconds a PUBLISH may wait (txredisapi queues commands while Redis is away)
PUBLISH_TIMEOUT = 2.0


class RedisPublisher(Service):
    """A lazy connection to ``url``: it connects (and reconnects) in the background."""

    name = "redis-publisher"

    def __init__(self, reactor: Any, redis: RedisLink) -> None:
        self.reactor = reactor
        self.redis = redis
        self._factory: WatchedFactory | None = None

    @property
    def connected(self) -> bool:
        return self._factory is not None and self._factory.size > 0

    def startService(self) -> None:
        super().startService()
        self._factory = WatchedFactory()
        self.redis.connect(self._factory)  # it logs outages

    def stopService(self) -> Any:
        super().stopService()
        factory, self._factory = self._factory, None
        return factory.disconnect() if factory is not None else None

    def publish(self, channel: str, message: str | bytes) -> Deferred[Any]:
        """``PUBLISH channel message``; fails after :data:`PUBLISH_TIMEOUT` seconds."""
        if self._factory is None:
            return fail(RuntimeError("the Redis publisher is not running"))
        d = self._factory.handler.publish(channel, message)
        return d.addTimeout(PUBLISH_TIMEOUT, self.reactor)

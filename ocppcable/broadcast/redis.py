"""The ``redis`` broadcaster: Redis pub/sub, every node receives every publication."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from ocppcable.broadcast.interface import Dispatch, IBroadcaster
from ocppcable.publication import MalformedPublication
from ocppcable.redis_connection import RedisLink, Subscriber, SubscriberFactory

log = Logger()


@implementer(IBroadcaster)
class RedisBroadcaster(Service):
    """Subscribes to ``channel`` and hands every message to ``dispatch``."""

    name = "broadcast-redis"

    def __init__(self, redis: RedisLink, channel: str, dispatch: Dispatch) -> None:
        self.redis = redis
        self.channel = channel
        self.dispatch = dispatch
        self.connected = False
        self.description = f"redis pub/sub {channel!r}"
        self._factory: SubscriberFactory | None = None

    def startService(self) -> None:
        super().startService()
        self._factory = SubscriberFactory(self)
        self.redis.connect(self._factory)  # it logs outages

    def stopService(self) -> Any:
        super().stopService()
        factory, self._factory = self._factory, None
        if factory is not None:
            return factory.disconnect()
        return None

    def subscriber_ready(self, conn: Subscriber) -> Deferred[Any]:
        return conn.subscribe([self.channel]).addCallback(self._subscribed)

    def _subscribed(self, _: Any) -> None:
        self.connected = True
        log.info("subscribed to redis channel {channel}", channel=self.channel)

    def subscriber_lost(self, conn: Subscriber) -> None:
        self.connected = False

    def received(self, message: Any) -> None:
        try:
            self.dispatch(message if isinstance(message, (str, bytes)) else str(message), "redis")
        except MalformedPublication as e:
            log.warn("dropped a malformed redis publication: {reason}", reason=str(e))
        except Exception:
            log.failure("error delivering a redis publication")

"""The ``redis`` cluster transport (``--pubsub redis``): Redis pub/sub between the nodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from ocppcable.cluster.interface import ICluster
from ocppcable.cluster.publisher import RedisPublisher
from ocppcable.redis_connection import RedisLink, Subscriber, SubscriberFactory

log = Logger()


class _Subscription:
    """One channel's pub/sub connection (txredisapi's subscriber takes no other command)."""

    def __init__(self, channel: str, receiver: Callable[[str | bytes], None]) -> None:
        self.channel = channel
        self.receiver = receiver
        self.factory: SubscriberFactory | None = None

    def subscriber_ready(self, conn: Subscriber) -> Deferred[Any]:
        return conn.subscribe([self.channel])

    def subscriber_lost(self, conn: Subscriber) -> None:
        pass

    def received(self, message: Any) -> None:
        # txredisapi turns a numeric message into a number
        self.receiver(message if isinstance(message, (str, bytes)) else str(message))


@implementer(ICluster)
class RedisCluster(MultiService):
    """Publishes through one shared connection, subscribes with one connection per channel."""

    name = "cluster-redis"

    def __init__(self, reactor: Any, redis: RedisLink) -> None:
        super().__init__()
        self.redis = redis
        self.publisher = RedisPublisher(reactor, redis)
        self.publisher.setServiceParent(self)
        self.description = "Redis"
        self._subscriptions: list[_Subscription] = []

    @property
    def connected(self) -> bool:
        return self.publisher.connected

    def publish(self, channel: str, message: str) -> Deferred[Any]:
        return self.publisher.publish(channel, message)

    def subscribe(self, channel: str, receiver: Callable[[str | bytes], None]) -> None:
        subscription = _Subscription(channel, receiver)
        self._subscriptions.append(subscription)
        if self.running:
            self._connect(subscription)

    def _connect(self, subscription: _Subscription) -> None:
        subscription.factory = SubscriberFactory(subscription)
        self.redis.connect(subscription.factory)  # it logs outages

    def startService(self) -> None:
        super().startService()
        for subscription in self._subscriptions:
            self._connect(subscription)

    def stopService(self) -> Any:
        for subscription in self._subscriptions:
            factory, subscription.factory = subscription.factory, None
            if factory is not None:
                factory.disconnect()
        return super().stopService()

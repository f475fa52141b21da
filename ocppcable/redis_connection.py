"""The Redis connection code every Redis user of the gateway shares: the endpoint and
credentials of a ``redis://`` or ``rediss://`` URL, starting a txredisapi factory on it, and a
pub/sub connection that tells its owner each time it is ready again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import txredisapi
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.ssl import optionsForClientTLS
from twisted.python.failure import Failure


def redis_endpoint(reactor: Any, url: str) -> tuple[Any, str | None, str | None]:
    """An endpoint for a ``redis://`` or ``rediss://`` URL, and its username and password."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"not a redis:// or rediss:// URL: {url!r}")
    host = parts.hostname or "localhost"
    endpoint: Any = HostnameEndpoint(reactor, host, parts.port or 6379, timeout=5)
    if parts.scheme == "rediss":
        endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return endpoint, username, password


def start_connecting(
    factory: Any, reactor: Any, url: str, failed: Callable[[Failure], object] | None = None
) -> None:
    """Connect a txredisapi ``factory`` to ``url`` with the URL's credentials; it reconnects by
    itself. ``failed`` hears when the factory gives up (None: another part logs outages)."""
    endpoint, username, password = redis_endpoint(reactor, url)
    factory.username, factory.password = username, password
    factory.deferred.addErrback(failed or (lambda f: None))
    factory.startConnecting(endpoint)


class SubscriberOwner(Protocol):
    """What a :class:`Subscriber` reports to (the pub/sub broadcasters)."""

    def subscriber_ready(self, conn: Subscriber) -> Deferred[Any] | None: ...

    def subscriber_lost(self, conn: Subscriber) -> None: ...

    def received(self, message: Any) -> None: ...


class Subscriber(txredisapi.SubscriberProtocol):
    """A pub/sub connection; txredisapi builds a new one on every reconnect and does not
    subscribe again by itself, so its owner is told each time one is ready."""

    factory: SubscriberFactory

    @inlineCallbacks
    def connectionMade(self) -> Any:
        yield super().connectionMade()
        if self.connected:
            yield self.factory.owner.subscriber_ready(self)

    def connectionLost(self, why: Any) -> None:
        super().connectionLost(why)
        self.factory.owner.subscriber_lost(self)

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.factory.owner.received(message)


class SubscriberFactory(txredisapi.SubscriberFactory):
    protocol = Subscriber
    initialDelay = 0.5
    maxDelay = 5

    def __init__(self, owner: SubscriberOwner) -> None:
        super().__init__()
        self.owner = owner
        self.convertNumbers = False  # else a payload "123" arrives as the int 123

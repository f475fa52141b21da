# -*- test-case-name: tests.test_redis_connection -*-
"""The Redis connection code every Redis user of the gateway shares.

A :class:`RedisLink` is the gateway's way to the Redis of ``--redis-url``: the endpoint and
credentials of the ``redis://`` or ``rediss://`` URL, and the one place that tells the operator
how Redis is doing. Every connection to it (the adapters' subscribers and stream reader, the
takeover subscriber, the cluster publisher) is a :class:`WatchedFactory` started by
:meth:`RedisLink.connect`. Whatever goes wrong (Redis unreachable, a wrong password, a lost
connection) is logged once per change of state, naming Redis, the URL without its password and
the cause; the connection retries with backoff, and connecting again is logged too.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import txredisapi
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

#: the cause logged when a connection that was ready goes away
LOST = "the connection was lost"


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


def without_password(url: str) -> str:
    """``url`` fit for a log line: its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


class RedisLink:
    """The connections of one gateway to the Redis at ``url``, and their state as one.

    Redis is *down* while any connection cannot connect or lost its connection, and *up* again
    once every one of them is ready. A warning is logged when it goes down and whenever the cause
    changes; an info line when it is up again.
    """

    def __init__(self, reactor: Any, url: str) -> None:
        self.reactor = reactor
        self.url = url
        self.where = without_password(url)
        self._down: dict[WatchedFactory, str] = {}
        self._cause: str | None = None  # of the last warning, None while up
        self._connected_once = False

    def connect(self, factory: WatchedFactory) -> None:
        """Connect ``factory`` with the URL's credentials; it reconnects by itself."""
        endpoint, username, password = redis_endpoint(self.reactor, self.url)
        factory.username, factory.password = username, password
        factory.link = self
        factory.startConnecting(_WatchedEndpoint(endpoint, self, factory))

    # --- what the connections report -------------------------------------------------------------

    def failed(self, factory: WatchedFactory, cause: str) -> None:
        """``factory`` could not connect (or lost its connection) because of ``cause``."""
        cause = cause.rstrip(".")
        self._down[factory] = cause
        if cause != self._cause:
            self._cause = cause
            log.warn(
                "Redis {url} is unavailable: {cause}; retrying with backoff (every {delay}s at "
                "most)",
                url=self.where,
                cause=cause,
                delay=factory.maxDelay,
            )

    def lost(self, factory: WatchedFactory) -> None:
        """``factory``'s connection is gone; a fault it reported already stays the cause."""
        if factory not in self._down:
            self.failed(factory, LOST)

    def ready(self, factory: WatchedFactory) -> None:
        self._down.pop(factory, None)
        if self._down:
            return
        if self._cause is not None:
            self._cause = None
            log.info("connected to Redis {url} again", url=self.where)
        elif not self._connected_once:
            log.info("connected to Redis {url}", url=self.where)
        self._connected_once = True

    def forget(self, factory: WatchedFactory) -> None:
        """``factory`` was stopped: its state no longer counts."""
        self._down.pop(factory, None)


@implementer(IStreamClientEndpoint)
class _WatchedEndpoint:
    """The endpoint of a connection, reporting why connecting failed; its name (which Twisted's
    ``Scheduling retry … to connect`` lines show) says that it is Redis."""

    def __init__(self, endpoint: Any, link: RedisLink, factory: WatchedFactory) -> None:
        self._endpoint = endpoint
        self._link = link
        self._factory = factory

    def __repr__(self) -> str:
        return f"<Redis {self._link.where}>"

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        return self._endpoint.connect(protocolFactory).addErrback(self._failed)

    def _failed(self, failure: Failure) -> Failure:
        if not failure.check(defer.CancelledError):  # stopped, not failed
            self._link.failed(self._factory, failure.getErrorMessage())
        return failure


class WatchedFactory(txredisapi.RedisFactory):
    """One connection to Redis that keeps trying, and tells its :class:`RedisLink` and
    :meth:`connection_ready`/:meth:`connection_lost` how it is doing."""

    initialDelay = 0.5
    maxDelay = 5.0

    link: RedisLink

    def __init__(self) -> None:
        super().__init__(None, None, 1, convertNumbers=False)  # else "123" arrives as 123

    def connection_ready(self, conn: Any) -> None:
        """``conn`` is connected and logged in; tells the link that this connection is up."""
        self.link.ready(self)

    def connection_lost(self, conn: Any) -> None:
        """``conn``, once ready, is gone; a new one is on its way."""

    # --- txredisapi's hooks ------------------------------------------------------------------------

    def stopTrying(self) -> Deferred[Any]:
        # txredisapi stops for good when AUTH or SELECT fails (then drops the connection and
        # calls connectionError): keep retrying with backoff instead, so that a password fixed
        # on the Redis side is picked up. Nothing else calls it; disconnect() stops us.
        return succeed(None)

    def connectionError(self, why: str) -> None:
        # AUTH or SELECT failed; the connection is being closed and will be made again
        self.link.failed(self, why.removeprefix("Redis error: "))

    def addConnection(self, conn: Any) -> None:
        super().addConnection(conn)
        if conn in self.pool:  # not one that died meanwhile or came after disconnect()
            self.connection_ready(conn)

    def delConnection(self, conn: Any) -> None:
        super().delConnection(conn)
        if not self.disconnectCalled:
            self.link.lost(self)
            self.connection_lost(conn)

    def disconnect(self) -> Deferred[Any]:
        self.link.forget(self)
        return super().disconnect()


class LazyConnection(Service):
    """One command connection to Redis, made (and remade) in the background while the service
    runs; subclasses add the commands they send on :attr:`_factory`'s handler."""

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


class SubscriberOwner(Protocol):
    """What a :class:`SubscriberFactory` reports to (the pub/sub broadcasters, takeover)."""

    def subscriber_ready(self, conn: Subscriber) -> Deferred[Any] | None: ...

    def subscriber_lost(self, conn: Subscriber) -> None: ...

    def received(self, message: Any) -> None: ...


class Subscriber(txredisapi.SubscriberProtocol):
    """A pub/sub connection; it hands every message to its factory's owner."""

    factory: SubscriberFactory

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.factory.owner.received(message)


class SubscriberFactory(WatchedFactory):
    """A pub/sub connection. txredisapi builds a new one on every reconnect and does not
    subscribe again by itself, so its owner is told each time one is ready."""

    protocol = Subscriber

    def __init__(self, owner: SubscriberOwner) -> None:
        super().__init__()
        self.owner = owner

    def connection_ready(self, conn: Any) -> None:
        # up once subscribed: a SUBSCRIBE that Redis refuses is a fault like a wrong password
        subscribed = defer.maybeDeferred(self.owner.subscriber_ready, conn)
        subscribed.addCallbacks(
            lambda _: self.link.ready(self), self._not_subscribed, (), {}, (conn,)
        )

    def connection_lost(self, conn: Any) -> None:
        self.owner.subscriber_lost(conn)

    def _not_subscribed(self, failure: Failure, conn: Any) -> None:
        if failure.check(txredisapi.ConnectionError, defer.TimeoutError):
            return  # lost meanwhile: the next connection subscribes again
        # Redis refused (NOAUTH, an ACL without the channel, …): say so and try again later
        self.link.failed(self, f"SUBSCRIBE refused: {failure.getErrorMessage()}")
        if conn.transport is not None:
            conn.transport.loseConnection()

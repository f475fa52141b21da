# -*- test-case-name: tests.test_nats_client -*-
"""A NATS connection on Twisted: publish, subscribe, and keep connected.

A :class:`NatsClient` is one connection to one of the ``--nats-servers``, shared by everything
of the gateway that uses NATS (the ``nats`` broadcast adapter, the ``nats`` cluster transport).
It connects in the background and, whatever goes wrong (NATS unreachable, refused credentials,
a lost connection, a server that stopped answering PINGs), tries the next server with backoff.
Each change of state is logged once, naming NATS, the server (without credentials) and the
cause; connecting again is logged too. Its subscriptions are made again on every new
connection.

Nothing waits for NATS: a publication while it is away, or while its connection's send buffer
is full, fails at once (:class:`NatsUnavailable`) and the caller logs what was missed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ocppcable.nats import wire
from ocppcable.nats.servers import NatsURL
from ocppcable.plugin import ICluster

log = Logger()

#: the cause logged when a connection that was ready goes away
LOST = "the connection was lost"

#: seconds from the TCP connection to the server's PONG to our CONNECT
HANDSHAKE_TIMEOUT = 5.0

#: seconds a stop waits for the connection to close before dropping it
STOP_TIMEOUT = 1.0

#: seconds between our PINGs; a server that leaves two unanswered is given up
PING_INTERVAL = 10.0
MAX_OUTSTANDING_PINGS = 2

#: a -ERR after which the server keeps the connection open
_NOT_FATAL = ("permissions violation", "invalid subject")


class NatsUnavailable(RuntimeError):
    """A publication that was not sent: NATS is not connected, or not keeping up."""


@implementer(IPushProducer)
class NatsProtocol(Protocol):
    """One connection: CONNECT and the client's SUBs once the server's INFO arrived, ready at
    the PONG that follows (the server has accepted them all by then)."""

    def __init__(self, client: NatsClient, server: NatsURL) -> None:
        self.client = client
        self.server = server
        self.parser = wire.Parser()
        self.ready = False
        #: True while the transport's send buffer is full (it paused us as its producer)
        self.paused = False
        #: why the connection ends, when we know better than "lost"
        self.cause: str | None = None
        self._informed = False
        self._aborted = False
        self._outstanding_pings = 0
        self._handshake: Any = None

    # --- Protocol -----------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        self._handshake = self.client.reactor.callLater(
            HANDSHAKE_TIMEOUT, self.abort, f"no answer to CONNECT within {HANDSHAKE_TIMEOUT:g}s"
        )

    def dataReceived(self, data: bytes) -> None:
        try:
            events = self.parser.feed(data)
        except wire.ProtocolViolation as e:
            self.abort(f"protocol violation: {e}")
            return
        for event in events:
            if self._aborted:
                return
            self._handle(event)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._handshake is not None and self._handshake.active():
            self._handshake.cancel()
        if self.cause is None:
            self.cause = LOST if self.ready or reason is None else reason.getErrorMessage()
        self.client.lost(self, self.cause)

    # --- events ---------------------------------------------------------------------------------

    def _handle(self, event: wire.Event) -> None:
        if isinstance(event, wire.Msg):
            self.client.received(event.sid, event.payload)
        elif isinstance(event, wire.Ping):
            self.transport.write(wire.PONG)
        elif isinstance(event, wire.Pong):
            if self.ready:
                self._outstanding_pings = 0
            elif self._informed:
                self.ready = True
                self._handshake.cancel()
                self.client.ready(self)
        elif isinstance(event, wire.Info):
            self._info(event.fields)
        elif isinstance(event, wire.Err):
            if event.message.lower().startswith(_NOT_FATAL):
                log.warn("NATS {url} refused: {error}", url=self.server.where, error=event.message)
            else:  # the server closes the connection
                self.cause = f"-ERR {event.message}"

    def _info(self, fields: dict[str, Any]) -> None:
        max_payload = fields.get("max_payload")
        if isinstance(max_payload, int) and max_payload > 0:
            self.parser.max_payload = max_payload
        if self._informed:
            return  # an update (cluster topology): nothing we use
        self._informed = True
        if self.server.tls or fields.get("tls_required"):
            # the certificate is checked against the host name and the system's trust store;
            # CONNECT and its credentials go out once TLS is up
            self.transport.startTLS(optionsForClientTLS(self.server.host))
        out = [wire.connect(self.server.connect_options())]
        out += [wire.sub(subject, sid) for sid, subject in self.client.subjects()]
        out.append(wire.PING)
        self.transport.write(b"".join(out))

    # --- what the client asks -------------------------------------------------------------------

    @property
    def max_payload(self) -> int:
        return self.parser.max_payload

    def publish(self, subject: str, payload: bytes) -> None:
        self.transport.write(wire.pub(subject, payload))

    def subscribe(self, subject: str, sid: str) -> None:
        self.transport.write(wire.sub(subject, sid))

    def keepalive(self) -> None:
        """A PING; the connection is dropped when the server left the last ones unanswered."""
        if self._outstanding_pings >= MAX_OUTSTANDING_PINGS:
            self.abort(f"no answer to {MAX_OUTSTANDING_PINGS} PINGs")
            return
        self._outstanding_pings += 1
        self.transport.write(wire.PING)

    def abort(self, cause: str) -> None:
        self.cause = self.cause or cause
        self._aborted = True
        self.transport.abortConnection()

    # --- IPushProducer: the transport's send buffer -------------------------------------------

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass


@implementer(ICluster)
class NatsClient(Service):
    """The gateway's NATS connection (see the module's docstring); the ``nats`` cluster
    transport."""

    name = "nats"

    #: seconds before the first retry; doubled after every failure up to ``max_delay``
    initial_delay = 0.5
    max_delay = 5.0

    def __init__(self, reactor: Any, servers: Sequence[NatsURL]) -> None:
        self.reactor = reactor
        self.servers = list(servers)
        self.description = "NATS " + ", ".join(server.where for server in self.servers)
        #: the connection that is ready, if any
        self.protocol: NatsProtocol | None = None
        self._current: NatsProtocol | None = None  # connected, perhaps not yet ready
        self._receivers: dict[str, tuple[str, Callable[[bytes], None]]] = {}
        self._next_server = 0
        self._failures = 0
        self._cause: str | None = None  # of the last warning; None while connected
        self._connected_once = False
        self._connecting: Deferred[Any] | None = None
        self._retry: Any = None
        self._stopped: Deferred[None] | None = None
        self._keepalive = LoopingCall(self._ping)
        self._keepalive.clock = reactor

    @property
    def connected(self) -> bool:
        """True while publications reach NATS."""
        return self.protocol is not None

    # --- ICluster -------------------------------------------------------------------------------

    def publish(self, subject: str, message: str | bytes) -> Deferred[None]:
        """Hands ``message`` to NATS, or fails at once with :class:`NatsUnavailable` (not
        connected, or its send buffer full) or ValueError (over the server's max_payload)."""
        payload = message.encode() if isinstance(message, str) else message
        protocol = self.protocol
        if protocol is None:
            return fail(NatsUnavailable("NATS is not connected"))
        if protocol.paused:
            return fail(NatsUnavailable("NATS is not keeping up (the send buffer is full)"))
        if len(payload) > protocol.max_payload:
            return fail(
                ValueError(
                    f"a message of {len(payload)} bytes is over NATS's max_payload "
                    f"({protocol.max_payload})"
                )
            )
        protocol.publish(subject, payload)
        return succeed(None)

    def subscribe(self, subject: str, receiver: Callable[[bytes], None]) -> None:
        """Calls ``receiver(payload)`` for every message on ``subject`` from now on (again
        after every reconnect)."""
        sid = str(len(self._receivers) + 1)
        self._receivers[sid] = (subject, receiver)
        if self._current is not None and self._current._informed:
            self._current.subscribe(subject, sid)

    def subjects(self) -> list[tuple[str, str]]:
        """``(sid, subject)`` of every subscription."""
        return [(sid, subject) for sid, (subject, _) in self._receivers.items()]

    # --- Service --------------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._connect()
        self._keepalive.start(PING_INTERVAL, now=False)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self._keepalive.running:
            self._keepalive.stop()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self._connecting is not None:
            self._connecting.cancel()
        if self._current is None:
            return None
        self._stopped = Deferred()
        transport = self._current.transport
        transport.loseConnection()  # what was written goes out first
        # a TLS close waits for the server's close_notify, which nats-server does not send
        closing = self.reactor.callLater(STOP_TIMEOUT, transport.abortConnection)
        return self._stopped.addBoth(lambda result: closing.active() and closing.cancel())

    # --- connecting -----------------------------------------------------------------------------

    def _connect(self) -> None:
        self._retry = None
        server = self.servers[self._next_server % len(self.servers)]
        self._next_server += 1
        endpoint = HostnameEndpoint(self.reactor, server.host, server.port, timeout=5)
        factory = Factory.forProtocol(lambda: NatsProtocol(self, server))
        self._connecting = endpoint.connect(factory)
        self._connecting.addCallbacks(self._tcp_connected, self._tcp_failed, errbackArgs=(server,))

    def _tcp_connected(self, protocol: NatsProtocol) -> None:
        self._connecting = None
        self._current = protocol

    def _tcp_failed(self, failure: Failure, server: NatsURL) -> None:
        self._connecting = None
        if not failure.check(CancelledError):
            self._down(server, failure.getErrorMessage())

    def ready(self, protocol: NatsProtocol) -> None:
        self.protocol = protocol
        self._failures = 0
        if self._cause is not None:
            log.info("connected to NATS {url} again", url=protocol.server.where)
        elif not self._connected_once:
            log.info("connected to NATS {url}", url=protocol.server.where)
        self._cause = None
        self._connected_once = True

    def lost(self, protocol: NatsProtocol, cause: str) -> None:
        if self.protocol is protocol:
            self.protocol = None
        if self._current is protocol:
            self._current = None
        if self._stopped is not None:
            stopped, self._stopped = self._stopped, None
            stopped.callback(None)
        if self.running:
            self._down(protocol.server, cause)

    def _down(self, server: NatsURL, cause: str) -> None:
        cause = cause.rstrip(".")
        delay = min(self.initial_delay * 2**self._failures, self.max_delay)
        self._failures += 1
        if cause != self._cause:
            self._cause = cause
            log.warn(
                "NATS {url} is unavailable: {cause}; retrying with backoff (every {delay}s at "
                "most)",
                url=server.where,
                cause=cause,
                delay=self.max_delay,
            )
        self._retry = self.reactor.callLater(delay, self._connect)

    def _ping(self) -> None:
        if self.protocol is not None:
            self.protocol.keepalive()

    # --- what the connection hands over ---------------------------------------------------------

    def received(self, sid: str, payload: bytes) -> None:
        subscription = self._receivers.get(sid)
        if subscription is None:
            return
        subject, receiver = subscription
        try:
            receiver(payload)
        except Exception:
            log.failure("error handling a NATS message on {subject}", subject=subject)

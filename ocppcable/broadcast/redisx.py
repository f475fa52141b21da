# -*- test-case-name: tests.test_redisx -*-
"""The ``redisx`` broadcaster: a Redis stream read by a consumer group, fanned out to the nodes
through Redis pub/sub (AnyCable's ``redisx`` adapter and its pub/sub layer).

Publishers ``XADD <stream> * payload <publication JSON>``. One node of the consumer group ``bx``
reads each entry, re-publishes every publication in it on the pub/sub channel named like the
publication's stream (remote commands on ``__anycable_internal__``), then acknowledges and
deletes the entry. Every node subscribes to the channels of the streams its own stations listen
to and hands what arrives there to the hub.

Two connections per node: a dedicated one for the blocking ``XREADGROUP`` loop (which also
publishes and acknowledges, in between reads) and a pub/sub one. Entries are delivered at least
once: read but unacknowledged entries are read again by their consumer after a reconnect, and
claimed by another node once idle for :attr:`RedisXBroadcaster.claim_idle` seconds.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import TYPE_CHECKING, Any

import txredisapi
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from ocppcable import publication
from ocppcable.broadcast.interface import Dispatch, IBroadcaster
from ocppcable.redis_connection import RedisLink, Subscriber, SubscriberFactory, WatchedFactory

if TYPE_CHECKING:
    from ocppcable.hub import Hub

log = Logger()

GROUP = "bx"
INTERNAL_CHANNEL = "__anycable_internal__"

#: an entry's id and its ``payload`` field (None when it has none, or was deleted meanwhile)
Entry = tuple[str, Any]


def consumer_name() -> str:
    """A consumer name unique to this process: ``<hostname>-<pid>-<random>``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def internal_channel(legacy_channel: str | None) -> str:
    """The pub/sub channel of remote commands. As in AnyCable, it moves to ``<name>-int`` when
    the legacy ``redis`` broadcaster (``legacy_channel``, None when off) listens on its name."""
    if legacy_channel == INTERNAL_CHANNEL:
        return f"{INTERNAL_CHANNEL}-int"
    return INTERNAL_CHANNEL


def _entry(item: list[Any]) -> Entry:
    entry_id, fields = item
    if not fields:
        return entry_id, None
    values = dict(zip(fields[::2], fields[1::2], strict=False))
    return entry_id, values.get("payload")


def read_entries(reply: Any) -> list[Entry]:
    """The entries of an ``XREADGROUP`` reply (None when ``BLOCK`` timed out)."""
    if not reply:
        return []
    return [_entry(item) for _stream, items in reply for item in items]


def claimed_entries(reply: list[Any]) -> tuple[str, list[Entry]]:
    """The next start id (``0-0`` when done) and the entries of an ``XAUTOCLAIM`` reply."""
    # Redis < 7 answers nil for a pending entry deleted since; Redis 7 lists those apart
    return reply[0], [_entry(item) for item in reply[1] if item]


def idle_consumers(reply: list[list[Any]], idle_ms: int) -> list[str]:
    """The consumers of an ``XINFO CONSUMERS`` reply with nothing pending, idle over
    ``idle_ms``."""
    consumers = (dict(zip(info[::2], info[1::2], strict=False)) for info in reply)
    return [c["name"] for c in consumers if c.get("pending") == 0 and c.get("idle", 0) > idle_ms]


def fan_out(
    payload: str | bytes | None,
    internal: str,
    skipped: list[publication.MalformedPublication],
) -> list[tuple[str, str]]:
    """The pub/sub messages, ``(channel, JSON)``, that bring an entry's payload to every node.

    Raises :class:`~ocppcable.publication.MalformedPublication` for a payload that is
    not a publication; bad items of a batch are appended to ``skipped``.
    """
    if payload is None:
        raise publication.MalformedPublication("entry has no payload field")
    return [
        publication.pubsub_message(item, internal) for item in publication.parse(payload, skipped)
    ]


_Reader = txredisapi.RedisProtocol


class _ReaderFactory(WatchedFactory):
    def __init__(self, owner: RedisXBroadcaster) -> None:
        super().__init__()
        self.owner = owner

    def connection_ready(self, conn: _Reader) -> None:
        super().connection_ready(conn)
        self.owner.reader_ready(conn)

    def connection_lost(self, conn: _Reader) -> None:
        self.owner.reader_lost(conn)


@implementer(IBroadcaster)
class RedisXBroadcaster(Service):
    """Reads ``stream`` in group ``bx``, fans entries out through pub/sub, delivers what the
    pub/sub channels of this node's streams carry to ``dispatch``."""

    name = "broadcast-redisx"

    #: ``XREADGROUP`` waits this long for new entries (ms), as AnyCable's does
    block = 2000
    #: entries read or claimed at once
    count = 100
    #: seconds an entry may stay unacknowledged before another consumer claims it
    claim_idle = 30.0
    #: seconds between two rounds of claiming (and of forgetting consumers)
    claim_every = 5.0
    #: a consumer with nothing pending, idle this many seconds, is removed from the group
    forget_idle = 3600.0
    #: seconds any command but the blocking read may take before the connection is dropped
    command_timeout = 5.0
    #: seconds to wait after Redis refused a command of the read loop
    retry_delay = 2.0

    def __init__(
        self,
        reactor: Any,
        redis: RedisLink,
        stream: str,
        hub: Hub,
        dispatch: Dispatch,
        internal: str = INTERNAL_CHANNEL,
    ) -> None:
        self.reactor = reactor
        self.redis = redis
        self.stream = stream
        self.hub = hub
        self.dispatch = dispatch
        self.internal = internal
        self.consumer = consumer_name()
        self.description = f"redisx stream {stream!r} (group {GROUP}, consumer {self.consumer})"
        self._factories: list[WatchedFactory] = []
        self._reader: _Reader | None = None
        self._subscriber: Subscriber | None = None
        self._pause: Deferred[None] | None = None
        self._next_claim = 0.0
        hub.watch(self._stream_added, self._stream_removed)

    @property
    def connected(self) -> bool:
        return self._reader is not None and self._subscriber is not None

    def startService(self) -> None:
        super().startService()
        self._factories = [_ReaderFactory(self), SubscriberFactory(self)]
        for factory in self._factories:
            self.redis.connect(factory)  # it logs outages

    def stopService(self) -> Any:
        super().stopService()
        self._reader = self._subscriber = None
        if self._pause is not None:
            self._pause.cancel()
        factories, self._factories = self._factories, []
        return defer.gatherResults([factory.disconnect() for factory in factories])

    # --- commands ------------------------------------------------------------------------------

    def _command(self, conn: Any, *args: str, timeout: float | None = None) -> Deferred[Any]:
        """``args`` on ``conn``; no reply in time drops the connection (it reconnects)."""
        d = defer.maybeDeferred(conn.execute_command, *args)
        d.addTimeout(self.command_timeout if timeout is None else timeout, self.reactor)

        def late(failure: Any) -> Any:
            if failure.check(defer.TimeoutError) and conn.transport is not None:
                conn.transport.abortConnection()
            return failure

        return d.addErrback(late)

    @inlineCallbacks
    def _commands(self, conn: Any, commands: list[tuple[str, ...]]) -> Any:
        """Pipelines ``commands`` on ``conn`` and waits for all their replies."""
        try:
            yield defer.gatherResults(
                [self._command(conn, *command) for command in commands], consumeErrors=True
            )
        except defer.FirstError as e:
            e.subFailure.raiseException()

    # --- reading the stream ----------------------------------------------------------------------

    def reader_ready(self, conn: _Reader) -> None:
        if not self.running:
            return
        self._reader = conn
        log.info(
            "redisx: reading stream {stream} as consumer {consumer} of group {group}",
            stream=self.stream,
            consumer=self.consumer,
            group=GROUP,
        )
        self._read(conn)

    def reader_lost(self, conn: _Reader) -> None:
        if self._reader is conn:
            self._reader = None  # the link logs the outage; the next connection reads on

    @inlineCallbacks
    def _read(self, conn: _Reader) -> Any:
        """Reads the stream on ``conn`` for as long as it is the current reader connection."""
        while self._reader is conn:
            try:
                yield self._join_group(conn)
                yield self._read_pending(conn)
                while self._reader is conn:
                    if self.reactor.seconds() >= self._next_claim:
                        yield self._claim(conn)
                    reply = yield self._command(
                        conn,
                        *("XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", str(self.count)),
                        *("BLOCK", str(self.block), "STREAMS", self.stream, ">"),
                        timeout=self.block / 1000 + self.command_timeout,
                    )
                    yield self._deliver(conn, read_entries(reply))
            except (txredisapi.ConnectionError, defer.TimeoutError):
                return  # reader_lost() said so; the next connection reads on
            except txredisapi.ResponseError as e:
                log.warn(
                    "redisx: Redis refused a command on stream {stream}: {reason}; "
                    "retrying in {delay}s",
                    stream=self.stream,
                    reason=str(e),
                    delay=self.retry_delay,
                )
            except Exception:
                log.failure("redisx: error reading stream {stream}", stream=self.stream)
            if self._reader is not conn:
                return
            self._pause = deferLater(self.reactor, self.retry_delay, lambda: None)
            try:
                yield self._pause
            except CancelledError:
                return
            finally:
                self._pause = None

    @inlineCallbacks
    def _join_group(self, conn: _Reader) -> Any:
        try:
            yield self._command(conn, "XGROUP", "CREATE", self.stream, GROUP, "$", "MKSTREAM")
        except txredisapi.ResponseError as e:
            if not str(e).startswith("BUSYGROUP"):
                raise

    @inlineCallbacks
    def _read_pending(self, conn: _Reader) -> Any:
        """This consumer's entries read before a reconnect but not acknowledged."""
        start = "0"
        while True:
            reply = yield self._command(
                conn,
                *("XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", str(self.count)),
                *("STREAMS", self.stream, start),
            )
            entries = read_entries(reply)
            if not entries:
                return
            yield self._deliver(conn, entries)
            start = entries[-1][0]

    @inlineCallbacks
    def _claim(self, conn: _Reader) -> Any:
        """Takes over the entries other consumers left unacknowledged for ``claim_idle``, then
        removes consumers long gone (every process is a new consumer)."""
        self._next_claim = self.reactor.seconds() + self.claim_every
        start = "0-0"
        while True:
            reply = yield self._command(
                conn,
                *("XAUTOCLAIM", self.stream, GROUP, self.consumer),
                *(str(int(self.claim_idle * 1000)), start, "COUNT", str(self.count)),
            )
            start, entries = claimed_entries(reply)
            if entries:
                log.info(
                    "redisx: claimed {count} unacknowledged entries of stream {stream}",
                    count=len(entries),
                    stream=self.stream,
                )
                yield self._deliver(conn, entries)
            if start == "0-0":
                break
        reply = yield self._command(conn, "XINFO", "CONSUMERS", self.stream, GROUP)
        for name in idle_consumers(reply, int(self.forget_idle * 1000)):
            if name != self.consumer:
                yield self._command(conn, "XGROUP", "DELCONSUMER", self.stream, GROUP, name)
                log.info(
                    "redisx: removed idle consumer {name} from group {group} of {stream}",
                    name=name,
                    group=GROUP,
                    stream=self.stream,
                )

    def _deliver(self, conn: _Reader, entries: list[Entry]) -> Deferred[Any]:
        """Publishes the entries' publications, then acknowledges and deletes the entries."""
        if not entries:
            return defer.succeed(None)
        commands: list[tuple[str, ...]] = []
        for entry_id, payload in entries:
            commands += [
                ("PUBLISH", channel, message)
                for channel, message in self._fan_out(entry_id, payload)
            ]
        ids = [entry_id for entry_id, _ in entries]
        commands.append(("XACK", self.stream, GROUP, *ids))
        commands.append(("XDEL", self.stream, *ids))
        return self._commands(conn, commands)

    def _fan_out(self, entry_id: str, payload: Any) -> list[tuple[str, str]]:
        skipped: list[publication.MalformedPublication] = []
        try:
            messages = fan_out(payload, self.internal, skipped)
        except publication.MalformedPublication as e:
            skipped.append(e)
            messages = []
        for error in skipped:
            self.hub.metrics.broadcast("redisx", "dropped", 0)
            log.warn(
                "redisx: dropped a malformed publication of entry {entry_id} of stream "
                "{stream}: {reason}",
                entry_id=entry_id,
                stream=self.stream,
                reason=str(error),
            )
        return messages

    # --- pub/sub ----------------------------------------------------------------------------------

    def subscriber_ready(self, conn: Subscriber) -> Deferred[Any] | None:
        if not self.running:
            return None
        self._subscriber = conn
        channels = [self.internal, *self.hub.streams()]
        d = self._command(conn, "SUBSCRIBE", *channels)
        d.addCallback(
            lambda _: log.info(
                "redisx: subscribed to {count} pub/sub channel(s)", count=len(channels)
            )
        )
        return d  # the factory handles a failure

    def subscriber_lost(self, conn: Subscriber) -> None:
        if self._subscriber is conn:
            self._subscriber = None
            log.info(
                "redisx: publications sent while the pub/sub connection is down do not reach "
                "this node's stations"
            )

    def _stream_added(self, stream: str) -> None:
        if self._subscriber is not None:
            self._command(self._subscriber, "SUBSCRIBE", stream).addErrback(
                self._subscription_failed
            )

    def _stream_removed(self, stream: str) -> None:
        if self._subscriber is not None:
            self._command(self._subscriber, "UNSUBSCRIBE", stream).addErrback(
                self._subscription_failed
            )

    def _subscription_failed(self, failure: Any) -> None:
        # a lost (or timed out, hence dropped) connection resubscribes everything on reconnect
        if not failure.check(txredisapi.ConnectionError, defer.TimeoutError):
            log.failure("redisx: a pub/sub (un)subscription failed", failure)

    def received(self, message: Any) -> None:
        try:
            self.dispatch(message if isinstance(message, (str, bytes)) else str(message), "redisx")
        except publication.MalformedPublication as e:
            log.warn("redisx: dropped a malformed pub/sub message: {reason}", reason=str(e))
        except Exception:
            log.failure("redisx: error delivering a publication")

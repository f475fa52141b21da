"""Bounds on the HTTP side of the main port, before a WebSocket exists.

- :class:`HandshakeChannel`: the request head (the whole upgrade, for a station) must arrive
  within a deadline; a peer that trickles header bytes is closed.
- :class:`BoundedRequest`: a resource providing :class:`IAcceptsBody` may refuse a request
  from its head (method, authorization) before any byte of the body is read, and takes bodies
  up to its ``max_body``; other resources up to :data:`MAX_OTHER_BODY`. Over it, 413 at once.
- :class:`LimitedSite`: refuses new sockets (closed on accept) while too many connections
  have not sent their request head, or while the open connections would eat into the file
  descriptors the process needs for everything else.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.internet.interfaces import IAddress
from twisted.logger import Logger
from twisted.web.http import RESPONSES, HTTPChannel
from twisted.web.http_headers import Headers
from twisted.web.server import Request, Site
from zope.interface import Attribute, Interface

log = Logger()

#: file descriptors kept free of station connections: listeners, RPC and Redis connections,
#: log files, the resolver
FD_RESERVE = 100

#: the largest body of a request to a resource that takes none (it is read, then answered
#: as usual, e.g. 404 or 405)
MAX_OTHER_BODY = 64 * 1024

#: seconds between two log lines about refused connections
_REFUSAL_LOG_INTERVAL = 10.0


@dataclass(frozen=True)
class SiteLimits:
    """What :class:`HandshakeChannel` and :class:`LimitedSite` enforce."""

    #: seconds from accept (or from the end of the previous request) to the end of the head
    handshake_timeout: float = 5.0
    #: connections that have not sent their request head yet
    max_pending: int = 1024
    #: open connections (None: no bound)
    max_connections: int | None = None


def connection_budget(reserve: int = FD_RESERVE) -> int | None:
    """Connections the open-file limit leaves room for, ``reserve`` descriptors kept free;
    None when the process has no limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(1, soft - reserve)


#: a refusal from a request head: the status, its text, and any headers to send with it
Refusal = tuple[int, bytes] | tuple[int, bytes, tuple[tuple[bytes, bytes], ...]]


class IAcceptsBody(Interface):
    """A resource that takes request bodies (every other resource takes none)."""

    max_body = Attribute("The largest body accepted, in bytes.")

    def refusal(method: bytes, headers: Headers) -> Refusal | None:
        """``(status, text)``, or ``(status, text, headers)``, refusing a request from its head
        alone, or None to read the body."""


class BoundedRequest(Request):
    """A request whose body is checked against its resource before and while it arrives."""

    #: left out of the access log (a refusal counted and logged in summary elsewhere)
    quiet = False
    _refused = False
    _max_body = 0
    _received = 0

    def gotLength(self, length: int | None) -> None:
        channel = self.channel
        target = channel.site.body_acceptor(channel._path)  # the raw request-target
        refusal = target.refusal(channel._command, self.requestHeaders) if target else None
        self._max_body = target.max_body if target is not None else MAX_OTHER_BODY
        if refusal is None and length is not None and length > self._max_body:
            refusal = (413, b"request body too large\n")
        if refusal is not None:
            self._refuse(*refusal)
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._max_body:  # a chunked body, or more than it announced
            self._refuse(413, b"request body too large\n")
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse(
        self, code: int, text: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        """Answer from the head and close: the body is never read (and no 100 Continue)."""
        self._refused = True
        self.requestHeaders.removeHeader(b"expect")
        channel = self.channel
        log.info(
            "refused an HTTP request to {path} from {peer}: {code}",
            path=channel._path.split(b"?")[0].decode("latin-1")[:100],
            peer=str(channel.transport.getPeer()),
            code=code,
        )
        extra = b"".join(b"%s: %s\r\n" % header for header in headers)
        channel.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n%s"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (code, RESPONSES.get(code, b"Refused"), extra, len(text), text)
        )
        channel.loseConnection()


class HandshakeChannel(HTTPChannel):
    """An HTTP channel that must receive each request head within the site's deadline."""

    site: Any
    _deadline: Any = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.site.channels += 1
        self._await_head()

    def allHeadersReceived(self) -> None:
        self._head_done()
        super().allHeadersReceived()

    def requestDone(self, request: Any) -> None:
        if self.persistent:
            self._await_head()  # the next request of a kept-alive connection (maybe pipelined)
        super().requestDone(request)

    def connectionLost(self, reason: Any) -> None:
        # not called for a connection upgraded to a WebSocket: that one is counted closed by
        # LimitedSite.upgraded_closed
        self.site.channels -= 1
        self._head_done()
        super().connectionLost(reason)

    def _await_head(self) -> None:
        self.site.pending += 1
        self._deadline = self.callLater(self.site.limits.handshake_timeout, self._too_slow)

    def _head_done(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None
            self.site.pending -= 1

    def _too_slow(self) -> None:
        self._deadline = None
        self.site.pending -= 1
        log.info(
            "closing {peer}: no complete request head within {timeout} s",
            peer=str(self.transport.getPeer()),
            timeout=self.site.limits.handshake_timeout,
        )
        self.timeoutConnection()  # twisted.web's own: close, abort if that does not end it


class LimitedSite(Site):
    """A Site whose channels are :class:`HandshakeChannel` and requests :class:`BoundedRequest`,
    and that accepts a connection only while it has room for it: otherwise the socket is
    closed on accept, so that the listener keeps draining its backlog and real stations get a
    quick refusal instead of a timeout."""

    protocol = HandshakeChannel
    requestFactory = BoundedRequest

    def __init__(
        self, resource: Any, limits: SiteLimits | None = None, reactor: Any = None
    ) -> None:
        super().__init__(resource, reactor=reactor)
        self.limits = limits or SiteLimits()
        #: connections waiting for a request head
        self.pending = 0
        #: connections accepted and not yet lost as HTTP channels (upgraded ones included)
        self.channels = 0
        #: how many of those were upgraded and have since closed (set by the WebSocket wiring)
        self.upgraded_closed: Callable[[], int] = lambda: 0
        self._refused = 0
        self._logged_at = float("-inf")

    @property
    def open_connections(self) -> int:
        return self.channels - self.upgraded_closed()

    def buildProtocol(self, addr: IAddress) -> Any:
        limits = self.limits
        if self.pending >= limits.max_pending:
            return self._refuse("connections without a complete request head", addr)
        if limits.max_connections is not None and self.open_connections >= limits.max_connections:
            return self._refuse("open connections (the open-file limit)", addr)
        return super().buildProtocol(addr)

    def _refuse(self, bound: str, addr: IAddress) -> None:
        self._refused += 1
        now = self.reactor.seconds()
        if now - self._logged_at >= _REFUSAL_LOG_INTERVAL:
            log.warn(
                "refusing new connections: too many {bound}; {count} refused since the last "
                "line, the latest from {peer}",
                bound=bound,
                count=self._refused,
                peer=str(addr),
            )
            self._logged_at = now
            self._refused = 0
        return None

    def body_acceptor(self, target: bytes) -> IAcceptsBody | None:
        """The resource a raw request-target routes to, when it takes bodies."""
        node = self.resource
        for segment in path_segments(target):
            if getattr(node, "isLeaf", False):
                break
            node = node.children.get(segment)
            if node is None:
                return None
        return IAcceptsBody(node, None)


def path_segments(target: bytes) -> list[bytes]:
    """The resource path segments of a raw request-target, as twisted.web routes them."""
    path = target.split(b"?", 1)[0]
    return [unquote_to_bytes(segment) for segment in path[1:].split(b"/")]

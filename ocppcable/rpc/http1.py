"""A keep-alive HTTP/1.1 client for one origin: a pool of bare Twisted protocols, responses
parsed by ``httptools`` (llhttp, the C parser of Node.js).

The caller hands over each request as the bytes to write (request line, headers and body);
this module adds nothing to them. A request goes to an idle connection, else to a new one while
fewer than ``connections`` are open, else behind the requests already written on the least
loaded connection (pipelining, up to ``pipeline`` per connection), else it waits for a slot.
Responses are matched to requests in order. A request leaves at once (one ``send``), not at the
reactor's next poll; requests queued on a connection that is still opening leave together.

What a failure means for the caller, who may retry only what the backend surely did not get:

* :class:`RequestNotSent`: the request was never written (the connection could not be opened,
  or closed before it was written), or it was written behind a response that announced the
  connection's close, which forbids the server to process it (RFC 9112 §9.6).
* :class:`TLSFailed`: the TLS handshake failed; trying again cannot help.
* :class:`ConnectionLost`: the connection closed after the request was written and before its
  whole response arrived; the backend may have processed it.
* :class:`BadResponse`: the response broke HTTP/1.1 or a bound (``max_response`` body bytes,
  :data:`MAX_HEAD` header bytes); the connection is closed, the bytes are never buffered.

Cancelling a request's Deferred (a timeout) drops it if it was not written yet, else closes its
connection: a backend that stalls must not keep it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser
from OpenSSL import SSL
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

#: bytes of a response's status line and headers at most
MAX_HEAD = 64 * 1024

#: bytes of a response body at most, by default
MAX_RESPONSE = 16 * 1024 * 1024

#: seconds a connection may stay idle before we close it: shorter than the usual server-side
#: keep-alive timeouts (Node.js 5 s, Puma 20 s), so a request is rarely written on a connection
#: the server is closing at that very moment
IDLE_TIMEOUT = 4.0

#: what a request's Deferred fires with: the final response's status code and body
Response = tuple[int, bytes]


class RequestNotSent(Exception):
    """The backend surely did not process the request: trying again is safe."""


class TLSFailed(Exception):
    """The TLS handshake with the backend failed (an untrusted certificate, a wrong name)."""


class ConnectionLost(Exception):
    """The connection closed after the request was written, before its response was whole."""


class BadResponse(Exception):
    """The response is not acceptable HTTP/1.1, or exceeds a bound."""


class _Request:
    __slots__ = ("pool", "data", "deferred", "connection")

    def __init__(self, pool: HTTP1Pool, data: bytes) -> None:
        self.pool = pool
        self.data = data
        self.deferred: Deferred[Response] = Deferred(self._cancel)
        self.connection: _Connection | None = None

    def _cancel(self, _: Deferred[Response]) -> None:
        if self.connection is None:
            self.pool._waiting.remove(self)
        else:
            self.connection.drop(self)


class _Connection(Protocol):
    """One connection: requests written in order, their responses parsed in the same order."""

    def __init__(self, pool: HTTP1Pool) -> None:
        self.pool = pool
        #: requests on this connection, oldest first; the first ``written`` have been written
        self.requests: deque[_Request] = deque()
        self.written = 0
        self.attempt: Deferred[Any] | None = None  # connecting
        self.flush: Any = None
        self.closing = False  # takes no more requests
        self.idle_since = 0.0
        self.lost: list[Deferred[None]] = []
        self.parser = HttpResponseParser(self)
        # the response being received
        self.head = 0  # bytes received before its body
        self.in_body = False
        self.length: int | None = None  # its Content-Length
        self.chunked = False
        self.body: list[bytes] = []
        self.size = 0
        #: outcomes found while parsing one read, delivered once the parser is done with it
        self.done: list[tuple[_Request, Response | Exception]] = []

    @property
    def load(self) -> int:
        return len(self.requests)

    def send(self, request: _Request) -> None:
        request.connection = self
        self.requests.append(request)
        if self.attempt is None:
            self.written += 1
            self._write(request.data)

    def drop(self, request: _Request) -> None:
        """A cancelled request: forget it if unwritten, else give up on the connection."""
        index = self.requests.index(request)
        del self.requests[index]
        if index >= self.written:
            if not self.requests:
                self.pool._idle_again(self)
        else:
            self.written -= 1
            self.close()

    def close(self) -> None:
        self.closing = True
        self.pool._lost(self)
        if self.attempt is not None:
            self.attempt.cancel()
        elif self.transport is not None:
            self.transport.abortConnection()

    # --- the protocol ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.attempt = None
        # a request is one write: Nagle would only hold it back behind an unacknowledged one
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)
        # the TCP transport's own: see _write (under TLS the wrapper hands over that of the TCP
        # transport beneath, which then sends the encrypted records at once)
        self.flush = getattr(self.transport, "doWrite", None)
        if self.requests:
            self.written = len(self.requests)
            self._write(b"".join(request.data for request in self.requests))

    def _write(self, data: bytes) -> None:
        """Send at once. A transport only buffers what it is given until the reactor's next
        poll; while the reactor works through a long turn (a boot storm: hundreds of handshakes
        and RPC answers ready at once), that would hold each request back for the rest of the
        turn, and its answer would come a turn later still: measured, 2.5× longer boot storms
        than gRPC, whose thread sends at once. ``doWrite`` is what the reactor itself calls when
        the socket is writable: it sends what the socket takes and leaves the rest buffered."""
        self.transport.write(data)
        if self.flush is not None:
            self.flush()

    def dataReceived(self, data: bytes) -> None:
        if not self.in_body:
            self.head += len(data)
            if self.head > MAX_HEAD:
                self._refuse(f"response headers over {MAX_HEAD} bytes")
        if not self.closing:
            try:
                self.parser.feed_data(data)
            except HttpParserUpgrade:
                self._refuse("the backend switched protocols")
            except HttpParserError as e:
                cause = e.__context__
                self._refuse(str(cause if isinstance(cause, BadResponse) else e))
        done, self.done = self.done, []
        for request, outcome in done:
            if isinstance(outcome, Exception):
                request.deferred.errback(outcome)
            else:
                request.deferred.callback(outcome)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.attempt = None
        self.closing = True
        self.pool._lost(self)
        requests, self.requests = self.requests, deque()
        written, self.written = self.written, 0
        if written and self.in_body and self.length is None and not self.chunked:
            # a body delimited by the end of the connection (HTTP/1.0 style): now it is whole
            written -= 1
            code = self.parser.get_status_code()
            requests.popleft().deferred.callback((code, b"".join(self.body)))
        error: Exception
        for i, request in enumerate(requests):
            if reason.check(SSL.Error):
                error = TLSFailed(reason.getErrorMessage())
            elif i < written:
                error = ConnectionLost(f"connection lost: {reason.getErrorMessage()}")
            else:
                error = RequestNotSent(reason.getErrorMessage())
            request.deferred.errback(error)
        lost, self.lost = self.lost, []
        for d in lost:
            d.callback(None)

    def _refuse(self, why: str) -> None:
        """The backend broke the protocol: fail what was written, close the connection."""
        requests, self.requests = self.requests, deque()
        written, self.written = self.written, 0
        self.close()
        for i, request in enumerate(requests):
            error = BadResponse(why) if i < written else RequestNotSent(why)
            self.done.append((request, error))

    # --- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 14 and name.lower() == b"content-length":
            length = int(value)
            if length > self.pool.max_response:
                limit = self.pool.max_response
                raise BadResponse(f"response of {length} bytes refused (more than {limit})")
            self.length = length
        elif len(name) == 17 and name.lower() == b"transfer-encoding":
            # only a final "chunked" delimits the body; any other coding ends at the close
            self.chunked = value.rstrip().lower().endswith(b"chunked")

    def on_headers_complete(self) -> None:
        self.in_body = True

    def on_body(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.pool.max_response:
            raise BadResponse(f"response body over {self.pool.max_response} bytes refused")
        self.body.append(data)

    def on_message_complete(self) -> None:
        code = self.parser.get_status_code()
        body = b"".join(self.body)
        self.head = self.size = 0
        self.in_body = self.chunked = False
        self.length = None
        self.body = []
        if code < 200:  # 100 Continue, 103 Early Hints: the final response follows
            return
        if not self.written:
            raise BadResponse("a response to no request")
        request = self.requests.popleft()
        self.written -= 1
        self.done.append((request, (code, body)))
        if not self.parser.should_keep_alive():
            # the server closes after this response: what was written after it is not processed
            self.closing = True
            self.pool._lost(self)
            rest, self.requests, self.written = self.requests, deque(), 0
            for later in rest:
                self.done.append((later, RequestNotSent("the backend closed the connection")))
            self.transport.loseConnection()
        elif not self.requests:
            self.pool._idle_again(self)
        else:
            self.pool._dispatch()


class _Factory(Factory):
    noisy = False

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection

    def buildProtocol(self, addr: Any) -> _Connection:
        return self.connection


class HTTP1Pool:
    """Keep-alive connections to one origin (``endpoint``), at most ``connections`` of them,
    each carrying up to ``pipeline`` requests at a time."""

    def __init__(
        self,
        reactor: IReactorTime,
        endpoint: IStreamClientEndpoint,
        connections: int,
        pipeline: int = 1,
        max_response: int = MAX_RESPONSE,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.reactor = reactor
        self.endpoint = endpoint
        self.connections = connections
        self.pipeline = pipeline
        self.max_response = max_response
        self.idle_timeout = idle_timeout
        self._open: list[_Connection] = []  # connecting or connected, taking requests
        self._idle: list[_Connection] = []  # of those, the ones without one (last used last)
        self._waiting: deque[_Request] = deque()  # every connection is full
        self._sweep = LoopingCall(self._close_idle)
        self._sweep.clock = reactor
        self._sweep.start(idle_timeout, now=False)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def request(self, data: bytes) -> Deferred[Response]:
        """Write one request; fires with ``(status code, body)`` of its final response."""
        request = _Request(self, data)
        connection = self._choose()
        if connection is None:
            self._waiting.append(request)
        else:
            connection.send(request)
        return request.deferred

    def _choose(self) -> _Connection | None:
        now = self.reactor.seconds()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.idle_since < self.idle_timeout:
                return connection
            connection.close()
        if len(self._open) < self.connections:
            return self._connect()
        least = min(self._open, key=_load)
        return least if least.load < self.pipeline else None

    def _connect(self) -> _Connection:
        connection = _Connection(self)
        self._open.append(connection)
        attempt = connection.attempt = self.endpoint.connect(_Factory(connection))
        attempt.addErrback(lambda reason: connection.connectionLost(reason))
        return connection

    def _idle_again(self, connection: _Connection) -> None:
        if connection.closing:
            return
        if self._waiting:
            connection.send(self._waiting.popleft())
        else:
            connection.idle_since = self.reactor.seconds()
            self._idle.append(connection)

    def _dispatch(self) -> None:
        while self._waiting:
            connection = self._choose()
            if connection is None:
                return
            connection.send(self._waiting.popleft())

    def _lost(self, connection: _Connection) -> None:
        if connection in self._open:
            self._open.remove(connection)
            if connection in self._idle:
                self._idle.remove(connection)
            self._dispatch()

    def _close_idle(self) -> None:
        now = self.reactor.seconds()
        for connection in list(self._idle):
            if now - connection.idle_since >= self.idle_timeout:
                connection.close()

    def close(self) -> Deferred[Any]:
        """Close every connection; requests still waiting for one fail as not sent."""
        if self._sweep.running:
            self._sweep.stop()
        waiting, self._waiting = self._waiting, deque()
        for request in waiting:
            request.deferred.errback(RequestNotSent("the HTTP client stopped"))
        closed = []
        for connection in list(self._open):
            d: Deferred[None] = Deferred()
            connection.lost.append(d)
            closed.append(d)
            connection.close()
        return DeferredList(closed)


def _load(connection: _Connection) -> int:
    return connection.load

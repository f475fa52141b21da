"""AnyCable RPC over HTTP: ``POST <base>/connect|command|disconnect`` with the messages as JSON,
over the keep-alive connection pool of :mod:`ocppcable.rpc.http1`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from twisted.application.service import Service
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ocppcable import cable
from ocppcable.metrics import IMetrics
from ocppcable.rpc.breaker import CircuitBreaker, State
from ocppcable.rpc.http1 import (
    BadResponse,
    ConnectionLost,
    HTTP1Pool,
    RequestNotSent,
    Response,
    TLSFailed,
)
from ocppcable.rpc.interface import IRPCClient, RPCUnavailable
from ocppcable.rpc.json_codec import decode_reply, encode_request
from ocppcable.rpc.policy import CallPolicy, NotSent

log = Logger()

#: base backoff for a request that did not reach the backend (AnyCable retries transport errors
#: as gRPC UNAVAILABLE: 100 ms × 2^n)
_BACKOFF = 0.1


def _not_sent(failure: Failure) -> Failure:
    """Only a request the backend surely did not get is tried again (:class:`NotSent`): a
    Command it processed and whose answer was lost must not run twice."""
    if failure.check(RequestNotSent):
        raise NotSent(failure.value, _BACKOFF)
    return failure


def _describe(error: BaseException) -> str:
    if isinstance(error, (RequestNotSent, ConnectionLost)):
        return f"HTTP RPC backend unreachable: {error}"
    if isinstance(error, TLSFailed):
        return f"HTTP RPC backend TLS handshake failed: {error}"
    return repr(error)


def decode_response(method: str, body: bytes, request: type) -> cable.Reply:
    """The reply record answering a ``request`` record type; a malformed body (see
    :mod:`ocppcable.rpc.json_codec`) fails the call."""
    try:
        return decode_reply(request, body)
    except ValueError as e:
        raise RPCUnavailable(f"malformed backend response to {method}: {e}") from None


def _endpoint(reactor: Any, target: str, timeout: float) -> Any:
    url = urlsplit(target)
    host = url.hostname or ""
    secure = url.scheme == "https"
    port = url.port or (443 if secure else 80)
    endpoint: Any
    if isIPAddress(host):  # no resolution, no Happy Eyeballs delay before a refusal is final
        endpoint = TCP4ClientEndpoint(reactor, host, port, timeout)
    elif isIPv6Address(host):
        endpoint = TCP6ClientEndpoint(reactor, host, port, timeout)
    else:
        endpoint = HostnameEndpoint(reactor, host, port, timeout)
    if secure:  # the platform's trusted CAs and the host name, as browsers check
        return wrapClientTLS(optionsForClientTLS(host), endpoint)
    return endpoint


def _heads(target: str, key: str | None) -> dict[str, bytes]:
    """Per method: the request up to the value of its last header, the session id."""
    url = urlsplit(target)
    path = url.path.rstrip("/")
    query = "?" + url.query if url.query else ""
    lines = [
        f"Host: {url.netloc.rpartition('@')[2]}",
        "Content-Type: application/json",
        "X-Anycable-Meta-Protov: v1",
    ]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    headers = "\r\n".join(lines)
    return {
        method: f"POST {path}/{method}{query} HTTP/1.1\r\n{headers}\r\nX-Anycable-Meta-Sid: ".encode()
        for method in ("connect", "command", "disconnect")
    }


@implementer(IRPCClient)
class HTTPRPCClient(Service):
    """Calls an AnyCable HTTP RPC server at ``target`` (e.g. ``http://localhost:3000/_anycable``)
    over keep-alive connections, opened from ``startService`` on: at most as many as the
    policy lets calls be in flight (slow ones included)."""

    name = "rpc"

    def __init__(
        self,
        reactor: Any,
        target: str,
        key: str | None,
        concurrency: int,
        timeout: float,
        breaker: CircuitBreaker | None = None,
        metrics: IMetrics | None = None,
    ) -> None:
        self.reactor = reactor
        self.target = target
        self.key = key
        self.timeout = timeout
        self.policy = CallPolicy(reactor, concurrency, timeout, metrics)
        self.breaker = breaker or CircuitBreaker(reactor)
        self._heads = _heads(target, key)
        self._pool: HTTP1Pool | None = None

    def startService(self) -> None:
        super().startService()
        endpoint = _endpoint(self.reactor, self.target, self.timeout)
        self._pool = HTTP1Pool(self.reactor, endpoint, self.policy.max_in_flight)

    def stopService(self) -> Deferred[Any] | None:
        super().stopService()
        pool, self._pool = self._pool, None
        return pool.close() if pool is not None else None

    def _call(self, sid: str, request: cable.Request) -> Deferred[Any]:
        method = request.method.value
        body = encode_request(request)
        session = sid.encode("utf-8")
        if b"\r" in session or b"\n" in session:  # a station's X-Request-Id: no header injection
            return fail(RPCUnavailable("a session id with a line break cannot be sent"))
        data = b"".join(
            (
                self._heads[method],
                session,
                b"\r\nContent-Length: ",
                str(len(body)).encode("ascii"),
                b"\r\n\r\n",
                body,
            )
        )
        kind = type(request)

        def attempt(remaining: float) -> Deferred[cable.Reply]:
            if self._pool is None:
                raise RuntimeError("HTTP RPC client is not running")
            generation = self.breaker.admit()
            if generation is None:
                raise RPCUnavailable("backend unavailable (circuit open)")
            d = self._pool.request(data)
            d.addCallbacks(self._answered, self._failed, (method, kind), None, (method,))
            return d.addBoth(self._record, generation).addErrback(_not_sent)

        return self.policy.run(method, sid, attempt, _describe)

    @staticmethod
    def _answered(response: Response, method: str, kind: type) -> cable.Reply:
        code, body = response
        if code != 200:
            raise RPCUnavailable(f"HTTP RPC backend answered {method} with status {code}")
        return decode_response(method, body, kind)

    @staticmethod
    def _failed(failure: Failure, method: str) -> Failure:
        if failure.check(BadResponse):
            raise RPCUnavailable(f"malformed backend response to {method}: {failure.value}")
        return failure

    def _record(self, result: Any, generation: int) -> Any:
        """Tell the breaker whether the backend answered; any HTTP response counts as up."""
        answered = not isinstance(result, Failure) or result.check(RPCUnavailable) is not None
        was = self.breaker.state
        self.breaker.record(generation, answered)
        if was is not State.OPEN and self.breaker.state is State.OPEN:
            log.warn(
                "HTTP RPC backend {target} keeps failing: refusing calls for {seconds:g}s",
                target=self.target,
                seconds=self.breaker.open_for,
            )
        return result

    def connect(self, sid: str, request: cable.ConnectRequest) -> Deferred[cable.ConnectReply]:
        return self._call(sid, request)

    def command(self, sid: str, request: cable.CommandRequest) -> Deferred[cable.CommandReply]:
        return self._call(sid, request)

    def disconnect(
        self, sid: str, request: cable.DisconnectRequest
    ) -> Deferred[cable.DisconnectReply]:
        return self._call(sid, request)

"""AnyCable RPC over HTTP: ``POST <base>/connect|command|disconnect`` with the messages as JSON."""

from __future__ import annotations

import json
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from treq.client import HTTPClient
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.error import (
    ConnectError,
    ConnectingCancelledError,
    ConnectionClosed,
    DNSLookupError,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import RequestNotSent, RequestTransmissionFailed, ResponseFailed
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from zope.interface import implementer

from ocppcable.metrics import IMetrics
from ocppcable.protos.rpc_pb2 import CommandResponse, ConnectionResponse, DisconnectResponse
from ocppcable.rpc.breaker import CircuitBreaker, State
from ocppcable.rpc.interface import IRPCClient, RPCUnavailable
from ocppcable.rpc.policy import CallPolicy, NotSent

log = Logger()

#: base backoff when no connection could be made (AnyCable retries it as gRPC UNAVAILABLE:
#: 100 ms × 2^n)
_BACKOFF = 0.1

#: the request was surely not written: no connection could be made (refused, timed out, no
#: route, unresolvable), or the pooled connection was found closed before writing. It is tried
#: again. A connection that failed later (closed or reset during the call, a failed TLS
#: handshake, a request written in part) is not: the backend may have the request, and a TLS
#: handshake fails again the same way.
_NOT_WRITTEN = (ConnectError, DNSLookupError, RequestNotSent)

#: failures of the connection, for the reason logged
_TRANSPORT_ERRORS = (
    *_NOT_WRITTEN,
    ConnectionClosed,
    ResponseFailed,
    RequestTransmissionFailed,
)

_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def _not_sent(failure: Failure) -> Failure:
    """A failed attempt as :class:`NotSent` when the request was surely not written."""
    if failure.check(*_NOT_WRITTEN):
        raise NotSent(failure.value, _BACKOFF)
    return failure


def _describe(error: BaseException) -> str:
    if isinstance(error, (ResponseFailed, RequestTransmissionFailed)):
        reasons = "; ".join(reason.getErrorMessage() for reason in error.reasons)
        return f"HTTP RPC backend unreachable: {reasons}"
    if isinstance(error, _TRANSPORT_ERRORS):
        return f"HTTP RPC backend unreachable: {error}"
    return repr(error)


def _cancelled(failure: Failure) -> None:
    """A call cancelled while connecting is a cancelled call (a timeout), not a transport error."""
    failure.trap(ConnectingCancelledError)
    raise CancelledError()


def encode_request(request: Message) -> bytes:
    """AnyCable's JSON: snake_case proto field names, zero values omitted."""
    fields = json_format.MessageToDict(
        request, preserving_proto_field_name=True, use_integers_for_enums=True
    )
    return _encode(fields).encode("utf-8")


def decode_response(method: str, body: bytes, message: Message) -> Message:
    """Fill ``message`` from a response body; unknown fields are ignored, a missing status is
    ERROR (the zero value)."""
    try:
        fields = json.loads(body)
        if not isinstance(fields, dict):
            raise ValueError("not a JSON object")
        return json_format.ParseDict(fields, message, ignore_unknown_fields=True)
    except (ValueError, json_format.ParseError) as e:
        raise RPCUnavailable(f"malformed backend response to {method}: {e}") from None


class _BodyReader(Protocol):
    """Collects a response body. Cancelling :attr:`done` (our timeout) closes the connection: a
    backend that sent headers and stalled must not keep it open."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.done: Deferred[bytes] = Deferred(self._abort)

    def _abort(self, _: Deferred[bytes]) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:  # cancelled
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(reason)


@implementer(IRPCClient)
class HTTPRPCClient(Service):
    """Calls an AnyCable HTTP RPC server at ``target`` (e.g. ``http://localhost:3000/_anycable``)
    over persistent connections, opened from ``startService`` on."""

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
        self.concurrency = concurrency
        self.policy = CallPolicy(reactor, concurrency, timeout, metrics)
        self.breaker = breaker or CircuitBreaker(reactor)
        self._pool: HTTPConnectionPool | None = None
        self._http: HTTPClient | None = None

    def startService(self) -> None:
        super().startService()
        self._pool = HTTPConnectionPool(self.reactor, persistent=True)
        self._pool.maxPersistentPerHost = self.concurrency  # the policy caps calls in flight
        # a backend's Set-Cookie must never reach another station's requests: keep no cookies
        no_cookies = CookieJar(DefaultCookiePolicy(allowed_domains=()))
        self._http = HTTPClient(Agent(self.reactor, pool=self._pool), cookiejar=no_cookies)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        pool, self._pool, self._http = self._pool, None, None
        return pool.closeCachedConnections() if pool is not None else None

    def _headers(self, sid: str) -> dict[bytes, list[bytes]]:
        headers = {
            b"content-type": [b"application/json"],
            b"x-anycable-meta-sid": [sid.encode("utf-8")],
            b"x-anycable-meta-protov": [b"v1"],
        }
        if self.key is not None:
            headers[b"authorization"] = [b"Bearer " + self.key.encode("utf-8")]
        return headers

    async def _post(self, method: str, sid: str, body: bytes, response: Message) -> Message:
        if self._http is None:
            raise RuntimeError("HTTP RPC client is not running")
        url = self.target.rstrip("/") + "/" + method
        reply = await self._http.post(
            url, data=body, headers=self._headers(sid), allow_redirects=False, unbuffered=True
        )
        reader = _BodyReader()
        reply.deliverBody(reader)  # read even on errors: the connection returns to the pool
        content = await reader.done
        if reply.code != 200:
            raise RPCUnavailable(f"HTTP RPC backend answered {method} with status {reply.code}")
        return decode_response(method, content, response)

    def _call(
        self, method: str, sid: str, request: Message, response: type[Message]
    ) -> Deferred[Any]:
        body = encode_request(request)

        def attempt(remaining: float) -> Deferred[Message]:
            generation = self.breaker.admit()
            if generation is None:
                raise RPCUnavailable("backend unavailable (circuit open)")
            d = ensureDeferred(self._post(method, sid, body, response()))
            d.addErrback(_cancelled).addErrback(_not_sent)
            d.addTimeout(max(remaining, 0.001), self.reactor)  # headers AND body
            return d.addBoth(self._record, generation)

        return self.policy.run(method.lower(), sid, attempt, _describe)

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

    def connect(self, sid: str, request: Any) -> Deferred[ConnectionResponse]:
        return self._call("connect", sid, request, ConnectionResponse)

    def command(self, sid: str, request: Any) -> Deferred[CommandResponse]:
        return self._call("command", sid, request, CommandResponse)

    def disconnect(self, sid: str, request: Any) -> Deferred[DisconnectResponse]:
        return self._call("disconnect", sid, request, DisconnectResponse)

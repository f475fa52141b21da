"""AnyCable RPC over gRPC, bridged to Twisted without blocking the reactor."""

from __future__ import annotations

from typing import Any

import grpc
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from zope.interface import implementer

from ocppcable.metrics import IMetrics
from ocppcable.protos import rpc_pb2_grpc
from ocppcable.rpc.interface import IRPCClient
from ocppcable.rpc.policy import CallPolicy

log = Logger()

#: keepalive pings every 10 s, also without calls, as AnyCable's Go client does
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),  # retries are ours: CallPolicy
]

#: base backoff per retryable status (AnyCable: 10 ms for RESOURCE_EXHAUSTED, 100 ms for
#: UNAVAILABLE, doubling on each retry)
_BACKOFF = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: 0.01,
    grpc.StatusCode.UNAVAILABLE: 0.1,
}


def _classify(error: BaseException) -> float | None:
    if isinstance(error, grpc.RpcError):
        return _BACKOFF.get(error.code())
    return None


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.RpcError):
        return f"gRPC {error.code().name}: {error.details()}"
    return repr(error)


def deferred_from_future(future: grpc.Future, reactor: IReactorThreads) -> Deferred[Any]:
    """A Deferred for a gRPC future; gRPC completes futures on its own threads."""
    d: Deferred[Any] = Deferred(lambda _: future.cancel())

    def fire(method: Any, value: Any) -> None:
        if not d.called:  # it may have been cancelled meanwhile
            method(value)

    def done(f: grpc.Future) -> None:
        if f.cancelled():
            return
        error = f.exception()
        if error is not None:
            reactor.callFromThread(fire, d.errback, error)
        else:
            reactor.callFromThread(fire, d.callback, f.result())

    future.add_done_callback(done)
    return d


@implementer(IRPCClient)
class GRPCClient(Service):
    """A gRPC channel to ``target`` opened in ``startService`` (never before: twistd may fork)."""

    name = "rpc"

    def __init__(
        self,
        reactor: Any,
        target: str,
        concurrency: int,
        timeout: float,
        metrics: IMetrics | None = None,
    ) -> None:
        self.reactor = reactor
        self.target = target
        self.policy = CallPolicy(reactor, concurrency, timeout, metrics)
        self._channel: grpc.Channel | None = None
        self._stub: rpc_pb2_grpc.RPCStub | None = None

    def startService(self) -> None:
        super().startService()
        self._channel = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        self._stub = rpc_pb2_grpc.RPCStub(self._channel)

    def stopService(self) -> None:
        super().stopService()
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _call(self, method: str, sid: str, request: Any) -> Deferred[Any]:
        metadata = (("sid", sid), ("protov", "v1"))

        def attempt(remaining: float) -> Deferred[Any]:
            if self._stub is None:
                raise RuntimeError("gRPC client is not running")
            future = getattr(self._stub, method).future(
                request, timeout=max(remaining, 0.001), metadata=metadata
            )
            return deferred_from_future(future, self.reactor)

        return self.policy.run(method.lower(), attempt, _classify, _describe)

    def connect(self, sid: str, request: Any) -> Deferred[Any]:
        return self._call("Connect", sid, request)

    def command(self, sid: str, request: Any) -> Deferred[Any]:
        return self._call("Command", sid, request)

    def disconnect(self, sid: str, request: Any) -> Deferred[Any]:
        return self._call("Disconnect", sid, request)

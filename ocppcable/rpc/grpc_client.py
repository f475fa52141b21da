"""AnyCable RPC over gRPC, bridged to Twisted without blocking the reactor."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import grpc
import grpc.aio
from twisted.application.service import Service
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ocppcable import cable
from ocppcable.metrics import IMetrics
from ocppcable.protos import rpc_pb2_grpc
from ocppcable.rpc.interface import IRPCClient
from ocppcable.rpc.policy import CallPolicy, NotSent

log = Logger()

#: keepalive pings every 10 s, also without calls, as AnyCable's Go client does
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),  # retries are ours: CallPolicy
]

#: seconds closing the channel may take at shutdown
STOP_TIMEOUT = 5.0

#: AnyCable's base backoff (doubling on each retry): 10 ms for RESOURCE_EXHAUSTED, 100 ms for
#: UNAVAILABLE
_EXHAUSTED_BACKOFF = 0.01
_UNAVAILABLE_BACKOFF = 0.1

#: what gRPC's UNAVAILABLE says when no connection could be made (refused, unresolvable): the
#: request was never written. Any other UNAVAILABLE ("Socket closed", a reset) may have come
#: after the backend got it.
_NEVER_CONNECTED = ("failed to connect to all addresses", "errors resolving", "dns resolution")


def _not_sent(failure: Failure) -> Failure:
    """A failed attempt as :class:`NotSent` when the backend surely did not handle it."""
    error = failure.value
    if isinstance(error, grpc.RpcError):
        code = error.code()
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED:  # refused before handling (full pool)
            raise NotSent(error, _EXHAUSTED_BACKOFF)
        details = (error.details() or "").lower()
        if code is grpc.StatusCode.UNAVAILABLE and any(s in details for s in _NEVER_CONNECTED):
            raise NotSent(error, _UNAVAILABLE_BACKOFF)
    return failure


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.RpcError):
        return f"gRPC {error.code().name}: {error.details()}"
    return repr(error)


class AioBridge:
    """``grpc.aio`` on an asyncio loop of its own, in one thread; every result comes back to the
    reactor thread through ``callFromThread``.

    The synchronous API's ``stub.Method.future()`` starts a new polling thread each time the
    channel's calls in flight drop to zero (at a few hundred calls per second, about once per
    call), and a pool of threads making blocking calls fights over the GIL when busy. One
    long-lived thread has neither cost. Works under any reactor.
    """

    def __init__(self, reactor: IReactorThreads, target: str) -> None:
        self.reactor = reactor
        self.target = target
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stub: rpc_pb2_grpc.RPCStub | None = None

    def start(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        opened = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._open())
            opened.set()
            loop.run_forever()
            loop.close()

        threading.Thread(target=run, name="grpc-aio", daemon=True).start()
        opened.wait()

    async def _open(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        self._stub = rpc_pb2_grpc.RPCStub(self._channel)

    def stop(self) -> Deferred[None]:
        """Close the channel (calls in flight end as CANCELLED) and end the thread."""
        stopped: Deferred[None] = Deferred()
        loop, self._loop = self._loop, None
        if loop is None:
            stopped.callback(None)
            return stopped

        async def close() -> None:
            try:
                if self._channel is not None:
                    await self._channel.close()
            finally:
                loop.stop()
                self.reactor.callFromThread(stopped.callback, None)

        asyncio.run_coroutine_threadsafe(close(), loop)
        stopped.addTimeout(STOP_TIMEOUT, self.reactor)
        return stopped.addErrback(lambda f: f.trap(TimeoutError))

    def call(self, method: str, request: Any, timeout: float, metadata: Any) -> Deferred[Any]:
        """Fires with the response or fails with the ``grpc.RpcError``; cancelling it cancels
        the call."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("gRPC client is not running")
        task: list[asyncio.Future[Any]] = []

        def cancel(_: Deferred[Any]) -> None:
            if not loop.is_closed():  # else the channel is closed: the call ended with it
                loop.call_soon_threadsafe(lambda: task and task[0].cancel())

        d: Deferred[Any] = Deferred(cancel)

        def start() -> None:  # in the loop's thread, like everything grpc.aio
            if d.called:  # cancelled before it started
                return
            rpc = getattr(self._stub, method)(request, timeout=timeout, metadata=metadata)
            task.append(asyncio.ensure_future(rpc))
            task[0].add_done_callback(done)

        def done(finished: asyncio.Future[Any]) -> None:
            if finished.cancelled():
                return  # the Deferred was cancelled
            error = finished.exception()
            if error is not None:
                self.reactor.callFromThread(_fire, d.errback, error)
            else:
                self.reactor.callFromThread(_fire, d.callback, finished.result())

        loop.call_soon_threadsafe(start)
        return d


def _fire(method: Any, value: Any) -> None:
    if not method.__self__.called:  # it may have been cancelled meanwhile
        method(value)


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
        self._bridge: AioBridge | None = None

    def startService(self) -> None:
        super().startService()
        self._bridge = AioBridge(self.reactor, self.target)
        self._bridge.start()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        bridge, self._bridge = self._bridge, None
        return bridge.stop() if bridge is not None else None

    def _call(self, method: str, sid: str, request: Any) -> Deferred[Any]:
        """``request`` as a protobuf message: fires with the protobuf response."""
        metadata = (("sid", sid), ("protov", "v1"))

        def attempt(remaining: float) -> Deferred[Any]:
            if self._bridge is None:
                raise RuntimeError("gRPC client is not running")
            d = self._bridge.call(method, request, max(remaining, 0.001), metadata)
            return d.addErrback(_not_sent)

        return self.policy.run(method.lower(), sid, attempt, _describe)

    def connect(self, sid: str, request: cable.ConnectRequest) -> Deferred[cable.ConnectReply]:
        d = self._call("Connect", sid, cable.connect_request_pb(request))
        return d.addCallback(cable.connect_reply_from_pb)

    def command(self, sid: str, request: cable.CommandRequest) -> Deferred[cable.CommandReply]:
        d = self._call("Command", sid, cable.command_request_pb(request))
        return d.addCallback(cable.command_reply_from_pb)

    def disconnect(
        self, sid: str, request: cable.DisconnectRequest
    ) -> Deferred[cable.DisconnectReply]:
        d = self._call("Disconnect", sid, cable.disconnect_request_pb(request))
        return d.addCallback(cable.disconnect_reply_from_pb)

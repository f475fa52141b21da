"""Disconnect RPCs at a steady rate, drained at shutdown.

A network blip can drop thousands of stations at once; their Disconnect RPCs would then crowd
out the Connects of the same stations coming back. AnyCable queues them and makes them at
``--disconnect-rate`` per second; at shutdown the queue is drained as fast as the RPC gate
allows, so no Disconnect is lost on a restart.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from ocppcable.rpc.interface import IRPCClient

log = Logger()


@implementer(IRPCClient)
class RateLimitedDisconnects:
    """An :class:`IRPCClient` that passes Connect and Command through and queues Disconnect."""

    def __init__(self, clock: IReactorTime, rpc: IRPCClient, rate: float) -> None:
        self.clock = clock
        self.rpc = rpc
        self.rate = rate
        self.target = rpc.target
        self._queue: deque[tuple[str, Any, Deferred[Any]]] = deque()
        self._tokens = rate
        self._refilled = clock.seconds()
        self._tick: IDelayedCall | None = None
        self._in_flight: set[Deferred[Any]] = set()
        self._draining = False

    def __len__(self) -> int:
        return len(self._queue)

    def connect(self, sid: str, request: Any) -> Deferred[Any]:
        return self.rpc.connect(sid, request)

    def command(self, sid: str, request: Any) -> Deferred[Any]:
        return self.rpc.command(sid, request)

    def disconnect(self, sid: str, request: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self._queue.append((sid, request, d))
        self._pump()
        return d

    def drain(self, timeout: float) -> Deferred[Any]:
        """Make every queued Disconnect now; fires when all are answered or ``timeout`` passed."""
        self._draining = True
        self._pump()
        pending = list(self._in_flight)
        d = DeferredList(pending, consumeErrors=True)
        d.addTimeout(timeout, self.clock)

        def gave_up(failure: Any) -> None:
            left = len(self._queue) + len(self._in_flight)
            log.warn("had no time for {count} Disconnect RPC(s)", count=left)

        return d.addErrback(gave_up)

    def _pump(self) -> None:
        now = self.clock.seconds()
        self._tokens = min(self.rate, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        while self._queue and (self._draining or self._tokens >= 1):
            self._tokens -= 1
            self._make(*self._queue.popleft())
        if self._queue and self._tick is None:
            self._tick = self.clock.callLater(1 / self.rate, self._ticked)

    def _ticked(self) -> None:
        self._tick = None
        self._pump()

    def _make(self, sid: str, request: Any, result: Deferred[Any]) -> None:
        d = self.rpc.disconnect(sid, request)
        self._in_flight.add(d)

        def done(outcome: Any) -> Any:
            self._in_flight.discard(d)
            return outcome

        d.addBoth(done).chainDeferred(result)

    def stop(self) -> None:
        if self._tick is not None and self._tick.active():
            self._tick.cancel()
        self._tick = None

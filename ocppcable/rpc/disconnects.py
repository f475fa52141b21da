"""Disconnect RPCs at a steady rate, drained at shutdown.

A network blip can drop thousands of stations at once; their Disconnect RPCs would then crowd
out the Connects of the same stations coming back. AnyCable queues them and makes them at
``--disconnect-rate`` per second; at shutdown the queue is drained as fast as the RPC gate
allows, so no Disconnect is lost on a restart. That includes the Disconnects a session can only
make once its Connect or subscribe is answered: the drain also waits for those.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from ocppcable.ratelimit import TokenBucket
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
        self._bucket = TokenBucket(rate, rate, clock.seconds)
        self._tick: IDelayedCall | None = None
        self._in_flight: set[Deferred[Any]] = set()  # Disconnects
        self._others: set[Deferred[Any]] = set()  # Connects and Commands
        self._draining = False

    def __len__(self) -> int:
        return len(self._queue)

    def connect(self, sid: str, request: Any) -> Deferred[Any]:
        return self._track(self.rpc.connect(sid, request), self._others)

    def command(self, sid: str, request: Any) -> Deferred[Any]:
        return self._track(self.rpc.command(sid, request), self._others)

    def disconnect(self, sid: str, request: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self._queue.append((sid, request, d))
        self._pump()
        return d

    @inlineCallbacks
    def drain(self, timeout: float) -> Any:
        """Make every queued Disconnect now, and those that sessions make once the RPCs in flight
        are answered; fires when no RPC is left in flight or ``timeout`` passed."""
        self._draining = True
        deadline = self.clock.seconds() + timeout
        self._pump()
        while self._in_flight or self._others:
            remaining = deadline - self.clock.seconds()
            if remaining <= 0:
                log.warn(
                    "had no time for {count} Disconnect RPC(s) and {others} other RPC(s)",
                    count=len(self._queue) + len(self._in_flight),
                    others=len(self._others),
                )
                return
            # an answer may make a session queue its Disconnect, made at once while draining
            pending = DeferredList([*self._in_flight, *self._others], consumeErrors=True)
            yield _within(pending, remaining, self.clock)

    def _pump(self) -> None:
        while self._queue and (self._draining or self._bucket.take()):
            self._make(*self._queue.popleft())
        if self._queue and self._tick is None:
            self._tick = self.clock.callLater(1 / self.rate, self._ticked)

    def _ticked(self) -> None:
        self._tick = None
        self._pump()

    def _make(self, sid: str, request: Any, result: Deferred[Any]) -> None:
        self._track(self.rpc.disconnect(sid, request), self._in_flight).chainDeferred(result)

    @staticmethod
    def _track(d: Deferred[Any], in_flight: set[Deferred[Any]]) -> Deferred[Any]:
        """``d``, a member of ``in_flight`` until it fires (before its other callbacks run)."""
        in_flight.add(d)

        def done(outcome: Any) -> Any:
            in_flight.discard(d)
            return outcome

        return d.addBoth(done)

    def stop(self) -> None:
        if self._tick is not None and self._tick.active():
            self._tick.cancel()
        self._tick = None


def _within(d: Deferred[Any], seconds: float, clock: IReactorTime) -> Deferred[None]:
    """Fires when ``d`` does or after ``seconds``, whichever comes first; ``d`` runs on."""
    waited: Deferred[None] = Deferred()
    timer = clock.callLater(seconds, lambda: waited.called or waited.callback(None))

    def fired(_: Any) -> None:
        if timer.active():
            timer.cancel()
        if not waited.called:
            waited.callback(None)

    d.addBoth(fired)
    return waited

"""Concurrency gate, retries with backoff and a per-call budget, shared by every transport."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, DeferredSemaphore, TimeoutError, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from ocppcable.metrics import IMetrics, NoMetrics
from ocppcable.protos.rpc_pb2 import Status
from ocppcable.rpc.interface import RPCUnavailable

T = TypeVar("T")

#: classify(exception) → base backoff in seconds when the error is worth retrying, else None
Classifier = Callable[[BaseException], float | None]


class CallPolicy:
    """Runs RPC attempts through a semaphore, retrying transient failures within a budget.

    ``attempt(remaining_seconds)`` starts one try and returns a Deferred; ``classify`` says which
    failures are transient and how long to back off (base × 2^n). The whole call, waiting at the
    gate included, never takes longer than ``timeout`` seconds.
    """

    def __init__(
        self,
        clock: IReactorTime,
        concurrency: int,
        timeout: float,
        metrics: IMetrics | None = None,
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self.metrics = metrics or NoMetrics()
        self.gate = DeferredSemaphore(concurrency)
        self.in_flight = 0

    @property
    def pending(self) -> int:
        return len(self.gate.waiting)

    def run(
        self,
        method: str,
        attempt: Callable[[float], Deferred[T]],
        classify: Classifier,
        describe: Callable[[BaseException], str],
    ) -> Deferred[T]:
        """One RPC ``method`` (connect/command/disconnect), for metrics and logs."""
        started = self.clock.seconds()
        d = self.gate.run(self._attempts, attempt, classify, describe, started + self.timeout)
        d.addTimeout(self.timeout, self.clock)
        d.addErrback(self._unavailable, describe)
        d.addBoth(self._measure, method, started)
        return d

    def _measure(self, result: Any, method: str, started: float) -> Any:
        if isinstance(result, Failure):
            status = "UNAVAILABLE"
        else:
            status = Status.Name(getattr(result, "status", 0))
        self.metrics.rpc(method, status, self.clock.seconds() - started)
        return result

    def _unavailable(self, failure: Any, describe: Callable[[BaseException], str]) -> None:
        if failure.check(RPCUnavailable):
            failure.raiseException()
        if failure.check(TimeoutError):
            raise RPCUnavailable(f"no answer within {self.timeout:g}s")
        raise RPCUnavailable(describe(failure.value))

    @inlineCallbacks
    def _attempts(self, attempt, classify, describe, deadline):  # type: ignore[no-untyped-def]
        self.in_flight += 1
        try:
            retries: dict[float, int] = {}
            while True:
                remaining = deadline - self.clock.seconds()
                try:
                    result = yield attempt(remaining)
                except Exception as e:
                    base = classify(e)
                    if base is None:
                        raise
                    n = retries.get(base, 0)
                    retries = {base: n + 1}  # the count restarts when the kind of error changes
                    delay = base * 2**n
                    if self.clock.seconds() + delay >= deadline:
                        raise RPCUnavailable(describe(e)) from e
                    yield deferLater(self.clock, delay, lambda: None)
                else:
                    return result
        finally:
            self.in_flight -= 1

"""Concurrency gate, retries with backoff and a per-call budget, shared by every transport."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from ocppcable.cable import Status
from ocppcable.metrics import IMetrics, NoMetrics
from ocppcable.rpc.interface import RPCUnavailable

T = TypeVar("T")

#: classify(exception) → base backoff in seconds when the error is worth retrying, else None
Classifier = Callable[[BaseException], float | None]


class CallPolicy:
    """Runs RPC attempts through a concurrency gate, retrying transient failures within a budget.

    ``attempt(remaining_seconds)`` starts one try and returns a Deferred; ``classify`` says which
    failures are transient and how long to back off (base × 2^n). The whole call, waiting at the
    gate included, never takes longer than ``timeout`` seconds.

    Every station CALL makes at least one RPC, so each call is a small state machine
    (:class:`_Call`) with one timer, rather than a chain of semaphore, generator and timeout
    Deferreds.
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
        self.concurrency = concurrency
        #: calls admitted through the gate (trying, or backing off before the next try)
        self.in_flight = 0
        self._waiting: deque[_Call] = deque()

    @property
    def pending(self) -> int:
        """Calls waiting at the gate."""
        return len(self._waiting)

    def run(
        self,
        method: str,
        attempt: Callable[[float], Deferred[T]],
        classify: Classifier,
        describe: Callable[[BaseException], str],
    ) -> Deferred[T]:
        """One RPC ``method`` (connect/command/disconnect), for metrics and logs. Fires with the
        response or fails with :class:`RPCUnavailable`; cancelling it abandons the call."""
        call = _Call(self, method, attempt, classify, describe)
        if self.in_flight < self.concurrency:
            call.admit()
        else:
            self._waiting.append(call)
        return call.result

    def _release(self) -> None:
        self.in_flight -= 1
        while self._waiting and self.in_flight < self.concurrency:
            self._waiting.popleft().admit()


#: status names for metrics, by number
_STATUS_NAMES = {status.value: status.name for status in Status}


class _Call:
    """One call through a :class:`CallPolicy`: waiting at the gate, trying, backing off."""

    __slots__ = (
        "policy",
        "method",
        "attempt",
        "classify",
        "describe",
        "started",
        "deadline",
        "result",
        "timer",
        "admitted",
        "current",
        "backoff",
        "retries",
        "done",
    )

    def __init__(
        self,
        policy: CallPolicy,
        method: str,
        attempt: Callable[[float], Deferred[Any]],
        classify: Classifier,
        describe: Callable[[BaseException], str],
    ) -> None:
        self.policy = policy
        self.method = method
        self.attempt = attempt
        self.classify = classify
        self.describe = describe
        self.started = policy.clock.seconds()
        self.deadline = self.started + policy.timeout
        self.result: Deferred[Any] = Deferred(self._cancelled)
        self.timer: IDelayedCall | None = policy.clock.callLater(policy.timeout, self._timed_out)
        self.admitted = False
        self.current: Deferred[Any] | None = None  # the running attempt
        self.backoff: IDelayedCall | None = None  # the next attempt, after a transient failure
        self.retries: dict[float, int] = {}
        self.done = False

    def admit(self) -> None:
        self.admitted = True
        self.policy.in_flight += 1
        self._try()

    def _try(self) -> None:
        self.backoff = None
        remaining = self.deadline - self.policy.clock.seconds()
        try:
            attempt = self.attempt(remaining)
        except Exception as e:
            self._attempt_failed(e)
            return
        if self.done:  # the attempt failed at once and the call is over
            return
        self.current = attempt
        attempt.addCallbacks(self._answered, self._failed)

    def _answered(self, response: Any) -> None:
        if not self.done:
            self.current = None
            self._settle(response)

    def _failed(self, failure: Failure) -> None:
        if not self.done:  # else: we cancelled it
            self.current = None
            self._attempt_failed(failure.value)

    def _attempt_failed(self, error: BaseException) -> None:
        base = self.classify(error)
        if base is None:
            self._settle(None, error)
            return
        n = self.retries.get(base, 0)
        self.retries = {base: n + 1}  # the count restarts when the kind of error changes
        delay = base * 2**n
        clock = self.policy.clock
        if clock.seconds() + delay >= self.deadline:
            self._settle(None, RPCUnavailable(self.describe(error)))
        else:
            self.backoff = clock.callLater(delay, self._try)

    def _timed_out(self) -> None:
        self.timer = None
        self._abandon(RPCUnavailable(f"no answer within {self.policy.timeout:g}s"))

    def _cancelled(self, result: Deferred[Any]) -> None:
        self._abandon(RPCUnavailable(self.describe(CancelledError())))

    def _abandon(self, error: RPCUnavailable) -> None:
        if self.done:
            return
        self.done = True  # before cancelling: the attempt's errback is ours to ignore
        current, self.current = self.current, None
        if current is not None:
            current.cancel()
        if self.backoff is not None and self.backoff.active():
            self.backoff.cancel()
        if not self.admitted:
            self.policy._waiting.remove(self)
        self._finish(None, error)

    def _settle(self, response: Any, error: BaseException | None = None) -> None:
        if not self.done:
            self.done = True
            self._finish(response, error)

    def _finish(self, response: Any, error: BaseException | None) -> None:
        policy = self.policy
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if self.admitted:
            policy._release()
        if error is None:
            try:
                status = getattr(response, "status", 0)
                name = _STATUS_NAMES[status]
            except Exception:  # a status the enum does not know: a malformed response
                self.result.errback(Failure())
                return
            policy.metrics.rpc(self.method, name, policy.clock.seconds() - self.started)
            self.result.callback(response)
            return
        if isinstance(error, RPCUnavailable):
            unavailable = error
        elif isinstance(error, TimeoutError):
            unavailable = RPCUnavailable(f"no answer within {policy.timeout:g}s")
        else:
            unavailable = RPCUnavailable(self.describe(error))
        policy.metrics.rpc(self.method, "UNAVAILABLE", policy.clock.seconds() - self.started)
        self.result.errback(Failure(unavailable))

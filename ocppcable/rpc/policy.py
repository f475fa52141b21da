# -*- test-case-name: tests.test_policy, tests.test_overload -*-
"""The RPC gate, retries with backoff and a per-call budget, shared by every transport.

**The gate** limits the RPCs in flight to ``concurrency``, fairly across stations: each station
(the key a transport passes, the session id) waits in a queue of its own, the queues take turns,
and one station has at most :data:`PER_STATION` RPCs admitted at once (its CALL being processed
and its Disconnect). A call that has waited for its answer for :data:`SLOW_AFTER` seconds
gives its slot back while it goes on waiting, and the next calls of its station skip the slots
(until one of them is answered in time), so a backend that is slow for some stations does not
hold up the others; at most ``3 × concurrency`` such slow calls are in flight at once.

**Priority**: the calls of sessions that have started (their Commands and Disconnects) go
ahead of :data:`NEW_SESSION_METHODS` (the Connects of stations arriving), and a Connect never
takes the last :func:`reserved_slots` of the gate. In a reconnect storm, the stations that are
already served keep being served while the new ones wait their turn.

**Retries** (the rule for backend authors, see ``docs/channel-contract.md``): an RPC is tried
again only when it surely did not reach the backend's handlers, so the backend never processes
one twice. A transport says so by failing the attempt with :class:`NotSent`; every other
failure ends the call (the station's CALL gets InternalError).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from ocppcable.cable import Status
from ocppcable.metrics import IMetrics, NoMetrics
from ocppcable.rpc.interface import RPCUnavailable

T = TypeVar("T")

#: RPCs one station may have admitted through the gate at once: its CALL and its Disconnect
PER_STATION = 2
#: seconds after which an admitted call no longer occupies a slot of the gate
SLOW_AFTER = 0.5
#: slow calls in flight at most, as a multiple of the gate's concurrency
SLOW_FACTOR = 3
#: slow stations remembered at most, as a multiple of the slow calls in flight at most
SLOW_MEMORY = 4
#: the calls that start a session: they wait behind every other call at the gate
NEW_SESSION_METHODS = frozenset({"connect"})
#: the two classes of calls at the gate, in the order they are admitted
CONNECTED, NEW = 0, 1


def reserved_slots(concurrency: int) -> int:
    """Slots of the gate a new session's call never takes: an eighth, at least one (none when
    the gate has a single slot)."""
    return max(1, concurrency // 8) if concurrency > 1 else 0


class NotSent(Exception):
    """An attempt that surely did not reach the backend's handlers, so that trying it again
    cannot make the backend process it twice; the policy retries it after ``backoff`` seconds,
    doubling for each retry, within the call's budget.

    Transports raise it only when they are sure: the connection was refused or never made (no
    byte of the request was written), the host name did not resolve, or the backend refused the
    request before handling it (gRPC ``RESOURCE_EXHAUSTED`` from a full worker pool). A request
    that may have been written (a connection reset or closed during the call, a deadline) is
    not :class:`NotSent`. ``cause`` is the transport's own error, for the reason logged.
    """

    def __init__(self, cause: BaseException, backoff: float) -> None:
        super().__init__(cause)
        self.cause = cause
        self.backoff = backoff


class CallPolicy:
    """Runs RPC attempts through the gate, retrying :class:`NotSent` failures within a budget.

    ``attempt(remaining_seconds)`` starts one try and returns a Deferred. The whole call,
    waiting at the gate included, never takes longer than ``timeout`` seconds.

    Every station CALL makes at least one RPC, so each call is a small state machine
    (:class:`_Call`) with one timer, rather than a chain of semaphore, generator and timeout
    Deferreds.
    """

    #: the classes' names, by class (for metrics)
    CLASSES = ("connected", "new")

    def __init__(
        self,
        clock: IReactorTime,
        concurrency: int,
        timeout: float,
        metrics: IMetrics | None = None,
        *,
        per_station: int = PER_STATION,
        slow_after: float = SLOW_AFTER,
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self.metrics = metrics or NoMetrics()
        self.concurrency = concurrency
        self.per_station = per_station
        self.slow_after = slow_after
        self.max_slow = SLOW_FACTOR * concurrency
        self.reserved = reserved_slots(concurrency)
        #: admitted calls that occupy a slot, oldest first
        self._young: dict[_Call, None] = {}
        #: admitted calls older than ``slow_after``, or of a slow station: in flight, in no slot
        self.slow = 0
        #: stations whose last call took ``slow_after`` or more, least recent first (bounded)
        self._slow_stations: OrderedDict[Hashable, None] = OrderedDict()
        self._stations: dict[Hashable, _Station] = {}
        #: stations with a call waiting and room under ``per_station``, in turn order, by the
        #: class of their next call (:data:`CONNECTED`, :data:`NEW`)
        self._turns: tuple[deque[_Station], deque[_Station]] = (deque(), deque())
        #: calls waiting, by class
        self._waiting = [0, 0]
        self._admitting = False
        self._sweep: IDelayedCall | None = None
        #: called with the seconds each admitted call took until it was answered, failed or
        #: timed out (not when abandoned by its caller): how the backend's latency is watched
        self.latency_observer: Callable[[float], None] | None = None

    @property
    def max_in_flight(self) -> int:
        """Calls that may be in flight at once, slow ones included (a transport with a
        connection per call needs as many)."""
        return self.concurrency + self.max_slow

    @property
    def in_flight(self) -> int:
        """Calls admitted through the gate (trying, or backing off before the next try)."""
        return len(self._young) + self.slow

    @property
    def pending(self) -> int:
        """Calls waiting at the gate."""
        return self._waiting[CONNECTED] + self._waiting[NEW]

    def waiting(self, kind: int) -> int:
        """Calls of class ``kind`` (:data:`CONNECTED` or :data:`NEW`) waiting at the gate."""
        return self._waiting[kind]

    def run(
        self,
        method: str,
        station: Hashable,
        attempt: Callable[[float], Deferred[T]],
        describe: Callable[[BaseException], str],
    ) -> Deferred[T]:
        """One RPC ``method`` (connect/command/disconnect, for metrics and logs) for
        ``station``. Fires with the response or fails with :class:`RPCUnavailable` (its reason
        from ``describe``); cancelling it abandons the call."""
        queue = self._stations.get(station)
        if queue is None:
            queue = self._stations[station] = _Station(station)
        kind = NEW if method in NEW_SESSION_METHODS else CONNECTED
        call = _Call(self, queue, method, kind, attempt, describe)
        queue.waiting.append(call)
        self._waiting[kind] += 1
        self._take_turn(queue)
        self._admit()
        return call.result

    def _take_turn(self, station: _Station) -> None:
        if station.queued is None and station.waiting and station.admitted < self.per_station:
            station.queued = self._turns[station.waiting[0].kind]
            station.queued.append(station)

    def _next_turn(self) -> tuple[deque[_Station], bool] | None:
        """The turns the next call comes from and whether it goes in without a slot (its
        station is slow), if the gate has room for it: a started session's call first, a new
        session's only with room beyond the reserved slots."""
        limits = (self.concurrency, self.concurrency - self.reserved)
        for turns, slots in zip(self._turns, limits, strict=True):
            if not turns:
                continue
            if turns[0].key in self._slow_stations and self.slow < self.max_slow:
                return turns, True  # its calls take long: they need no slot
            if self._has_room(slots):
                return turns, False
        return None

    def _admit(self) -> None:
        """Admit waiting calls while the gate has room, one per station in turn."""
        if self._admitting:  # a call admitted below finished at once: the loop goes on
            return
        self._admitting = True
        try:
            while (turn := self._next_turn()) is not None:
                turns, slow = turn
                station = turns.popleft()
                station.queued = None
                call = station.waiting.popleft()
                self._waiting[call.kind] -= 1
                station.admitted += 1
                if slow:
                    call.slow = True
                    self.slow += 1
                else:
                    self._young[call] = None
                self._take_turn(station)
                call.admit()
        finally:
            self._admitting = False
        self._watch_slow()

    def _watch_slow(self) -> None:
        """While calls wait at a full gate, look again when the oldest call in a slot becomes
        slow; else no timer."""
        connected, new = self._turns
        young = len(self._young)
        waiting = (connected and young >= self.concurrency) or (
            new and young >= self.concurrency - self.reserved
        )
        if waiting and self.slow < self.max_slow:
            if self._sweep is None:
                oldest = next(iter(self._young))
                delay = max(0.0, oldest.admitted_at + self.slow_after - self.clock.seconds())
                self._sweep = self.clock.callLater(delay, self._swept)
        elif self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def _has_room(self, slots: int) -> bool:
        """Whether fewer than ``slots`` admitted calls occupy a slot."""
        if len(self._young) < slots:
            return True
        # the gate is full: calls that have been slow long enough give their slots back
        limit = self.clock.seconds() - self.slow_after
        while self._young and self.slow < self.max_slow:
            oldest = next(iter(self._young))
            if oldest.admitted_at > limit:
                break
            del self._young[oldest]
            oldest.slow = True
            self.slow += 1
            self._mark(oldest.station.key, slow=True)
            if len(self._young) < slots:
                return True
        return False

    def _swept(self) -> None:
        self._sweep = None
        self._admit()

    def _mark(self, key: Hashable, slow: bool) -> None:
        if slow:
            self._slow_stations[key] = None
            self._slow_stations.move_to_end(key)
            if len(self._slow_stations) > SLOW_MEMORY * self.max_slow:
                self._slow_stations.popitem(last=False)
        else:
            self._slow_stations.pop(key, None)

    def _release(self, call: _Call) -> None:
        if call.slow:
            self.slow -= 1
        else:
            del self._young[call]
        station = call.station
        self._mark(station.key, self.clock.seconds() - call.admitted_at >= self.slow_after)
        station.admitted -= 1
        self._forget_if_idle(station)
        self._take_turn(station)
        self._admit()

    def _leave_queue(self, call: _Call) -> None:
        station = call.station
        station.waiting.remove(call)
        self._waiting[call.kind] -= 1
        turns = station.queued
        if turns is not None and (
            not station.waiting or turns is not self._turns[station.waiting[0].kind]
        ):
            turns.remove(station)
            station.queued = None
            self._take_turn(station)  # the class of its next call changed
        self._forget_if_idle(station)
        self._watch_slow()

    def _forget_if_idle(self, station: _Station) -> None:
        if not station.waiting and not station.admitted:
            del self._stations[station.key]


class _Station:
    """One station's calls waiting at the gate, and how many it has admitted."""

    __slots__ = ("key", "waiting", "admitted", "queued")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.waiting: deque[_Call] = deque()
        self.admitted = 0
        self.queued: deque[_Station] | None = None  # the turns of CallPolicy it is in


#: status names for metrics, by number
_STATUS_NAMES = {status.value: status.name for status in Status}


class _Call:
    """One call through a :class:`CallPolicy`: waiting at the gate, trying, backing off."""

    __slots__ = (
        "policy",
        "station",
        "method",
        "kind",
        "attempt",
        "describe",
        "started",
        "deadline",
        "result",
        "timer",
        "admitted",
        "admitted_at",
        "slow",
        "current",
        "backoff",
        "retries",
        "done",
    )

    def __init__(
        self,
        policy: CallPolicy,
        station: _Station,
        method: str,
        kind: int,
        attempt: Callable[[float], Deferred[Any]],
        describe: Callable[[BaseException], str],
    ) -> None:
        self.policy = policy
        self.station = station
        self.method = method
        self.kind = kind  # CONNECTED or NEW
        self.attempt = attempt
        self.describe = describe
        self.started = policy.clock.seconds()
        self.deadline = self.started + policy.timeout
        self.result: Deferred[Any] = Deferred(self._cancelled)
        self.timer: IDelayedCall | None = policy.clock.callLater(policy.timeout, self._timed_out)
        self.admitted = False
        self.admitted_at = 0.0
        self.slow = False  # admitted long enough ago to occupy no slot
        self.current: Deferred[Any] | None = None  # the running attempt
        self.backoff: IDelayedCall | None = None  # the next attempt, after a NotSent failure
        self.retries: dict[float, int] = {}
        self.done = False

    def admit(self) -> None:
        self.admitted = True
        self.admitted_at = self.policy.clock.seconds()
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
        if not isinstance(error, NotSent):
            self._settle(None, error)
            return
        base = error.backoff
        n = self.retries.get(base, 0)
        self.retries = {base: n + 1}  # the count restarts when the kind of error changes
        delay = base * 2**n
        clock = self.policy.clock
        if clock.seconds() + delay >= self.deadline:
            self._settle(None, RPCUnavailable(self.describe(error.cause)))
        else:
            self.backoff = clock.callLater(delay, self._try)

    def _timed_out(self) -> None:
        self.timer = None
        if not self.done:
            self._observe()
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
            self.policy._leave_queue(self)
        self._finish(None, error)

    def _settle(self, response: Any, error: BaseException | None = None) -> None:
        if not self.done:
            self._observe()
            self.done = True
            self._finish(response, error)

    def _observe(self) -> None:
        observer = self.policy.latency_observer
        if observer is not None and self.admitted:
            observer(self.policy.clock.seconds() - self.admitted_at)

    def _finish(self, response: Any, error: BaseException | None) -> None:
        policy = self.policy
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if self.admitted:
            policy._release(self)
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

"""CallPolicy: the concurrency gate, the per-call budget and retries, driven by a fake clock."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from twisted.internet.defer import Deferred, TimeoutError, fail, succeed
from twisted.internet.task import Clock

from ocppcable.metrics import NoMetrics
from ocppcable.protos.rpc_pb2 import FAILURE, SUCCESS, CommandResponse
from ocppcable.rpc.interface import RPCUnavailable
from ocppcable.rpc.policy import CONNECTED, NEW, CallPolicy, NotSent, reserved_slots


class Transient(Exception):
    pass


def not_sent() -> NotSent:
    """A failure that surely did not reach the backend: retried after 0.1 s, doubling."""
    return NotSent(Transient(), 0.1)


#: slow calls keep their slots in the tests of the gate's other rules
NEVER = 60.0

#: a new station for each call unless a test says otherwise
_stations = itertools.count()


def describe(error: BaseException) -> str:
    return f"described {error!r}"


class Recorder(NoMetrics):
    def __init__(self) -> None:
        self.rpcs: list[tuple[str, str, float]] = []

    def rpc(self, method: str, status: str, seconds: float) -> None:
        self.rpcs.append((method, status, seconds))


class Attempts:
    """Hands out Deferreds the test fires; remembers the budgets and cancellations."""

    def __init__(self) -> None:
        self.pending: list[Deferred[Any]] = []
        self.budgets: list[float] = []
        self.cancelled = 0

    def __call__(self, remaining: float) -> Deferred[Any]:
        self.budgets.append(remaining)

        def cancel(d: Deferred[Any]) -> None:
            self.cancelled += 1

        d: Deferred[Any] = Deferred(cancel)
        self.pending.append(d)
        return d


def outcome(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the call has not finished"
    return results[0]


def unavailable(d: Deferred[Any]) -> str:
    result = outcome(d)
    assert result.check(RPCUnavailable), result
    return result.getErrorMessage()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics() -> Recorder:
    return Recorder()


def test_a_call_fires_with_the_response_and_is_measured(clock, metrics) -> None:
    policy = CallPolicy(clock, 2, 5.0, metrics, slow_after=NEVER)
    attempts = Attempts()
    d = policy.run("command", next(_stations), attempts, describe)
    assert policy.in_flight == 1 and attempts.budgets == [5.0]
    clock.advance(0.25)
    attempts.pending[0].callback(CommandResponse(status=FAILURE))
    assert outcome(d).status == FAILURE
    assert metrics.rpcs == [("command", "FAILURE", 0.25)]
    assert policy.in_flight == 0 and not clock.getDelayedCalls()


def test_the_gate_admits_waiting_calls_in_order(clock, metrics) -> None:
    policy = CallPolicy(clock, 1, 5.0, metrics, slow_after=NEVER)
    attempts = Attempts()
    first = policy.run("connect", next(_stations), attempts, describe)
    second = policy.run(
        "command", next(_stations), lambda r: succeed(CommandResponse(status=SUCCESS)), describe
    )
    third = policy.run("command", next(_stations), attempts, describe)
    assert (policy.in_flight, policy.pending) == (1, 2)
    attempts.pending[0].callback(CommandResponse(status=SUCCESS))
    assert outcome(first).status == SUCCESS and outcome(second).status == SUCCESS
    assert (policy.in_flight, policy.pending) == (1, 0)  # the third is trying now
    attempts.pending[1].callback(CommandResponse(status=SUCCESS))
    assert outcome(third).status == SUCCESS and policy.in_flight == 0


def test_waiting_at_the_gate_counts_against_the_budget(clock, metrics) -> None:
    policy = CallPolicy(clock, 1, 5.0, metrics, slow_after=NEVER)
    attempts = Attempts()
    first = policy.run("command", next(_stations), attempts, describe)
    clock.advance(2.0)
    waiting = policy.run("command", next(_stations), attempts, describe)
    clock.advance(3.0)  # the first call's budget is spent: it is abandoned and cancelled
    assert unavailable(first) == "no answer within 5s" and attempts.cancelled == 1
    assert attempts.budgets == [5.0, 2.0]  # the waiting call got in with what it had left
    clock.advance(2.0)
    assert unavailable(waiting) == "no answer within 5s" and attempts.cancelled == 2
    assert (policy.in_flight, policy.pending) == (0, 0)
    assert [status for _, status, _ in metrics.rpcs] == ["UNAVAILABLE", "UNAVAILABLE"]


def test_a_call_that_times_out_at_the_gate_leaves_it(clock) -> None:
    policy = CallPolicy(clock, 1, 5.0, slow_after=NEVER)
    attempts = Attempts()
    first = policy.run("command", next(_stations), attempts, describe)
    clock.advance(1.0)
    waiting = policy.run("command", next(_stations), attempts, describe)
    clock.advance(4.0)  # the first one's budget ends, the waiting one is admitted
    assert unavailable(first) == "no answer within 5s"
    clock.advance(1.0)
    assert unavailable(waiting) == "no answer within 5s"
    assert len(attempts.budgets) == 2 and policy.pending == 0


def test_transient_failures_are_retried_with_backoff(clock, metrics) -> None:
    policy = CallPolicy(clock, 1, 5.0, metrics, slow_after=NEVER)
    attempts = Attempts()
    d = policy.run("command", next(_stations), attempts, describe)
    attempts.pending[0].errback(not_sent())
    clock.advance(0.1)
    attempts.pending[1].errback(not_sent())
    clock.advance(0.1)
    assert len(attempts.budgets) == 2  # the second backoff is 0.2 s
    clock.advance(0.1)
    attempts.pending[2].callback(CommandResponse(status=SUCCESS))
    assert outcome(d).status == SUCCESS
    assert attempts.budgets == pytest.approx([5.0, 4.9, 4.7])
    assert metrics.rpcs == [("command", "SUCCESS", pytest.approx(0.3))]


def test_no_retry_when_the_backoff_would_pass_the_deadline(clock) -> None:
    policy = CallPolicy(clock, 1, 0.15, NoMetrics(), slow_after=NEVER)
    attempts = Attempts()
    d = policy.run("command", next(_stations), attempts, describe)
    attempts.pending[0].errback(not_sent())
    clock.advance(0.1)
    attempts.pending[1].errback(not_sent())  # the next backoff (0.2 s) ends after 0.15 s
    assert unavailable(d) == "described Transient()"
    assert policy.in_flight == 0 and not clock.getDelayedCalls()


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (ValueError("boom"), "described ValueError('boom')"),
        (RPCUnavailable("circuit open"), "circuit open"),
        (TimeoutError(), "no answer within 5s"),
    ],
)
def test_other_failures_end_the_call(clock, failure, message) -> None:
    policy = CallPolicy(clock, 1, 5.0, slow_after=NEVER)
    d = policy.run("command", next(_stations), lambda remaining: fail(failure), describe)
    assert unavailable(d) == message
    assert policy.in_flight == 0 and not clock.getDelayedCalls()


def test_an_attempt_that_raises_is_a_failed_attempt(clock) -> None:
    policy = CallPolicy(clock, 1, 5.0, slow_after=NEVER)
    calls = []

    def attempt(remaining: float) -> Deferred[Any]:
        calls.append(remaining)
        if len(calls) == 1:
            raise not_sent()
        return succeed(CommandResponse(status=SUCCESS))

    d = policy.run("command", next(_stations), attempt, describe)
    clock.advance(0.1)
    assert outcome(d).status == SUCCESS and len(calls) == 2


def test_cancelling_abandons_the_call_and_frees_its_slot(clock) -> None:
    policy = CallPolicy(clock, 1, 5.0, slow_after=NEVER)
    attempts = Attempts()
    first = policy.run("disconnect", next(_stations), attempts, describe)
    waiting = policy.run("disconnect", next(_stations), attempts, describe)
    first.cancel()
    assert unavailable(first) == "described CancelledError()" and attempts.cancelled == 1
    assert (policy.in_flight, policy.pending) == (1, 0)  # the waiting call took the slot
    waiting.cancel()
    assert unavailable(waiting) == "described CancelledError()"
    assert policy.in_flight == 0 and not clock.getDelayedCalls()


def test_cancelling_a_waiting_call_removes_it_from_the_gate(clock) -> None:
    policy = CallPolicy(clock, 1, 5.0, slow_after=NEVER)
    attempts = Attempts()
    first = policy.run("command", next(_stations), attempts, describe)
    waiting = policy.run("command", next(_stations), attempts, describe)
    waiting.cancel()
    assert unavailable(waiting) == "described CancelledError()"
    assert policy.pending == 0 and len(attempts.budgets) == 1
    attempts.pending[0].callback(CommandResponse(status=SUCCESS))
    assert outcome(first).status == SUCCESS and policy.in_flight == 0


# --- fairness across stations (issue 12 item 8) -----------------------------------------------


class Named:
    """Attempts that record which call was admitted, in order."""

    def __init__(self) -> None:
        self.admitted: list[str] = []
        self.pending: dict[str, Deferred[Any]] = {}

    def __call__(self, name: str) -> Any:
        def attempt(remaining: float) -> Deferred[Any]:
            self.admitted.append(name)
            d: Deferred[Any] = Deferred()
            self.pending[name] = d
            return d

        return attempt

    def answer(self, name: str) -> None:
        self.pending.pop(name).callback(CommandResponse(status=SUCCESS))


def test_one_station_has_at_most_two_calls_admitted(clock) -> None:
    policy = CallPolicy(clock, 10, 5.0)
    calls = Named()
    for name in ("a1", "a2", "a3"):
        policy.run("command", "A", calls(name), describe)
    policy.run("command", "B", calls("b1"), describe)
    assert calls.admitted == ["a1", "a2", "b1"] and policy.pending == 1
    calls.answer("a1")
    assert calls.admitted[-1] == "a3" and (policy.in_flight, policy.pending) == (3, 0)


def test_stations_take_turns_at_a_full_gate(clock) -> None:
    policy = CallPolicy(clock, 1, 5.0, slow_after=NEVER)
    calls = Named()
    for station, name in (("A", "a1"), ("A", "a2"), ("A", "a3"), ("B", "b1"), ("C", "c1")):
        policy.run("command", station, calls(name), describe)
    for name in ("a1", "a2", "b1", "c1"):
        calls.answer(name)
    assert calls.admitted == ["a1", "a2", "b1", "c1", "a3"]  # not a1, a2, a3, b1, c1
    calls.answer("a3")
    assert (policy.in_flight, policy.pending) == (0, 0) and not clock.getDelayedCalls()


def test_slow_calls_give_their_slots_back(clock) -> None:
    policy = CallPolicy(clock, 2, 10.0, slow_after=1.0)
    calls = Named()
    slow = [policy.run("command", f"slow-{i}", calls(f"s{i}"), describe) for i in range(2)]
    clock.advance(0.5)
    healthy = policy.run("command", "healthy", calls("h"), describe)
    assert calls.admitted == ["s0", "s1"] and policy.pending == 1
    clock.advance(0.5)  # the slow calls have had their second: the healthy one goes in
    assert calls.admitted[-1] == "h" and (policy.in_flight, policy.slow) == (3, 1)  # as needed
    calls.answer("h")
    assert outcome(healthy).status == SUCCESS
    for name in ("s0", "s1"):
        calls.answer(name)
    assert [outcome(d).status for d in slow] == [SUCCESS, SUCCESS]
    assert (policy.in_flight, policy.slow, policy.pending) == (0, 0, 0)
    assert not clock.getDelayedCalls()


def test_slow_calls_in_flight_are_bounded(clock) -> None:
    policy = CallPolicy(clock, 1, 60.0, slow_after=1.0)  # at most 3 slow calls
    calls = Named()
    for i in range(6):
        policy.run("command", f"s{i}", calls(f"s{i}"), describe)
    for _ in range(10):  # one call becomes slow each second, until three are
        clock.advance(1.0)
    assert calls.admitted == ["s0", "s1", "s2", "s3"]  # three slow, one in the slot
    assert (policy.in_flight, policy.slow, policy.pending) == (4, 3, 2)
    assert len(clock.getDelayedCalls()) == 6  # the calls' own timers: no sweep spinning
    calls.answer("s0")  # a slow one ends: the one in the slot is slow by now, one goes in
    assert calls.admitted[4:] == ["s4"] and (policy.in_flight, policy.slow) == (4, 3)


def test_a_call_that_fails_at_once_does_not_recurse_through_the_queue(clock) -> None:
    policy = CallPolicy(clock, 1, 5.0)
    calls = Named()
    policy.run("command", "first", calls("first"), describe)
    waiting = [
        policy.run("command", i, lambda r: fail(RPCUnavailable("circuit open")), describe)
        for i in range(5000)
    ]
    calls.answer("first")
    assert all(unavailable(d) == "circuit open" for d in waiting)
    assert (policy.in_flight, policy.pending) == (0, 0)


def test_a_failure_that_may_have_reached_the_backend_is_not_retried(clock) -> None:
    policy = CallPolicy(clock, 1, 5.0)
    attempts = Attempts()
    d = policy.run("command", "A", attempts, describe)
    attempts.pending[0].errback(Transient())  # not NotSent: it may have been processed
    assert unavailable(d) == "described Transient()" and len(attempts.budgets) == 1


def test_a_slow_station_s_next_calls_need_no_slot_until_one_is_quick(clock) -> None:
    policy = CallPolicy(clock, 1, 60.0, slow_after=1.0)
    calls = Named()
    policy.run("command", "slow", calls("s1"), describe)
    clock.advance(2.0)
    calls.answer("s1")  # answered, but late: the station is slow
    policy.run("command", "healthy", calls("h1"), describe)  # takes the one slot
    policy.run("command", "slow", calls("s2"), describe)  # goes in beside it, in no slot
    assert calls.admitted == ["s1", "h1", "s2"] and (policy.in_flight, policy.slow) == (2, 1)
    calls.answer("s2")  # quick this time: the station needs a slot again
    policy.run("command", "slow", calls("s3"), describe)
    assert calls.admitted[-1] == "s2" and policy.pending == 1
    calls.answer("h1")
    assert calls.admitted[-1] == "s3"


# --- priority: connected sessions before new ones (issue 16 item 2) ----------------------------


def test_connected_sessions_calls_go_ahead_of_new_sessions_connects(clock) -> None:
    policy = CallPolicy(clock, 1, 60.0, slow_after=NEVER)
    calls = Named()
    policy.run("command", "busy", calls("busy"), describe)
    for i in range(3):
        policy.run("connect", f"new-{i}", calls(f"connect-{i}"), describe)
    policy.run("command", "booted", calls("command"), describe)
    policy.run("disconnect", "gone", calls("disconnect"), describe)
    assert (policy.waiting(CONNECTED), policy.waiting(NEW)) == (2, 3)
    for name in ("busy", "command", "disconnect", "connect-0", "connect-1"):
        calls.answer(name)
    assert calls.admitted == [
        "busy", "command", "disconnect", "connect-0", "connect-1", "connect-2"
    ]  # fmt: skip
    assert (policy.waiting(CONNECTED), policy.waiting(NEW)) == (0, 0)


def test_a_connect_never_takes_the_reserved_slots(clock) -> None:
    policy = CallPolicy(clock, 8, 60.0, slow_after=NEVER)
    assert policy.reserved == reserved_slots(8) == 1
    calls = Named()
    for i in range(10):
        policy.run("connect", f"new-{i}", calls(f"connect-{i}"), describe)
    assert len(calls.admitted) == 7 and policy.waiting(NEW) == 3
    policy.run("command", "booted", calls("command"), describe)
    assert calls.admitted[-1] == "command" and policy.in_flight == 8  # at once


def test_connects_that_hang_leave_a_slot_to_connected_sessions(clock) -> None:
    """A backend whose Connects hang: they become slow and are bounded like any slow call,
    and the reserved slot keeps serving the stations already connected."""
    policy = CallPolicy(clock, 2, 60.0, slow_after=1.0)  # 1 reserved, at most 6 slow calls
    calls = Named()
    for i in range(20):
        policy.run("connect", f"new-{i}", calls(f"connect-{i}"), describe)
    for _ in range(10):
        clock.advance(1.0)
    assert len(calls.admitted) == 7 and policy.slow == 6  # six slow, one in its slot
    for i in range(3):
        policy.run("command", "booted", calls(f"command-{i}"), describe)
        assert calls.admitted[-1] == f"command-{i}"
        calls.answer(f"command-{i}")


def test_reserved_slots_by_concurrency() -> None:
    assert [reserved_slots(n) for n in (1, 2, 8, 16, 28, 100)] == [0, 1, 1, 2, 3, 12]


def test_a_station_changes_class_when_its_waiting_connect_leaves(clock) -> None:
    policy = CallPolicy(clock, 1, 60.0, slow_after=NEVER)
    calls = Named()
    policy.run("command", "busy", calls("busy"), describe)
    policy.run("connect", "new", calls("new"), describe)
    connect = policy.run("connect", "A", calls("connect"), describe)
    policy.run("command", "A", calls("a"), describe)
    assert (policy.waiting(CONNECTED), policy.waiting(NEW)) == (1, 2)
    connect.cancel()  # abandoned while waiting: A's next call is a connected session's
    assert unavailable(connect) == "described CancelledError()"
    assert (policy.waiting(CONNECTED), policy.waiting(NEW)) == (1, 1)
    calls.answer("busy")
    calls.answer("a")
    assert calls.admitted == ["busy", "a", "new"]

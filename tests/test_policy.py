"""CallPolicy: the concurrency gate, the per-call budget and retries, driven by a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred, TimeoutError, fail, succeed
from twisted.internet.task import Clock

from ocppcable.metrics import NoMetrics
from ocppcable.protos.rpc_pb2 import FAILURE, SUCCESS, CommandResponse
from ocppcable.rpc.interface import RPCUnavailable
from ocppcable.rpc.policy import CallPolicy


class Transient(Exception):
    pass


def classify(error: BaseException) -> float | None:
    return 0.1 if isinstance(error, Transient) else None


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
    policy = CallPolicy(clock, 2, 5.0, metrics)
    attempts = Attempts()
    d = policy.run("command", attempts, classify, describe)
    assert policy.in_flight == 1 and attempts.budgets == [5.0]
    clock.advance(0.25)
    attempts.pending[0].callback(CommandResponse(status=FAILURE))
    assert outcome(d).status == FAILURE
    assert metrics.rpcs == [("command", "FAILURE", 0.25)]
    assert policy.in_flight == 0 and not clock.getDelayedCalls()


def test_the_gate_admits_waiting_calls_in_order(clock, metrics) -> None:
    policy = CallPolicy(clock, 1, 5.0, metrics)
    attempts = Attempts()
    first = policy.run("connect", attempts, classify, describe)
    second = policy.run(
        "command", lambda r: succeed(CommandResponse(status=SUCCESS)), classify, describe
    )
    third = policy.run("command", attempts, classify, describe)
    assert (policy.in_flight, policy.pending) == (1, 2)
    attempts.pending[0].callback(CommandResponse(status=SUCCESS))
    assert outcome(first).status == SUCCESS and outcome(second).status == SUCCESS
    assert (policy.in_flight, policy.pending) == (1, 0)  # the third is trying now
    attempts.pending[1].callback(CommandResponse(status=SUCCESS))
    assert outcome(third).status == SUCCESS and policy.in_flight == 0


def test_waiting_at_the_gate_counts_against_the_budget(clock, metrics) -> None:
    policy = CallPolicy(clock, 1, 5.0, metrics)
    attempts = Attempts()
    first = policy.run("command", attempts, classify, describe)
    clock.advance(2.0)
    waiting = policy.run("command", attempts, classify, describe)
    clock.advance(3.0)  # the first call's budget is spent: it is abandoned and cancelled
    assert unavailable(first) == "no answer within 5s" and attempts.cancelled == 1
    assert attempts.budgets == [5.0, 2.0]  # the waiting call got in with what it had left
    clock.advance(2.0)
    assert unavailable(waiting) == "no answer within 5s" and attempts.cancelled == 2
    assert (policy.in_flight, policy.pending) == (0, 0)
    assert [status for _, status, _ in metrics.rpcs] == ["UNAVAILABLE", "UNAVAILABLE"]


def test_a_call_that_times_out_at_the_gate_leaves_it(clock) -> None:
    policy = CallPolicy(clock, 1, 5.0)
    attempts = Attempts()
    first = policy.run("command", attempts, classify, describe)
    clock.advance(1.0)
    waiting = policy.run("command", attempts, classify, describe)
    clock.advance(4.0)  # the first one's budget ends, the waiting one is admitted
    assert unavailable(first) == "no answer within 5s"
    clock.advance(1.0)
    assert unavailable(waiting) == "no answer within 5s"
    assert len(attempts.budgets) == 2 and policy.pending == 0


def test_transient_failures_are_retried_with_backoff(clock, metrics) -> None:
    policy = CallPolicy(clock, 1, 5.0, metrics)
    attempts = Attempts()
    d = policy.run("command", attempts, classify, describe)
    attempts.pending[0].errback(Transient())
    clock.advance(0.1)
    attempts.pending[1].errback(Transient())
    clock.advance(0.1)
    assert len(attempts.budgets) == 2  # the second backoff is 0.2 s
    clock.advance(0.1)
    attempts.pending[2].callback(CommandResponse(status=SUCCESS))
    assert outcome(d).status == SUCCESS
    assert attempts.budgets == pytest.approx([5.0, 4.9, 4.7])
    assert metrics.rpcs == [("command", "SUCCESS", pytest.approx(0.3))]


def test_no_retry_when_the_backoff_would_pass_the_deadline(clock) -> None:
    policy = CallPolicy(clock, 1, 0.15, NoMetrics())
    attempts = Attempts()
    d = policy.run("command", attempts, classify, describe)
    attempts.pending[0].errback(Transient())
    clock.advance(0.1)
    attempts.pending[1].errback(Transient())  # the next backoff (0.2 s) ends after 0.15 s
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
    policy = CallPolicy(clock, 1, 5.0)
    d = policy.run("command", lambda remaining: fail(failure), classify, describe)
    assert unavailable(d) == message
    assert policy.in_flight == 0 and not clock.getDelayedCalls()


def test_an_attempt_that_raises_is_a_failed_attempt(clock) -> None:
    policy = CallPolicy(clock, 1, 5.0)
    calls = []

    def attempt(remaining: float) -> Deferred[Any]:
        calls.append(remaining)
        if len(calls) == 1:
            raise Transient()
        return succeed(CommandResponse(status=SUCCESS))

    d = policy.run("command", attempt, classify, describe)
    clock.advance(0.1)
    assert outcome(d).status == SUCCESS and len(calls) == 2


def test_cancelling_abandons_the_call_and_frees_its_slot(clock) -> None:
    policy = CallPolicy(clock, 1, 5.0)
    attempts = Attempts()
    first = policy.run("disconnect", attempts, classify, describe)
    waiting = policy.run("disconnect", attempts, classify, describe)
    first.cancel()
    assert unavailable(first) == "described CancelledError()" and attempts.cancelled == 1
    assert (policy.in_flight, policy.pending) == (1, 0)  # the waiting call took the slot
    waiting.cancel()
    assert unavailable(waiting) == "described CancelledError()"
    assert policy.in_flight == 0 and not clock.getDelayedCalls()


def test_cancelling_a_waiting_call_removes_it_from_the_gate(clock) -> None:
    policy = CallPolicy(clock, 1, 5.0)
    attempts = Attempts()
    first = policy.run("command", attempts, classify, describe)
    waiting = policy.run("command", attempts, classify, describe)
    waiting.cancel()
    assert unavailable(waiting) == "described CancelledError()"
    assert policy.pending == 0 and len(attempts.budgets) == 1
    attempts.pending[0].callback(CommandResponse(status=SUCCESS))
    assert outcome(first).status == SUCCESS and policy.in_flight == 0

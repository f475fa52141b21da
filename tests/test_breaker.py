"""The circuit breaker of the HTTP RPC transport, on a fake clock."""

from __future__ import annotations

from twisted.internet.task import Clock

from ocppcable.rpc.breaker import CircuitBreaker, State


def _outcomes(breaker, failures, successes=0):
    for success in [False] * failures + [True] * successes:
        generation = breaker.admit()
        assert generation is not None
        breaker.record(generation, success)


def test_breaker_opens_at_ten_requests_with_80_percent_failures():
    breaker = CircuitBreaker(Clock())
    _outcomes(breaker, failures=7, successes=2)
    assert breaker.state is State.CLOSED  # 9 requests: too few to judge
    _outcomes(breaker, failures=1)
    assert breaker.state is State.OPEN  # 8 of 10 failed
    assert breaker.admit() is None


def test_breaker_stays_closed_below_80_percent_failures():
    breaker = CircuitBreaker(Clock())
    _outcomes(breaker, failures=7, successes=3)
    _outcomes(breaker, failures=1)
    assert breaker.state is State.CLOSED  # 8 of 11 failed


def test_breaker_counts_in_ten_second_windows():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    _outcomes(breaker, failures=9)
    clock.advance(10)
    _outcomes(breaker, failures=9)
    assert breaker.state is State.CLOSED


def test_breaker_half_opens_after_five_seconds_and_closes_after_probes():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    _outcomes(breaker, failures=10)
    clock.advance(4.9)
    assert breaker.admit() is None
    clock.advance(0.1)
    assert breaker.state is State.HALF_OPEN
    probes = [breaker.admit() for _ in range(5)]
    assert None not in probes and breaker.admit() is None  # only a few probes at a time
    for generation in probes:
        breaker.record(generation, True)
    assert breaker.state is State.CLOSED
    assert breaker.admit() is not None


def test_breaker_reopens_when_a_probe_fails():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    _outcomes(breaker, failures=10)
    clock.advance(5)
    _outcomes(breaker, failures=1)
    assert breaker.state is State.OPEN
    clock.advance(4.9)
    assert breaker.admit() is None


def test_breaker_ignores_outcomes_of_requests_from_before_a_state_change():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    slow = breaker.admit()
    _outcomes(breaker, failures=9)  # 9 of 10 requests failed, the slow one still open
    clock.advance(5)
    assert breaker.state is State.HALF_OPEN
    breaker.record(slow, False)  # admitted while closed: does not decide the probes
    assert breaker.state is State.HALF_OPEN


def test_open_turns_half_open_with_time_alone():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    _outcomes(breaker, failures=10)
    assert breaker.state is State.OPEN
    clock.advance(5)
    assert breaker.state is State.HALF_OPEN  # no request needed to notice


def test_half_open_stays_half_open_until_every_probe_succeeded():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    _outcomes(breaker, failures=10)
    clock.advance(5)
    _outcomes(breaker, failures=0, successes=4)
    assert breaker.state is State.HALF_OPEN
    _outcomes(breaker, failures=0, successes=1)
    assert breaker.state is State.CLOSED


def test_failures_of_an_old_window_do_not_count_in_the_next():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    _outcomes(breaker, failures=9)
    clock.advance(10)
    _outcomes(breaker, failures=1, successes=9)
    assert breaker.state is State.CLOSED  # 10 in this window, 1 failed


def test_a_success_after_a_probe_failure_does_not_close_the_circuit():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    _outcomes(breaker, failures=10)
    clock.advance(5)
    probes = [breaker.admit() for _ in range(2)]
    breaker.record(probes[0], False)
    assert breaker.state is State.OPEN
    breaker.record(probes[1], True)  # its generation ended with the failed probe
    assert breaker.state is State.OPEN


def test_thresholds_are_settings():
    clock = Clock()
    breaker = CircuitBreaker(clock, min_requests=2, failure_ratio=0.5, open_for=1.0, probes=1)
    _outcomes(breaker, failures=0, successes=1)
    _outcomes(breaker, failures=1)
    assert breaker.state is State.OPEN  # 1 of 2 failed
    clock.advance(1)
    _outcomes(breaker, failures=0, successes=1)
    assert breaker.state is State.CLOSED

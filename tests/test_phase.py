"""The session's phases: the transition table (a session moving through it: test_session)."""

from __future__ import annotations

import pytest

from ocppcable.phase import (
    CONNECTED,
    DISCONNECTS,
    GONE,
    PROCESSING,
    STOP_TRANSITIONS,
    TRANSITIONS,
    Event,
    IllegalTransition,
    Phase,
    Stop,
    StopEvent,
    advance,
    advance_stop,
)

ILLEGAL = [(p, e) for p in Phase for e in Event if (p, e) not in TRANSITIONS]


@pytest.mark.parametrize(("phase", "event"), list(TRANSITIONS))
def test_listed_transitions(phase: Phase, event: Event) -> None:
    assert advance(phase, event) is TRANSITIONS[phase, event]


@pytest.mark.parametrize(("phase", "event"), ILLEGAL)
def test_illegal_transitions_are_refused(phase: Phase, event: Event) -> None:
    with pytest.raises(IllegalTransition, match=f"{event.value} in phase {phase.value}"):
        advance(phase, event)


def test_some_transitions_are_refused() -> None:
    for phase, event in [
        (Phase.ACTIVE, Event.CALL),
        (Phase.IDLE, Event.CONNECTED),
        (Phase.CLOSED, Event.LOST),
        (Phase.REJECTED, Event.CONNECTED),
        (Phase.ACTIVE, Event.LOST_IN_FLIGHT),
    ]:
        assert (phase, event) in ILLEGAL


def test_closed_is_final_and_reachable_from_every_phase() -> None:
    assert not [e for e in Event if (Phase.CLOSED, e) in TRANSITIONS]
    for phase in Phase:
        reached, frontier = {phase}, [phase]
        while frontier:
            current = frontier.pop()
            for (before, _), after in TRANSITIONS.items():
                if before is current and after not in reached:
                    reached.add(after)
                    frontier.append(after)
        assert Phase.CLOSED in reached


def test_a_disconnect_is_owed_exactly_when_the_backend_holds_a_connection() -> None:
    into_closed = [(p, e) for (p, e), after in TRANSITIONS.items() if after is Phase.CLOSED]
    owing = {
        (p, e)
        for p, e in into_closed
        if p in CONNECTED or (p, e) == (Phase.CLOSED_CONNECTING, Event.CONNECTED)
    }
    assert set(DISCONNECTS) == owing
    # the subscription is listed only when it was confirmed
    assert {k for k, subscribed in DISCONNECTS.items() if subscribed} == {
        (Phase.ACTIVE, Event.LOST),
        (Phase.CLOSED_SUBSCRIBING, Event.SUBSCRIBED),
    }


def test_phase_groups() -> None:
    assert PROCESSING.isdisjoint(GONE)
    assert Phase.REJECTED not in PROCESSING | GONE | CONNECTED
    assert Phase.SUBSCRIPTION_REJECTED in CONNECTED


# --- the graceful stop ------------------------------------------------------------------------

ILLEGAL_STOPS = [(s, e) for s in Stop for e in StopEvent if (s, e) not in STOP_TRANSITIONS]


def test_a_stop_runs_forward_from_running_to_closing() -> None:
    assert advance_stop(Stop.RUNNING, StopEvent.ASKED) is Stop.DRAINING
    assert advance_stop(Stop.DRAINING, StopEvent.DRAINED) is Stop.CLOSING


@pytest.mark.parametrize(("stop", "event"), ILLEGAL_STOPS)
def test_illegal_stop_transitions_are_refused(stop: Stop, event: StopEvent) -> None:
    with pytest.raises(IllegalTransition, match=f"{event.value} while {stop.value}"):
        advance_stop(stop, event)


def test_a_stop_is_asked_once_and_drains_once() -> None:
    # asking again, draining before being asked, or after closing are all bugs
    assert set(ILLEGAL_STOPS) == {
        (Stop.RUNNING, StopEvent.DRAINED),
        (Stop.DRAINING, StopEvent.ASKED),
        (Stop.CLOSING, StopEvent.ASKED),
        (Stop.CLOSING, StopEvent.DRAINED),
    }

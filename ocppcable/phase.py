# -*- test-case-name: tests.test_phase -*-
"""The phases of a station session and every transition between them, in one place.

A session goes through the AnyCable connection in order: the first CALL starts the Connect RPC,
a successful Connect the channel subscription, a confirmed subscription makes the session
active. The backend may refuse either step; the socket may close at any point. Once the socket
is closed the session still owes the backend a Disconnect RPC if its Connect succeeded, which
it can only make once a Connect or subscribe still in flight is answered; that is why the
closed side has phases of its own.

A graceful stop of the gateway is a second, smaller machine, :class:`Stop`, beside the phase
rather than more phases: a session can be asked to stop in any open phase (idle, connecting,
subscribing, active, even while its Connect is in flight), and it keeps moving through its phases
while it drains (the CALLs in flight still get their answers, a Connect answer still leads to a
subscription or a Disconnect). Folding the stop into :class:`Phase` would double every open phase
and every transition out of it; kept apart, each table stays small and the pair (phase, stop)
says all there is about a session's lifecycle. The stop only ever moves forward: running, then
draining (new CALLs refused, those in flight answered), then closing (every CALL answered: the
socket is being closed with 1001).

Everything that changes a session's phase goes through :func:`advance`, its stop through
:func:`advance_stop`; a transition their tables do not list is a bug and raises
:class:`IllegalTransition`.
"""

from __future__ import annotations

from enum import Enum


class Phase(Enum):
    #: the socket is open and no CALL arrived yet: the idle timer runs
    IDLE = "idle"
    #: a CALL arrived; no Connect succeeded yet (one may be in flight, or failed: the next CALL
    #: makes another)
    CONNECTING = "connecting"
    #: Connect succeeded; the channel subscription is not confirmed yet
    SUBSCRIBING = "subscribing"
    #: subscribed: station CALLs become ``message`` commands
    ACTIVE = "active"
    #: the backend refused the Connect: the socket is being closed, nothing to tell the backend
    REJECTED = "rejected"
    #: the backend refused the subscription: the socket is being closed, a Disconnect is owed
    SUBSCRIPTION_REJECTED = "subscription rejected"
    #: the socket closed while a Connect was in flight: its answer decides on the Disconnect
    CLOSED_CONNECTING = "closed while connecting"
    #: the socket closed while a subscribe was in flight: a Disconnect follows its answer
    CLOSED_SUBSCRIBING = "closed while subscribing"
    #: the socket closed and the Disconnect is made (or none was owed): late answers only
    CLOSED = "closed"


class Event(Enum):
    #: the station's first CALL or SEND
    CALL = "call"
    #: Connect succeeded
    CONNECTED = "connected"
    #: the subscription was confirmed
    SUBSCRIBED = "subscribed"
    #: the backend refused the Connect or the subscription (status FAILURE)
    REFUSED = "refused"
    #: the Connect or subscribe ended in an error (status ERROR, or the RPC failed)
    FAILED = "failed"
    #: the socket closed with no Connect or subscribe in flight
    LOST = "lost"
    #: the socket closed while a Connect or subscribe was in flight
    LOST_IN_FLIGHT = "lost in flight"


class IllegalTransition(Exception):
    """An event the session's phase does not allow: a bug in the session."""


_P, _E = Phase, Event

#: (phase, event) → the next phase
TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    (_P.IDLE, _E.CALL): _P.CONNECTING,
    (_P.IDLE, _E.LOST): _P.CLOSED,
    (_P.CONNECTING, _E.CONNECTED): _P.SUBSCRIBING,
    (_P.CONNECTING, _E.REFUSED): _P.REJECTED,
    (_P.CONNECTING, _E.FAILED): _P.CONNECTING,
    (_P.CONNECTING, _E.LOST): _P.CLOSED,
    (_P.CONNECTING, _E.LOST_IN_FLIGHT): _P.CLOSED_CONNECTING,
    (_P.SUBSCRIBING, _E.SUBSCRIBED): _P.ACTIVE,
    (_P.SUBSCRIBING, _E.REFUSED): _P.SUBSCRIPTION_REJECTED,
    (_P.SUBSCRIBING, _E.FAILED): _P.SUBSCRIBING,
    (_P.SUBSCRIBING, _E.LOST): _P.CLOSED,
    (_P.SUBSCRIBING, _E.LOST_IN_FLIGHT): _P.CLOSED_SUBSCRIBING,
    (_P.ACTIVE, _E.LOST): _P.CLOSED,
    (_P.REJECTED, _E.LOST): _P.CLOSED,
    (_P.SUBSCRIPTION_REJECTED, _E.LOST): _P.CLOSED,
    (_P.CLOSED_CONNECTING, _E.CONNECTED): _P.CLOSED,
    (_P.CLOSED_CONNECTING, _E.REFUSED): _P.CLOSED,
    (_P.CLOSED_CONNECTING, _E.FAILED): _P.CLOSED,
    (_P.CLOSED_SUBSCRIBING, _E.SUBSCRIBED): _P.CLOSED,
    (_P.CLOSED_SUBSCRIBING, _E.REFUSED): _P.CLOSED,
    (_P.CLOSED_SUBSCRIBING, _E.FAILED): _P.CLOSED,
}

#: the transitions into CLOSED that owe the backend a Disconnect: (phase, event) → whether it
#: lists the channel subscription
DISCONNECTS: dict[tuple[Phase, Event], bool] = {
    (_P.SUBSCRIBING, _E.LOST): False,
    (_P.ACTIVE, _E.LOST): True,
    (_P.SUBSCRIPTION_REJECTED, _E.LOST): False,
    (_P.CLOSED_CONNECTING, _E.CONNECTED): False,
    (_P.CLOSED_SUBSCRIBING, _E.SUBSCRIBED): True,
    (_P.CLOSED_SUBSCRIBING, _E.REFUSED): False,
    (_P.CLOSED_SUBSCRIBING, _E.FAILED): False,
}

#: the socket is open and the backend has not refused: the station's frames are processed
PROCESSING = frozenset({_P.IDLE, _P.CONNECTING, _P.SUBSCRIBING, _P.ACTIVE})
#: the socket is gone
GONE = frozenset({_P.CLOSED_CONNECTING, _P.CLOSED_SUBSCRIBING, _P.CLOSED})
#: the backend holds a connection for the session: a Disconnect is owed
CONNECTED = frozenset({_P.SUBSCRIBING, _P.ACTIVE, _P.SUBSCRIPTION_REJECTED, _P.CLOSED_SUBSCRIBING})


class Stop(Enum):
    #: no stop asked: CALLs are processed
    RUNNING = "running"
    #: the gateway stops: new CALLs are refused, those in flight are still answered
    DRAINING = "draining"
    #: every CALL is answered: the socket is being closed (1001)
    CLOSING = "closing"


class StopEvent(Enum):
    #: the gateway asked the session to stop
    ASKED = "asked"
    #: the last CALL in flight was answered (or none was)
    DRAINED = "drained"


#: (stop, event) → the next stop
STOP_TRANSITIONS: dict[tuple[Stop, StopEvent], Stop] = {
    (Stop.RUNNING, StopEvent.ASKED): Stop.DRAINING,
    (Stop.DRAINING, StopEvent.DRAINED): Stop.CLOSING,
}


def advance(phase: Phase, event: Event) -> Phase:
    """The phase after ``event``; raises :class:`IllegalTransition` if ``phase`` forbids it."""
    try:
        return TRANSITIONS[phase, event]
    except KeyError:
        raise IllegalTransition(f"{event.value} in phase {phase.value}") from None


def advance_stop(stop: Stop, event: StopEvent) -> Stop:
    """The stop after ``event``; raises :class:`IllegalTransition` if ``stop`` forbids it."""
    try:
        return STOP_TRANSITIONS[stop, event]
    except KeyError:
        raise IllegalTransition(f"{event.value} while {stop.value}") from None

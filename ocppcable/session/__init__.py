# -*- test-case-name: tests.test_session, tests.test_session_features, tests.test_overload -*-
"""One station's session as a sans-I/O state machine.

A :class:`Session` is fed events (a text frame arrived, an RPC answered or failed, a timer fired,
a broadcast arrived, the socket closed) and returns the effects the transport must carry out
(send a frame, make an RPC, start or cancel a timer, join or leave a stream, close). It never
touches a socket, a reactor or a Deferred, so its whole behaviour is testable with plain calls.

Where a session is in its lifecycle is one :class:`~ocppcable.phase.Phase` and, once the gateway
stops, one :class:`~ocppcable.phase.Stop`, each changed only through its transition table in
:mod:`ocppcable.phase`. Each RPC carries a transport-neutral request record of
:mod:`ocppcable.cable` and a :class:`Purpose` that names who takes its answer.

:class:`Session` is the one entry; its parts, one job each:

- :mod:`~ocppcable.session.records`: settings, effects, bounds, the records kept in flight
- :mod:`~ocppcable.session.machine`: the session's state, events, phase and stop, its RPCs
- :mod:`~ocppcable.session.inbound`: the station's CALLs, processed in order and answered once
- :mod:`~ocppcable.session.transmissions`: the backend's answers and messages applied
- :mod:`~ocppcable.session.outbound`: remote commands queued, sent and reported
"""

from ocppcable.effects import CancelTimer, Close, Send, StartTimer
from ocppcable.session.machine import Session
from ocppcable.session.records import (
    COMMAND_TIMER,
    IDLE_TIMER,
    MAX_FORMAT_ERRORS,
    MAX_PIPELINED_CALLS,
    MAX_REFUSED_FRAMES,
    RPC,
    SHUTTING_DOWN,
    TOO_LARGE,
    Effect,
    JoinStream,
    LeaveStream,
    Purpose,
    SessionSettings,
    Started,
    StationLogger,
)

__all__ = [
    "COMMAND_TIMER",
    "IDLE_TIMER",
    "MAX_FORMAT_ERRORS",
    "MAX_PIPELINED_CALLS",
    "MAX_REFUSED_FRAMES",
    "RPC",
    "SHUTTING_DOWN",
    "TOO_LARGE",
    "CancelTimer",
    "Close",
    "Effect",
    "JoinStream",
    "LeaveStream",
    "Purpose",
    "Send",
    "Session",
    "SessionSettings",
    "StartTimer",
    "Started",
    "StationLogger",
]

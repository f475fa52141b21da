"""Effects shared by the gateway's station session and the simulated station.

Both are sans-I/O state machines: fed events, they return effects for the transport to carry
out. These are the effects both have (send a text frame, close, start or cancel a named timer);
each adds its own (:mod:`ocppcable.session`, :mod:`ocppcable.simulator.model`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Send:
    text: str


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Start the timer ``name``, or restart it if it runs; ``timer_fired(name)`` when it ends."""

    name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str

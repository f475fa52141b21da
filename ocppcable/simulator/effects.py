"""What the station model asks its driver to do.

Besides the effects it shares with the gateway's session (:mod:`ocppcable.effects`: send a
frame, start, restart or cancel a named timer, close), a simulated station reconnects and
reports when it is done.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocppcable.effects import CancelTimer, Close, Send, StartTimer


@dataclass(frozen=True, slots=True)
class Reconnect:
    delay: float


@dataclass(frozen=True, slots=True)
class Finished:
    """The station ran all its own charging sessions and has nothing left to send."""


Effect = Send | StartTimer | CancelTimer | Close | Reconnect | Finished

# -*- test-case-name: tests.test_session_tracked -*-
"""Remote commands that report how they ended: the records the session and the call API share.

A command handed to a session with a ``token`` (or a ``ttl``) comes back, once it has ended, as
a :class:`CommandEnded` effect the transport glue hands to whoever tracks it (the call API).
Plain records, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from zope.interface import Interface


class Ending(StrEnum):
    """How a remote command ended."""

    RESULT = "result"  # the station answered CALLRESULT
    ERROR = "error"  # the station answered CALLERROR
    TIMEOUT = "timeout"  # the station did not answer within --ocpp-call-timeout
    INVALID = "invalid"  # its schema refused it: never sent
    DROPPED = "dropped"  # the session's command queue was full: never sent
    UNSENT = "unsent"  # the station went away before it was sent
    LOST = "lost"  # the station went away after it was sent, before answering


def ttl_of(message: Mapping[str, Any]) -> float:
    """The ``ttl`` of a backend message: seconds > 0, or 0 when absent or not a number (NaN
    and infinities never get here: the JSON decoder refuses them)."""
    ttl = message.get("ttl")
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        return 0.0
    return float(ttl)


@dataclass(slots=True)
class RemoteCommand:
    """A CALL for a station, from a broadcast, a transmission or the call API."""

    unique_id: str
    action: str
    payload: Any
    #: set: the session reports how the command ended (:class:`CommandEnded`)
    token: str | None = None
    #: where it came from, said in the ``#ack``/``#error`` data (None: a broadcast or
    #: transmission, whose data stays as it always was)
    source: str | None = None
    #: seconds it may wait for the station's next session when this one ends before it is sent
    ttl: float = 0.0
    #: the CALL frame, once a session encoded it
    text: str = field(default="", compare=False)

    @property
    def tracked(self) -> bool:
        return self.token is not None or self.ttl > 0


@dataclass(frozen=True, slots=True)
class CommandEnded:
    """Effect: a tracked command ended (``payload`` is the CALLRESULT payload or the CALLERROR
    details)."""

    command: RemoteCommand
    ending: Ending
    payload: Any = None
    code: str | None = None
    description: str = ""


class ICallTracker(Interface):
    """Who hears of tracked commands' ends and of session starts (the call API); the station
    transport calls these as it carries out the session's effects."""

    def ended(station_id: str, ended: CommandEnded) -> None:
        """A tracked command ended."""

    def started(station_id: str) -> None:
        """The station's session started (its first CALL answered): commands queued for it
        may be delivered."""

    def gone(station_id: str, streams: list[str]) -> None:
        """The station's connection closed; its session had joined ``streams``."""

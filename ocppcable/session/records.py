# -*- test-case-name: tests.test_session -*-
"""What a station session is made of: its settings, the effects it returns, its bounds, and the
records of the CALLs and RPCs it keeps in flight."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from twisted.logger import Logger, LogLevel

from ocppcable import cable
from ocppcable.commands import CommandEnded
from ocppcable.effects import CancelTimer, Close, Send, StartTimer
from ocppcable.overload import never


class StationLogger(Logger):
    """A Logger that puts the station id and session id on every event it emits."""

    def __init__(self, station_id: str, sid: str) -> None:
        super().__init__(namespace="ocppcable.session")
        self.fields = {"station_id": station_id, "sid": sid}

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: Any) -> None:
        super().emit(level, format, **self.fields, **kwargs)


#: consecutive unparseable frames after which the connection is closed (1002)
MAX_FORMAT_ERRORS = 3
#: station CALLs accepted while earlier ones are still being processed
MAX_PIPELINED_CALLS = 8
#: the error code reported to the backend for a remote command too large to send
TOO_LARGE = "TooLarge"
#: the CallError description of a CALL refused because the gateway stops
SHUTTING_DOWN = "gateway shutting down"
#: frames refused by the rate limit in a row after which the station is closed (1008)
MAX_REFUSED_FRAMES = 100


# --- effects -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RPC:
    """Make the RPC ``request.method`` and report back with ``token``."""

    token: int
    request: cable.Request

    @property
    def method(self) -> cable.Method:
        return self.request.method


@dataclass(frozen=True, slots=True)
class JoinStream:
    stream: str


@dataclass(frozen=True, slots=True)
class LeaveStream:
    stream: str


@dataclass(frozen=True, slots=True)
class Started:
    """The session is active and its first CALL answered: commands queued for the station
    while it was offline may come now."""


Effect = (
    Send
    | Close
    | RPC
    | StartTimer
    | CancelTimer
    | JoinStream
    | LeaveStream
    | Started
    | CommandEnded
)

IDLE_TIMER = "idle"
COMMAND_TIMER = "command"
CALL_TIMER = "call:"


@dataclass(frozen=True)
class SessionSettings:
    channel: str = "OCPPChannel"
    granular_actions: bool = True
    heartbeat_interval: int = 30
    idle_timeout: float = 10.0
    rpc_timeout: float = 10.0
    call_timeout: float = 30.0
    max_queue: int = 32
    #: bytes of a frame at most, either way (``--max-message-size``): a longer remote command
    #: is refused before it is queued
    max_frame: int = 64 * 1024
    #: give the :class:`Started` effect (the call API delivers queued commands on it)
    report_start: bool = False
    #: frames per second a station may send on average (0: unlimited), and the burst above it
    rate_limit: float = 20.0
    rate_burst: float = 50.0
    #: whether the backend is saturated (:mod:`ocppcable.overload`): asked when a station with
    #: no session yet sends a BootNotification, answered ``Pending`` without any RPC if so
    backend_saturated: Callable[[], bool] = never
    #: seconds of a ``Pending`` BootNotification's ``interval``, jittered by ±50 %
    #: (``--overload-boot-interval``)
    pending_interval: int = 30


@dataclass(slots=True)
class InboundCall:
    """A station CALL waiting for its reply."""

    unique_id: str
    action: str
    payload: dict[str, Any]
    answered: bool = False
    #: a 2.1 SEND: performed like a CALL, but nothing is ever sent back
    unconfirmed: bool = False
    #: the backend sent Defer: it will answer by broadcast, the default reply waits
    deferred: bool = False


class Purpose(Enum):
    """What an RPC is for; :data:`~ocppcable.session.machine._ANSWERED` names the method that
    takes its answer."""

    CONNECT = "connect"
    SUBSCRIBE = "subscribe"
    #: a station CALL (or SEND) performed as a ``message`` command
    MESSAGE = "message"
    #: the station's reply to a remote command (or its failure) reported as a ``message``
    REPORT = "report"
    DISCONNECT = "disconnect"


@dataclass(slots=True)
class Pending:
    """What an RPC in flight is for."""

    purpose: Purpose
    call: InboundCall | None = None


#: the formatted UTC second of the last :func:`utc_now` call: (epoch second, text)
_second: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """UTC now as ``YYYY-MM-DDTHH:MM:SS.mmmZ``; the date and time of day are formatted once per
    second (every default reply carries the time, hundreds of them per second)."""
    global _second
    now = time.time_ns() // 1_000_000  # milliseconds
    second, millis = divmod(now, 1000)
    if second != _second[0]:
        stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (second, stamp)
    return f"{_second[1]}.{millis:03d}Z"

"""Simulated OCPP 1.6J/2.0.1 charging stations: a tool to try a gateway and a load generator.

``ocppcable-station ws://localhost:8080/ocpp --stations 1000 --sessions 2`` connects 1000
stations (``SIM-0001`` …) to ``ws://localhost:8080/ocpp/<station id>``, as OCPP 1.6J stations
(``--ocpp 2.0.1``: as 2.0.1 ones). Each boots, heartbeats,
reports its connectors, runs its charging sessions and answers the remote commands a central
system sends. At the end the run prints a summary (calls, CALLERRORs, timeouts, answered
commands, CALL→reply latency) and exits 0 only when nothing went wrong.

:class:`StationModel` is one station's OCPP behaviour without I/O: it takes events (connected,
a frame arrived, a timer fired, disconnected) and returns effects (send, start or cancel a timer,
close, reconnect); its :class:`~ocppcable.dialects.Dialect` turns that behaviour into one
OCPP version's messages and that version's commands into the model's operations. :class:`Stats`
collects the numbers of a run. :class:`StationDriver`,
:class:`StationProtocol` and :class:`Simulator` carry the effects out with Twisted and Autobahn;
one process drives thousands of stations.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
from array import array
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.types import ConnectingRequest
from autobahn.websocket.util import parse_url
from twisted.internet import defer
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.interfaces import IDelayedCall, IStreamClientEndpoint
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.task import LoopingCall
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.python.failure import Failure

from ocppcable import __version__
from ocppcable.dialects import DIALECTS, Dialect
from ocppcable.dialects.base import (
    ACCEPTED,
    AVAILABLE,
    CHARGING,
    CONNECTORS,
    HEARTBEAT,
    METER,
    PENDING,
    PREPARING,
    REJECTED,
    SCHEDULED,
    UNKNOWN,
    Reply,
    Transaction,
)
from ocppcable.ocpp import framing
from ocppcable.ocpp.validation import Validator, Violation, validator_for
from ocppcable.session import CancelTimer, Close, Send, StartTimer

log = Logger()
#: one line per remote command answered (shown unless --quiet)
commands_log = Logger(namespace="ocppcable.simulator.commands")

USER_AGENT = f"ocppcable-station/{__version__}"
#: the station id is sent as BootNotification.meterSerialNumber (1.6: CiString25) or
#: chargingStation.serialNumber (2.0.1: string(25))
MAX_STATION_ID = 25
#: charging power of every connector, in W (meter readings grow at this rate)
POWER = 11_000

#: seconds before a station retries a BootNotification that failed or gave no usable interval
BOOT_RETRY = 10.0
#: seconds before reconnecting after a lost or failed connection (the driver adds ±50 % jitter)
RECONNECT_DELAY = 5.0
#: seconds a station is off between a Reset and its reconnect
REBOOT_DELAY = 1.0
#: seconds for the TCP connect, and again for the opening handshake
CONNECT_TIMEOUT = 10.0
#: seconds the server has to answer a close frame before the connection is dropped
CLOSE_TIMEOUT = 2.0
#: seconds between progress lines
PROGRESS_INTERVAL = 5.0
#: seconds the stations get to close their connections at the end of a run
STOP_TIMEOUT = 5.0
#: shortest interval between two ramp steps, in seconds
RAMP_TICK = 0.05

CALL_TIMER = "call"
HEARTBEAT_TIMER = "heartbeat"
BOOT_TIMER = "boot"
METER_TIMER = "meter:"  # + connector id
END_TIMER = "end:"  # + connector id


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One run: where the stations connect, how many there are and what they do."""

    url: str  # base URL; a station connects to <url>/<station id>
    stations: int = 1
    ocpp: str = "1.6"  # the OCPP version the stations speak: a key of DIALECTS
    prefix: str = "SIM"
    #: seconds to run; 0: until every station ran its sessions, or until stopped if sessions == 0
    duration: float = 0.0
    #: new connections per second; 0: all at once
    ramp: float = 100.0
    #: heartbeat interval in seconds; None: the interval of the BootNotification reply
    heartbeat: int | None = None
    #: charging sessions each station runs, one after the other
    sessions: int = 0
    session_length: float = 60.0
    #: seconds between meter readings (MeterValues, TransactionEvent Updated) in a session; 0: none
    meter_interval: float = 10.0
    id_tag: str = "SIMULATOR"
    connectors: int = 1
    call_timeout: float = 30.0
    quiet: bool = False  # no progress lines, no line per answered command
    verbose: bool = False  # log every frame

    def station_ids(self) -> list[str]:
        width = max(4, len(str(self.stations)))
        return [f"{self.prefix}-{n:0{width}d}" for n in range(1, self.stations + 1)]


# --- statistics -------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], percent: int) -> float:
    """The nearest-rank percentile of the ascending, non-empty ``ordered``: the smallest value
    with at least ``percent`` % of all values at or below it."""
    rank = max(1, -(-percent * len(ordered) // 100))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latency:
    """CALL→reply times in seconds (None without replies)."""

    count: int
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, samples: Sequence[float]) -> Latency:
        if not samples:
            return cls(0)
        ordered = sorted(samples)
        return cls(
            len(ordered),
            percentile(ordered, 50),
            percentile(ordered, 90),
            percentile(ordered, 99),
            ordered[-1],
        )

    def __str__(self) -> str:
        if not self.count:
            return "no replies"
        figures = zip(
            ("p50", "p90", "p99", "max"), (self.p50, self.p90, self.p99, self.max), strict=True
        )
        shown = ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in figures)
        return f"{shown} ({self.count} replies)"


def _counts(counts: dict[str, int]) -> str:
    if not counts:
        return "none"
    items = ", ".join(f"{key} {counts[key]}" for key in sorted(counts))
    return f"{sum(counts.values())} ({items})"


@dataclass(frozen=True)
class Summary:
    """What a run did, for the final report and the exit code."""

    stations: int
    elapsed: float
    booted: int  # stations whose BootNotification was accepted at least once
    sessions_started: int
    sessions_completed: int
    sessions_refused: int
    calls: dict[str, int]  # CALLs sent, by action
    call_errors: dict[str, int]  # CALLERROR replies, by error code
    timeouts: dict[str, int]  # CALLs without a reply in time, by action
    commands: dict[str, int]  # remote commands answered, by action
    errors: dict[str, int]  # anything else that went wrong, by kind
    latency: Latency

    @property
    def problems(self) -> int:
        return (
            sum(self.call_errors.values()) + sum(self.timeouts.values()) + sum(self.errors.values())
        )

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def __str__(self) -> str:
        return "\n".join(
            [
                f"ocppcable-station: {self.stations} station(s), {self.elapsed:.1f} s",
                f"  booted      {self.booted} of {self.stations}",
                f"  sessions    {self.sessions_started} started, {self.sessions_completed} "
                f"completed, {self.sessions_refused} refused",
                f"  calls       {_counts(self.calls)}",
                f"  latency     {self.latency}",
                f"  CALLERRORs  {_counts(self.call_errors)}",
                f"  timeouts    {_counts(self.timeouts)}",
                f"  commands    {_counts(self.commands)}",
                f"  errors      {_counts(self.errors)}",
                "  result      " + ("OK" if self.ok else f"FAILED ({self.problems} problems)"),
            ]
        )


class Stats:
    """Counters shared by all stations of a run, and every CALL→reply latency."""

    def __init__(self) -> None:
        self.connected = 0  # stations with an open WebSocket
        self.booted = 0  # of those, the ones whose registration is Accepted
        self.stations_booted = 0  # stations accepted at least once
        self.sessions_started = 0
        self.sessions_completed = 0
        self.sessions_refused = 0
        self.calls: Counter[str] = Counter()
        self.call_errors: Counter[str] = Counter()
        self.timeouts: Counter[str] = Counter()
        self.commands: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.latencies = array("d")  # 8 bytes a reply

    @staticmethod
    def count(counter: Counter[str], key: str) -> bool:
        """Count one ``key``; True the first time (callers log only the first of a kind)."""
        counter[key] += 1
        return counter[key] == 1

    @property
    def problems(self) -> int:
        return self.call_errors.total() + self.timeouts.total() + self.errors.total()

    def progress(self, elapsed: float, stations: int) -> str:
        return (
            f"[{elapsed:7.1f}s] connected {self.connected}/{stations}  booted {self.booted}  "
            f"calls {self.calls.total()}  errors {self.problems}  "
            f"commands {self.commands.total()}  sessions {self.sessions_completed}"
        )

    def summary(self, stations: int, elapsed: float) -> Summary:
        return Summary(
            stations=stations,
            elapsed=elapsed,
            booted=self.stations_booted,
            sessions_started=self.sessions_started,
            sessions_completed=self.sessions_completed,
            sessions_refused=self.sessions_refused,
            calls=dict(self.calls),
            call_errors=dict(self.call_errors),
            timeouts=dict(self.timeouts),
            commands=dict(self.commands),
            errors=dict(self.errors),
            latency=Latency.of(self.latencies),
        )


# --- effects of the station model ---------------------------------------------------------------


# Send, StartTimer (start or restart; the model gets ``timer_fired(name)``), CancelTimer and
# Close are the gateway session's effects, reused.


@dataclass(frozen=True, slots=True)
class Reconnect:
    delay: float


@dataclass(frozen=True, slots=True)
class Finished:
    """The station ran all its own charging sessions and has nothing left to send."""


Effect = Send | StartTimer | CancelTimer | Close | Reconnect | Finished


# --- the station model ------------------------------------------------------------------------


@dataclass(slots=True)
class _Call:
    """A CALL of the station, queued or waiting for its reply."""

    action: str
    payload: dict[str, Any]
    on_reply: Callable[[Reply], None] | None = None
    unique_id: str = ""
    sent_at: float = 0.0


def _is_seconds(value: str) -> bool:
    """Whether a setting's value is a whole number of seconds >= 0."""
    return value.isascii() and value.isdigit()


class StationModel:
    """One station's OCPP behaviour, without I/O; its :class:`Dialect` speaks the version.

    Every event method returns the effects to carry out, in order. The station keeps at most one
    CALL of its own outstanding: its CALLs wait in two queues, an urgent one (BootNotification,
    messages requested by TriggerMessage, transaction stops during a Reset) that is sent
    whatever the registration status, and one for everything else, sent only once the central
    system accepted the BootNotification. The queues survive reconnects (a station keeps
    charging offline); a Reset clears them.

    The public methods after the events (:meth:`trigger`, :meth:`remote_start`,
    :meth:`remote_stop`, :meth:`reset`, :meth:`setting`, :meth:`change_setting`) are what the
    dialect's remote commands do, in terms every version shares.
    """

    __slots__ = (
        "station_id",
        "config",
        "stats",
        "validator",
        "clock",
        "dialect",
        "sessions_left",
        "heartbeat_interval",
        "meter_interval",
        "registration",
        "transactions",
        "_registers",
        "_settings",
        "_reported",
        "_urgent",
        "_queue",
        "_outstanding",
        "_ids",
        "_online",
        "_counted_booted",
        "_ever_booted",
        "_boot_reason",
        "_reset_requested",
        "_reset_when_idle",
        "_rebooting",
        "_stopped",
        "_finished",
        "_out",
    )

    def __init__(
        self,
        station_id: str,
        config: Config,
        stats: Stats,
        validator: Validator,
        clock: Callable[[], float],
    ) -> None:
        self.station_id = station_id
        self.config = config
        self.stats = stats
        self.validator = validator  # of the dialect's catalog
        self.clock = clock  # seconds since the epoch (reactor.seconds)
        self.dialect: Dialect = DIALECTS[config.ocpp]
        self.sessions_left = config.sessions
        self.heartbeat_interval = config.heartbeat or 0
        self.meter_interval = config.meter_interval
        #: status of the last BootNotification reply since power-up, None before one
        self.registration: str | None = None
        self.transactions: dict[int, Transaction] = {}  # by connector id
        self._registers = [0] * (config.connectors + 1)  # Wh per connector, [0] unused
        self._settings: dict[str, str] = {}  # settings changed by the central system
        self._reported: dict[int, str] = {}  # the last status sent per connector
        self._urgent: deque[_Call] = deque()
        self._queue: deque[_Call] = deque()
        self._outstanding: _Call | None = None
        self._ids = 0
        self._online = False
        self._counted_booted = False
        self._ever_booted = False
        self._boot_reason = "PowerUp"  # of the next BootNotification (2.0.1)
        self._reset_requested = False  # Reset accepted: stop transactions, then reboot
        self._reset_when_idle = False  # Reset accepted for when the last transaction ends
        self._rebooting = False  # closing for a Reset; reconnect and boot once closed
        self._stopped = False
        self._finished = False
        self._out: list[Effect] = []

    # --- events ----------------------------------------------------------------------------------

    def connected(self) -> list[Effect]:
        """The WebSocket is open."""
        self._online = True
        self.stats.connected += 1
        if self.registration == ACCEPTED:
            # a network reconnect, not a reboot: no BootNotification
            self._schedule_heartbeat()
            self._status_all()
        else:
            self._boot()
        self._update_booted()
        return self._effects()

    def received(self, text: str) -> list[Effect]:
        """A text frame arrived."""
        if self._stopped or self._rebooting:
            return []
        try:
            message = framing.parse(text)
        except framing.FrameError as e:
            self._error("malformed frame", e.description)
        else:
            if isinstance(message, framing.Call):
                self._command(message)
            else:
                self._reply(message)
        return self._effects()

    def binary_received(self) -> list[Effect]:
        self._error("malformed frame", "binary frame")
        return self._effects()

    def timer_fired(self, name: str) -> list[Effect]:
        if name == CALL_TIMER:
            self._timed_out()
        elif name == HEARTBEAT_TIMER:
            self._enqueue(_Call("Heartbeat", {}))
            self._schedule_heartbeat()
        elif name == BOOT_TIMER:
            self._boot()
        elif name.startswith(METER_TIMER):
            self._sample(self.transactions[int(name[len(METER_TIMER) :])])
        elif name.startswith(END_TIMER):
            self._stop(self.transactions[int(name[len(END_TIMER) :])], self.dialect.LOCAL)
        return self._effects()

    def disconnected(self, reason: str) -> list[Effect]:
        """The WebSocket closed, whoever closed it."""
        self._online = False
        self.stats.connected -= 1
        self._update_booted()
        self._emit(CancelTimer(HEARTBEAT_TIMER))
        self._emit(CancelTimer(BOOT_TIMER))
        call, self._outstanding = self._outstanding, None
        if call is not None:
            self._emit(CancelTimer(CALL_TIMER))
            if call.on_reply is not None:
                call.on_reply(None)
        rebooting, self._rebooting = self._rebooting, False
        if self._stopped:
            return self._effects()
        if rebooting:
            self._emit(Reconnect(REBOOT_DELAY))
        else:
            self._error("connection lost", reason)
            self._emit(Reconnect(RECONNECT_DELAY))
        return self._effects()

    def connection_failed(self, kind: str, reason: str) -> list[Effect]:
        """No WebSocket came about (``kind``: "connect failed", "handshake failed")."""
        if self._stopped:
            return []
        self._error(kind, reason)
        self._emit(Reconnect(RECONNECT_DELAY))
        return self._effects()

    def stop(self) -> list[Effect]:
        """The run is over: close, and ignore everything from now on."""
        self._stopped = True
        if self._online:
            self._emit(Close(1000, "simulation over"))
        return self._effects()

    # --- what remote commands do -------------------------------------------------------------

    def trigger(
        self, requested: str, connector: int | None, notification: dict[str, Any] | None = None
    ) -> str:
        """Send ``requested`` (BootNotification, Heartbeat, StatusNotification, MeterValues of
        one connector or all, else the ``notification`` payload) ahead of everything queued;
        returns ACCEPTED or REJECTED."""
        connectors = self.dialect.status_connectors(self.config.connectors)
        if connector is not None and connector not in connectors:
            return REJECTED
        if requested == "BootNotification":
            self._boot("Triggered")
            return ACCEPTED
        if self.registration not in (ACCEPTED, PENDING):
            return REJECTED
        if requested == "Heartbeat":
            self._enqueue(_Call("Heartbeat", {}), urgent=True)
        elif requested == "StatusNotification":
            for c in connectors if connector is None else [connector]:
                self._status(c, self._connector_status(c), urgent=True, again=True)
        elif requested == "MeterValues":
            for c in range(1, self.config.connectors + 1) if connector is None else [connector]:
                message = self.dialect.triggered_sample(
                    c, self.transactions.get(c), self._reading(c), self._timestamp()
                )
                self._enqueue(_Call(*message), urgent=True)
        else:
            self._enqueue(_Call(requested, notification or {}), urgent=True)
        return ACCEPTED

    def remote_start(self, token: Any, connector: int | None, remote_id: int | None = None) -> bool:
        """Start a transaction for ``token`` without asking the central system (it asked us);
        on a free connector when ``connector`` is None. Whether it starts."""
        if self.registration != ACCEPTED or self._reset_requested or self._reset_when_idle:
            return False
        if connector is None:
            connector = self._free_connector()
        elif not 1 <= connector <= self.config.connectors or connector in self.transactions:
            connector = None
        if connector is None:
            return False
        tx = Transaction(connector, token, local=False, remote_id=remote_id)
        self.transactions[connector] = tx
        self._status(connector, PREPARING)
        self._start_transaction(tx)  # remote starts are not authorized again
        return True

    def remote_stop(self, transaction_id: Any) -> bool:
        """Stop the running transaction ``transaction_id``; whether there is one."""
        for tx in self.transactions.values():
            if tx.transaction_id == transaction_id and tx.stop_reason is None:
                self._stop(tx, self.dialect.REMOTE)
                return True
        return False

    def reset(self, reason: str, on_idle: bool = False) -> str:
        """Stop every transaction with ``reason``, then reboot; ``on_idle``: reboot once the
        last transaction ends by itself (SCHEDULED), or now if there is none (ACCEPTED)."""
        if on_idle and self.transactions:
            self._reset_when_idle = True
            return SCHEDULED
        self._reset_requested = True
        for tx in list(self.transactions.values()):
            self._stop(tx, reason)
        return ACCEPTED

    def setting(self, name: str) -> str:
        """The value of one of the dialect's settings."""
        state = self.dialect.settings[name].state
        if state == HEARTBEAT:
            return str(self.heartbeat_interval)
        if state == METER:
            return f"{self.meter_interval:g}"
        if state == CONNECTORS:
            return str(self.config.connectors)
        return self._settings.get(name, self.dialect.settings[name].default)

    def change_setting(self, name: str, value: str) -> str:
        """Change a setting; ACCEPTED, REJECTED (read-only, bad value) or UNKNOWN."""
        known = self.dialect.settings.get(name)
        if known is None:
            return UNKNOWN
        if known.readonly or (known.seconds and not _is_seconds(value)):
            return REJECTED
        if known.state == HEARTBEAT:
            self.heartbeat_interval = int(value)
            if self.registration == ACCEPTED:
                self._schedule_heartbeat()
        elif known.state == METER:
            self.meter_interval = int(value)  # from the next sample on
        else:
            self._settings[name] = value
        return ACCEPTED

    # --- plumbing ----------------------------------------------------------------------------

    def _emit(self, effect: Effect) -> None:
        self._out.append(effect)

    def _effects(self) -> list[Effect]:
        """Send the next CALL if possible, and hand over the effects of this event."""
        self._pump()
        out, self._out = self._out, []
        return out

    def _error(self, kind: str, detail: str) -> None:
        if self.stats.count(self.stats.errors, kind):
            log.warn(
                "station {station_id}: {kind}: {detail} (the first; others are only counted)",
                station_id=self.station_id,
                kind=kind,
                detail=detail,
            )

    def _timestamp(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def _update_booted(self) -> None:
        booted = self._online and self.registration == ACCEPTED
        if booted != self._counted_booted:
            self._counted_booted = booted
            self.stats.booted += 1 if booted else -1

    # --- own CALLs ---------------------------------------------------------------------------

    def _enqueue(self, call: _Call, urgent: bool = False) -> None:
        (self._urgent if urgent else self._queue).append(call)

    def _started(self) -> bool:
        return any(tx.transaction_id is not None for tx in self.transactions.values())

    def _pump(self) -> None:
        if self._outstanding is not None or not self._online or self._stopped or self._rebooting:
            return
        if self._reset_requested and not self._urgent and not self._started():
            self._reboot()
            return
        if self._urgent:
            call = self._urgent.popleft()
        elif self._queue and self.registration == ACCEPTED and not self._reset_requested:
            call = self._queue.popleft()
        else:
            self._check_finished()
            return
        self._ids += 1
        call.unique_id = str(self._ids)
        call.sent_at = self.clock()
        self._outstanding = call
        self.stats.calls[call.action] += 1
        self._emit(Send(framing.encode_call(call.unique_id, call.action, call.payload)))
        self._emit(StartTimer(CALL_TIMER, self.config.call_timeout))

    def _check_finished(self) -> None:
        """Report once that the station ran all its own sessions and has nothing left to send."""
        idle = not (self._urgent or self._queue or self.sessions_left or self._finished)
        if idle and self.config.sessions and not any(tx.local for tx in self.transactions.values()):
            self._finished = True
            self._emit(Finished())

    def _reply(self, message: framing.CallResult | framing.CallError) -> None:
        call = self._outstanding
        if call is None or call.unique_id != message.unique_id:
            self._error("unexpected reply", f"a reply to uniqueId {message.unique_id!r}")
            return
        self._outstanding = None
        self._emit(CancelTimer(CALL_TIMER))
        self.stats.latencies.append(self.clock() - call.sent_at)
        payload = None
        if isinstance(message, framing.CallError):
            if self.stats.count(self.stats.call_errors, message.code):
                log.warn(
                    "station {station_id}: {action} answered with CALLERROR {code}: "
                    "{description} (the first; others are only counted)",
                    station_id=self.station_id,
                    action=call.action,
                    code=message.code,
                    description=message.description,
                )
        else:
            try:
                self.validator.check_response(call.action, message.payload)
            except Violation as e:
                self._error("invalid reply", f"{call.action}: {e.description}")
            else:
                payload = message.payload
        if call.on_reply is not None:
            call.on_reply(payload)

    def _timed_out(self) -> None:
        call, self._outstanding = self._outstanding, None
        if self.stats.count(self.stats.timeouts, call.action):
            log.warn(
                "station {station_id}: no reply to {action} within {seconds} s "
                "(the first; others are only counted)",
                station_id=self.station_id,
                action=call.action,
                seconds=self.config.call_timeout,
            )
        if call.on_reply is not None:
            call.on_reply(None)

    # --- registration ------------------------------------------------------------------------

    def _boot(self, reason: str | None = None) -> None:
        if reason is not None:
            self._boot_reason = reason
        payload = self.dialect.boot(self.station_id, self._boot_reason)
        self._enqueue(_Call("BootNotification", payload, self._booted), urgent=True)

    def _booted(self, reply: Reply) -> None:
        if reply is None:
            if self._online:
                self._emit(StartTimer(BOOT_TIMER, BOOT_RETRY))
            return
        self.registration = reply["status"]
        self._update_booted()
        interval = reply["interval"]
        if self.registration != ACCEPTED:
            if self.registration == REJECTED:
                self._urgent.clear()  # while Rejected a station sends nothing else
            self._emit(StartTimer(BOOT_TIMER, interval if interval > 0 else BOOT_RETRY))
            return
        self._emit(CancelTimer(BOOT_TIMER))
        if not self._ever_booted:
            self._ever_booted = True
            self.stats.stations_booted += 1
        if self.config.heartbeat is None:
            self.heartbeat_interval = interval
        self._schedule_heartbeat()
        self._status_all()
        self._next_session()

    def _schedule_heartbeat(self) -> None:
        if self.heartbeat_interval > 0:
            self._emit(StartTimer(HEARTBEAT_TIMER, self.heartbeat_interval))
        else:
            self._emit(CancelTimer(HEARTBEAT_TIMER))

    def _reboot(self) -> None:
        """The last step of a Reset: forget everything volatile and close; reconnect later."""
        self._reset_requested = self._reset_when_idle = False
        self._rebooting = True
        self.sessions_left += sum(tx.local for tx in self.transactions.values())
        self.transactions.clear()
        self._queue.clear()
        self.registration = None
        self._boot_reason = "RemoteReset"
        self._update_booted()
        self._emit(CancelTimer(HEARTBEAT_TIMER))
        self._emit(Close(1000, "reset"))

    # --- connectors and sessions ---------------------------------------------------------------

    def _connector_status(self, connector: int) -> str:
        tx = self.transactions.get(connector)
        if tx is None:
            return AVAILABLE
        return PREPARING if tx.started_at is None else CHARGING

    def _status(
        self, connector: int, state: str, urgent: bool = False, again: bool = False
    ) -> None:
        """Report a connector's state, unless the version's status for it was the last one sent
        (``again``: even so)."""
        status = self.dialect.connector_status(state)
        if not again and self._reported.get(connector) == status:
            return
        self._reported[connector] = status
        payload = self.dialect.status(connector, status, self._timestamp())
        self._enqueue(_Call("StatusNotification", payload), urgent)

    def _status_all(self) -> None:
        for connector in self.dialect.status_connectors(self.config.connectors):
            self._status(connector, self._connector_status(connector), again=True)

    def _free_connector(self) -> int | None:
        free = (c for c in range(1, self.config.connectors + 1) if c not in self.transactions)
        return next(free, None)

    def _reading(self, connector: int) -> int:
        """The energy register of a connector (0: the whole station) in Wh."""
        if connector == 0:
            return sum(self._reading(c) for c in range(1, self.config.connectors + 1))
        tx = self.transactions.get(connector)
        if tx is None or tx.started_at is None:
            return self._registers[connector]
        charged = POWER * (self.clock() - tx.started_at) / 3600
        return self._registers[connector] + round(charged)

    def _next_session(self) -> None:
        """Start the station's next own session, if it has one left and a free connector."""
        if not self.sessions_left or any(tx.local for tx in self.transactions.values()):
            return
        if self.registration != ACCEPTED or self._reset_requested or self._reset_when_idle:
            return
        connector = self._free_connector()
        if connector is None:
            return  # all busy with remote starts: tried again when one ends
        self.sessions_left -= 1
        tx = Transaction(connector, self.dialect.id_token(self.config.id_tag), local=True)
        self.transactions[connector] = tx
        self._status(connector, PREPARING)
        authorize = self.dialect.authorize(tx.token)
        self._enqueue(_Call("Authorize", authorize, partial(self._authorized, tx)))

    def _authorized(self, tx: Transaction, reply: Reply) -> None:
        accepted = reply is not None and self.dialect.authorized(reply)
        if reply is not None and not accepted:
            self.stats.sessions_refused += 1
        if accepted and tx.stop_reason is None:
            self._start_transaction(tx)
        else:
            self._end_session(tx)

    def _start_transaction(self, tx: Transaction) -> None:
        action, payload = self.dialect.start(
            tx, self._registers[tx.connector_id], self._timestamp()
        )
        self._enqueue(_Call(action, payload, partial(self._transaction_started, tx, payload)))

    def _transaction_started(self, tx: Transaction, request: dict[str, Any], reply: Reply) -> None:
        outcome = self.dialect.started(request, reply)
        if outcome is None:
            self._end_session(tx)
            return
        tx.transaction_id, accepted = outcome
        tx.started_at = self.clock()
        if not accepted:
            self.stats.sessions_refused += 1
            tx.stop_reason = tx.stop_reason or self.dialect.DEAUTHORIZED
        else:
            self.stats.sessions_started += 1
        if tx.stop_reason is not None:
            self._send_stop(tx)
            return
        connector = tx.connector_id
        self._status(connector, CHARGING)
        if self.meter_interval > 0:
            self._emit(StartTimer(f"{METER_TIMER}{connector}", self.meter_interval))
        self._emit(StartTimer(f"{END_TIMER}{connector}", self.config.session_length))

    def _sample(self, tx: Transaction) -> None:
        message = self.dialect.sample(tx, self._reading(tx.connector_id), self._timestamp())
        self._enqueue(_Call(*message))
        if self.meter_interval > 0:
            self._emit(StartTimer(f"{METER_TIMER}{tx.connector_id}", self.meter_interval))

    def _stop(self, tx: Transaction, reason: str) -> None:
        """End a session; one not started yet ends when its Authorize/start message returns."""
        if tx.stop_reason is None:
            tx.stop_reason = reason
            if tx.transaction_id is not None:
                self._send_stop(tx)

    def _send_stop(self, tx: Transaction) -> None:
        connector = tx.connector_id
        self._emit(CancelTimer(f"{METER_TIMER}{connector}"))
        self._emit(CancelTimer(f"{END_TIMER}{connector}"))
        self._registers[connector] = self._reading(connector)
        action, payload = self.dialect.stop(tx, self._registers[connector], self._timestamp())
        call = _Call(action, payload, partial(self._transaction_stopped, tx))
        self._enqueue(call, urgent=self._reset_requested)

    def _transaction_stopped(self, tx: Transaction, reply: Reply) -> None:
        if reply is not None:
            self.stats.sessions_completed += 1
        self._end_session(tx)

    def _end_session(self, tx: Transaction) -> None:
        del self.transactions[tx.connector_id]
        self._status(tx.connector_id, AVAILABLE)
        if self._reset_when_idle and not self.transactions:
            self._reset_when_idle = False
            self._reset_requested = True
        self._next_session()

    # --- remote commands -----------------------------------------------------------------------

    def _command(self, call: framing.Call) -> None:
        self.stats.commands[call.action] += 1
        if call.action not in self.dialect.commands:
            description = f"{call.action} is not simulated"
            self._answered(call.action, "CALLERROR NotImplemented")
            self._emit(Send(framing.encode_error(call.unique_id, "NotImplemented", description)))
            return
        try:
            self.validator.check_command(call.action, call.payload)
        except Violation as e:
            self._error("invalid command", f"{call.action}: {e.description}")
            code = self.dialect.catalog.error_code(e.kind)
            self._answered(call.action, f"CALLERROR {code}")
            self._emit(Send(framing.encode_error(call.unique_id, code, e.description)))
            return
        reply = self.dialect.answer(self, call.action, call.payload)
        status = reply.get("status")
        self._answered(call.action, status if isinstance(status, str) else "CALLRESULT")
        self._emit(Send(framing.encode_result(call.unique_id, reply)))

    def _answered(self, action: str, outcome: str) -> None:
        commands_log.info(
            "station {station_id} answered {action}: {outcome}",
            station_id=self.station_id,
            action=action,
            outcome=outcome,
        )


# --- Twisted and Autobahn ---------------------------------------------------------------------


class StationProtocol(WebSocketClientProtocol):
    """One WebSocket connection of a station; its driver does the rest."""

    def __init__(self, driver: StationDriver) -> None:
        super().__init__()
        self.driver = driver
        self.factory = driver.simulator.factory  # what Factory.buildProtocol would have set

    def onConnecting(self, transport_details: Any) -> ConnectingRequest:
        factory = self.factory
        return ConnectingRequest(
            host=factory.host,
            port=factory.port,
            resource=self.driver.resource,
            useragent=factory.useragent,
            protocols=factory.protocols,
        )

    def onOpen(self) -> None:
        self.driver.opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.driver.received(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.driver.closed(code, reason)


class StationDriver:
    """Carries out one station model's effects: connections, timers and reconnects."""

    __slots__ = (
        "model",
        "simulator",
        "resource",
        "protocol",
        "_open",
        "_refusal",
        "_timers",
        "_connecting",
        "_reconnect",
        "_closed",
    )

    def __init__(self, model: StationModel, simulator: Simulator, resource: str) -> None:
        self.model = model
        self.simulator = simulator
        self.resource = resource  # the request path: <base path>/<station id>[?query]
        self.protocol: StationProtocol | None = None
        self._open = False
        self._refusal: str | None = None
        self._timers: dict[str, IDelayedCall] = {}
        self._connecting: Deferred[Any] | None = None
        self._reconnect: IDelayedCall | None = None
        self._closed: Deferred[None] | None = None

    def connect(self) -> None:
        self._reconnect = None
        self.protocol = StationProtocol(self)
        self._connecting = connectProtocol(self.simulator.endpoint, self.protocol)
        self._connecting.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, protocol: StationProtocol) -> None:
        self._connecting = None

    def _connect_failed(self, failure: Failure) -> None:
        self._connecting = None
        self.protocol = None
        self._run(self.model.connection_failed("connect failed", failure.getErrorMessage()))

    def opened(self, protocol: StationProtocol) -> None:
        if protocol.websocket_protocol_in_use != self.model.dialect.subprotocol:
            self._refusal = f"the server chose subprotocol {protocol.websocket_protocol_in_use!r}"
            protocol.dropConnection(abort=True)
            return
        self._open = True
        self._run(self.model.connected())

    def received(self, payload: bytes, binary: bool) -> None:
        if binary:
            self._run(self.model.binary_received())
            return
        text = payload.decode("utf-8")
        if self.simulator.config.verbose:
            log.info("{station_id} ← {frame}", station_id=self.model.station_id, frame=text)
        self._run(self.model.received(text))

    def closed(self, code: int | None, reason: str | None) -> None:
        self.protocol = None
        if self._open:
            self._open = False
            self._run(self.model.disconnected(f"close code {code}, {reason or 'no reason'}"))
        else:
            refusal, self._refusal = self._refusal, None
            detail = refusal or reason or "the connection closed during the opening handshake"
            self._run(self.model.connection_failed("handshake failed", detail))
        closed, self._closed = self._closed, None
        if closed is not None and not closed.called:
            closed.callback(None)

    def stop(self) -> Deferred[None]:
        """Close the station's connection; fires once it is closed (cancel: abort it)."""
        effects = self.model.stop()
        if self._connecting is not None:
            self._connecting.cancel()
        if self._reconnect is not None and self._reconnect.active():
            self._reconnect.cancel()
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        self._run(effects)
        protocol = self.protocol
        if protocol is None:
            return succeed(None)
        if not self._open:
            protocol.transport.abortConnection()
        self._closed = Deferred(lambda d: protocol.transport.abortConnection())
        return self._closed

    def _run(self, effects: list[Effect]) -> None:
        reactor = self.simulator.reactor
        for effect in effects:
            match effect:
                case Send(text):
                    if self.simulator.config.verbose:
                        log.info(
                            "{station_id} → {frame}", station_id=self.model.station_id, frame=text
                        )
                    self.protocol.sendMessage(text.encode("utf-8"))
                case StartTimer(name, seconds):
                    self._cancel_timer(name)
                    self._timers[name] = reactor.callLater(seconds, self._timer_fired, name)
                case CancelTimer(name):
                    self._cancel_timer(name)
                case Close(code, reason):
                    self.protocol.sendClose(code, reason)
                case Reconnect(delay):
                    jittered = delay * random.uniform(0.5, 1.5)  # no reconnect stampede
                    self._reconnect = reactor.callLater(jittered, self.connect)
                case Finished():
                    self.simulator.station_finished()

    def _cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _timer_fired(self, name: str) -> None:
        del self._timers[name]
        self._run(self.model.timer_fired(name))


def client_endpoint(reactor: Any, factory: WebSocketClientFactory) -> IStreamClientEndpoint:
    """Where the stations connect; IP literals skip the per-connection name lookup."""
    host, port = factory.host, factory.port
    endpoint: IStreamClientEndpoint
    if isIPv6Address(host):
        endpoint = TCP6ClientEndpoint(reactor, host, port, timeout=CONNECT_TIMEOUT)
    elif isIPAddress(host):
        endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=CONNECT_TIMEOUT)
    else:
        endpoint = HostnameEndpoint(reactor, host, port, timeout=CONNECT_TIMEOUT)
    if factory.isSecure:
        endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
    return endpoint


class Simulator:
    """One run: connects the stations at the ramp rate, reports progress, stops, summarises."""

    def __init__(self, reactor: Any, config: Config, progress: TextIO | None = None) -> None:
        self.reactor = reactor
        self.config = config
        self.stats = Stats()
        dialect = DIALECTS[config.ocpp]
        self.factory = WebSocketClientFactory(
            config.url, protocols=[dialect.subprotocol], useragent=USER_AGENT, reactor=reactor
        )
        self.factory.setProtocolOptions(
            openHandshakeTimeout=CONNECT_TIMEOUT, closeHandshakeTimeout=CLOSE_TIMEOUT
        )
        self.endpoint = client_endpoint(reactor, self.factory)
        validator = validator_for(dialect.catalog)
        url = urlsplit(config.url)
        base, query = url.path.rstrip("/"), f"?{url.query}" if url.query else ""
        self.drivers = [
            StationDriver(
                StationModel(station_id, config, self.stats, validator, reactor.seconds),
                self,
                f"{base}/{quote(station_id, safe='')}{query}",
            )
            for station_id in config.station_ids()
        ]
        self._progress = progress or sys.stderr
        self._ramp: LoopingCall | None = None
        self._reporter: LoopingCall | None = None
        self._deadline: IDelayedCall | None = None
        self._began = 0.0
        self._connects = 0  # stations connected for the first time so far
        self._finished = 0  # stations that ran all their sessions
        self._stopping = False
        self._summary: Summary | None = None
        self._waiters: list[Deferred[Summary]] = []

    def run(self) -> Deferred[Summary]:
        """Start the stations; fires with the summary once the run is over."""
        self._began = self.reactor.seconds()
        ramp = self.config.ramp
        self._ramp = LoopingCall(self._connect_due)
        self._start(self._ramp, max(RAMP_TICK, 1 / ramp) if ramp else RAMP_TICK, now=True)
        if not self.config.quiet:
            self._reporter = LoopingCall(self._report)
            self._start(self._reporter, PROGRESS_INTERVAL, now=False)
        if self.config.duration:
            self._deadline = self.reactor.callLater(self.config.duration, self.stop)
        return self._result()

    def stop(self) -> Deferred[Summary]:
        """End the run: close every station; fires with the summary."""
        if not self._stopping:
            self._stopping = True
            shutdown = Deferred.fromCoroutine(self._shutdown())
            shutdown.addErrback(lambda f: log.failure("stopping the simulation failed", f))
        return self._result()

    def station_finished(self) -> None:
        self._finished += 1
        if self._finished == len(self.drivers) and not self.config.duration:
            self.reactor.callLater(0, self.stop)

    def _start(self, loop: LoopingCall, interval: float, now: bool) -> None:
        loop.clock = self.reactor
        done = loop.start(interval, now=now)
        done.addErrback(lambda f: log.failure("{name} failed", f, name=loop.f.__name__))

    def _connect_due(self) -> None:
        total = due = len(self.drivers)
        if self.config.ramp:
            elapsed = self.reactor.seconds() - self._began
            due = min(total, int(elapsed * self.config.ramp) + 1)
        while self._connects < due:
            self.drivers[self._connects].connect()
            self._connects += 1
        if self._connects == total:
            self._ramp.stop()

    def _report(self) -> None:
        elapsed = self.reactor.seconds() - self._began
        self._progress.write(self.stats.progress(elapsed, len(self.drivers)) + "\n")
        self._progress.flush()

    async def _shutdown(self) -> None:
        for loop in (self._ramp, self._reporter):
            if loop is not None and loop.running:
                loop.stop()
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        closing = DeferredList([driver.stop() for driver in self.drivers], consumeErrors=True)
        try:
            await closing.addTimeout(STOP_TIMEOUT, self.reactor)
        except defer.TimeoutError:
            log.warn("stations still open after {seconds} s were aborted", seconds=STOP_TIMEOUT)
        elapsed = self.reactor.seconds() - self._began
        self._summary = self.stats.summary(len(self.drivers), elapsed)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(self._summary)

    def _result(self) -> Deferred[Summary]:
        if self._summary is not None:
            return succeed(self._summary)
        waiter: Deferred[Summary] = Deferred()
        self._waiters.append(waiter)
        return waiter


def run(reactor: Any, config: Config, progress: TextIO | None = None) -> Deferred[Summary]:
    """Run the stations of ``config`` on ``reactor``; fires with the summary."""
    return Simulator(reactor, config, progress).run()


# --- command line -----------------------------------------------------------------------------


def _at_least(minimum: float, kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value

    return convert


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        prog="ocppcable-station",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Simulated OCPP 1.6J or 2.0.1 charging stations, to try a gateway or to load "
        "it.\n\n"
        "Station N connects to URL/PREFIX-000N with subprotocol ocpp1.6 (--ocpp 2.0.1:\n"
        "ocpp2.0.1), boots, heartbeats, reports its connectors, runs its charging sessions and\n"
        "answers remote commands, printing a line for each (unless --quiet):\n"
        "  1.6:   TriggerMessage, Reset, RemoteStartTransaction, RemoteStopTransaction,\n"
        "         ChangeConfiguration, GetConfiguration\n"
        "  2.0.1: TriggerMessage, Reset, RequestStartTransaction, RequestStopTransaction,\n"
        "         GetVariables, SetVariables\n"
        "Any other command gets CALLERROR NotImplemented.",
        epilog=f"""\
A run ends after --duration seconds; without it, once every station ran its --sessions,
or on Ctrl-C (SIGINT, SIGTERM) when there are none; Ctrl-C ends any run early. It prints a progress line every {PROGRESS_INTERVAL:g} s
(unless --quiet) and a summary at the end. Exit status: 0 when no CALLERROR, timeout or
other error occurred, else 1.

examples:
  ocppcable-station ws://localhost:8080/ocpp          one station, until Ctrl-C
  ocppcable-station ws://localhost:8080/ocpp -v --sessions 1 --session-length 20
  ocppcable-station ws://localhost:8080/ocpp --ocpp 2.0.1 --stations 3 --sessions 1
  ocppcable-station ws://127.0.0.1:8080/ocpp --stations 5000 --ramp 500 \\
      --sessions 3 --session-length 120 --quiet       a benchmark
""",
    )
    parser.add_argument("url", metavar="URL", help="base URL, e.g. ws://localhost:8080/ocpp")
    parser.add_argument(
        "--stations", type=_at_least(1, int), default=1, metavar="N", help="how many (1)"
    )
    parser.add_argument(
        "--ocpp",
        choices=sorted(DIALECTS),
        default="1.6",
        help="the OCPP version the stations speak (1.6)",
    )
    parser.add_argument(
        "--prefix", default="SIM", help="station ids are PREFIX-0001, PREFIX-0002, … (SIM)"
    )
    parser.add_argument(
        "--duration",
        type=_at_least(0, float),
        default=0.0,
        metavar="SECONDS",
        help="run this long (default: see below)",
    )
    parser.add_argument(
        "--ramp",
        type=_at_least(0, float),
        default=100.0,
        metavar="PER_SECOND",
        help="new connections per second (100; 0: all at once)",
    )
    parser.add_argument(
        "--heartbeat",
        type=_at_least(0, int),
        metavar="SECONDS",
        help="heartbeat interval (default: the BootNotification reply's; 0: none)",
    )
    parser.add_argument(
        "--sessions",
        type=_at_least(0, int),
        default=0,
        metavar="N",
        help="charging sessions per station, one after the other: Authorize, "
        "StartTransaction, MeterValues, StopTransaction (2.0.1: Authorize, TransactionEvent "
        "Started, Updated, Ended) (0)",
    )
    parser.add_argument(
        "--session-length",
        type=_at_least(0, float),
        default=60.0,
        metavar="SECONDS",
        help="how long a session charges (60)",
    )
    parser.add_argument(
        "--meter-interval",
        type=_at_least(0, float),
        default=10.0,
        metavar="SECONDS",
        help="meter reading interval during a session (10; 0: none)",
    )
    parser.add_argument(
        "--id-tag",
        default="SIMULATOR",
        help="idTag (2.0.1: ISO14443 idToken) of the sessions (SIMULATOR)",
    )
    parser.add_argument(
        "--connectors", type=_at_least(1, int), default=1, metavar="N", help="per station (1)"
    )
    parser.add_argument(
        "--call-timeout",
        type=_at_least(0.001, float),
        default=30.0,
        metavar="SECONDS",
        help="how long a station waits for a reply (30)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress lines and no line per answered command, only the summary",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every frame (for a few stations)"
    )
    args = parser.parse_args(argv)
    try:
        parse_url(args.url)
    except Exception as e:
        parser.error(f"URL: {e}")
    config = Config(
        url=args.url,
        stations=args.stations,
        ocpp=args.ocpp,
        prefix=args.prefix,
        duration=args.duration,
        ramp=args.ramp,
        heartbeat=args.heartbeat,
        sessions=args.sessions,
        session_length=args.session_length,
        meter_interval=args.meter_interval,
        id_tag=args.id_tag,
        connectors=args.connectors,
        call_timeout=args.call_timeout,
        quiet=args.quiet,
        verbose=args.verbose,
    )
    longest = config.station_ids()[-1]
    if len(longest) > MAX_STATION_ID:
        parser.error(
            f"--prefix: station id {longest!r} is longer than {MAX_STATION_ID} characters "
            "(it is sent as the BootNotification's serial number)"
        )
    longest_tag = DIALECTS[config.ocpp].max_id_token
    if not 0 < len(config.id_tag) <= longest_tag:
        parser.error(f"--id-tag: 1 to {longest_tag} characters for OCPP {config.ocpp}")
    return config


def _install_reactor() -> None:
    """epoll scales to thousands of sockets; where there is none, Twisted's default reactor."""
    try:
        from twisted.internet import epollreactor
    except ImportError:
        return
    epollreactor.install()


def _raise_open_files_limit(stations: int) -> None:
    """Every station holds a socket: raise the soft limit on open files as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = stations + 100
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    if limit < wanted:
        log.warn(
            "only {limit} open files allowed (ulimit -n): some of {stations} stations will fail",
            limit=limit,
            stations=stations,
        )


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    _install_reactor()
    from twisted.internet import reactor
    from twisted.internet.error import ReactorNotRunning

    levels = LogLevelFilterPredicate(LogLevel.info if config.verbose else LogLevel.warn)
    if not config.verbose:  # per-connection noise under load; the summary counts what matters
        levels.setLogLevelForNamespace("autobahn", LogLevel.error)
    if not config.quiet:
        levels.setLogLevelForNamespace(commands_log.namespace, LogLevel.info)
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [levels])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    _raise_open_files_limit(config.stations)

    simulator = Simulator(reactor, config)
    outcome: list[Summary] = []

    def finished(summary: Summary) -> None:
        outcome.append(summary)
        print(summary, flush=True)
        try:
            reactor.stop()
        except ReactorNotRunning:
            pass  # Ctrl-C: already stopping

    def failed(failure: Failure) -> None:
        log.failure("the simulation failed", failure)
        reactor.stop()

    simulator.run().addCallbacks(finished, failed)
    reactor.addSystemEventTrigger("before", "shutdown", simulator.stop)
    reactor.run()
    sys.exit(0 if outcome and outcome[0].ok else 1)


if __name__ == "__main__":
    main()

# -*- test-case-name: tests.test_session, tests.test_session_features, tests.test_overload -*-
"""One station's session as a sans-I/O state machine.

A :class:`Session` is fed events (a text frame arrived, an RPC answered or failed, a timer fired,
a broadcast arrived, the socket closed) and returns the effects the transport must carry out
(send a frame, make an RPC, start or cancel a timer, join or leave a stream, close). It never
touches a socket, a reactor or a Deferred, so its whole behaviour is testable with plain calls.

Where a session is in its lifecycle is one :class:`~ocppcable.phase.Phase` and, once the gateway
stops, one :class:`~ocppcable.phase.Stop`, each changed only through its transition table in
:mod:`ocppcable.phase`. Each RPC carries a transport-neutral request
record of :mod:`ocppcable.cable` and a :class:`Purpose`; :data:`_ANSWERED` names the method that
takes the answer.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from twisted.logger import Logger, LogLevel

from ocppcable import cable
from ocppcable.answers import Error, LocalAnswer, Result
from ocppcable.cable import Status
from ocppcable.commands import CommandEnded, Ending, RemoteCommand, ttl_of
from ocppcable.effects import CancelTimer, Close, Send, StartTimer
from ocppcable.metrics import IMetrics, NoMetrics
from ocppcable.ocpp import framing
from ocppcable.ocpp.catalog import NO_REPLY, Catalog
from ocppcable.ocpp.framing import ErrorKind
from ocppcable.ocpp.validation import Validator, Violation
from ocppcable.overload import jittered, never
from ocppcable.phase import (
    CONNECTED,
    DISCONNECTS,
    GONE,
    PROCESSING,
    Event,
    Phase,
    Stop,
    StopEvent,
    advance,
    advance_stop,
)
from ocppcable.ratelimit import TokenBucket


class StationLogger(Logger):
    """A Logger that puts the station id and session id on every event it emits."""

    def __init__(self, station_id: str, sid: str) -> None:
        super().__init__(namespace=__name__)
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
_CALL_TIMER = "call:"


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
class _InboundCall:
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
    """What an RPC is for; :data:`_ANSWERED` names the method that takes its answer."""

    CONNECT = "connect"
    SUBSCRIBE = "subscribe"
    #: a station CALL (or SEND) performed as a ``message`` command
    MESSAGE = "message"
    #: the station's reply to a remote command (or its failure) reported as a ``message``
    REPORT = "report"
    DISCONNECT = "disconnect"


@dataclass(slots=True)
class _Pending:
    """What an RPC in flight is for."""

    purpose: Purpose
    call: _InboundCall | None = None


#: the formatted UTC second of the last :func:`_utc_now` call: (epoch second, text)
_second: tuple[int, str] = (-1, "")


def _utc_now() -> str:
    """UTC now as ``YYYY-MM-DDTHH:MM:SS.mmmZ``; the date and time of day are formatted once per
    second (every default reply carries the time, hundreds of them per second)."""
    global _second
    now = time.time_ns() // 1_000_000  # milliseconds
    second, millis = divmod(now, 1000)
    if second != _second[0]:
        stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (second, stamp)
    return f"{_second[1]}.{millis:03d}Z"


@dataclass
class Session:
    """The protocol state of one station connection."""

    station_id: str
    catalog: Catalog
    settings: SessionSettings
    url: str
    headers: Mapping[str, str]
    #: the AnyCable session id (``sid`` RPC metadata), for logs
    sid: str = ""
    #: checks payloads against the version's schemas; None when validation is off
    validator: Validator | None = None
    utc_now: Callable[[], str] = _utc_now
    clock: Callable[[], float] = time.monotonic
    metrics: IMetrics = field(default_factory=NoMetrics)
    #: floats in [0, 1): the jitter of a ``Pending`` boot's interval
    random: Callable[[], float] = random.random
    #: asked before the backend about every valid CALL (the station hooks); None: nobody
    local_answer: LocalAnswer | None = None

    #: where the session is in its lifecycle; changed only by :meth:`_enter`
    phase: Phase = field(default=Phase.IDLE, init=False)
    identifiers: str = ""
    identifier: str | None = None  # channel identifier, fixed at the first subscribe
    serial: str | None = None
    cstate: dict[str, str] = field(default_factory=dict)
    istate: dict[str, str] = field(default_factory=dict)
    streams: set[str] = field(default_factory=set)

    #: how far a graceful stop went (new CALLs are refused once it is not RUNNING); changed
    #: only by :meth:`shutdown` and :meth:`_close_when_answered`
    stop: Stop = field(default=Stop.RUNNING, init=False)

    _format_errors: int = 0
    _bucket: TokenBucket | None = field(init=False, repr=False)  # None: no rate limit
    _refused: int = 0
    _log: StationLogger = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._log = StationLogger(self.station_id, self.sid)
        rate = self.settings.rate_limit
        self._bucket = TokenBucket(rate, self.settings.rate_burst, self.clock) if rate else None

    _inbox: deque[_InboundCall] = field(default_factory=deque)
    _current: _InboundCall | None = None
    _waiting: dict[str, _InboundCall] = field(default_factory=dict)
    _outbox: deque[RemoteCommand] = field(default_factory=deque)
    _outstanding: RemoteCommand | None = None
    _rpcs: dict[int, _Pending] = field(default_factory=dict)
    _last_token: int = 0
    _started: bool = False  # the Started effect was given

    # --- phase -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """The backend holds a connection for this session (its Connect succeeded, and the
        Disconnect is not made yet)."""
        return self.phase in CONNECTED

    @property
    def subscribed(self) -> bool:
        return self.phase is Phase.ACTIVE

    @property
    def closed(self) -> bool:
        """The socket is gone."""
        return self.phase in GONE

    def _enter(self, event: Event) -> list[Effect]:
        """Move to the phase ``event`` leads to: the Disconnect RPC, if that transition owes
        one."""
        before = self.phase
        self.phase = advance(before, event)
        subscribed = DISCONNECTS.get((before, event))
        return [] if subscribed is None else [self._disconnect(subscribed)]

    # --- events ------------------------------------------------------------------------------

    def opened(self) -> list[Effect]:
        return [StartTimer(IDLE_TIMER, self.settings.idle_timeout)]

    def frame_received(self, text: str) -> list[Effect]:
        if self.phase not in PROCESSING:
            return []
        if self._bucket is not None:
            if not self._bucket.take():
                return self._rate_limited(text)
            self._refused = 0
        try:
            message = framing.parse(text, self.catalog.message_types)
        except framing.FrameError as e:
            return self._frame_error(e)
        self._format_errors = 0
        if isinstance(message, framing.Call):
            return self._on_call(message)
        if isinstance(message, framing.Send):
            return self._on_send(message)
        if isinstance(message, framing.CallResultError):
            self._log.warn(
                "station {station_id} could not process our reply {unique_id}: {code} {reason}",
                unique_id=message.unique_id,
                code=message.code,
                reason=message.description,
            )
            return []
        return self._on_reply(message)

    def _rate_limited(self, text: str) -> list[Effect]:
        self._refused += 1
        if self._refused == 1:
            self._log.warn("station {station_id} exceeds the rate limit")
        if self._refused >= MAX_REFUSED_FRAMES:
            return [Close(1008, "rate limit exceeded")]
        try:
            message = framing.parse(text)
        except framing.FrameError:
            return []
        if not isinstance(message, framing.Call):
            return []
        return self._refuse(message.unique_id, ErrorKind.GENERIC, "rate limit exceeded")

    def rpc_succeeded(self, token: int, response: cable.Reply) -> list[Effect]:
        pending = self._rpcs.pop(token)
        return _ANSWERED[pending.purpose](self, pending.call, response)

    def rpc_failed(self, token: int, reason: str) -> list[Effect]:
        pending = self._rpcs.pop(token)
        self._log.warn(
            "station {station_id}: {purpose} RPC failed: {reason}",
            purpose=pending.purpose.value,
            reason=reason,
        )
        if pending.call is None:
            return []
        effects = self._answer_error(pending.call, ErrorKind.INTERNAL, reason) + self._finish()
        if pending.purpose in (Purpose.CONNECT, Purpose.SUBSCRIBE):
            effects += self._enter(Event.FAILED)
        return effects

    def timer_fired(self, name: str) -> list[Effect]:
        if name == IDLE_TIMER:
            if self.phase is Phase.IDLE:
                self._log.info("station {station_id} sent no CALL: closing")
                return [Close(1000, "idle")]
            return []
        if name == COMMAND_TIMER:
            return self._command_timed_out()
        call = self._waiting.get(name[len(_CALL_TIMER) :])
        if call is None:
            return []
        if call.deferred:
            return self._answer_default(call)
        self._log.warn(
            "station {station_id}: no backend reply to {action} {unique_id} in time",
            action=call.action,
            unique_id=call.unique_id,
        )
        return self._answer_error(call, ErrorKind.INTERNAL, "backend did not reply in time")

    def broadcast(self, message: Mapping[str, Any]) -> list[Effect]:
        """A decoded broadcast (``{"command":…}``) for a stream this session joined."""
        if self.closed:
            return []
        return self._backend_message(message) + self._send_next_command()

    def command(self, command: RemoteCommand) -> list[Effect]:
        """A remote command from the call API: like one from a broadcast, and when it has a
        token, how it ended comes back as a :class:`CommandEnded` effect."""
        if self.closed:
            return [CommandEnded(command, Ending.UNSENT)] if command.tracked else []
        return self._take_command(command) + self._send_next_command()

    def command_expired(self, command: RemoteCommand) -> list[Effect]:
        """A command queued for the station expired before it could be sent: the backend
        hears of it as an ``#error`` ``Expired``."""
        description = "expired before the station connected"
        return self._report_error(command, "Expired", description, {})

    def remote_disconnect(self) -> list[Effect]:
        return [] if self.closed else [Close(1000, "disconnected by backend")]

    def shutdown(self) -> list[Effect]:
        """The gateway stops: CALLs not yet sent to the backend are refused, and the socket
        closes (1001) once the CALLs in flight are answered (each within ``rpc_timeout``)."""
        if self.closed or self.stop is not Stop.RUNNING:
            return []
        self.stop = advance_stop(self.stop, StopEvent.ASKED)
        effects: list[Effect] = []
        while self._inbox:
            call = self._inbox.popleft()
            effects += self._answer_error(call, ErrorKind.INTERNAL, SHUTTING_DOWN)
        return effects + self._close_when_answered()

    def _close_when_answered(self) -> list[Effect]:
        if self.stop is not Stop.DRAINING or self._waiting:
            return []
        self.stop = advance_stop(self.stop, StopEvent.DRAINED)
        return [Close(1001, "going away")]

    def connection_lost(self) -> list[Effect]:
        """The socket closed, for whatever reason. Returns the final RPCs."""
        if self.closed:
            return []
        effects: list[Effect] = [LeaveStream(stream) for stream in self.streams]
        self.streams.clear()
        sent = [self._outstanding] if self._outstanding else []
        unsent = list(self._outbox)
        self._outstanding = None
        self._outbox.clear()
        for command in sent + unsent:
            self._command_ended(command, "disconnected")
            ending = Ending.LOST if command in sent else Ending.UNSENT
            if ending is Ending.UNSENT and command.ttl > 0:
                # not ended: it waits for the station's next session
                effects.append(CommandEnded(command, ending))
                continue
            description = "station disconnected before replying"
            effects += self._report_error(command, "Disconnected", description, {})
            effects += self._ended(command, ending, None, "Disconnected", description)
        # a Connect or subscribe in flight decides what the backend must be told: the
        # Disconnect waits for its answer
        in_flight = any(p.purpose in _OPENING for p in self._rpcs.values())
        if self.connected:
            self.metrics.session_authenticated(-1)
        return effects + self._enter(Event.LOST_IN_FLIGHT if in_flight else Event.LOST)

    def _disconnect(self, subscribed: bool) -> RPC:
        subscriptions = [self.identifier] if subscribed and self.identifier else []
        request = cable.DisconnectRequest(
            identifiers=self.identifiers,
            subscriptions=subscriptions,
            env=cable.Env(
                url=self.url,
                headers=self.headers,
                cstate=dict(self.cstate),
                istate={i: cable.encode_state(self.istate) for i in subscriptions},
            ),
        )
        return self._rpc(Purpose.DISCONNECT, request)

    # --- station CALLs -----------------------------------------------------------------------

    def _frame_error(self, error: framing.FrameError) -> list[Effect]:
        self._format_errors += 1
        self._log.info(
            "station {station_id} sent a bad frame: {reason}",
            reason=error.description,
        )
        effects = self._refuse(error.unique_id, error.kind, error.description)
        if self._format_errors >= MAX_FORMAT_ERRORS:
            effects.append(Close(1002, "too many malformed frames"))
        return effects

    def _on_call(self, message: framing.Call) -> list[Effect]:
        effects = self._first_call()
        uid, action = message.unique_id, message.action
        if self.stop is not Stop.RUNNING:
            return effects + self._refuse(uid, ErrorKind.INTERNAL, SHUTTING_DOWN)
        if action == "Heartbeat":
            self.metrics.call_in(action, "ok")
            payload = self.catalog.default_reply(action, self.utc_now(), 0)  # {"currentTime"}
            effects.append(Send(framing.encode_result(uid, payload)))
            return effects
        if action not in self.catalog.station_actions:
            return effects + self._refuse(
                uid, ErrorKind.NOT_IMPLEMENTED, f"unknown action {action}"
            )
        if self.validator is not None:
            try:
                self.validator.check_request(action, message.payload)
            except Violation as e:
                self._log.info(
                    "station {station_id}: invalid {action} payload: {reason}",
                    action=action,
                    reason=e.description,
                )
                return effects + self._refuse(uid, e.kind, e.description)
        if uid in self._waiting:
            return effects + self._refuse(uid, ErrorKind.PROTOCOL, "uniqueId already in flight")
        if len(self._waiting) >= MAX_PIPELINED_CALLS:
            return effects + self._refuse(uid, ErrorKind.PROTOCOL, "too many CALLs in flight")
        call = _InboundCall(uid, action, message.payload)
        self._waiting[uid] = call
        if self.local_answer is not None:
            answer = self.local_answer(uid, action, message.payload)
            if answer is not None:
                return effects + self._answer_locally(call, answer)
        self._inbox.append(call)
        effects.append(StartTimer(_CALL_TIMER + uid, self.settings.rpc_timeout))
        return effects + self._pump()

    def _answer_locally(self, call: _InboundCall, answer: Result | Error) -> list[Effect]:
        """A hook answers ``call`` in the backend's place, checked as a backend's reply."""
        if isinstance(answer, Result):
            return self._backend_ack(call, dict(answer.payload))
        error = {"error_code": answer.code, "error_message": answer.description}
        return self._backend_error_reply(call, {**error, "payload": dict(answer.details)})

    def _on_send(self, message: framing.Send) -> list[Effect]:
        """A 2.1 SEND: no reply of any kind, whatever happens to it."""
        effects = self._first_call()
        problem = None
        if self.stop is not Stop.RUNNING:
            problem = SHUTTING_DOWN
        elif message.action not in self.catalog.send_actions:
            problem = "not a SEND action of this version"
        elif message.unique_id in self._waiting:
            problem = "uniqueId already in flight"
        elif self.validator is not None:
            try:
                self.validator.check_send(message.action, message.payload)
            except Violation as e:
                problem = e.description
        if problem is not None:
            self._log.info(
                "station {station_id}: SEND {action} dropped: {reason}",
                action=message.action,
                reason=problem,
            )
            return effects
        call = _InboundCall(message.unique_id, message.action, message.payload, unconfirmed=True)
        self._waiting[call.unique_id] = call
        self._inbox.append(call)
        return effects + self._pump()

    def _first_call(self) -> list[Effect]:
        """The idle timer's end, if this is the station's first CALL or SEND."""
        if self.phase is not Phase.IDLE:
            return []
        self._enter(Event.CALL)
        return [CancelTimer(IDLE_TIMER)]

    def _refuse(self, uid: str, kind: ErrorKind, description: str) -> list[Effect]:
        """A CALLERROR for a frame that never became a CALL being processed."""
        code = self.catalog.error_code(kind)
        self.metrics.call_error(code)
        return [Send(framing.encode_error(uid, code, description))]

    def _pump(self) -> list[Effect]:
        """Start processing the next station CALL if none is being processed."""
        while self._current is None and self._inbox and self.phase in PROCESSING:
            call = self._inbox.popleft()
            if call.answered:
                continue
            self._current = call
            if call.action == "BootNotification":
                self.serial = self.catalog.serial_number(call.payload) or self.serial
            return self._advance(call)
        return []

    def _finish(self) -> list[Effect]:
        self._current = None
        effects: list[Effect] = []
        if self.settings.report_start and not self._started and self.phase is Phase.ACTIVE:
            self._started = True
            effects.append(Started())
        return effects + self._pump()

    def _advance(self, call: _InboundCall) -> list[Effect]:
        """The next RPC for ``call``: Connect, then subscribe, then the action itself."""
        if call.answered or self.phase not in PROCESSING:
            return self._finish()
        if self.phase is Phase.CONNECTING:
            if call.action == "BootNotification" and self.settings.backend_saturated():
                return self._boot_pending(call)
            request = cable.ConnectRequest(cable.Env(url=self.url, headers=self.headers))
            return [self._rpc(Purpose.CONNECT, request, call)]
        if self.identifier is None:
            protocol = self.catalog.subprotocol if self.catalog.announce_protocol else None
            self.identifier = cable.channel_identifier(
                self.settings.channel, self.station_id, self.serial, protocol
            )
        if self.phase is Phase.SUBSCRIBING:
            request = self._command("subscribe", self.identifier)
            return [self._rpc(Purpose.SUBSCRIBE, request, call)]
        data = cable.perform_data(
            call.action, call.unique_id, call.action, call.payload, self.settings.granular_actions
        )
        return [self._rpc(Purpose.MESSAGE, self._command("message", self.identifier, data), call)]

    def _rpc(
        self, purpose: Purpose, request: cable.Request, call: _InboundCall | None = None
    ) -> RPC:
        self._last_token += 1
        self._rpcs[self._last_token] = _Pending(purpose, call)
        return RPC(self._last_token, request)

    def _command(self, command: str, identifier: str, data: str = "") -> cable.CommandRequest:
        env = cable.Env(
            url=self.url, headers=self.headers, cstate=dict(self.cstate), istate=dict(self.istate)
        )
        return cable.CommandRequest(
            command=command,
            identifier=identifier,
            connection_identifiers=self.identifiers,
            data=data,
            env=env,
        )

    # --- RPC results ---------------------------------------------------------------------------

    def _connect_answered(self, call: _InboundCall, response: cable.ConnectReply) -> list[Effect]:
        if response.status == Status.SUCCESS:
            if not self.closed:  # the gauge counts open sessions
                self.metrics.session_authenticated(1)
            self.identifiers = response.identifiers
            cable.merge_state(self.cstate, response.env.cstate)
            effects = self._transmissions(response.transmissions)[0] + self._enter(Event.CONNECTED)
            return effects + self._advance(call)
        if response.status == Status.FAILURE:
            self._log.info("station {station_id}: Connect rejected")
            return self._reject(call) + self._enter(Event.REFUSED)
        effects = self._backend_error(call, "Connect", response.error_msg)
        return effects + self._enter(Event.FAILED)

    def _subscribe_answered(self, call: _InboundCall, response: cable.CommandReply) -> list[Effect]:
        if response.status == Status.SUCCESS:
            effects = self._apply(response)[0] + self._enter(Event.SUBSCRIBED)
            return effects + self._advance(call)
        if response.status == Status.FAILURE:
            self._log.info("station {station_id}: subscription rejected")
            return self._reject(call) + self._enter(Event.REFUSED)
        effects = self._backend_error(call, "subscribe", response.error_msg)
        return effects + self._enter(Event.FAILED)

    def _message_answered(self, call: _InboundCall, response: cable.CommandReply) -> list[Effect]:
        if response.status not in (Status.SUCCESS, Status.FAILURE):
            return self._backend_error(call, call.action, response.error_msg)
        # remote commands wait: the reply to the station's CALL goes out first
        effects, intact = self._apply(response, hold_commands=True)
        if call.answered or call.deferred:
            pass
        elif not intact:
            effects += self._answer_error(call, ErrorKind.INTERNAL, "malformed backend reply")
        elif response.status == Status.FAILURE:
            effects += self._answer_error(call, ErrorKind.GENERIC, "rejected by backend")
        else:
            effects += self._answer_default(call)
        effects += self._send_next_command()
        if response.disconnect:
            effects.append(Close(1000, "disconnected by backend"))
            return effects
        return effects + self._finish()

    def _report_answered(self, call: None, response: cable.CommandReply) -> list[Effect]:
        if response.status not in (Status.SUCCESS, Status.FAILURE):
            self._log.warn(
                "station {station_id}: backend failed to take a command reply: {error}",
                error=response.error_msg,
            )
            return []
        effects = self._apply(response)[0]
        if response.disconnect:
            effects.append(Close(1000, "disconnected by backend"))
        return effects

    def _disconnect_answered(self, call: None, response: cable.DisconnectReply) -> list[Effect]:
        if response.status not in (Status.SUCCESS, Status.FAILURE):
            self._log.warn(
                "station {station_id}: Disconnect RPC error: {error}",
                error=response.error_msg,
            )
        return []

    def _backend_error(self, call: _InboundCall, what: str, error_msg: str) -> list[Effect]:
        self._log.warn(
            "station {station_id}: backend error on {what}: {error}",
            what=what,
            error=error_msg,
        )
        reason = f"backend error on {what}"
        return self._answer_error(call, ErrorKind.INTERNAL, reason) + self._finish()

    def _boot_reply(self, call: _InboundCall, status: str, interval: int) -> list[Effect]:
        """A BootNotification's reply with ``status`` (the same shape in 1.6 and 2.x)."""
        payload = {"status": status, "currentTime": self.utc_now(), "interval": interval}
        return self._answer(call, framing.encode_result(call.unique_id, payload))

    def _boot_pending(self, call: _InboundCall) -> list[Effect]:
        """The backend is saturated: the station is told to boot again later, and its session
        stays unconnected (its next BootNotification starts it as usual)."""
        interval = jittered(self.settings.pending_interval, self.random)
        self._log.debug(
            "station {station_id}: backend saturated, BootNotification answered Pending "
            "({interval}s)",
            interval=interval,
        )
        self.metrics.boot_pending()
        return self._boot_reply(call, "Pending", interval) + self._finish()

    def _reject(self, call: _InboundCall) -> list[Effect]:
        if call.action == "BootNotification":
            effects = self._boot_reply(call, "Rejected", self.settings.heartbeat_interval)
        else:
            effects = self._answer_error(call, ErrorKind.SECURITY, "rejected by backend")
        return effects + [Close(1008, "rejected")]

    def _apply(
        self, response: cable.CommandReply, hold_commands: bool = False
    ) -> tuple[list[Effect], bool]:
        """Streams, state and transmissions of a Command response, in AnyCable's order; the
        flag is False when a transmission was malformed. Remote commands in the transmissions
        are queued, and sent at once unless ``hold_commands``."""
        effects: list[Effect] = []
        if response.stop_streams:
            effects += [LeaveStream(stream) for stream in self.streams]
            self.streams.clear()
        else:
            for stream in response.stopped_streams:
                if stream in self.streams:
                    self.streams.discard(stream)
                    effects.append(LeaveStream(stream))
        for stream in response.streams:
            # a response arriving after the socket closed must not join the dead session to a
            # stream: its LeaveStream effects and Disconnect RPC have already been made
            if stream not in self.streams and not self.closed:
                self.streams.add(stream)
                effects.append(JoinStream(stream))
        cable.merge_state(self.istate, response.env.istate)
        cable.merge_state(self.cstate, response.env.cstate)
        sent, intact = self._transmissions(response.transmissions, hold_commands)
        return effects + sent, intact

    def _transmissions(
        self, transmissions: Iterable[str], hold_commands: bool = False
    ) -> tuple[list[Effect], bool]:
        effects: list[Effect] = []
        intact = True
        for text in transmissions:
            try:
                message = cable.decode_transmission(text)
            except cable.MalformedMessage as e:
                self._log.warn(
                    "station {station_id}: dropped a malformed transmission: {reason}",
                    reason=str(e),
                )
                intact = False
                continue
            if message is not None:
                effects += self._backend_message(message)
                if not hold_commands:
                    effects += self._send_next_command()
        return effects, intact

    # --- backend messages (transmissions and broadcasts) ---------------------------------------

    def _backend_message(self, message: Mapping[str, Any]) -> list[Effect]:
        command = message.get("command")
        unique_id = message.get("id")
        if command not in ("Ack", "Error", "Defer"):
            ttl = ttl_of(message)
            return self._backend_command(str(command), unique_id, message.get("payload"), ttl)
        call = self._waiting.get(unique_id) if isinstance(unique_id, str) else None
        if call is None:
            self._log.info(
                "station {station_id}: {command} for unknown CALL {unique_id} dropped",
                command=command,
                unique_id=unique_id,
            )
            return []
        if command == "Defer":
            call.deferred = True
            return []
        if command == "Ack":
            return self._backend_ack(call, message.get("payload"))
        return self._backend_error_reply(call, message)

    def _backend_ack(self, call: _InboundCall, payload: Any) -> list[Effect]:
        if payload is None:
            payload = {}
        problem = None if isinstance(payload, dict) else "payload is not an object"
        if problem is None and self.validator is not None:
            try:
                self.validator.check_response(call.action, payload)
            except Violation as e:
                problem = e.description
        if problem is not None:
            self._log.warn(
                "station {station_id}: invalid backend reply to {action} {unique_id}: {reason}",
                action=call.action,
                unique_id=call.unique_id,
                reason=problem,
            )
            return self._answer_error(call, ErrorKind.INTERNAL, "malformed backend reply")
        return self._answer(call, framing.encode_result(call.unique_id, payload))

    def _backend_error_reply(self, call: _InboundCall, message: Mapping[str, Any]) -> list[Effect]:
        code = message.get("error_code") or message.get("code")
        if code not in self.catalog.call_error_codes:
            self._log.warn(
                "station {station_id}: backend error code {code!r} is not an OCPP code: "
                "sending GenericError",
                code=code,
            )
            code = self.catalog.error_code(ErrorKind.GENERIC)
        description = message.get("error_message") or message.get("message") or ""
        details = message.get("payload")
        return self._answer(
            call,
            framing.encode_error(
                call.unique_id, code, str(description), details if isinstance(details, dict) else {}
            ),
            code,
        )

    def _backend_command(
        self, action: str, unique_id: Any, payload: Any, ttl: float = 0.0
    ) -> list[Effect]:
        if not isinstance(unique_id, str) or not 0 < len(unique_id) <= framing.MAX_UNIQUE_ID:
            unique_id = str(uuid.uuid4())
        payload = {} if payload is None else payload
        return self._take_command(RemoteCommand(unique_id, action, payload, ttl=ttl))

    def _take_command(self, command: RemoteCommand) -> list[Effect]:
        """Validate ``command`` and queue it to be sent."""
        action = command.action
        if self.validator is not None:
            try:
                self.validator.check_command(action, command.payload)
            except Violation as e:
                self._log.warn(
                    "station {station_id}: invalid remote command {action} not sent: {reason}",
                    action=action,
                    reason=e.description,
                )
                self._command_ended(command, "invalid")
                code = self.catalog.error_code(e.kind)
                effects = self._report_error(command, code, e.description, {})
                return effects + self._ended(command, Ending.INVALID, None, code, e.description)
        command.text = framing.encode_call(command.unique_id, action, command.payload)
        size = len(command.text.encode("utf-8"))
        if size > self.settings.max_frame:  # the station could not take it: never queued
            self._log.warn(
                "station {station_id}: remote command {action} of {size} bytes not sent: "
                "over {limit}",
                action=action,
                size=size,
                limit=self.settings.max_frame,
            )
            self._command_ended(command, "invalid")
            description = f"command frame of {size} bytes exceeds {self.settings.max_frame}"
            effects = self._report_error(command, TOO_LARGE, description, {})
            return effects + self._ended(command, Ending.INVALID, None, TOO_LARGE, description)
        return self._enqueue_command(command)

    def _answer(self, call: _InboundCall, text: str, error_code: str | None = None) -> list[Effect]:
        """Send the one reply ``call`` gets (a CALLERROR when ``error_code`` is given)."""
        if call.answered:
            return []
        call.answered = True
        del self._waiting[call.unique_id]
        if call.unconfirmed:
            return self._close_when_answered()
        self.metrics.call_in(call.action, "ok" if error_code is None else "error")
        if error_code is not None:
            self.metrics.call_error(error_code)
        sent: list[Effect] = [Send(text), CancelTimer(_CALL_TIMER + call.unique_id)]
        return sent + self._close_when_answered()

    def _answer_error(self, call: _InboundCall, kind: ErrorKind, description: str) -> list[Effect]:
        code = self.catalog.error_code(kind)
        return self._answer(call, framing.encode_error(call.unique_id, code, description), code)

    def _answer_default(self, call: _InboundCall) -> list[Effect]:
        if call.unconfirmed:
            return self._answer(call, "")
        payload = self.catalog.default_reply(
            call.action, self.utc_now(), self.settings.heartbeat_interval
        )
        if payload is None:
            return self._answer_error(call, ErrorKind.INTERNAL, NO_REPLY)
        return self._answer(call, framing.encode_result(call.unique_id, payload))

    # --- remote commands to the station ----------------------------------------------------------

    def _enqueue_command(self, command: RemoteCommand) -> list[Effect]:
        if len(self._outbox) >= self.settings.max_queue:
            self._log.warn(
                "station {station_id}: command queue full, {action} dropped",
                action=command.action,
            )
            self._command_ended(command, "dropped")
            description = "command queue is full"
            effects = self._report_error(command, "QueueOverflow", description, {})
            return effects + self._ended(
                command, Ending.DROPPED, None, "QueueOverflow", description
            )
        self._outbox.append(command)
        return []

    def _send_next_command(self) -> list[Effect]:
        if self._outstanding is not None or not self._outbox or self.closed:
            return []
        command = self._outbox.popleft()
        self._outstanding = command
        return [Send(command.text), StartTimer(COMMAND_TIMER, self.settings.call_timeout)]

    def _on_reply(self, message: framing.CallResult | framing.CallError) -> list[Effect]:
        command = self._outstanding
        if command is None or command.unique_id != message.unique_id:
            self._log.info(
                "station {station_id}: reply to unknown CALL {unique_id} dropped",
                unique_id=message.unique_id,
            )
            return []
        self._outstanding = None
        effects: list[Effect] = [CancelTimer(COMMAND_TIMER)]
        ok = isinstance(message, framing.CallResult)
        self._command_ended(command, "ok" if ok else "error")
        if ok:
            data = cable.ack_data(
                command.unique_id,
                command.action,
                message.payload,
                self.settings.granular_actions,
                command.source,
            )
            if self.identifier is not None and self.connected:
                effects.append(self._report(data))
            effects += self._ended(command, Ending.RESULT, message.payload)
        else:
            effects += self._report_error(
                command, message.code, message.description, message.details
            )
            effects += self._ended(
                command, Ending.ERROR, message.details, message.code, message.description
            )
        return effects + self._send_next_command()

    def _command_timed_out(self) -> list[Effect]:
        command = self._outstanding
        if command is None:
            return []
        self._outstanding = None
        self._log.warn(
            "station {station_id}: no reply to {action} {unique_id} in time",
            action=command.action,
            unique_id=command.unique_id,
        )
        self._command_ended(command, "timeout")
        description = "station did not reply in time"
        effects = self._report_error(command, "Timeout", description, {})
        effects += self._ended(command, Ending.TIMEOUT, None, "Timeout", description)
        return effects + self._send_next_command()

    def _command_ended(self, command: RemoteCommand, result: str) -> None:
        known = command.action in self.catalog.command_actions
        self.metrics.call_out(command.action if known else "other", result)

    @staticmethod
    def _ended(
        command: RemoteCommand,
        ending: Ending,
        payload: Any = None,
        code: str | None = None,
        description: str = "",
    ) -> list[Effect]:
        """How a tracked command ended, for whoever tracks it."""
        if not command.tracked:
            return []
        return [CommandEnded(command, ending, payload, code, description)]

    def _report_error(
        self, command: RemoteCommand, code: str, description: str, details: Any
    ) -> list[Effect]:
        if self.identifier is None or not self.connected:
            return []
        data = cable.error_data(
            command.unique_id,
            command.action,
            code,
            description,
            details,
            self.settings.granular_actions,
            command.source,
        )
        return [self._report(data)]

    def _report(self, data: str) -> RPC:
        return self._rpc(Purpose.REPORT, self._command("message", self.identifier or "", data))


#: the RPCs whose answer decides whether the backend holds a connection for the session
_OPENING = (Purpose.CONNECT, Purpose.SUBSCRIBE)

#: who takes the answer to an RPC, by what it was for
_ANSWERED: dict[Purpose, Callable[[Session, Any, Any], list[Effect]]] = {
    Purpose.CONNECT: Session._connect_answered,
    Purpose.SUBSCRIBE: Session._subscribe_answered,
    Purpose.MESSAGE: Session._message_answered,
    Purpose.REPORT: Session._report_answered,
    Purpose.DISCONNECT: Session._disconnect_answered,
}

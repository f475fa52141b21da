"""One station's session as a sans-I/O state machine.

A :class:`Session` is fed events (a text frame arrived, an RPC answered or failed, a timer fired,
a broadcast arrived, the socket closed) and returns the effects the transport must carry out
(send a frame, make an RPC, start or cancel a timer, join or leave a stream, close). It never
touches a socket, a reactor or a Deferred, so its whole behaviour is testable with plain calls.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twisted.logger import Logger

from ocppcable import cable
from ocppcable.ocpp import framing
from ocppcable.ocpp.catalog import NO_REPLY, Catalog
from ocppcable.ocpp.framing import ErrorKind
from ocppcable.protos.rpc_pb2 import (
    FAILURE,
    SUCCESS,
    CommandMessage,
    CommandResponse,
    ConnectionRequest,
    ConnectionResponse,
    DisconnectRequest,
    Env,
)

log = Logger()

#: consecutive unparseable frames after which the connection is closed (1002)
MAX_FORMAT_ERRORS = 3
#: station CALLs accepted while earlier ones are still being processed
MAX_PIPELINED_CALLS = 8


# --- effects -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    text: str


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class RPC:
    """Make an RPC (``connect``, ``command`` or ``disconnect``) and report back with ``token``."""

    token: int
    method: str
    request: Any


@dataclass(frozen=True, slots=True)
class StartTimer:
    name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class JoinStream:
    stream: str


@dataclass(frozen=True, slots=True)
class LeaveStream:
    stream: str


Effect = Send | Close | RPC | StartTimer | CancelTimer | JoinStream | LeaveStream

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


@dataclass(slots=True)
class _InboundCall:
    """A station CALL waiting for its reply."""

    unique_id: str
    action: str
    payload: dict[str, Any]
    answered: bool = False


@dataclass(slots=True)
class _OutboundCall:
    """A remote command for the station."""

    unique_id: str
    action: str
    payload: Any


@dataclass(slots=True)
class _Pending:
    """What an RPC in flight is for."""

    purpose: str  # "connect", "subscribe", "message", "report", "disconnect"
    call: _InboundCall | None = None


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Session:
    """The protocol state of one station connection."""

    station_id: str
    catalog: Catalog
    settings: SessionSettings
    url: str
    headers: Mapping[str, str]
    utc_now: Callable[[], str] = _utc_now

    connected: bool = False  # Connect succeeded
    rejected: bool = False  # Connect or subscribe refused: closing
    closed: bool = False
    identifiers: str = ""
    identifier: str | None = None  # channel identifier, fixed at the first subscribe
    subscribed: bool = False
    serial: str | None = None
    cstate: dict[str, str] = field(default_factory=dict)
    istate: dict[str, str] = field(default_factory=dict)
    streams: set[str] = field(default_factory=set)

    _idle: bool = True
    _format_errors: int = 0
    _inbox: deque[_InboundCall] = field(default_factory=deque)
    _current: _InboundCall | None = None
    _waiting: dict[str, _InboundCall] = field(default_factory=dict)
    _outbox: deque[_OutboundCall] = field(default_factory=deque)
    _outstanding: _OutboundCall | None = None
    _rpcs: dict[int, _Pending] = field(default_factory=dict)
    _tokens: int = 0

    # --- events ------------------------------------------------------------------------------

    def opened(self) -> list[Effect]:
        return [StartTimer(IDLE_TIMER, self.settings.idle_timeout)]

    def frame_received(self, text: str) -> list[Effect]:
        if self.closed or self.rejected:
            return []
        try:
            message = framing.parse(text)
        except framing.FrameError as e:
            return self._frame_error(e)
        self._format_errors = 0
        if isinstance(message, framing.Call):
            return self._on_call(message)
        return self._on_reply(message)

    def rpc_succeeded(self, token: int, response: Any) -> list[Effect]:
        pending = self._rpcs.pop(token)
        handler = getattr(self, "_on_" + pending.purpose)
        return handler(pending.call, response)

    def rpc_failed(self, token: int, reason: str) -> list[Effect]:
        pending = self._rpcs.pop(token)
        log.warn(
            "station {station_id}: {purpose} RPC failed: {reason}",
            station_id=self.station_id,
            purpose=pending.purpose,
            reason=reason,
        )
        if pending.call is None:
            return []
        return self._answer_error(pending.call, ErrorKind.INTERNAL, reason) + self._finish()

    def timer_fired(self, name: str) -> list[Effect]:
        if name == IDLE_TIMER:
            if self._idle and not self.closed:
                log.info("station {station_id} sent no CALL: closing", station_id=self.station_id)
                return [Close(1000, "idle")]
            return []
        if name == COMMAND_TIMER:
            return self._command_timed_out()
        call = self._waiting.get(name[len(_CALL_TIMER) :])
        if call is None:
            return []
        log.warn(
            "station {station_id}: no backend reply to {action} {unique_id} in time",
            station_id=self.station_id,
            action=call.action,
            unique_id=call.unique_id,
        )
        return self._answer_error(call, ErrorKind.INTERNAL, "backend did not reply in time")

    def broadcast(self, message: Mapping[str, Any]) -> list[Effect]:
        """A decoded broadcast (``{"command":…}``) for a stream this session joined."""
        if self.closed:
            return []
        return self._backend_message(message)

    def remote_disconnect(self) -> list[Effect]:
        return [] if self.closed else [Close(1000, "disconnected by backend")]

    def connection_lost(self) -> list[Effect]:
        """The socket closed, for whatever reason. Returns the final RPCs."""
        if self.closed:
            return []
        self.closed = True
        effects: list[Effect] = [LeaveStream(stream) for stream in self.streams]
        self.streams.clear()
        unsent = ([self._outstanding] if self._outstanding else []) + list(self._outbox)
        self._outstanding = None
        self._outbox.clear()
        for command in unsent:
            effects += self._report_error(
                command, "Disconnected", "station disconnected before replying", {}
            )
        if self.connected:
            effects.append(self._disconnect())
        return effects

    def _disconnect(self) -> RPC:
        subscriptions = [self.identifier] if self.subscribed and self.identifier else []
        request = DisconnectRequest(
            identifiers=self.identifiers,
            subscriptions=subscriptions,
            env=Env(
                url=self.url,
                headers=self.headers,
                cstate=self.cstate,
                istate={i: cable.encode_state(self.istate) for i in subscriptions},
            ),
        )
        return self._rpc("disconnect", "disconnect", request)

    # --- station CALLs -----------------------------------------------------------------------

    def _frame_error(self, error: framing.FrameError) -> list[Effect]:
        self._format_errors += 1
        log.info(
            "station {station_id} sent a bad frame: {reason}",
            station_id=self.station_id,
            reason=error.description,
        )
        effects: list[Effect] = [
            Send(
                framing.encode_error(
                    error.unique_id, self.catalog.error_code(error.kind), error.description
                )
            )
        ]
        if self._format_errors >= MAX_FORMAT_ERRORS:
            effects.append(Close(1002, "too many malformed frames"))
        return effects

    def _on_call(self, message: framing.Call) -> list[Effect]:
        effects: list[Effect] = []
        if self._idle:
            self._idle = False
            effects.append(CancelTimer(IDLE_TIMER))
        uid, action = message.unique_id, message.action
        if action == "Heartbeat":
            effects.append(Send(framing.encode_result(uid, {"currentTime": self.utc_now()})))
            return effects
        if action not in self.catalog.station_actions:
            return effects + self._refuse(
                uid, ErrorKind.NOT_IMPLEMENTED, f"unknown action {action}"
            )
        if uid in self._waiting:
            return effects + self._refuse(uid, ErrorKind.PROTOCOL, "uniqueId already in flight")
        if len(self._waiting) >= MAX_PIPELINED_CALLS:
            return effects + self._refuse(uid, ErrorKind.PROTOCOL, "too many CALLs in flight")
        call = _InboundCall(uid, action, message.payload)
        self._waiting[uid] = call
        self._inbox.append(call)
        effects.append(StartTimer(_CALL_TIMER + uid, self.settings.rpc_timeout))
        return effects + self._pump()

    def _refuse(self, uid: str, kind: ErrorKind, description: str) -> list[Effect]:
        return [Send(framing.encode_error(uid, self.catalog.error_code(kind), description))]

    def _pump(self) -> list[Effect]:
        """Start processing the next station CALL if none is being processed."""
        while self._current is None and self._inbox and not (self.rejected or self.closed):
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
        return self._pump()

    def _advance(self, call: _InboundCall) -> list[Effect]:
        """The next RPC for ``call``: Connect, then subscribe, then the action itself."""
        if call.answered or self.closed:
            return self._finish()
        if not self.connected:
            request = ConnectionRequest(env=Env(url=self.url, headers=self.headers))
            return [self._rpc("connect", "connect", request, call)]
        if self.identifier is None:
            self.identifier = cable.channel_identifier(
                self.settings.channel, self.station_id, self.serial
            )
        if not self.subscribed:
            request = CommandMessage(
                command="subscribe",
                identifier=self.identifier,
                connection_identifiers=self.identifiers,
                env=self._env(),
            )
            return [self._rpc("subscribe", "command", request, call)]
        data = cable.perform_data(
            call.action, call.unique_id, call.action, call.payload, self.settings.granular_actions
        )
        return [self._rpc("message", "command", self._message(data), call)]

    def _rpc(
        self, purpose: str, method: str, request: Any, call: _InboundCall | None = None
    ) -> RPC:
        self._tokens += 1
        self._rpcs[self._tokens] = _Pending(purpose, call)
        return RPC(self._tokens, method, request)

    def _env(self) -> Env:
        return Env(url=self.url, headers=self.headers, cstate=self.cstate, istate=self.istate)

    def _message(self, data: str) -> CommandMessage:
        return CommandMessage(
            command="message",
            identifier=self.identifier,
            connection_identifiers=self.identifiers,
            data=data,
            env=self._env(),
        )

    # --- RPC results ---------------------------------------------------------------------------

    def _on_connect(self, call: _InboundCall, response: ConnectionResponse) -> list[Effect]:
        if response.status == SUCCESS:
            self.connected = True
            self.identifiers = response.identifiers
            cable.merge_state(self.cstate, response.env.cstate)
            if self.closed:  # the station left while Connect was in flight
                return [self._disconnect()]
            return self._transmissions(response.transmissions) + self._advance(call)
        if response.status == FAILURE:
            log.info("station {station_id}: Connect rejected", station_id=self.station_id)
            return self._reject(call)
        return self._backend_error(call, "Connect", response.error_msg)

    def _on_subscribe(self, call: _InboundCall, response: CommandResponse) -> list[Effect]:
        if response.status == SUCCESS:
            self.subscribed = True
            return self._apply(response) + self._advance(call)
        if response.status == FAILURE:
            log.info("station {station_id}: subscription rejected", station_id=self.station_id)
            return self._reject(call)
        return self._backend_error(call, "subscribe", response.error_msg)

    def _on_message(self, call: _InboundCall, response: CommandResponse) -> list[Effect]:
        if response.status not in (SUCCESS, FAILURE):
            return self._backend_error(call, call.action, response.error_msg)
        effects = self._apply(response)
        if not call.answered:
            if response.status == FAILURE:
                effects += self._answer_error(call, ErrorKind.GENERIC, "rejected by backend")
            else:
                effects += self._answer_default(call)
        if response.disconnect:
            effects.append(Close(1000, "disconnected by backend"))
            return effects
        return effects + self._finish()

    def _on_report(self, call: None, response: CommandResponse) -> list[Effect]:
        if response.status not in (SUCCESS, FAILURE):
            log.warn(
                "station {station_id}: backend failed to take a command reply: {error}",
                station_id=self.station_id,
                error=response.error_msg,
            )
            return []
        effects = self._apply(response)
        if response.disconnect:
            effects.append(Close(1000, "disconnected by backend"))
        return effects

    def _on_disconnect(self, call: None, response: Any) -> list[Effect]:
        if response.status not in (SUCCESS, FAILURE):
            log.warn(
                "station {station_id}: Disconnect RPC error: {error}",
                station_id=self.station_id,
                error=response.error_msg,
            )
        return []

    def _backend_error(self, call: _InboundCall, what: str, error_msg: str) -> list[Effect]:
        log.warn(
            "station {station_id}: backend error on {what}: {error}",
            station_id=self.station_id,
            what=what,
            error=error_msg,
        )
        reason = f"backend error on {what}"
        return self._answer_error(call, ErrorKind.INTERNAL, reason) + self._finish()

    def _reject(self, call: _InboundCall) -> list[Effect]:
        self.rejected = True
        if call.action == "BootNotification":
            payload = {
                "status": "Rejected",
                "currentTime": self.utc_now(),
                "interval": self.settings.heartbeat_interval,
            }
            effects = self._answer(call, framing.encode_result(call.unique_id, payload))
        else:
            effects = self._answer_error(call, ErrorKind.SECURITY, "rejected by backend")
        return effects + [Close(1008, "rejected")]

    def _apply(self, response: CommandResponse) -> list[Effect]:
        """Streams, state and transmissions of a Command response, in AnyCable's order."""
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
            if stream not in self.streams:
                self.streams.add(stream)
                effects.append(JoinStream(stream))
        cable.merge_state(self.istate, response.env.istate)
        cable.merge_state(self.cstate, response.env.cstate)
        return effects + self._transmissions(response.transmissions)

    def _transmissions(self, transmissions: Iterable[str]) -> list[Effect]:
        effects: list[Effect] = []
        for text in transmissions:
            try:
                message = cable.decode_transmission(text)
            except cable.MalformedMessage as e:
                log.warn(
                    "station {station_id}: dropped a malformed transmission: {reason}",
                    station_id=self.station_id,
                    reason=str(e),
                )
                continue
            if message is not None:
                effects += self._backend_message(message)
        return effects

    # --- backend messages (transmissions and broadcasts) ---------------------------------------

    def _backend_message(self, message: Mapping[str, Any]) -> list[Effect]:
        command = message.get("command")
        unique_id = message.get("id")
        if command in ("Ack", "Error"):
            call = self._waiting.get(unique_id) if isinstance(unique_id, str) else None
            if call is None:
                log.info(
                    "station {station_id}: {command} for unknown CALL {unique_id} dropped",
                    station_id=self.station_id,
                    command=command,
                    unique_id=unique_id,
                )
                return []
            payload = message.get("payload")
            if command == "Ack":
                if payload is None:
                    payload = {}
                if not isinstance(payload, dict):
                    log.warn(
                        "station {station_id}: backend Ack for {action} has a non-object payload",
                        station_id=self.station_id,
                        action=call.action,
                    )
                    return self._answer_error(call, ErrorKind.INTERNAL, "malformed backend reply")
                return self._answer(call, framing.encode_result(call.unique_id, payload))
            code = message.get("error_code") or message.get("code") or "GenericError"
            description = message.get("error_message") or message.get("message") or ""
            return self._answer(
                call,
                framing.encode_error(
                    call.unique_id,
                    str(code),
                    str(description),
                    payload if isinstance(payload, dict) else {},
                ),
            )
        if not isinstance(unique_id, str) or not 0 < len(unique_id) <= framing.MAX_UNIQUE_ID:
            unique_id = str(uuid.uuid4())
        payload = message.get("payload")
        return self._enqueue_command(
            _OutboundCall(unique_id, str(command), {} if payload is None else payload)
        )

    def _answer(self, call: _InboundCall, text: str) -> list[Effect]:
        if call.answered:
            return []
        call.answered = True
        del self._waiting[call.unique_id]
        return [Send(text), CancelTimer(_CALL_TIMER + call.unique_id)]

    def _answer_error(self, call: _InboundCall, kind: ErrorKind, description: str) -> list[Effect]:
        code = self.catalog.error_code(kind)
        return self._answer(call, framing.encode_error(call.unique_id, code, description))

    def _answer_default(self, call: _InboundCall) -> list[Effect]:
        payload = self.catalog.default_reply(
            call.action, self.utc_now(), self.settings.heartbeat_interval
        )
        if payload is None:
            return self._answer_error(call, ErrorKind.INTERNAL, NO_REPLY)
        return self._answer(call, framing.encode_result(call.unique_id, payload))

    # --- remote commands to the station ----------------------------------------------------------

    def _enqueue_command(self, command: _OutboundCall) -> list[Effect]:
        if len(self._outbox) >= self.settings.max_queue:
            log.warn(
                "station {station_id}: command queue full, {action} dropped",
                station_id=self.station_id,
                action=command.action,
            )
            return self._report_error(command, "QueueOverflow", "command queue is full", {})
        self._outbox.append(command)
        return self._send_next_command()

    def _send_next_command(self) -> list[Effect]:
        if self._outstanding is not None or not self._outbox or self.closed:
            return []
        command = self._outbox.popleft()
        self._outstanding = command
        return [
            Send(framing.encode_call(command.unique_id, command.action, command.payload)),
            StartTimer(COMMAND_TIMER, self.settings.call_timeout),
        ]

    def _on_reply(self, message: framing.CallResult | framing.CallError) -> list[Effect]:
        command = self._outstanding
        if command is None or command.unique_id != message.unique_id:
            log.info(
                "station {station_id}: reply to unknown CALL {unique_id} dropped",
                station_id=self.station_id,
                unique_id=message.unique_id,
            )
            return []
        self._outstanding = None
        effects: list[Effect] = [CancelTimer(COMMAND_TIMER)]
        if isinstance(message, framing.CallResult):
            data = cable.ack_data(
                command.unique_id, command.action, message.payload, self.settings.granular_actions
            )
            effects.append(self._rpc("report", "command", self._message(data)))
        else:
            effects += self._report_error(
                command, message.code, message.description, message.details
            )
        return effects + self._send_next_command()

    def _command_timed_out(self) -> list[Effect]:
        command = self._outstanding
        if command is None:
            return []
        self._outstanding = None
        log.warn(
            "station {station_id}: no reply to {action} {unique_id} in time",
            station_id=self.station_id,
            action=command.action,
            unique_id=command.unique_id,
        )
        effects = self._report_error(command, "Timeout", "station did not reply in time", {})
        return effects + self._send_next_command()

    def _report_error(
        self, command: _OutboundCall, code: str, description: str, details: Any
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
        )
        return [self._rpc("report", "command", self._message(data))]

# -*- test-case-name: tests.test_session, tests.test_session_features, tests.test_overload -*-
"""The :class:`Session`: its state, the events it is fed, its phase and stop, and the RPCs it
makes and whose answers it takes (by :class:`~ocppcable.session.records.Purpose`, in
:data:`_ANSWERED`). The work on CALLs, backend messages and remote commands is in
:mod:`~ocppcable.session.inbound`, :mod:`~ocppcable.session.transmissions` and
:mod:`~ocppcable.session.outbound`.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ocppcable import cable
from ocppcable.answers import LocalAnswer
from ocppcable.cable import Status
from ocppcable.commands import CommandEnded, Ending, RemoteCommand
from ocppcable.effects import Close, StartTimer
from ocppcable.metrics import IMetrics, NoMetrics
from ocppcable.ocpp import framing
from ocppcable.ocpp.catalog import Catalog
from ocppcable.ocpp.framing import ErrorKind
from ocppcable.ocpp.validation import Validator
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
from ocppcable.session.inbound import StationCalls
from ocppcable.session.outbound import RemoteCommands
from ocppcable.session.records import (
    CALL_TIMER,
    COMMAND_TIMER,
    IDLE_TIMER,
    RPC,
    SHUTTING_DOWN,
    Effect,
    InboundCall,
    LeaveStream,
    Pending,
    Purpose,
    SessionSettings,
    StationLogger,
    utc_now,
)
from ocppcable.session.transmissions import BackendMessages


@dataclass
class Session(StationCalls, BackendMessages, RemoteCommands):
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
    utc_now: Callable[[], str] = utc_now
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

    _inbox: deque[InboundCall] = field(default_factory=deque)
    _current: InboundCall | None = None
    _waiting: dict[str, InboundCall] = field(default_factory=dict)
    _outbox: deque[RemoteCommand] = field(default_factory=deque)
    _outstanding: RemoteCommand | None = None
    _rpcs: dict[int, Pending] = field(default_factory=dict)
    _last_token: int = 0
    #: the Started effect was given: a one-shot report to the call API, which nothing the session
    #: does depends on (its phase is ACTIVE before and after)
    _started: bool = False

    def __post_init__(self) -> None:
        self._log = StationLogger(self.station_id, self.sid)
        rate = self.settings.rate_limit
        self._bucket = TokenBucket(rate, self.settings.rate_burst, self.clock) if rate else None

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
        call = self._waiting.get(name[len(CALL_TIMER) :])
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

    def _rpc(
        self, purpose: Purpose, request: cable.Request, call: InboundCall | None = None
    ) -> RPC:
        self._last_token += 1
        self._rpcs[self._last_token] = Pending(purpose, call)
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

    def _connect_answered(self, call: InboundCall, response: cable.ConnectReply) -> list[Effect]:
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

    def _subscribe_answered(self, call: InboundCall, response: cable.CommandReply) -> list[Effect]:
        if response.status == Status.SUCCESS:
            effects = self._apply(response)[0] + self._enter(Event.SUBSCRIBED)
            return effects + self._advance(call)
        if response.status == Status.FAILURE:
            self._log.info("station {station_id}: subscription rejected")
            return self._reject(call) + self._enter(Event.REFUSED)
        effects = self._backend_error(call, "subscribe", response.error_msg)
        return effects + self._enter(Event.FAILED)

    def _message_answered(self, call: InboundCall, response: cable.CommandReply) -> list[Effect]:
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

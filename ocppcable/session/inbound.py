# -*- test-case-name: tests.test_session, tests.test_overload -*-
"""The station's CALLs (and 2.1 SENDs): checked, queued and processed one at a time through the
Connect, the subscription and the ``message`` command, each answered exactly once (by the
backend, a hook, a default reply, or an error).

:class:`StationCalls` is the part of :class:`~ocppcable.session.Session` that does this; it
keeps the session's ``_inbox``, ``_current`` and ``_waiting``.
"""

from __future__ import annotations

from ocppcable import cable
from ocppcable.answers import Error, Result
from ocppcable.effects import CancelTimer, Close, Send, StartTimer
from ocppcable.ocpp import framing
from ocppcable.ocpp.catalog import NO_REPLY
from ocppcable.ocpp.framing import ErrorKind
from ocppcable.ocpp.validation import Violation
from ocppcable.overload import jittered
from ocppcable.phase import (
    PROCESSING,
    Event,
    Phase,
    Stop,
)
from ocppcable.session.records import (
    CALL_TIMER,
    IDLE_TIMER,
    MAX_FORMAT_ERRORS,
    MAX_PIPELINED_CALLS,
    MAX_REFUSED_FRAMES,
    SHUTTING_DOWN,
    Effect,
    InboundCall,
    Purpose,
    Started,
)


class StationCalls:
    """The inbound CALL pipeline of a :class:`~ocppcable.session.Session`."""

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
        call = InboundCall(uid, action, message.payload)
        self._waiting[uid] = call
        if self.local_answer is not None:
            answer = self.local_answer(uid, action, message.payload)
            if answer is not None:
                return effects + self._answer_locally(call, answer)
        self._inbox.append(call)
        effects.append(StartTimer(CALL_TIMER + uid, self.settings.rpc_timeout))
        return effects + self._pump()

    def _answer_locally(self, call: InboundCall, answer: Result | Error) -> list[Effect]:
        """A hook answers ``call`` in the backend's place, checked as a backend's reply. One
        that cannot be sent (not an object, not JSON) is an InternalError, as a malformed
        backend reply is: the CALL never stays in flight (it has no timer yet)."""
        try:
            if isinstance(answer, Result):
                return self._backend_ack(call, dict(answer.payload))
            error = {"error_code": answer.code, "error_message": answer.description}
            return self._backend_error_reply(call, {**error, "payload": dict(answer.details)})
        except (TypeError, ValueError) as e:  # raised before the answer changed any state
            self._log.warn(
                "station {station_id}: unsendable hook answer to {action} {unique_id}: {reason}",
                action=call.action,
                unique_id=call.unique_id,
                reason=str(e),
            )
            return self._answer_error(call, ErrorKind.INTERNAL, "malformed hook answer")

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
        call = InboundCall(message.unique_id, message.action, message.payload, unconfirmed=True)
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

    def _advance(self, call: InboundCall) -> list[Effect]:
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

    def _boot_reply(self, call: InboundCall, status: str, interval: int) -> list[Effect]:
        """A BootNotification's reply with ``status`` (the same shape in 1.6 and 2.x)."""
        payload = {"status": status, "currentTime": self.utc_now(), "interval": interval}
        return self._answer(call, framing.encode_result(call.unique_id, payload))

    def _boot_pending(self, call: InboundCall) -> list[Effect]:
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

    def _reject(self, call: InboundCall) -> list[Effect]:
        if call.action == "BootNotification":
            effects = self._boot_reply(call, "Rejected", self.settings.heartbeat_interval)
        else:
            effects = self._answer_error(call, ErrorKind.SECURITY, "rejected by backend")
        return effects + [Close(1008, "rejected")]

    def _backend_error(self, call: InboundCall, what: str, error_msg: str) -> list[Effect]:
        self._log.warn(
            "station {station_id}: backend error on {what}: {error}",
            what=what,
            error=error_msg,
        )
        reason = f"backend error on {what}"
        return self._answer_error(call, ErrorKind.INTERNAL, reason) + self._finish()

    def _answer(self, call: InboundCall, text: str, error_code: str | None = None) -> list[Effect]:
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
        sent: list[Effect] = [Send(text), CancelTimer(CALL_TIMER + call.unique_id)]
        return sent + self._close_when_answered()

    def _answer_error(self, call: InboundCall, kind: ErrorKind, description: str) -> list[Effect]:
        code = self.catalog.error_code(kind)
        return self._answer(call, framing.encode_error(call.unique_id, code, description), code)

    def _answer_default(self, call: InboundCall) -> list[Effect]:
        if call.unconfirmed:
            return self._answer(call, "")
        payload = self.catalog.default_reply(
            call.action, self.utc_now(), self.settings.heartbeat_interval
        )
        if payload is None:
            return self._answer_error(call, ErrorKind.INTERNAL, NO_REPLY)
        return self._answer(call, framing.encode_result(call.unique_id, payload))

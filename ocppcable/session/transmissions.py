# -*- test-case-name: tests.test_session, tests.test_session_features -*-
"""What the backend sends a session, applied: a Command answer's streams, state and
transmissions, and each backend message (from a transmission or a broadcast) turned into the
reply to a waiting CALL (``Ack``, ``Error``, ``Defer``) or a remote command for the station.

:class:`BackendMessages` is the part of :class:`~ocppcable.session.Session` that does this.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from ocppcable import cable
from ocppcable.commands import RemoteCommand, ttl_of
from ocppcable.ocpp import framing
from ocppcable.ocpp.framing import ErrorKind
from ocppcable.ocpp.validation import Violation
from ocppcable.session.records import (
    Effect,
    InboundCall,
    JoinStream,
    LeaveStream,
)


class BackendMessages:
    """Backend answers and messages → effects, for a :class:`~ocppcable.session.Session`."""

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

    def _backend_ack(self, call: InboundCall, payload: Any) -> list[Effect]:
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

    def _backend_error_reply(self, call: InboundCall, message: Mapping[str, Any]) -> list[Effect]:
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

# -*- test-case-name: tests.test_session, tests.test_session_tracked -*-
"""Remote commands to the station: checked, queued (at most ``max_queue``), sent one at a time
with a timeout, and how each ended reported to the backend (a ``message``) and to whoever
tracks it (:class:`~ocppcable.commands.CommandEnded`).

:class:`RemoteCommands` is the part of :class:`~ocppcable.session.Session` that does this; it
keeps the session's ``_outbox`` and ``_outstanding``.
"""

from __future__ import annotations

from typing import Any

from ocppcable import cable
from ocppcable.commands import CommandEnded, Ending, RemoteCommand
from ocppcable.effects import CancelTimer, Send, StartTimer
from ocppcable.ocpp import framing
from ocppcable.ocpp.validation import Violation
from ocppcable.session.records import (
    COMMAND_TIMER,
    RPC,
    TOO_LARGE,
    Effect,
    Purpose,
)


class RemoteCommands:
    """The outbound command queue of a :class:`~ocppcable.session.Session`."""

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
                code = self.catalog.error_code(e.kind)
                return self._unanswered(command, Ending.INVALID, code, e.description)
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
            description = f"command frame of {size} bytes exceeds {self.settings.max_frame}"
            return self._unanswered(command, Ending.INVALID, TOO_LARGE, description)
        return self._enqueue_command(command)

    def _enqueue_command(self, command: RemoteCommand) -> list[Effect]:
        if len(self._outbox) >= self.settings.max_queue:
            self._log.warn(
                "station {station_id}: command queue full, {action} dropped",
                action=command.action,
            )
            return self._unanswered(
                command, Ending.DROPPED, "QueueOverflow", "command queue is full"
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
        effects = self._unanswered(
            command, Ending.TIMEOUT, "Timeout", "station did not reply in time"
        )
        return effects + self._send_next_command()

    def _unanswered(
        self, command: RemoteCommand, ending: Ending, code: str, description: str
    ) -> list[Effect]:
        """``command`` ended with no answer from the station (``ending`` is also its metric's
        result): reported to the backend as an error and to whoever tracks it."""
        self._command_ended(command, ending.value)
        effects = self._report_error(command, code, description, {})
        return effects + self._ended(command, ending, None, code, description)

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

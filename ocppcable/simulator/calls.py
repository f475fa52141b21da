"""A simulated station's own CALLs: queued, sent one at a time, matched with their replies."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from ocppcable.ocpp import framing
from ocppcable.ocpp.validation import Validator, Violation
from ocppcable.simulator.dialects.base import Reply
from ocppcable.simulator.stats import Stats

log = Logger()


@dataclass(slots=True)
class Call:
    """A CALL of the station, queued or waiting for its reply."""

    action: str
    payload: dict[str, Any]
    on_reply: Callable[[Reply], None] | None = None
    unique_id: str = ""
    sent_at: float = 0.0

    def answered(self, reply: Reply) -> None:
        if self.on_reply is not None:
            self.on_reply(reply)


class Outbox:
    """The station's own CALLs, at most one of them outstanding.

    The others wait in two queues: :attr:`urgent` (BootNotification, messages requested by
    TriggerMessage, transaction stops during a Reset), sent whatever the registration status,
    and :attr:`queue` for everything else, sent only once the central system accepted the
    BootNotification. The queues survive reconnects (a station keeps charging offline); a Reset
    clears them. A CALL's ``on_reply`` gets its valid CALLRESULT payload, or None (CALLERROR,
    invalid reply, timeout, connection lost).
    """

    __slots__ = (
        "station_id",
        "stats",
        "validator",
        "clock",
        "urgent",
        "queue",
        "outstanding",
        "_ids",
    )

    def __init__(
        self, station_id: str, stats: Stats, validator: Validator, clock: Callable[[], float]
    ) -> None:
        self.station_id = station_id
        self.stats = stats
        self.validator = validator  # of the dialect's catalog
        self.clock = clock
        self.urgent: deque[Call] = deque()
        self.queue: deque[Call] = deque()
        self.outstanding: Call | None = None
        self._ids = 0

    def __bool__(self) -> bool:
        """Whether a CALL waits to be sent."""
        return bool(self.urgent or self.queue)

    def add(self, call: Call, urgent: bool = False) -> None:
        (self.urgent if urgent else self.queue).append(call)

    def send_next(self, accepted: bool) -> str | None:
        """Make the next CALL (urgent first; from :attr:`queue` only when ``accepted``) the
        outstanding one; its frame, or None when none may go."""
        if self.urgent:
            call = self.urgent.popleft()
        elif self.queue and accepted:
            call = self.queue.popleft()
        else:
            return None
        self._ids += 1
        call.unique_id = str(self._ids)
        call.sent_at = self.clock()
        self.outstanding = call
        self.stats.calls[call.action] += 1
        return framing.encode_call(call.unique_id, call.action, call.payload)

    def reply(self, message: framing.CallResult | framing.CallError) -> tuple[Call, Reply] | None:
        """The outstanding CALL ``message`` answers and what its ``on_reply`` gets; None (an
        error) when it answers none."""
        call = self.outstanding
        if call is None or call.unique_id != message.unique_id:
            self.stats.error(
                self.station_id, "unexpected reply", f"a reply to uniqueId {message.unique_id!r}"
            )
            return None
        self.outstanding = None
        self.stats.latencies.append(self.clock() - call.sent_at)
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
            return call, None
        try:
            self.validator.check_response(call.action, message.payload)
        except Violation as e:
            self.stats.error(self.station_id, "invalid reply", f"{call.action}: {e.description}")
            return call, None
        return call, message.payload

    def timed_out(self, seconds: float) -> Call:
        """The outstanding CALL got no reply within ``seconds``: it is no longer outstanding."""
        call, self.outstanding = self.outstanding, None
        if self.stats.count(self.stats.timeouts, call.action):
            log.warn(
                "station {station_id}: no reply to {action} within {seconds} s "
                "(the first; others are only counted)",
                station_id=self.station_id,
                action=call.action,
                seconds=seconds,
            )
        return call

    def lost(self) -> Call | None:
        """The connection closed: the outstanding CALL, if any, will get no reply."""
        call, self.outstanding = self.outstanding, None
        return call

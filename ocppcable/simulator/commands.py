"""How a simulated station answers the central system's remote commands."""

from __future__ import annotations

from twisted.logger import Logger

from ocppcable.ocpp import framing
from ocppcable.ocpp.validation import Validator, Violation
from ocppcable.simulator.dialects.base import Dialect, Station
from ocppcable.simulator.stats import Stats

#: one line per remote command answered (shown unless --quiet)
commands_log = Logger(namespace="ocppcable.simulator.commands")


class Responder:
    """Answers one station's remote commands in its dialect, counting and logging each."""

    __slots__ = ("station_id", "dialect", "validator", "stats")

    def __init__(
        self, station_id: str, dialect: Dialect, validator: Validator, stats: Stats
    ) -> None:
        self.station_id = station_id
        self.dialect = dialect
        self.validator = validator  # of the dialect's catalog
        self.stats = stats

    def answer(self, station: Station, call: framing.Call) -> str:
        """The frame that answers ``call``: CALLERROR NotImplemented for a command the dialect
        does not simulate, the version's CALLERROR for an invalid one, else the CALLRESULT of
        what the command did to ``station``."""
        self.stats.commands[call.action] += 1
        if call.action not in self.dialect.commands:
            description = f"{call.action} is not simulated"
            self._answered(call.action, "CALLERROR NotImplemented")
            return framing.encode_error(call.unique_id, "NotImplemented", description)
        try:
            self.validator.check_command(call.action, call.payload)
        except Violation as e:
            self.stats.error(self.station_id, "invalid command", f"{call.action}: {e.description}")
            code = self.dialect.catalog.error_code(e.kind)
            self._answered(call.action, f"CALLERROR {code}")
            return framing.encode_error(call.unique_id, code, e.description)
        reply = self.dialect.answer(station, call.action, call.payload)
        status = reply.get("status")
        self._answered(call.action, status if isinstance(status, str) else "CALLRESULT")
        return framing.encode_result(call.unique_id, reply)

    def _answered(self, action: str, outcome: str) -> None:
        commands_log.info(
            "station {station_id} answered {action}: {outcome}",
            station_id=self.station_id,
            action=action,
            outcome=outcome,
        )

# -*- test-case-name: tests.test_catalog_v16, tests.test_catalog_v2 -*-
"""What the gateway knows about one OCPP version: actions, default replies, error codes."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ocppcable.ocpp.framing import CORE_TYPES, ErrorKind


class Default(enum.Enum):
    """The default reply to a station CALL the backend did not answer."""

    EMPTY = "empty"  # {}: notifications
    ACCEPTED = "accepted"  # {"status": "Accepted"}
    BOOT = "boot"  # {"status": "Accepted", "currentTime": …, "interval": …}
    TIME = "time"  # {"currentTime": …}: Heartbeat
    NONE = "none"  # only the backend can decide: InternalError "backend sent no reply"


NO_REPLY = "backend sent no reply"


@dataclass(frozen=True)
class Catalog:
    """One OCPP version as the gateway sees it."""

    subprotocol: str
    #: station → central system actions and how to answer each when the backend is silent
    station_actions: Mapping[str, Default]
    #: central system → station actions the backend may send as remote commands
    command_actions: frozenset[str]
    error_codes: Mapping[ErrorKind, str]
    #: the station's serial number from a BootNotification payload, or None
    serial_number: Callable[[Mapping[str, Any]], str | None]
    schema_package: str
    #: every CallError code the version defines (backend codes outside it become GenericError)
    call_error_codes: frozenset[str] = frozenset()
    #: request schemas are "<Action><suffix>.json" (1.6: "", 2.x: "Request"); responses are
    #: always "<Action>Response.json"
    request_schema_suffix: str = ""
    #: message type ids the version defines (2.1 adds CALLRESULTERROR and SEND)
    message_types: frozenset[int] = CORE_TYPES
    #: actions a station sends as SEND frames (2.1), validated against "<Action>.json"
    send_actions: frozenset[str] = frozenset()
    #: put "protocol" in the channel identifier (off for 1.6: AnyCable-Go Pro apps expect
    #: exactly {"channel","id","sn"})
    announce_protocol: bool = True

    def error_code(self, kind: ErrorKind) -> str:
        return self.error_codes[kind]

    def default_reply(self, action: str, current_time: str, interval: int) -> dict[str, Any] | None:
        """The payload of the default CALLRESULT, or None when only an error can be sent."""
        default = self.station_actions[action]
        if default is Default.EMPTY:
            return {}
        if default is Default.ACCEPTED:
            return {"status": "Accepted"}
        if default is Default.BOOT:
            return {"status": "Accepted", "currentTime": current_time, "interval": interval}
        if default is Default.TIME:
            return {"currentTime": current_time}
        return None

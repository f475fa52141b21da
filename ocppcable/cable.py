"""The Action Cable side of the mapping: channel identifiers, perform data, transmissions.

Pure functions over strings and dicts, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping
from typing import Any

from ocppcable.ocpp import framing
from ocppcable.ocpp.naming import snake_case

#: standard JSON only, out and in: no NaN or infinities, no lone surrogates, bounded nesting
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_decode = framing.loads

#: Action Cable protocol messages that are never forwarded to a station.
_CONTROL_TYPES = frozenset(
    {"welcome", "ping", "confirm_subscription", "reject_subscription", "disconnect"}
)


class MalformedMessage(ValueError):
    """A backend transmission or broadcast that cannot be mapped to OCPP."""


def channel_identifier(
    channel: str, station_id: str, serial: str | None, protocol: str | None = None
) -> str:
    """``{"channel":…,"id":…,"sn":…,"protocol":…}`` with keys in that order, ``sn`` omitted
    when unknown and ``protocol`` when not given."""
    identifier: dict[str, str] = {"channel": channel, "id": station_id}
    if serial:
        identifier["sn"] = serial
    if protocol:
        identifier["protocol"] = protocol
    return _encode(identifier)


def perform_data(
    action: str, unique_id: str, command: str, payload: Any, granular: bool = True
) -> str:
    """The ``data`` of a ``message`` Command for a station CALL."""
    return _encode(
        {
            "action": snake_case(action) if granular else "receive",
            "id": unique_id,
            "command": command,
            "payload": payload,
        }
    )


def ack_data(unique_id: str, command: str, payload: Any, granular: bool = True) -> str:
    """The ``data`` reporting a station CALLRESULT for a remote command."""
    return _encode(
        {
            "action": "ack" if granular else "receive",
            "id": unique_id,
            "command": command,
            "payload": payload,
        }
    )


def error_data(
    unique_id: str, command: str, code: str, message: str, payload: Any, granular: bool = True
) -> str:
    """The ``data`` reporting a station CALLERROR (or a gateway-side failure) for a command."""
    return _encode(
        {
            "action": "error" if granular else "receive",
            "id": unique_id,
            "command": command,
            "code": code,
            "message": message,
            "payload": payload,
        }
    )


def _as_command(message: Any, source: str) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise MalformedMessage(f"{source} is not a JSON object")
    command = message.get("command")
    if not isinstance(command, str) or not command:
        raise MalformedMessage(f"{source} has no command")
    return message


def decode_transmission(text: str) -> dict[str, Any] | None:
    """The OCPP-level message inside a transmission, or None for Action Cable control messages.

    Accepts ``{"identifier":…,"message":{"command":…}}`` (what ``transmit`` produces) and a bare
    ``{"command":…}``.
    """
    try:
        decoded = _decode(text)
    except ValueError:
        raise MalformedMessage("transmission is not JSON") from None
    if not isinstance(decoded, dict):
        raise MalformedMessage("transmission is not a JSON object")
    if decoded.get("type") in _CONTROL_TYPES:
        return None
    if "message" in decoded:
        return _as_command(decoded["message"], "transmitted message")
    return _as_command(decoded, "transmission")


def decode_broadcast(data: Any) -> dict[str, Any]:
    """The OCPP-level message in a publication's ``data`` (a JSON string, or already decoded)."""
    if isinstance(data, str):
        try:
            data = _decode(data)
        except ValueError:
            raise MalformedMessage("broadcast data is not JSON") from None
    return _as_command(data, "broadcast data")


def merge_state(state: MutableMapping[str, str], changes: Mapping[str, str]) -> None:
    """AnyCable state semantics: changes are merged, an empty value deletes the key."""
    for key, value in changes.items():
        if value == "":
            state.pop(key, None)
        else:
            state[key] = value


def encode_state(state: Mapping[str, str]) -> str:
    return _encode(dict(state))

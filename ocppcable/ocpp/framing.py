"""OCPP-J frames: parse text into typed messages and serialise replies.

Pure functions, no I/O. Errors are reported as :class:`FrameError` carrying a version-neutral
:class:`ErrorKind`; the version's catalog turns that into the CallError code it defines.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

CALL = 2
CALLRESULT = 3
CALLERROR = 4
CALLRESULTERROR = 5  # OCPP 2.1: an error about a CALLRESULT
SEND = 6  # OCPP 2.1: an unconfirmed message, never answered

#: message type ids of OCPP 1.6 and 2.0.1, and of 2.1
CORE_TYPES = frozenset({CALL, CALLRESULT, CALLERROR})
TYPES_21 = CORE_TYPES | {CALLRESULTERROR, SEND}

_ARITY = {CALL: 4, CALLRESULT: 3, CALLERROR: 5, CALLRESULTERROR: 5, SEND: 4}

MAX_UNIQUE_ID = 36
UNKNOWN_ID = "-1"

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_decode = json.JSONDecoder().decode


class ErrorKind(enum.Enum):
    """Why a frame was refused, independent of the OCPP version's spelling of it."""

    RPC_FRAMEWORK = "rpc-framework"  # not an RPC frame: not JSON, not an array, wrong arity…
    FORMAT = "format"  # the payload is not what the action's message looks like
    MESSAGE_TYPE = "message-type"  # unknown message type id
    NOT_IMPLEMENTED = "not-implemented"
    PROTOCOL = "protocol"
    PROPERTY = "property"
    TYPE = "type"
    OCCURRENCE = "occurrence"
    INTERNAL = "internal"
    SECURITY = "security"
    GENERIC = "generic"


class FrameError(Exception):
    """A frame that cannot be processed; ``unique_id`` is ``"-1"`` when it could not be read."""

    def __init__(self, kind: ErrorKind, unique_id: str, description: str) -> None:
        super().__init__(description)
        self.kind = kind
        self.unique_id = unique_id
        self.description = description


@dataclass(frozen=True, slots=True)
class Call:
    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    unique_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    unique_id: str
    code: str
    description: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResultError:
    """OCPP 2.1: the peer could not process a CALLRESULT we sent."""

    unique_id: str
    code: str
    description: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Send:
    """OCPP 2.1: a message that gets no reply at all."""

    unique_id: str
    action: str
    payload: dict[str, Any]


Message = Call | CallResult | CallError | CallResultError | Send


def _unique_id(frame: list[Any]) -> str:
    if len(frame) > 1 and isinstance(frame[1], str) and 0 < len(frame[1]) <= MAX_UNIQUE_ID:
        return frame[1]
    return UNKNOWN_ID


def parse(text: str, types: frozenset[int] = CORE_TYPES) -> Message:
    """Parse one OCPP-J text frame or raise :class:`FrameError`.

    ``types`` are the message type ids the version knows (:data:`TYPES_21` for OCPP 2.1).
    """
    try:
        frame = _decode(text)
    except ValueError:
        raise FrameError(ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID, "frame is not valid JSON") from None
    if not isinstance(frame, list) or not frame:
        raise FrameError(ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID, "frame is not a JSON array")
    unique_id = _unique_id(frame)
    type_id = frame[0]
    if not isinstance(type_id, int) or isinstance(type_id, bool):
        raise FrameError(ErrorKind.RPC_FRAMEWORK, unique_id, "message type id is not an integer")
    if type_id not in types:
        raise FrameError(ErrorKind.MESSAGE_TYPE, unique_id, f"unknown message type id {type_id}")
    arity = _ARITY[type_id]
    if len(frame) != arity:
        raise FrameError(
            ErrorKind.RPC_FRAMEWORK, unique_id, f"message type {type_id} needs {arity} elements"
        )
    if unique_id == UNKNOWN_ID:
        raise FrameError(
            ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID, "uniqueId must be a string of 1-36 chars"
        )
    if type_id in (CALL, SEND):
        action, payload = frame[2], frame[3]
        if not isinstance(action, str) or not action:
            raise FrameError(
                ErrorKind.RPC_FRAMEWORK, unique_id, "action must be a non-empty string"
            )
        if not isinstance(payload, dict):
            raise FrameError(ErrorKind.FORMAT, unique_id, "payload must be a JSON object")
        return (Call if type_id == CALL else Send)(unique_id, action, payload)
    if type_id == CALLRESULT:
        if not isinstance(frame[2], dict):
            raise FrameError(ErrorKind.FORMAT, unique_id, "payload must be a JSON object")
        return CallResult(unique_id, frame[2])
    code, description, details = frame[2], frame[3], frame[4]
    if not isinstance(code, str) or not isinstance(description, str):
        raise FrameError(
            ErrorKind.RPC_FRAMEWORK, unique_id, "errorCode/errorDescription must be strings"
        )
    details = details if isinstance(details, dict) else {}
    return (CallError if type_id == CALLERROR else CallResultError)(
        unique_id, code, description, details
    )


def encode_call(unique_id: str, action: str, payload: Any) -> str:
    return _encode([CALL, unique_id, action, payload])


def encode_result(unique_id: str, payload: Any) -> str:
    return _encode([CALLRESULT, unique_id, payload])


def encode_error(unique_id: str, code: str, description: str, details: Any = None) -> str:
    return _encode([CALLERROR, unique_id, code, description, details if details else {}])

# -*- test-case-name: tests.test_framing -*-
"""OCPP-J frames: parse text into typed messages and serialise replies.

Pure functions, no I/O. Errors are reported as :class:`FrameError` carrying a version-neutral
:class:`ErrorKind`; the version's catalog turns that into the CallError code it defines.
"""

from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import dataclass
from itertools import accumulate
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
#: arrays and objects nested deeper than this (the frame's own array is level 1) are refused
#: before parsing: the parser recurses once per level
MAX_DEPTH = 32


class _NonFinite(ValueError):
    """``NaN``, ``Infinity`` or a number too large for a double: not JSON (RFC 8259 §6)."""


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NonFinite(text)
    return number


def _no_constant(text: str) -> float:
    raise _NonFinite(text)


#: encoders refuse NaN and infinities (``allow_nan=False``): what we send is always standard JSON
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_decode = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant).decode
#: the standard library's lenient reading, only to find the uniqueId of a frame refused for a
#: non-finite number
_decode_lenient = json.JSONDecoder().decode

#: a string once its escaped backslashes and quotes are dropped; what is not a bracket; and a
#: bracket's step in nesting depth: :func:`too_deep` sums the steps
_QUOTED = re.compile(r'"[^"]*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
#: a ``\uD800``-``\uDFFF`` escape: JSON text can only put a surrogate into a string this way
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
#: the uniqueId at the start of a frame, to answer one that cannot be parsed as a whole
_HEAD = re.compile(rf'\s*\[\s*[0-9]+\s*,\s*"([^"\\]{{1,{MAX_UNIQUE_ID}}})"')


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
    if (
        len(frame) > 1
        and isinstance(frame[1], str)
        and 0 < len(frame[1]) <= MAX_UNIQUE_ID
        and is_unicode(frame[1])
    ):
        return frame[1]
    return UNKNOWN_ID


def is_unicode(text: str) -> bool:
    """``text`` has no lone surrogate, so it can be encoded as UTF-8 (sent on, or echoed)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return not is_unicode(value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """JSON ``text`` nests arrays and objects more than ``limit`` levels deep. Cheap for the
    usual frame: only one with more than ``limit`` brackets is scanned, outside its strings.

    The scan runs at C speed (a 4 MiB broadcast batch is a few tens of ms, not hundreds): the
    escaped backslashes and quotes are dropped, so every quote left opens or closes a string,
    then the strings and whatever is not a bracket, and the steps are summed. Exact for valid
    JSON, and for the valid beginning of any text, which is all the decoder recurses into."""
    if text.count("[") + text.count("{") <= limit:
        return False
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    brackets = _NOT_BRACKET.sub("", _QUOTED.sub("", unescaped))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def loads(text: str) -> Any:
    """JSON ``text`` as Python values, by the rules :func:`parse` applies to frames; raises
    ``ValueError`` for anything else (for backend transmissions and broadcasts)."""
    if too_deep(text):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    value = _decode(text)
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise ValueError("text with a lone surrogate (not Unicode)")
    return value


def _head_id(text: str) -> str:
    match = _HEAD.match(text)
    return match.group(1) if match else UNKNOWN_ID


def parse(text: str, types: frozenset[int] = CORE_TYPES) -> Message:
    """Parse one OCPP-J text frame or raise :class:`FrameError`.

    ``types`` are the message type ids the version knows (:data:`TYPES_21` for OCPP 2.1).
    Text that JSON allows but nothing downstream can carry is refused as ``FORMAT``: a lone
    surrogate (``"\\ud800"``: not encodable as UTF-8), ``NaN``/``Infinity``/``1e400`` (not
    JSON at all, though Python reads it), nesting deeper than :data:`MAX_DEPTH`.
    """
    if too_deep(text):
        raise FrameError(ErrorKind.FORMAT, _head_id(text), f"nested deeper than {MAX_DEPTH} levels")
    problem = None
    try:
        try:
            frame = _decode(text)
        except _NonFinite:
            problem = "non-finite number (NaN, Infinity or out of range)"
            frame = _decode_lenient(text)  # for its uniqueId, when valid but for the numbers
    except ValueError:
        raise FrameError(ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID, "frame is not valid JSON") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(frame):
        problem = "text with a lone surrogate (not Unicode)"
    if not isinstance(frame, list) or not frame:
        raise FrameError(ErrorKind.RPC_FRAMEWORK, UNKNOWN_ID, "frame is not a JSON array")
    unique_id = _unique_id(frame)
    if problem is not None:
        raise FrameError(ErrorKind.FORMAT, unique_id, problem)
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

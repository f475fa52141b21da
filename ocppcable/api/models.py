# -*- test-case-name: tests.test_api_models -*-
"""The call API's requests and answers as plain records: parsing and bounds, no I/O.

A request body is parsed into a :class:`CallRequest` (or a :class:`BatchRequest`), or refused
with :class:`Invalid` listing every problem found; an :class:`Answer` is what one station's call
came to, with its HTTP status and JSON body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ocppcable.ocpp import framing
from ocppcable.upgrade import STATION_ID

#: characters of an idempotency key
MAX_KEY = 128

#: seconds a request waits for the station's answer when it does not say
DEFAULT_WAIT = 30.0


@dataclass(frozen=True)
class Limits:
    """The API's bounds (docs/operations.md, "Limits and defences")."""

    #: bytes of a request body
    max_body: int = 256 * 1024
    #: stations in one batch
    max_batch: int = 1000
    #: seconds a request may wait for an answer
    max_wait: float = 300.0
    #: seconds a command may wait in the queue for an offline station
    max_ttl: float = 7 * 24 * 3600.0
    #: commands (and expiry notices) queued for one station
    max_queue: int = 100
    #: commands queued for all stations together
    max_queued: int = 100_000
    #: requests waiting for a station's answer at once (a batch counts once per station)
    max_waiting: int = 10_000
    #: stations in one page of the presence list
    max_page: int = 1000


class Outcome(StrEnum):
    """What a call came to; each has its HTTP status (:data:`STATUS`)."""

    RESULT = "result"  # the station answered CALLRESULT
    ERROR = "error"  # the station answered CALLERROR (or the gateway gave up, with a code)
    TIMEOUT = "timeout"  # no answer within wait: the call stays pending
    SENT = "sent"  # wait was 0 and the station is connected
    QUEUED = "queued"  # the station is offline and ttl > 0
    OFFLINE = "offline"  # the station is offline and ttl is 0
    INVALID = "invalid"  # a bad body, an unknown action or a payload its schema rejects
    REFUSED = "refused"  # over a bound: the station's queue is full, too many waiting requests


STATUS = {
    Outcome.RESULT: 200,
    Outcome.ERROR: 200,
    Outcome.TIMEOUT: 504,
    Outcome.SENT: 202,
    Outcome.QUEUED: 202,
    Outcome.OFFLINE: 404,
    Outcome.INVALID: 422,
    Outcome.REFUSED: 429,
}


@dataclass(frozen=True)
class Answer:
    """One station's answer to one call."""

    station: str
    id: str
    action: str
    outcome: Outcome
    payload: Any = None
    code: str | None = None
    description: str | None = None
    details: Any = None
    errors: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        return STATUS[self.outcome]

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "station": self.station,
            "id": self.id,
            "action": self.action,
            "outcome": str(self.outcome),
        }
        if self.outcome is Outcome.RESULT:
            body["payload"] = self.payload
        elif self.outcome is Outcome.ERROR:
            body["code"] = self.code
            body["description"] = self.description or ""
            body["details"] = self.details if self.details is not None else {}
        elif self.outcome in (Outcome.INVALID, Outcome.REFUSED):
            body["errors"] = list(self.errors)
        return body


class Invalid(ValueError):
    """A request that cannot be carried out as given; ``errors`` says why, one line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class CallRequest:
    """What to send to a station, how long to wait for it and to keep it for an offline one."""

    action: str
    payload: dict[str, Any]
    wait: float = DEFAULT_WAIT
    ttl: float = 0.0
    key: str | None = None


@dataclass(frozen=True)
class BatchRequest:
    stations: list[str]
    call: CallRequest


def decode(body: bytes, limits: Limits) -> dict[str, Any]:
    """A request body as a JSON object; :class:`Invalid` otherwise."""
    if len(body) > limits.max_body:
        raise Invalid([f"the body is larger than {limits.max_body} bytes"])
    try:
        decoded = framing.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Invalid(["the body is not JSON"]) from None
    if not isinstance(decoded, dict):
        raise Invalid(["the body is not a JSON object"])
    return decoded


def _seconds(body: dict[str, Any], name: str, default: float, most: float) -> float | str:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{name} must be a number of seconds"
    if not 0 <= value <= most:
        return f"{name} must be between 0 and {most:g} seconds"
    return float(value)


_CALL_FIELDS = frozenset({"action", "payload", "wait", "ttl", "key"})


def _unknown(body: dict[str, Any], known: frozenset[str]) -> list[str]:
    unknown = sorted(name for name in body if name not in known)
    return [f"unknown field {name[:40]!r}" for name in unknown[:5]]


def parse_call(
    body: dict[str, Any], limits: Limits, known: frozenset[str] = _CALL_FIELDS
) -> CallRequest:
    """A decoded call body; :class:`Invalid` with every problem found."""
    errors = _unknown(body, known)
    action = body.get("action")
    if not isinstance(action, str) or not action:
        errors.append("action must be a non-empty string")
    payload = body.get("payload", {})
    if not isinstance(payload, dict):
        errors.append("payload must be a JSON object")
    wait = _seconds(body, "wait", DEFAULT_WAIT, limits.max_wait)
    ttl = _seconds(body, "ttl", 0.0, limits.max_ttl)
    errors += [problem for problem in (wait, ttl) if isinstance(problem, str)]
    key = body.get("key")
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= MAX_KEY):
        errors.append(f"key must be a string of 1 to {MAX_KEY} characters")
    if errors:
        raise Invalid(errors)
    assert isinstance(wait, float) and isinstance(ttl, float)
    return CallRequest(str(action), payload, wait, ttl, key)


def parse_batch(body: dict[str, Any], limits: Limits) -> BatchRequest:
    """A decoded batch body: ``stations`` and the fields of one call."""
    errors = []
    stations = body.get("stations")
    if not isinstance(stations, list) or not stations:
        errors.append("stations must be a non-empty list of station ids")
        stations = []
    elif len(stations) > limits.max_batch:
        errors.append(f"at most {limits.max_batch} stations in one batch")
    else:
        bad = [s for s in stations if not isinstance(s, str) or not STATION_ID.match(s)]
        if bad:
            errors.append(f"not a station id: {str(bad[0])[:60]!r}")
        elif len(set(stations)) != len(stations):  # only strings are hashable for certain
            errors.append("a station is listed twice")
    try:
        call = parse_call(body, limits, _CALL_FIELDS | {"stations"})
    except Invalid as e:
        errors += e.errors
    if errors:
        raise Invalid(errors)
    return BatchRequest(list(stations), call)


def parse_page(args: dict[bytes, list[bytes]], limits: Limits) -> tuple[str | None, int]:
    """``?after=<station id>&limit=<n>`` of the presence list."""
    after = args.get(b"after", [b""])[-1].decode("utf-8", "replace") or None
    raw = args.get(b"limit", [b"100"])[-1]
    if not raw.isdigit() or not 0 < int(raw) <= limits.max_page:
        raise Invalid([f"limit must be an integer from 1 to {limits.max_page}"])
    if after is not None and not STATION_ID.match(after):
        raise Invalid(["after must be a station id"])
    return after, int(raw)

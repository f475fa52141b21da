# -*- test-case-name: tests.test_nats_wire -*-
"""The NATS client protocol, sans I/O: what the server sends, parsed into events, and what a
client sends, written as bytes.

Only what a publisher and subscriber of plain messages needs: ``INFO``, ``MSG``, ``PING``,
``PONG``, ``+OK`` and ``-ERR`` in; ``CONNECT``, ``PUB``, ``SUB``, ``PING`` and ``PONG`` out (no
headers, no request/reply). Every input is bounded: a control line longer than
:data:`MAX_CONTROL_LINE` or a payload larger than the server's own ``max_payload`` is a
:class:`ProtocolViolation`, and the connection is dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

#: the longest control line accepted (nats-server's own default limit is 4096 bytes)
MAX_CONTROL_LINE = 4096

#: the largest payload before the server's INFO says otherwise (nats-server's default, 1 MiB)
DEFAULT_MAX_PAYLOAD = 1024 * 1024

PING = b"PING\r\n"
PONG = b"PONG\r\n"

_SUBJECT_TOKEN = re.compile(r"[^\s.]+")


class ProtocolViolation(ValueError):
    """The server sent something that is not the NATS protocol, or too much of it."""


@dataclass(frozen=True, slots=True)
class Info:
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Msg:
    subject: str
    sid: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Err:
    message: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Pong:
    pass


@dataclass(frozen=True, slots=True)
class Ok:
    pass


Event = Info | Msg | Err | Ping | Pong | Ok


def valid_subject(subject: str, wildcards: bool = False) -> bool:
    """A NATS subject: dot-separated tokens without whitespace; ``*`` and ``>`` tokens only
    when subscribing (``wildcards``)."""
    tokens = subject.split(".")
    if not all(_SUBJECT_TOKEN.fullmatch(token) for token in tokens):
        return False
    return wildcards or not any(token in ("*", ">") for token in tokens)


def connect(options: dict[str, Any]) -> bytes:
    return b"CONNECT " + json.dumps(options, separators=(",", ":")).encode() + b"\r\n"


def pub(subject: str, payload: bytes) -> bytes:
    return b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(payload), payload)


def sub(subject: str, sid: str) -> bytes:
    return b"SUB %s %s\r\n" % (subject.encode(), sid.encode())


class Parser:
    """Bytes from the server in, :data:`Event` values out."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        #: the largest payload accepted; the client sets it from the server's INFO
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._pending: tuple[str, str, int] | None = None  # a MSG line awaiting its payload

    def feed(self, data: bytes) -> list[Event]:
        """The events completed by ``data``; raises :class:`ProtocolViolation`."""
        self._buffer += data
        events: list[Event] = []
        while True:
            if self._pending is not None:
                subject, sid, size = self._pending
                if len(self._buffer) < size + 2:
                    return events
                if self._buffer[size : size + 2] != b"\r\n":
                    raise ProtocolViolation("a message payload is longer than announced")
                events.append(Msg(subject, sid, bytes(self._buffer[:size])))
                del self._buffer[: size + 2]
                self._pending = None
                continue
            end = self._buffer.find(b"\r\n", 0, MAX_CONTROL_LINE + 2)
            if end < 0:
                if len(self._buffer) > MAX_CONTROL_LINE:
                    raise ProtocolViolation(f"a control line is over {MAX_CONTROL_LINE} bytes")
                return events
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 2]
            event = self._line(line)
            if event is not None:
                events.append(event)

    def _line(self, line: bytes) -> Event | None:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation("a control line is not UTF-8") from None
        op, _, rest = text.partition(" ")
        op = op.upper()
        if op == "MSG":
            args = rest.split()
            if len(args) not in (3, 4) or not args[-1].isdigit():
                raise ProtocolViolation(f"malformed MSG line: {text[:80]!r}")
            size = int(args[-1])
            if size > self.max_payload:
                raise ProtocolViolation(f"a message of {size} bytes is over max_payload")
            self._pending = (args[0], args[1], size)
            return None
        if op == "PING":
            return Ping()
        if op == "PONG":
            return Pong()
        if op == "+OK":
            return Ok()
        if op == "-ERR":
            return Err(rest.strip().strip("'"))
        if op == "INFO":
            try:
                fields = json.loads(rest)
            except ValueError:
                raise ProtocolViolation("INFO is not JSON") from None
            if not isinstance(fields, dict):
                raise ProtocolViolation("INFO is not a JSON object")
            return Info(fields)
        raise ProtocolViolation(f"unknown operation {op[:20]!r}")

"""The NATS protocol, sans I/O: parsing what a server sends, within bounds."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocppcable.nats import wire


def test_a_server_conversation_parses_into_events():
    parser = wire.Parser()
    data = (
        b'INFO {"server_id":"x","max_payload":1048576}\r\n'
        b"+OK\r\nPING\r\nPONG\r\n"
        b"MSG __anycable__ 1 5\r\nhello\r\n"
        b"MSG reply.to 2 _INBOX.x 0\r\n\r\n"
        b"-ERR 'Authorization Violation'\r\n"
    )
    assert parser.feed(data) == [
        wire.Info({"server_id": "x", "max_payload": 1048576}),
        wire.Ok(),
        wire.Ping(),
        wire.Pong(),
        wire.Msg("__anycable__", "1", b"hello"),
        wire.Msg("reply.to", "2", b""),
        wire.Err("Authorization Violation"),
    ]


@given(st.lists(st.binary(max_size=64), max_size=5), st.integers(min_value=1, max_value=7))
def test_events_do_not_depend_on_how_the_bytes_are_split(payloads, step):
    data = b"".join(b"MSG s 1 %d\r\n%s\r\nPING\r\n" % (len(p), p) for p in payloads)
    whole = wire.Parser().feed(data)
    parser = wire.Parser()
    pieces = [event for i in range(0, len(data), step) for event in parser.feed(data[i : i + step])]
    assert pieces == whole
    assert [e.payload for e in whole if isinstance(e, wire.Msg)] == payloads


def test_a_payload_split_across_a_crlf_boundary_waits_for_its_terminator():
    parser = wire.Parser()
    assert parser.feed(b"MSG s 1 2\r\nab\r") == []
    assert parser.feed(b"\n") == [wire.Msg("s", "1", b"ab")]


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"X" * (wire.MAX_CONTROL_LINE + 1), "control line"),
        (b"MSG s 1 %d\r\n" % (wire.DEFAULT_MAX_PAYLOAD + 1), "max_payload"),
        (b"MSG s 1 2\r\nabc\r\n", "longer than announced"),
        (b"MSG s\r\n", "malformed MSG"),
        (b"MSG s 1 -1\r\n", "malformed MSG"),
        (b"INFO [1]\r\n", "not a JSON object"),
        (b"INFO {\r\n", "not JSON"),
        (b"HMSG s 1 2 2\r\n", "unknown operation"),
        (b"\xff\r\n", "not UTF-8"),
    ],
)
def test_what_is_not_the_protocol_or_too_big_is_a_violation(data, reason):
    with pytest.raises(wire.ProtocolViolation, match=reason):
        wire.Parser().feed(data)


def test_the_payload_bound_follows_the_servers_max_payload():
    parser = wire.Parser(max_payload=4)
    assert parser.feed(b"MSG s 1 4\r\nabcd\r\n") == [wire.Msg("s", "1", b"abcd")]
    with pytest.raises(wire.ProtocolViolation):
        parser.feed(b"MSG s 1 5\r\n")


def test_what_a_client_sends():
    assert wire.pub("__anycable__", b"{}") == b"PUB __anycable__ 2\r\n{}\r\n"
    assert wire.sub("a.b", "7") == b"SUB a.b 7\r\n"
    line = wire.connect({"verbose": False, "user": "u"})
    assert line.endswith(b"\r\n") and json.loads(line[len(b"CONNECT ") :]) == {
        "verbose": False,
        "user": "u",
    }


@pytest.mark.parametrize(
    "subject, valid",
    [
        ("__anycable__", True),
        ("a.b.c", True),
        ("ocpp:ev/CP-1", True),
        ("", False),
        ("a b", False),
        ("a..b", False),
        (".a", False),
        ("a.*", False),
        ("a.>", False),
    ],
)
def test_subjects(subject, valid):
    assert wire.valid_subject(subject) is valid

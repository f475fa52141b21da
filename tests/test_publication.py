"""AnyCable publications: single, batch, remote disconnect command, malformed bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ocppcable import publication
from ocppcable.publication import MalformedPublication, Publication, RemoteDisconnect

RESET = '{"command":"Reset","payload":{"type":"Soft"}}'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"stream": "station/CP-1", "data": RESET},
            [Publication("station/CP-1", RESET, {})],
        ),
        (
            {"stream": "s", "data": RESET, "meta": {"exclude_socket": "x"}},
            [Publication("s", RESET, {"exclude_socket": "x"})],
        ),
        # data may be any JSON value (already decoded), and meta that is not an object is ignored
        ({"stream": "s", "data": {"command": "Reset"}}, [Publication("s", {"command": "Reset"})]),
        ({"stream": "s", "data": None}, [Publication("s", None)]),
        ({"stream": "s", "data": "x", "meta": "ignored"}, [Publication("s", "x")]),
        ({"stream": "s", "data": "x", "meta": None}, [Publication("s", "x")]),
        # a stream wins over a command
        (
            {"stream": "s", "data": "x", "command": "disconnect"},
            [Publication("s", "x")],
        ),
        # batch, in order
        (
            [
                {"stream": "a", "data": "1"},
                {"stream": "b", "data": "2"},
                {"stream": "a", "data": "3"},
            ],
            [Publication("a", "1"), Publication("b", "2"), Publication("a", "3")],
        ),
        ([{"stream": "only", "data": "x"}], [Publication("only", "x")]),
        # remote disconnect
        (
            {
                "command": "disconnect",
                "payload": {"identifier": '{"id":"CP-1"}', "reconnect": False},
            },
            [RemoteDisconnect('{"id":"CP-1"}', False)],
        ),
        (
            {"command": "disconnect", "payload": {"identifier": "x", "reconnect": True}},
            [RemoteDisconnect("x", True)],
        ),
        ({"command": "disconnect", "payload": {"identifier": "x"}}, [RemoteDisconnect("x", True)]),
        (
            [
                {"stream": "a", "data": "1"},
                {"command": "disconnect", "payload": {"identifier": "x", "reconnect": 0}},
            ],
            [Publication("a", "1"), RemoteDisconnect("x", False)],
        ),
    ],
)
def test_parse(body: Any, expected: list[Any]) -> None:
    text = json.dumps(body)
    assert publication.parse(text) == expected
    assert publication.parse(text.encode("utf-8")) == expected


def test_parse_utf8_bytes() -> None:
    body = json.dumps({"stream": "ü", "data": "ä"}, ensure_ascii=False).encode("utf-8")
    assert publication.parse(body) == [Publication("ü", "ä")]


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        b"\xff\xfe\x00",
        "{",
        "null",
        "42",
        '"stream"',
        "[]",
        "{}",
        '{"data":"x"}',
        '{"stream":"","data":"x"}',
        '{"stream":7,"data":"x"}',
        '{"stream":null,"data":"x"}',
        '{"stream":"s"}',
        '{"stream":"s","meta":{}}',
        '{"command":"broadcast","payload":{}}',
        '{"command":"disconnect"}',
        '{"command":"disconnect","payload":null}',
        '{"command":"disconnect","payload":{}}',
        '{"command":"disconnect","payload":{"identifier":7}}',
        '{"command":"disconnect","payload":{"identifier":null}}',
        '{"command":"disconnect","payload":{"identifier":""}}',
        '[{"command":"disconnect","payload":{"identifier":""}}]',
        '{"command":"disconnect","payload":"x"}',
        "[1]",
        '["stream"]',
        "[[]]",
        '[{"stream":"s","data":"x"}, 5]',
        '[{"stream":"s","data":"x"}, {"stream":"s"}]',
        # what cannot reach a station as standard JSON and UTF-8
        '{"stream":"s","data":{"command":"Reset","payload":{"x":Infinity}}}',
        '{"stream":"s","data":{"command":"Reset","payload":{"x":"\\udfff"}}}',
        '{"stream":"s","data":' + "[" * 40 + "]" * 40 + "}",
    ],
)
def test_malformed(body: str | bytes) -> None:
    with pytest.raises(MalformedPublication):
        publication.parse(body)


def test_malformed_publication_is_a_value_error() -> None:
    assert issubclass(MalformedPublication, ValueError)


def test_batch_with_skipped_items_keeps_the_good_ones() -> None:
    skipped: list[MalformedPublication] = []
    body = '[{"stream":"a","data":"1"}, 5, {"stream":"s"}, {"stream":"b","data":"2"}]'
    assert publication.parse(body, skipped) == [Publication("a", "1"), Publication("b", "2")]
    assert len(skipped) == 2
    assert all(isinstance(e, MalformedPublication) for e in skipped)


@pytest.mark.parametrize("body", ["[5, {}]", "not json", "[]", "{}", '{"stream":"s"}'])
def test_skipping_still_refuses_bodies_with_nothing_good(body: str) -> None:
    skipped: list[MalformedPublication] = []
    with pytest.raises(MalformedPublication):
        publication.parse(body, skipped)


def test_single_item_is_never_skipped() -> None:
    skipped: list[MalformedPublication] = []
    with pytest.raises(MalformedPublication):
        publication.parse('{"stream":"s"}', skipped)
    assert skipped == []


class _Counted:
    def __init__(self) -> None:
        self.counted: list[tuple[str, str, int]] = []

    def broadcast(self, source: str, outcome: str, stations: int) -> None:
        self.counted.append((source, outcome, stations))


def test_accept_counts_a_body_that_is_not_a_publication_as_dropped() -> None:
    metrics = _Counted()
    with pytest.raises(MalformedPublication):
        publication.accept("not json", "http", metrics)
    assert metrics.counted == [("http", "dropped", 0)]


def test_accept_logs_and_leaves_out_bad_items_of_a_batch(warnings: list[str]) -> None:
    metrics = _Counted()
    body = json.dumps([{"stream": "s", "data": "{}"}, {"no": "stream"}])
    assert publication.accept(body, "redis", metrics) == [Publication("s", "{}")]
    assert metrics.counted == []
    [warning] = warnings
    assert "dropped a malformed publication of a batch from redis" in warning


def test_accept_logs_the_bad_items_of_a_batch_in_one_line(warnings: list[str]) -> None:
    body = json.dumps([{"stream": "s", "data": "{}"}] + [{"no": "stream"}] * 1000)
    assert publication.accept(body, "redis", _Counted()) == [Publication("s", "{}")]
    [warning] = warnings
    assert "(1000 dropped from this batch)" in warning


def test_pubsub_message() -> None:
    item = Publication("ocpp:ev/1", "{}", {"exclude_socket": "abc"})
    assert publication.pubsub_message(item, "internal") == (
        "ocpp:ev/1",
        '{"stream":"ocpp:ev/1","data":"{}","meta":{"exclude_socket":"abc"}}',
    )
    assert publication.pubsub_message(RemoteDisconnect("ident", False), "internal") == (
        "internal",
        '{"command":"disconnect","payload":{"identifier":"ident","reconnect":false}}',
    )

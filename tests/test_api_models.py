"""The call API's request parsing, answers and command checks: pure functions."""

from __future__ import annotations

import json

import pytest

from ocppcable.api.models import (
    Answer,
    CallRequest,
    Invalid,
    Limits,
    Outcome,
    decode,
    parse_batch,
    parse_call,
    parse_page,
)
from ocppcable.api.validate import command_errors
from ocppcable.ocpp import v16, v201
from ocppcable.ocpp.validation import validator_for

LIMITS = Limits()


def errors_of(body, parse=parse_call):
    with pytest.raises(Invalid) as raised:
        parse(body, LIMITS)
    return raised.value.errors


def test_a_call_with_defaults():
    assert parse_call({"action": "Reset"}, LIMITS) == CallRequest("Reset", {}, 30.0, 0.0, None)


def test_a_call_with_everything():
    body = {"action": "Reset", "payload": {"type": "Soft"}, "wait": 0, "ttl": 60, "key": "k"}
    assert parse_call(body, LIMITS) == CallRequest("Reset", {"type": "Soft"}, 0.0, 60.0, "k")


def test_every_problem_is_listed():
    body = {"payload": [], "wait": True, "ttl": -1, "key": "", "extra": 1}
    assert errors_of(body) == [
        "unknown field 'extra'",
        "action must be a non-empty string",
        "payload must be a JSON object",
        "wait must be a number of seconds",
        "ttl must be between 0 and 604800 seconds",
        "key must be a string of 1 to 128 characters",
    ]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"x" * (LIMITS.max_body + 1), "the body is larger than 262144 bytes"),
        (b"\xff", "the body is not JSON"),
        (b"[" * 100 + b"]" * 100, "the body is not JSON"),
        (b'{"wait": NaN}', "the body is not JSON"),
        (b'"Reset"', "the body is not a JSON object"),
    ],
)
def test_bodies_that_are_not_json_objects(body, error):
    with pytest.raises(Invalid) as raised:
        decode(body, LIMITS)
    assert raised.value.errors == [error]


def test_a_batch():
    batch = parse_batch({"stations": ["A", "B"], "action": "ClearCache", "wait": 1}, LIMITS)
    assert batch.stations == ["A", "B"] and batch.call.wait == 1.0


def test_a_batch_over_the_limit():
    stations = [f"S{i}" for i in range(LIMITS.max_batch + 1)]
    assert errors_of({"stations": stations, "action": "Reset"}, parse_batch) == [
        "at most 1000 stations in one batch"
    ]


@pytest.mark.parametrize("station", [{}, [], 7])
def test_a_batch_listing_something_not_a_station_id(station):
    assert errors_of({"stations": ["A", station], "action": "Reset"}, parse_batch) == [
        f"not a station id: {str(station)!r}"
    ]


def test_a_page():
    assert parse_page({}, LIMITS) == (None, 100)
    assert parse_page({b"after": [b"CP-1"], b"limit": [b"5"]}, LIMITS) == ("CP-1", 5)
    for args in ({b"limit": [b"0"]}, {b"limit": [b"1001"]}, {b"after": [b"a b"]}):
        with pytest.raises(Invalid):
            parse_page(args, LIMITS)


@pytest.mark.parametrize(
    ("answer", "status", "body"),
    [
        (
            Answer("CP-1", "u", "Reset", Outcome.RESULT, payload={"status": "Accepted"}),
            200,
            {"payload": {"status": "Accepted"}},
        ),
        (
            Answer("CP-1", "u", "Reset", Outcome.ERROR, code="NotSupported"),
            200,
            {"code": "NotSupported", "description": "", "details": {}},
        ),
        (Answer("CP-1", "u", "Reset", Outcome.TIMEOUT), 504, {}),
        (Answer("CP-1", "u", "Reset", Outcome.SENT), 202, {}),
        (Answer("CP-1", "u", "Reset", Outcome.QUEUED), 202, {}),
        (Answer("CP-1", "u", "Reset", Outcome.OFFLINE), 404, {}),
        (Answer("CP-1", "u", "Reset", Outcome.INVALID, errors=["x"]), 422, {"errors": ["x"]}),
        (Answer("CP-1", "u", "Reset", Outcome.REFUSED, errors=["y"]), 429, {"errors": ["y"]}),
    ],
)
def test_answers(answer, status, body):
    assert answer.status == status
    common = {"station": "CP-1", "id": "u", "action": "Reset", "outcome": answer.outcome.value}
    assert json.loads(json.dumps(answer.to_json())) == {**common, **body}


CATALOGS = {"ocpp2.0.1": v201.CATALOG, "ocpp1.6": v16.CATALOG}
VALIDATORS = {name: validator_for(catalog) for name, catalog in CATALOGS.items()}


def test_a_command_for_the_station_version():
    assert command_errors("Reset", {"type": "Soft"}, "ocpp1.6", CATALOGS, VALIDATORS) == []
    assert command_errors("Reset", {"type": "Immediate"}, "ocpp1.6", CATALOGS, VALIDATORS) == [
        "ocpp1.6: data.type must be one of ['Hard', 'Soft']"
    ]
    assert command_errors("GetVariables", {}, "ocpp1.6", CATALOGS, VALIDATORS) == [
        "GetVariables is not a command of ocpp1.6"
    ]


def test_a_command_for_a_station_of_unknown_version_needs_one_version_that_takes_it():
    assert command_errors("Reset", {"type": "Immediate"}, None, CATALOGS, VALIDATORS) == []
    assert command_errors("Reset", {"type": "Medium"}, None, CATALOGS, VALIDATORS) == [
        "ocpp2.0.1: data.type must be one of ['Immediate', 'OnIdle']",
        "ocpp1.6: data.type must be one of ['Hard', 'Soft']",
    ]
    assert command_errors("Launch", {}, None, CATALOGS, VALIDATORS) == [
        "Launch is not a command of ocpp2.0.1",
        "Launch is not a command of ocpp1.6",
    ]


def test_without_validation_only_the_action_is_checked():
    assert command_errors("Reset", {"type": "Medium"}, "ocpp1.6", CATALOGS, {}) == []
    assert command_errors("Launch", {}, "ocpp1.6", CATALOGS, {}) != []

"""The OCPP 1.6 catalog against the official JSON schemas shipped in the PyPI ``ocpp`` package."""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any

import jsonschema
import pytest

from ocppcable.ocpp import v16
from ocppcable.ocpp.catalog import NO_REPLY, Default
from ocppcable.ocpp.framing import ErrorKind

CATALOG = v16.CATALOG
NOW = "2026-01-01T00:00:00.000Z"
INTERVAL = 30

#: 1.6 station actions whose response carries a decision only the backend can make
#: (docs/channel-contract.md, "Answering a CALL")
BACKEND_DECIDES = {"Authorize", "StartTransaction", "SignCertificate"}


def _schemas():
    return importlib.resources.files(CATALOG.schema_package).joinpath("schemas")


@functools.cache
def schema(name: str) -> dict[str, Any]:
    return json.loads(_schemas().joinpath(f"{name}.json").read_text(encoding="utf-8"))


def validator(name: str) -> jsonschema.protocols.Validator:
    document = schema(name)
    cls = jsonschema.validators.validator_for(document)
    cls.check_schema(document)
    return cls(document, format_checker=cls.FORMAT_CHECKER)


def is_valid(name: str, payload: Any) -> bool:
    return validator(name).is_valid(payload)


STATION_ACTIONS = sorted(CATALOG.station_actions)
COMMAND_ACTIONS = sorted(CATALOG.command_actions)


def test_schema_package_is_the_v16_one() -> None:
    assert CATALOG.schema_package == "ocpp.v16"
    assert _schemas().joinpath("BootNotificationResponse.json").is_file()


@pytest.mark.parametrize("action", STATION_ACTIONS)
def test_station_action_has_request_and_response_schema(action: str) -> None:
    assert _schemas().joinpath(f"{action}.json").is_file()
    assert _schemas().joinpath(f"{action}Response.json").is_file()


@pytest.mark.parametrize("action", COMMAND_ACTIONS)
def test_command_action_has_request_and_response_schema(action: str) -> None:
    assert _schemas().joinpath(f"{action}.json").is_file()
    assert _schemas().joinpath(f"{action}Response.json").is_file()


def test_catalog_covers_every_shipped_schema() -> None:
    """Every 1.6 action with a schema is in the catalog, in one direction or both."""
    shipped = {
        p.name.removesuffix(".json")
        for p in _schemas().iterdir()
        if p.name.endswith(".json") and not p.name.endswith("Response.json")
    }
    assert shipped == set(CATALOG.station_actions) | CATALOG.command_actions


def test_data_transfer_goes_both_ways() -> None:
    assert set(CATALOG.station_actions) & CATALOG.command_actions == {"DataTransfer"}


@pytest.mark.parametrize("action", [a for a in STATION_ACTIONS if a not in BACKEND_DECIDES])
def test_default_reply_is_schema_valid(action: str) -> None:
    reply = CATALOG.default_reply(action, NOW, INTERVAL)
    assert reply is not None
    errors = [e.message for e in validator(f"{action}Response").iter_errors(reply)]
    assert errors == [], f"default {action} reply {reply} is invalid: {errors}"


@pytest.mark.parametrize("action", sorted(BACKEND_DECIDES))
def test_no_default_reply_where_the_backend_decides(action: str) -> None:
    assert CATALOG.station_actions[action] is Default.NONE
    assert CATALOG.default_reply(action, NOW, INTERVAL) is None


def test_actions_without_default_are_exactly_the_backend_decisions() -> None:
    none = {a for a in STATION_ACTIONS if CATALOG.default_reply(a, NOW, INTERVAL) is None}
    assert none == BACKEND_DECIDES


@pytest.mark.parametrize("action", sorted(BACKEND_DECIDES))
def test_backend_decision_schemas_require_a_decision(action: str) -> None:
    """No answer that decides nothing is a valid reply to these actions."""
    document = schema(f"{action}Response")
    assert document.get("required")
    assert not is_valid(f"{action}Response", {})


@pytest.mark.parametrize("action", STATION_ACTIONS)
def test_empty_default_only_where_the_schema_requires_nothing(action: str) -> None:
    """``{}`` is the default exactly for the actions whose response requires no field,
    i.e. every notification; the others get a filled-in default or none at all."""
    requires_nothing = not schema(f"{action}Response").get("required")
    assert (CATALOG.default_reply(action, NOW, INTERVAL) == {}) is requires_nothing


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("BootNotification", {"status": "Accepted", "currentTime": NOW, "interval": INTERVAL}),
        ("Heartbeat", {"currentTime": NOW}),
        ("DataTransfer", {"status": "Accepted"}),
        ("StatusNotification", {}),
        ("MeterValues", {}),
        ("StopTransaction", {}),
        ("DiagnosticsStatusNotification", {}),
        ("FirmwareStatusNotification", {}),
        ("SecurityEventNotification", {}),
        ("LogStatusNotification", {}),
        ("SignedFirmwareStatusNotification", {}),
    ],
)
def test_default_reply_values(action: str, expected: dict[str, Any]) -> None:
    assert CATALOG.default_reply(action, NOW, INTERVAL) == expected


def test_boot_default_uses_the_given_time_and_interval() -> None:
    reply = CATALOG.default_reply("BootNotification", "2030-05-06T07:08:09Z", 300)
    assert reply == {"status": "Accepted", "currentTime": "2030-05-06T07:08:09Z", "interval": 300}
    assert is_valid("BootNotificationResponse", reply)


def test_default_replies_are_fresh_objects() -> None:
    first = CATALOG.default_reply("MeterValues", NOW, INTERVAL)
    first["mutated"] = True
    assert CATALOG.default_reply("MeterValues", NOW, INTERVAL) == {}


def test_compat_accepted_reply_is_invalid_for_most_actions() -> None:
    """Why defaults exist (docs/channel-contract.md, "Answering a CALL"):
    ``{"status":"Accepted"}`` breaks strict stations."""
    invalid = {a for a in STATION_ACTIONS if not is_valid(f"{a}Response", {"status": "Accepted"})}
    assert invalid >= set(STATION_ACTIONS) - {"DataTransfer", "SignCertificate"}


def test_no_reply_description() -> None:
    assert NO_REPLY == "backend sent no reply"


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (ErrorKind.FORMAT, "FormationViolation"),
        (ErrorKind.MESSAGE_TYPE, "FormationViolation"),
        (ErrorKind.NOT_IMPLEMENTED, "NotImplemented"),
        (ErrorKind.PROTOCOL, "ProtocolError"),
        (ErrorKind.PROPERTY, "PropertyConstraintViolation"),
        (ErrorKind.TYPE, "TypeConstraintViolation"),
        (ErrorKind.OCCURRENCE, "OccurenceConstraintViolation"),
        (ErrorKind.INTERNAL, "InternalError"),
        (ErrorKind.SECURITY, "SecurityError"),
        (ErrorKind.GENERIC, "GenericError"),
    ],
)
def test_error_codes(kind: ErrorKind, code: str) -> None:
    assert CATALOG.error_code(kind) == code


def test_every_error_kind_has_a_16_code() -> None:
    assert set(CATALOG.error_codes) == set(ErrorKind)


def test_subprotocol() -> None:
    assert CATALOG.subprotocol == "ocpp1.6"


@pytest.mark.parametrize(
    ("payload", "serial"),
    [
        (
            {
                "meterSerialNumber": "M",
                "chargeBoxSerialNumber": "B",
                "chargePointSerialNumber": "P",
            },
            "M",
        ),
        ({"chargeBoxSerialNumber": "B", "chargePointSerialNumber": "P"}, "B"),
        ({"chargePointSerialNumber": "P"}, "P"),
        ({"meterSerialNumber": "", "chargeBoxSerialNumber": "B"}, "B"),
        ({"meterSerialNumber": 7, "chargePointSerialNumber": "P"}, "P"),
        ({"chargePointVendor": "V", "chargePointModel": "X"}, None),
        ({}, None),
    ],
)
def test_serial_number(payload: dict[str, Any], serial: str | None) -> None:
    assert CATALOG.serial_number(payload) == serial

"""The OCPP 2.0.1 and 2.1 catalogs against the official JSON schemas of the PyPI ``ocpp``
package."""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any

import jsonschema
import pytest

from ocppcable.ocpp import v21, v201
from ocppcable.ocpp.catalog import Catalog, Default
from ocppcable.ocpp.framing import ErrorKind
from ocppcable.ocpp.validation import Validator, Violation

NOW = "2026-01-01T00:00:00.000Z"
INTERVAL = 30

CATALOGS: dict[str, Catalog] = {c.subprotocol: c for c in (v201.CATALOG, v21.CATALOG)}

#: station actions whose response carries a decision only the backend can make
#: (docs/channel-contract.md, "Answering a CALL")
_BACKEND_DECIDES_201 = frozenset(
    {
        "Authorize",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "SignCertificate",
    }
)
BACKEND_DECIDES: dict[str, frozenset[str]] = {
    "ocpp2.0.1": _BACKEND_DECIDES_201,
    "ocpp2.1": _BACKEND_DECIDES_201
    | {
        "GetCertificateChainStatus",
        "OpenPeriodicEventStream",
        "PullDynamicScheduleUpdate",
        "VatNumberValidation",
    },
}

#: actions with a shipped schema that the catalog deliberately does not list, and why
LEFT_OUT: dict[str, dict[str, str]] = {
    "ocpp2.0.1": {},
    "ocpp2.1": {
        "NotifyPeriodicEventStream": "a SEND (message type 6): unconfirmed, no response schema,"
        " so neither a station CALL with a default reply nor a command",
    },
}

EXPECTED_CALL_ERROR_CODES = frozenset(
    {
        "FormatViolation",
        "GenericError",
        "InternalError",
        "MessageTypeNotSupported",
        "NotImplemented",
        "NotSupported",
        "OccurrenceConstraintViolation",
        "PropertyConstraintViolation",
        "ProtocolError",
        "RpcFrameworkError",
        "SecurityError",
        "TypeConstraintViolation",
    }
)


def _schemas(catalog: Catalog):
    return importlib.resources.files(catalog.schema_package).joinpath("schemas")


@functools.cache
def schema(package: str, name: str) -> dict[str, Any]:
    path = importlib.resources.files(package).joinpath("schemas", f"{name}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def validator(catalog: Catalog, name: str) -> jsonschema.protocols.Validator:
    document = schema(catalog.schema_package, name)
    cls = jsonschema.validators.validator_for(document, default=jsonschema.Draft202012Validator)
    cls.check_schema(document)
    return cls(document, format_checker=cls.FORMAT_CHECKER)


def is_valid(catalog: Catalog, name: str, payload: Any) -> bool:
    return validator(catalog, name).is_valid(payload)


def _params(select) -> list[Any]:
    return [
        pytest.param(version, action, id=f"{version}-{action}")
        for version, catalog in CATALOGS.items()
        for action in sorted(select(version, catalog))
    ]


STATION = _params(lambda _, c: c.station_actions)
COMMANDS = _params(lambda _, c: c.command_actions)
WITH_DEFAULT = _params(lambda v, c: (a for a in c.station_actions if a not in BACKEND_DECIDES[v]))
DECIDED = _params(lambda v, _: BACKEND_DECIDES[v])
VERSIONS = pytest.mark.parametrize("version", sorted(CATALOGS))


@functools.cache
def compiled(version: str) -> Validator:
    return Validator(CATALOGS[version])


# --- identity ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("catalog", "subprotocol", "package"),
    [(v201.CATALOG, "ocpp2.0.1", "ocpp.v201"), (v21.CATALOG, "ocpp2.1", "ocpp.v21")],
)
def test_identity(catalog: Catalog, subprotocol: str, package: str) -> None:
    assert catalog.subprotocol == subprotocol
    assert catalog.schema_package == package
    assert catalog.request_schema_suffix == "Request"
    assert _schemas(catalog).joinpath("BootNotificationRequest.json").is_file()


# --- classification ---------------------------------------------------------------------


@pytest.mark.parametrize(("version", "action"), STATION)
def test_station_action_has_request_and_response_schema(version: str, action: str) -> None:
    schemas = _schemas(CATALOGS[version])
    assert schemas.joinpath(f"{action}Request.json").is_file()
    assert schemas.joinpath(f"{action}Response.json").is_file()


@pytest.mark.parametrize(("version", "action"), COMMANDS)
def test_command_action_has_request_and_response_schema(version: str, action: str) -> None:
    schemas = _schemas(CATALOGS[version])
    assert schemas.joinpath(f"{action}Request.json").is_file()
    assert schemas.joinpath(f"{action}Response.json").is_file()


def _shipped_actions(catalog: Catalog) -> set[str]:
    names = {
        p.name.removesuffix(".json")
        for p in _schemas(catalog).iterdir()
        if p.name.endswith(".json")
    }
    return {n.removesuffix("Request").removesuffix("Response") for n in names}


@VERSIONS
def test_catalog_covers_every_shipped_schema(version: str) -> None:
    """Every action with a schema is classified (one direction or both) unless left out."""
    catalog = CATALOGS[version]
    classified = set(catalog.station_actions) | catalog.command_actions
    assert _shipped_actions(catalog) - set(LEFT_OUT[version]) == classified


@pytest.mark.parametrize(
    ("version", "action"),
    [pytest.param(v, a, id=f"{v}-{a}") for v, left in LEFT_OUT.items() for a in left],
)
def test_left_out_actions_are_real_and_unclassified(version: str, action: str) -> None:
    catalog = CATALOGS[version]
    assert action in _shipped_actions(catalog)
    assert action not in catalog.station_actions
    assert action not in catalog.command_actions


def test_notify_periodic_event_stream_is_a_send_without_response() -> None:
    schemas = _schemas(v21.CATALOG)
    assert schemas.joinpath("NotifyPeriodicEventStream.json").is_file()
    assert not schemas.joinpath("NotifyPeriodicEventStreamRequest.json").is_file()
    assert not schemas.joinpath("NotifyPeriodicEventStreamResponse.json").is_file()


@VERSIONS
def test_data_transfer_goes_both_ways(version: str) -> None:
    catalog = CATALOGS[version]
    assert set(catalog.station_actions) & catalog.command_actions == {"DataTransfer"}


def test_v201_station_actions_are_the_documented_ones() -> None:
    assert set(v201.CATALOG.station_actions) == {
        "Authorize",
        "BootNotification",
        "ClearedChargingLimit",
        "DataTransfer",
        "FirmwareStatusNotification",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyReport",
        "PublishFirmwareStatusNotification",
        "ReportChargingProfiles",
        "ReservationStatusUpdate",
        "SecurityEventNotification",
        "SignCertificate",
        "StatusNotification",
        "TransactionEvent",
    }


def test_v21_extends_v201_unchanged() -> None:
    old, new = v201.CATALOG, v21.CATALOG
    assert {a: new.station_actions[a] for a in old.station_actions} == dict(old.station_actions)
    assert old.command_actions <= new.command_actions
    assert len(new.station_actions) == 36
    assert len(new.command_actions) == 55
    assert new.error_codes == old.error_codes
    assert new.call_error_codes == old.call_error_codes


@pytest.mark.parametrize(
    "action",
    ["RequestStartTransaction", "RequestStopTransaction", "GetVariables", "SetVariables"]
    + ["TriggerMessage", "Reset", "ChangeAvailability", "DataTransfer"],
)
@VERSIONS
def test_common_commands(version: str, action: str) -> None:
    assert action in CATALOGS[version].command_actions


# --- default replies --------------------------------------------------------------------


@pytest.mark.parametrize(("version", "action"), WITH_DEFAULT)
def test_default_reply_is_schema_valid(version: str, action: str) -> None:
    catalog = CATALOGS[version]
    reply = catalog.default_reply(action, NOW, INTERVAL)
    assert reply is not None
    errors = [e.message for e in validator(catalog, f"{action}Response").iter_errors(reply)]
    assert errors == [], f"default {action} reply {reply} is invalid: {errors}"


@pytest.mark.parametrize(("version", "action"), DECIDED)
def test_no_default_reply_where_the_backend_decides(version: str, action: str) -> None:
    catalog = CATALOGS[version]
    assert catalog.station_actions[action] is Default.NONE
    assert catalog.default_reply(action, NOW, INTERVAL) is None
    # no answer that decides nothing is a valid reply to these actions
    assert schema(catalog.schema_package, f"{action}Response").get("required")
    assert not is_valid(catalog, f"{action}Response", {})


@VERSIONS
def test_actions_without_default_are_exactly_the_backend_decisions(version: str) -> None:
    catalog = CATALOGS[version]
    none = {a for a, d in catalog.station_actions.items() if d is Default.NONE}
    assert none == BACKEND_DECIDES[version]
    assert {a for a in none if catalog.default_reply(a, NOW, INTERVAL) is None} == none


@pytest.mark.parametrize(("version", "action"), STATION)
def test_empty_default_exactly_where_the_schema_requires_nothing(version: str, action: str) -> None:
    catalog = CATALOGS[version]
    requires_nothing = not schema(catalog.schema_package, f"{action}Response").get("required")
    assert (catalog.station_actions[action] is Default.EMPTY) is requires_nothing


@VERSIONS
@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("BootNotification", {"status": "Accepted", "currentTime": NOW, "interval": INTERVAL}),
        ("Heartbeat", {"currentTime": NOW}),
        ("DataTransfer", {"status": "Accepted"}),
        ("StatusNotification", {}),
        ("TransactionEvent", {}),
        ("NotifyReport", {}),
    ],
)
def test_default_reply_values(version: str, action: str, expected: dict[str, Any]) -> None:
    assert CATALOGS[version].default_reply(action, NOW, INTERVAL) == expected


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("BatterySwap", {}),
        ("ClosePeriodicEventStream", {}),
        ("NotifyDERAlarm", {}),
        ("NotifyDERStartStop", {}),
        ("NotifyPriorityCharging", {}),
        ("NotifySettlement", {}),
        ("ReportDERControl", {}),
    ],
)
def test_v21_new_notification_defaults(action: str, expected: dict[str, Any]) -> None:
    assert v21.CATALOG.default_reply(action, NOW, INTERVAL) == expected


# --- error codes ------------------------------------------------------------------------


@VERSIONS
@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (ErrorKind.FORMAT, "FormatViolation"),
        (ErrorKind.MESSAGE_TYPE, "MessageTypeNotSupported"),
        (ErrorKind.NOT_IMPLEMENTED, "NotImplemented"),
        (ErrorKind.PROTOCOL, "ProtocolError"),
        (ErrorKind.PROPERTY, "PropertyConstraintViolation"),
        (ErrorKind.TYPE, "TypeConstraintViolation"),
        (ErrorKind.OCCURRENCE, "OccurrenceConstraintViolation"),
        (ErrorKind.INTERNAL, "InternalError"),
        (ErrorKind.SECURITY, "SecurityError"),
        (ErrorKind.GENERIC, "GenericError"),
    ],
)
def test_error_codes(version: str, kind: ErrorKind, code: str) -> None:
    assert CATALOGS[version].error_code(kind) == code


@VERSIONS
def test_error_codes_are_defined_codes(version: str) -> None:
    catalog = CATALOGS[version]
    assert set(catalog.error_codes) == set(ErrorKind)
    assert set(catalog.error_codes.values()) <= catalog.call_error_codes
    assert catalog.call_error_codes == EXPECTED_CALL_ERROR_CODES


# --- serial number ----------------------------------------------------------------------


@VERSIONS
@pytest.mark.parametrize(
    ("payload", "serial"),
    [
        (
            {
                "reason": "PowerUp",
                "chargingStation": {"model": "M", "vendorName": "V", "serialNumber": "SN-1"},
            },
            "SN-1",
        ),
        ({"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}, None),
        ({"chargingStation": {"serialNumber": ""}}, None),
        ({"chargingStation": {"serialNumber": 7}}, None),
        ({"chargingStation": "SN-1"}, None),
        ({"serialNumber": "SN-1"}, None),
        ({"chargeBoxSerialNumber": "B"}, None),  # a 1.6 field means nothing here
        ({}, None),
    ],
)
def test_serial_number(version: str, payload: dict[str, Any], serial: str | None) -> None:
    assert CATALOGS[version].serial_number(payload) == serial


# --- the compiled validator -------------------------------------------------------------

BOOT = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}


@VERSIONS
def test_validator_compiles_every_schema(version: str) -> None:
    compiled(version)


@VERSIONS
def test_valid_boot_notification_passes(version: str) -> None:
    compiled(version).check_request("BootNotification", BOOT)
    compiled(version).check_request(
        "BootNotification",
        {**BOOT, "chargingStation": {**BOOT["chargingStation"], "serialNumber": "S"}},
    )


@VERSIONS
@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ({"chargingStation": BOOT["chargingStation"]}, ErrorKind.OCCURRENCE),
        ({**BOOT, "reason": "Bogus"}, ErrorKind.PROPERTY),
        ({**BOOT, "chargingStation": {"model": "M" * 21, "vendorName": "V"}}, ErrorKind.TYPE),
        ({**BOOT, "chargingStation": {"model": 5, "vendorName": "V"}}, ErrorKind.TYPE),
        ({**BOOT, "chargingStation": "x"}, ErrorKind.TYPE),
        ({**BOOT, "extra": 1}, ErrorKind.FORMAT),
    ],
    ids=["missing", "enum", "too-long", "wrong-type", "not-object", "extra-field"],
)
def test_invalid_boot_notification_is_a_violation(
    version: str, payload: dict[str, Any], kind: ErrorKind
) -> None:
    with pytest.raises(Violation) as caught:
        compiled(version).check_request("BootNotification", payload)
    assert caught.value.kind is kind


@pytest.mark.parametrize(("version", "action"), WITH_DEFAULT)
def test_default_reply_passes_the_compiled_validator(version: str, action: str) -> None:
    reply = CATALOGS[version].default_reply(action, NOW, INTERVAL)
    compiled(version).check_response(action, reply)


@VERSIONS
def test_command_validation(version: str) -> None:
    checks = compiled(version)
    checks.check_command("Reset", {"type": "Immediate"})
    with pytest.raises(Violation) as caught:
        checks.check_command("Reset", {"type": "Hard"})  # the 1.6 value
    assert caught.value.kind is ErrorKind.PROPERTY
    for action in ("BootNotification", "RemoteStartTransaction", "Nonsense"):
        with pytest.raises(Violation) as caught:
            checks.check_command(action, {})
        assert caught.value.kind is ErrorKind.NOT_IMPLEMENTED

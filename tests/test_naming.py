"""Action Cable action names for OCPP actions (Rails' ``String#underscore``)."""

from __future__ import annotations

import re

import pytest

from ocppcable.ocpp import v16
from ocppcable.ocpp.naming import snake_case

#: every OCPP 1.6 action (both directions, with the security extension) and its channel action
V16_NAMES = {
    # station → central system
    "Authorize": "authorize",
    "BootNotification": "boot_notification",
    "DataTransfer": "data_transfer",
    "DiagnosticsStatusNotification": "diagnostics_status_notification",
    "FirmwareStatusNotification": "firmware_status_notification",
    "Heartbeat": "heartbeat",
    "MeterValues": "meter_values",
    "StartTransaction": "start_transaction",
    "StatusNotification": "status_notification",
    "StopTransaction": "stop_transaction",
    "SecurityEventNotification": "security_event_notification",
    "SignCertificate": "sign_certificate",
    "LogStatusNotification": "log_status_notification",
    "SignedFirmwareStatusNotification": "signed_firmware_status_notification",
    # central system → station
    "CancelReservation": "cancel_reservation",
    "ChangeAvailability": "change_availability",
    "ChangeConfiguration": "change_configuration",
    "ClearCache": "clear_cache",
    "ClearChargingProfile": "clear_charging_profile",
    "GetCompositeSchedule": "get_composite_schedule",
    "GetConfiguration": "get_configuration",
    "GetDiagnostics": "get_diagnostics",
    "GetLocalListVersion": "get_local_list_version",
    "RemoteStartTransaction": "remote_start_transaction",
    "RemoteStopTransaction": "remote_stop_transaction",
    "ReserveNow": "reserve_now",
    "Reset": "reset",
    "SendLocalList": "send_local_list",
    "SetChargingProfile": "set_charging_profile",
    "TriggerMessage": "trigger_message",
    "UnlockConnector": "unlock_connector",
    "UpdateFirmware": "update_firmware",
    "CertificateSigned": "certificate_signed",
    "DeleteCertificate": "delete_certificate",
    "ExtendedTriggerMessage": "extended_trigger_message",
    "GetInstalledCertificateIds": "get_installed_certificate_ids",
    "GetLog": "get_log",
    "InstallCertificate": "install_certificate",
    "SignedUpdateFirmware": "signed_update_firmware",
}


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        # the examples of docs/contract.md, "Station CALLs"
        ("BootNotification", "boot_notification"),
        ("MeterValues", "meter_values"),
        ("SignCertificate", "sign_certificate"),
        ("Get15118EVCertificate", "get15118_ev_certificate"),
        # Rails' underscore on acronyms, digits and odd input
        ("NotifyEVChargingNeeds", "notify_ev_charging_needs"),
        ("NotifyEVChargingSchedule", "notify_ev_charging_schedule"),
        ("GetCertificateStatus", "get_certificate_status"),
        ("ISO15118CertificateHashData", "iso15118_certificate_hash_data"),
        ("HTTPRequest", "http_request"),
        ("EV", "ev"),
        ("A", "a"),
        ("already_snake", "already_snake"),
        ("Some-Action", "some_action"),
        ("", ""),
    ],
)
def test_snake_case(action: str, expected: str) -> None:
    assert snake_case(action) == expected


@pytest.mark.parametrize(("action", "expected"), sorted(V16_NAMES.items()))
def test_every_v16_action(action: str, expected: str) -> None:
    assert snake_case(action) == expected


def test_table_covers_the_whole_v16_catalog() -> None:
    catalog = v16.CATALOG
    assert set(V16_NAMES) == set(catalog.station_actions) | catalog.command_actions


def test_v16_names_are_distinct_identifiers() -> None:
    actions = set(v16.CATALOG.station_actions) | v16.CATALOG.command_actions
    names = [snake_case(action) for action in actions]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", name) for name in names)

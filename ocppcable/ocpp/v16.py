# -*- test-case-name: tests.test_catalog_v16 -*-
"""OCPP 1.6J (with the 1.6 security extension)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ocppcable.ocpp.catalog import Catalog, Default
from ocppcable.ocpp.framing import ErrorKind


def _serial_number(payload: Mapping[str, Any]) -> str | None:
    for key in ("meterSerialNumber", "chargeBoxSerialNumber", "chargePointSerialNumber"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return None


CATALOG = Catalog(
    subprotocol="ocpp1.6",
    station_actions={
        "Authorize": Default.NONE,
        "BootNotification": Default.BOOT,
        "DataTransfer": Default.ACCEPTED,
        "DiagnosticsStatusNotification": Default.EMPTY,
        "FirmwareStatusNotification": Default.EMPTY,
        "Heartbeat": Default.TIME,  # answered locally by the session, without an RPC
        "MeterValues": Default.EMPTY,
        "StartTransaction": Default.NONE,
        "StatusNotification": Default.EMPTY,
        "StopTransaction": Default.EMPTY,
        "SecurityEventNotification": Default.EMPTY,
        "SignCertificate": Default.NONE,
        "LogStatusNotification": Default.EMPTY,
        "SignedFirmwareStatusNotification": Default.EMPTY,
    },
    command_actions=frozenset(
        {
            "CancelReservation",
            "ChangeAvailability",
            "ChangeConfiguration",
            "ClearCache",
            "ClearChargingProfile",
            "DataTransfer",
            "GetCompositeSchedule",
            "GetConfiguration",
            "GetDiagnostics",
            "GetLocalListVersion",
            "RemoteStartTransaction",
            "RemoteStopTransaction",
            "ReserveNow",
            "Reset",
            "SendLocalList",
            "SetChargingProfile",
            "TriggerMessage",
            "UnlockConnector",
            "UpdateFirmware",
            "CertificateSigned",
            "DeleteCertificate",
            "ExtendedTriggerMessage",
            "GetInstalledCertificateIds",
            "GetLog",
            "InstallCertificate",
            "SignedUpdateFirmware",
        }
    ),
    error_codes={
        ErrorKind.RPC_FRAMEWORK: "FormationViolation",
        ErrorKind.FORMAT: "FormationViolation",
        ErrorKind.MESSAGE_TYPE: "FormationViolation",
        ErrorKind.NOT_IMPLEMENTED: "NotImplemented",
        ErrorKind.PROTOCOL: "ProtocolError",
        ErrorKind.PROPERTY: "PropertyConstraintViolation",
        ErrorKind.TYPE: "TypeConstraintViolation",
        ErrorKind.OCCURRENCE: "OccurenceConstraintViolation",  # sic: the 1.6 spelling
        ErrorKind.INTERNAL: "InternalError",
        ErrorKind.SECURITY: "SecurityError",
        ErrorKind.GENERIC: "GenericError",
    },
    serial_number=_serial_number,
    schema_package="ocpp.v16",
    announce_protocol=False,
    call_error_codes=frozenset(
        {
            "NotImplemented",
            "NotSupported",
            "InternalError",
            "ProtocolError",
            "SecurityError",
            "FormationViolation",
            "PropertyConstraintViolation",
            "OccurenceConstraintViolation",
            "TypeConstraintViolation",
            "GenericError",
        }
    ),
)

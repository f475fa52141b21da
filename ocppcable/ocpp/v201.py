# -*- test-case-name: tests.test_catalog_v2 -*-
"""OCPP 2.0.1.

The module-level tables are shared with :mod:`ocppcable.ocpp.v21`, which extends them; they
are read-only so that neither catalog can change the other by accident.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ocppcable.ocpp.catalog import Catalog, Default
from ocppcable.ocpp.framing import ErrorKind

#: Charging Station → CSMS actions and the default reply to each (docs/channel-contract.md,
#: "Answering a CALL"). ``EMPTY`` is used exactly where the response schema requires no field,
#: i.e. for the notifications.
STATION_ACTIONS: Mapping[str, Default] = MappingProxyType(
    {
        "Authorize": Default.NONE,  # idTokenInfo.status: the authorization decision
        "BootNotification": Default.BOOT,
        "ClearedChargingLimit": Default.EMPTY,
        "DataTransfer": Default.ACCEPTED,
        "FirmwareStatusNotification": Default.EMPTY,
        "Get15118EVCertificate": Default.NONE,  # status + exiResponse: only the CSMS/PKI has it
        "GetCertificateStatus": Default.NONE,  # status: the OCSP verdict on a certificate
        "Heartbeat": Default.TIME,  # answered locally by the session, without an RPC
        "LogStatusNotification": Default.EMPTY,
        "MeterValues": Default.EMPTY,
        "NotifyChargingLimit": Default.EMPTY,
        "NotifyCustomerInformation": Default.EMPTY,
        "NotifyDisplayMessages": Default.EMPTY,
        # status Accepted promises a charging schedule, Processing that one is being computed,
        # Rejected refuses the service: each is a smart-charging decision of the CSMS
        "NotifyEVChargingNeeds": Default.NONE,
        # status says whether the EV's proposed schedule fits the CSMS's limits (ISO 15118
        # renegotiation): accepting it unseen would grant the EV a schedule nobody checked
        "NotifyEVChargingSchedule": Default.NONE,
        "NotifyEvent": Default.EMPTY,
        "NotifyMonitoringReport": Default.EMPTY,
        "NotifyReport": Default.EMPTY,
        "PublishFirmwareStatusNotification": Default.EMPTY,
        "ReportChargingProfiles": Default.EMPTY,
        "ReservationStatusUpdate": Default.EMPTY,
        "SecurityEventNotification": Default.EMPTY,
        "SignCertificate": Default.NONE,  # status: whether the CSR will be signed
        "StatusNotification": Default.EMPTY,
        # every response field is optional; {} carries no idTokenInfo, so it authorizes nothing
        "TransactionEvent": Default.EMPTY,
    }
)

#: CSMS → Charging Station actions the backend may send as remote commands
COMMAND_ACTIONS: frozenset[str] = frozenset(
    {
        "CancelReservation",
        "CertificateSigned",
        "ChangeAvailability",
        "ClearCache",
        "ClearChargingProfile",
        "ClearDisplayMessage",
        "ClearVariableMonitoring",
        "CostUpdated",
        "CustomerInformation",
        "DataTransfer",
        "DeleteCertificate",
        "GetBaseReport",
        "GetChargingProfiles",
        "GetCompositeSchedule",
        "GetDisplayMessages",
        "GetInstalledCertificateIds",
        "GetLocalListVersion",
        "GetLog",
        "GetMonitoringReport",
        "GetReport",
        "GetTransactionStatus",
        "GetVariables",
        "InstallCertificate",
        "PublishFirmware",
        "RequestStartTransaction",
        "RequestStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "SetDisplayMessage",
        "SetMonitoringBase",
        "SetMonitoringLevel",
        "SetNetworkProfile",
        "SetVariableMonitoring",
        "SetVariables",
        "TriggerMessage",
        "UnlockConnector",
        "UnpublishFirmware",
        "UpdateFirmware",
    }
)

#: OCPP-J 2.x spelling (FormatViolation, OccurrenceConstraintViolation); same in 2.1
ERROR_CODES: Mapping[ErrorKind, str] = MappingProxyType(
    {
        ErrorKind.RPC_FRAMEWORK: "RpcFrameworkError",
        ErrorKind.FORMAT: "FormatViolation",
        ErrorKind.MESSAGE_TYPE: "MessageTypeNotSupported",
        ErrorKind.NOT_IMPLEMENTED: "NotImplemented",
        ErrorKind.PROTOCOL: "ProtocolError",
        ErrorKind.PROPERTY: "PropertyConstraintViolation",
        ErrorKind.TYPE: "TypeConstraintViolation",
        ErrorKind.OCCURRENCE: "OccurrenceConstraintViolation",
        ErrorKind.INTERNAL: "InternalError",
        ErrorKind.SECURITY: "SecurityError",
        ErrorKind.GENERIC: "GenericError",
    }
)

#: OCPP-J 2.0.1 "Valid Error Codes"; the OCPP-J 2.1 table is identical
CALL_ERROR_CODES: frozenset[str] = frozenset(
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


def serial_number(payload: Mapping[str, Any]) -> str | None:
    """BootNotificationRequest ``chargingStation.serialNumber`` (optional), 2.0.1 and 2.1."""
    station = payload.get("chargingStation")
    if isinstance(station, Mapping):
        value = station.get("serialNumber")
        if isinstance(value, str) and value:
            return value
    return None


CATALOG = Catalog(
    subprotocol="ocpp2.0.1",
    station_actions=STATION_ACTIONS,
    command_actions=COMMAND_ACTIONS,
    error_codes=ERROR_CODES,
    serial_number=serial_number,
    schema_package="ocpp.v201",
    call_error_codes=CALL_ERROR_CODES,
    request_schema_suffix="Request",
)

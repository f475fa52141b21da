# -*- test-case-name: tests.test_catalog_v2 -*-
"""OCPP 2.1: every 2.0.1 action (unchanged direction and default reply) plus the 2.1 additions.

``NotifyPeriodicEventStream`` is a SEND (message type 6): unconfirmed, with no response at all
(and a schema named without the ``Request`` suffix), so it is listed in ``send_actions``, not as
a station CALL with a default reply nor as a command.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ocppcable.ocpp import v201
from ocppcable.ocpp.catalog import Catalog, Default
from ocppcable.ocpp.framing import TYPES_21

#: Charging Station → CSMS actions new in 2.1
NEW_STATION_ACTIONS: Mapping[str, Default] = MappingProxyType(
    {
        # battery in/out event; the response has no field (authorization is a separate
        # Authorize), so {} only acknowledges it
        "BatterySwap": Default.EMPTY,
        "ClosePeriodicEventStream": Default.EMPTY,
        "GetCertificateChainStatus": Default.NONE,  # certificateStatus: the OCSP/CRL verdict
        "NotifyDERAlarm": Default.EMPTY,
        "NotifyDERStartStop": Default.EMPTY,
        "NotifyPriorityCharging": Default.EMPTY,
        "NotifySettlement": Default.EMPTY,  # receiptUrl/receiptId are optional
        # status accepts or rejects the stream: a decision, and accepting it would invite
        # NotifyPeriodicEventStream SENDs that the backend never agreed to receive
        "OpenPeriodicEventStream": Default.NONE,
        # status (+ scheduleUpdate): whether and how the dynamic schedule changes
        "PullDynamicScheduleUpdate": Default.NONE,
        "ReportDERControl": Default.EMPTY,
        # status + vatNumber (+ company): whether the VAT number is valid, only the CSMS knows
        "VatNumberValidation": Default.NONE,
    }
)

#: CSMS → Charging Station actions new in 2.1
NEW_COMMAND_ACTIONS: frozenset[str] = frozenset(
    {
        "AFRRSignal",
        "AdjustPeriodicEventStream",
        "ChangeTransactionTariff",
        "ClearDERControl",
        "ClearTariffs",
        "GetDERControl",
        "GetPeriodicEventStream",
        "GetTariffs",
        "NotifyAllowedEnergyTransfer",
        "NotifyWebPaymentStarted",
        "RequestBatterySwap",
        "SetDERControl",
        "SetDefaultTariff",
        "UpdateDynamicSchedule",
        "UsePriorityCharging",
    }
)

STATION_ACTIONS: Mapping[str, Default] = MappingProxyType(
    {**v201.STATION_ACTIONS, **NEW_STATION_ACTIONS}
)
COMMAND_ACTIONS: frozenset[str] = v201.COMMAND_ACTIONS | NEW_COMMAND_ACTIONS

CATALOG = Catalog(
    subprotocol="ocpp2.1",
    station_actions=STATION_ACTIONS,
    command_actions=COMMAND_ACTIONS,
    error_codes=v201.ERROR_CODES,
    serial_number=v201.serial_number,
    schema_package="ocpp.v21",
    call_error_codes=v201.CALL_ERROR_CODES,
    request_schema_suffix="Request",
    message_types=TYPES_21,
    send_actions=frozenset({"NotifyPeriodicEventStream"}),
)

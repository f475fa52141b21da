"""OCPP 2.0.1 as a simulated charging station speaks it.

Each of the station's connectors of the 1.6 model is an EVSE here, with one connector (id 1).
Sessions are Authorize, then TransactionEvent Started / Updated (the meter readings) / Ended
with a transaction id the station makes up; the settings are device-model variables
(``Component.Variable``) read and written with GetVariables/SetVariables.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from ocppcable import __version__
from ocppcable.ocpp import v201
from ocppcable.simulator.dialects.base import (
    ACCEPTED,
    AVAILABLE,
    HEARTBEAT,
    MEASURAND,
    METER,
    MODEL,
    REJECTED,
    VENDOR,
    Dialect,
    Message,
    Payload,
    Reply,
    Setting,
    Station,
    Transaction,
    status_result,
)

TOKEN_TYPE = "ISO14443"
CONNECTOR = 1  # the one connector of every EVSE

#: TransactionEvent triggerReason of an Ended event, by stoppedReason
_STOP_TRIGGERS = {
    "Local": "StopAuthorized",
    "Remote": "RemoteStop",
    "DeAuthorized": "Deauthorized",
    "ImmediateReset": "ResetCommand",
}
#: TriggerMessage requestedMessage values the station sends; the rest are NotImplemented
TRIGGERS = frozenset({"BootNotification", "Heartbeat", "StatusNotification", "MeterValues"})
UNKNOWN_COMPONENT, UNKNOWN_VARIABLE = "UnknownComponent", "UnknownVariable"
NOT_SUPPORTED_ATTRIBUTE = "NotSupportedAttributeType"
ACTUAL = "Actual"  # the only attributeType the station has


class V201(Dialect):
    version = "2.0.1"
    catalog = v201.CATALOG
    max_id_token = 36  # IdTokenType.idToken: string(36)
    settings: ClassVar[dict[str, Setting]] = {
        "AuthCtrlr.AuthorizeRemoteStart": Setting(True, "false"),
        "HeartbeatCtrlr.Interval": Setting(False, seconds=True, state=HEARTBEAT),
        "SampledDataCtrlr.TxUpdatedInterval": Setting(False, seconds=True, state=METER),
        "SampledDataCtrlr.TxUpdatedMeasurands": Setting(False, MEASURAND),
        "TxCtrlr.EVConnectionTimeOut": Setting(False, "60", seconds=True),
    }
    components = frozenset(name.split(".", 1)[0] for name in settings)

    # --- the station's messages ------------------------------------------------------------------

    def status_connectors(self, connectors: int) -> range:
        return range(1, connectors + 1)  # EVSE ids; there is no status of the whole station

    def id_token(self, tag: str) -> Payload:
        return {"idToken": tag, "type": TOKEN_TYPE}

    def boot(self, station_id: str, reason: str) -> Payload:
        station = {
            "model": MODEL,
            "vendorName": VENDOR,
            "serialNumber": station_id,
            "firmwareVersion": __version__,
        }
        return {"chargingStation": station, "reason": reason}

    def connector_status(self, state: str) -> str:
        return "Available" if state == AVAILABLE else "Occupied"

    def status(self, connector: int, status: str, timestamp: str) -> Payload:
        return {
            "timestamp": timestamp,
            "connectorStatus": status,
            "evseId": connector,
            "connectorId": CONNECTOR,
        }

    def authorize(self, token: Payload) -> Payload:
        return {"idToken": token}

    def authorized(self, reply: Payload) -> bool:
        return reply["idTokenInfo"]["status"] == ACCEPTED

    @staticmethod
    def _meter_value(reading: int, context: str, timestamp: str) -> list[Payload]:
        sample = {
            "value": reading,
            "context": context,
            "measurand": MEASURAND,
            "unitOfMeasure": {"unit": "Wh"},
        }
        return [{"timestamp": timestamp, "sampledValue": [sample]}]

    def _event(
        self,
        tx: Transaction,
        event: str,
        trigger: str,
        info: Payload,
        timestamp: str,
        reading: int,
        context: str,
    ) -> Payload:
        """A TransactionEvent with one meter reading; takes the transaction's next seqNo."""
        payload = {
            "eventType": event,
            "timestamp": timestamp,
            "triggerReason": trigger,
            "seqNo": tx.seq_no,
            "transactionInfo": info,
            "meterValue": self._meter_value(reading, context, timestamp),
        }
        tx.seq_no += 1
        return payload

    def start(self, tx: Transaction, meter_start: int, timestamp: str) -> Message:
        info: Payload = {"transactionId": str(uuid.uuid4()), "chargingState": "Charging"}
        if tx.remote_id is not None:
            info["remoteStartId"] = tx.remote_id
        trigger = "Authorized" if tx.local else "RemoteStart"
        payload = self._event(
            tx, "Started", trigger, info, timestamp, meter_start, "Transaction.Begin"
        )
        payload["evse"] = {"id": tx.connector_id, "connectorId": CONNECTOR}
        payload["idToken"] = tx.token
        return "TransactionEvent", payload

    def started(self, request: Payload, reply: Reply) -> tuple[Any, bool] | None:
        # the station made the transaction up: it runs whether or not the CSMS answered
        info = None if reply is None else reply.get("idTokenInfo")
        accepted = info is None or info["status"] == ACCEPTED
        return request["transactionInfo"]["transactionId"], accepted

    def sample(self, tx: Transaction, reading: int, timestamp: str) -> Message:
        info = {"transactionId": tx.transaction_id, "chargingState": "Charging"}
        payload = self._event(
            tx, "Updated", "MeterValuePeriodic", info, timestamp, reading, "Sample.Periodic"
        )
        return "TransactionEvent", payload

    def triggered_sample(
        self, connector: int, tx: Transaction | None, reading: int, timestamp: str
    ) -> Message:
        return "MeterValues", {
            "evseId": connector,
            "meterValue": self._meter_value(reading, "Trigger", timestamp),
        }

    def stop(self, tx: Transaction, meter_stop: int, timestamp: str) -> Message:
        reason = tx.stop_reason
        info = {"transactionId": tx.transaction_id, "stoppedReason": reason}
        trigger = _STOP_TRIGGERS.get(reason, "AbnormalCondition")
        payload = self._event(tx, "Ended", trigger, info, timestamp, meter_stop, "Transaction.End")
        return "TransactionEvent", payload

    # --- remote commands -------------------------------------------------------------------------

    def _trigger_message(self, station: Station, payload: Payload) -> Payload:
        requested, evse = payload["requestedMessage"], payload.get("evse")
        if requested not in TRIGGERS:
            return status_result("NotImplemented")
        if evse is not None and evse.get("connectorId", CONNECTOR) != CONNECTOR:
            return status_result(REJECTED)
        return status_result(station.trigger(requested, None if evse is None else evse["id"]))

    def _reset(self, station: Station, payload: Payload) -> Payload:
        if "evseId" in payload:  # resetting a single EVSE is optional; not simulated
            return status_result(REJECTED)
        return status_result(station.reset("ImmediateReset", on_idle=payload["type"] == "OnIdle"))

    def _request_start(self, station: Station, payload: Payload) -> Payload:
        started = station.remote_start(
            payload["idToken"], payload.get("evseId"), payload["remoteStartId"]
        )
        return status_result(ACCEPTED if started else REJECTED)

    def _request_stop(self, station: Station, payload: Payload) -> Payload:
        return status_result(
            ACCEPTED if station.remote_stop(payload["transactionId"]) else REJECTED
        )

    def _variable(self, data: Payload) -> tuple[str | None, str]:
        """The setting ``data`` (GetVariableData/SetVariableData) names, or None and why not."""
        component, variable = data["component"], data["variable"]
        if component["name"] not in self.components or {"instance", "evse"} & component.keys():
            return None, UNKNOWN_COMPONENT
        name = f"{component['name']}.{variable['name']}"
        if name not in self.settings or "instance" in variable:
            return None, UNKNOWN_VARIABLE
        if data.get("attributeType", ACTUAL) != ACTUAL:
            return None, NOT_SUPPORTED_ATTRIBUTE
        return name, ACCEPTED

    @staticmethod
    def _result(data: Payload, status: str) -> Payload:
        result = {
            "attributeStatus": status,
            "component": data["component"],
            "variable": data["variable"],
        }
        if "attributeType" in data:
            result["attributeType"] = data["attributeType"]
        return result

    def _get_variables(self, station: Station, payload: Payload) -> Payload:
        results = []
        for data in payload["getVariableData"]:
            name, status = self._variable(data)
            result = self._result(data, status)
            if name is not None:
                result["attributeValue"] = station.setting(name)
            results.append(result)
        return {"getVariableResult": results}

    def _set_variables(self, station: Station, payload: Payload) -> Payload:
        results = []
        for data in payload["setVariableData"]:
            name, status = self._variable(data)
            if name is not None:
                status = station.change_setting(name, data["attributeValue"])
            results.append(self._result(data, status))
        return {"setVariableResult": results}

    commands = {
        "GetVariables": _get_variables,
        "RequestStartTransaction": _request_start,
        "RequestStopTransaction": _request_stop,
        "Reset": _reset,
        "SetVariables": _set_variables,
        "TriggerMessage": _trigger_message,
    }

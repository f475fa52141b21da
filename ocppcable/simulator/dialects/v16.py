"""OCPP 1.6J as a simulated charge point speaks it."""

from __future__ import annotations

from typing import Any, ClassVar

from ocppcable import __version__
from ocppcable.ocpp import v16
from ocppcable.simulator.dialects.base import (
    ACCEPTED,
    CONNECTORS,
    HEARTBEAT,
    MEASURAND,
    METER,
    MODEL,
    REJECTED,
    UNKNOWN,
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

#: TriggerMessage requests for a notification the station has nothing to report in
IDLE_NOTIFICATIONS = frozenset({"DiagnosticsStatusNotification", "FirmwareStatusNotification"})


class V16(Dialect):
    version = "1.6"
    catalog = v16.CATALOG
    max_id_token = 20  # IdToken: CiString20Type
    settings: ClassVar[dict[str, Setting]] = {
        "AuthorizeRemoteTxRequests": Setting(True, "false"),
        "ConnectionTimeOut": Setting(False, "60", seconds=True),
        "HeartbeatInterval": Setting(False, seconds=True, state=HEARTBEAT),
        "MeterValueSampleInterval": Setting(False, seconds=True, state=METER),
        "MeterValuesSampledData": Setting(False, MEASURAND),
        "NumberOfConnectors": Setting(True, state=CONNECTORS),
        "SupportedFeatureProfiles": Setting(True, "Core,RemoteTrigger"),
    }

    # --- the station's messages ------------------------------------------------------------------

    def status_connectors(self, connectors: int) -> range:
        return range(connectors + 1)  # connector 0: the charge point as a whole

    def id_token(self, tag: str) -> str:
        return tag

    def boot(self, station_id: str, reason: str) -> Payload:
        return {
            "chargePointVendor": VENDOR,
            "chargePointModel": MODEL,
            "firmwareVersion": __version__,
            "meterSerialNumber": station_id,
        }

    def connector_status(self, state: str) -> str:
        return state  # AVAILABLE, PREPARING and CHARGING are 1.6 ChargePointStatus values

    def status(self, connector: int, status: str, timestamp: str) -> Payload:
        return {
            "connectorId": connector,
            "errorCode": "NoError",
            "status": status,
            "timestamp": timestamp,
        }

    def authorize(self, token: str) -> Payload:
        return {"idTag": token}

    def authorized(self, reply: Payload) -> bool:
        return reply["idTagInfo"]["status"] == ACCEPTED

    def start(self, tx: Transaction, meter_start: int, timestamp: str) -> Message:
        payload = {
            "connectorId": tx.connector_id,
            "idTag": tx.token,
            "meterStart": meter_start,
            "timestamp": timestamp,
        }
        return "StartTransaction", payload

    def started(self, request: Payload, reply: Reply) -> tuple[Any, bool] | None:
        if reply is None:  # no transaction id: the central system knows of no transaction
            return None
        return reply["transactionId"], reply["idTagInfo"]["status"] == ACCEPTED

    def _meter_values(
        self, connector: int, tx: Transaction | None, reading: int, context: str, timestamp: str
    ) -> Message:
        sample = {"value": str(reading), "context": context, "measurand": MEASURAND, "unit": "Wh"}
        payload: Payload = {
            "connectorId": connector,
            "meterValue": [{"timestamp": timestamp, "sampledValue": [sample]}],
        }
        if tx is not None and tx.transaction_id is not None:
            payload["transactionId"] = tx.transaction_id
        return "MeterValues", payload

    def sample(self, tx: Transaction, reading: int, timestamp: str) -> Message:
        return self._meter_values(tx.connector_id, tx, reading, "Sample.Periodic", timestamp)

    def triggered_sample(
        self, connector: int, tx: Transaction | None, reading: int, timestamp: str
    ) -> Message:
        return self._meter_values(connector, tx, reading, "Trigger", timestamp)

    def stop(self, tx: Transaction, meter_stop: int, timestamp: str) -> Message:
        payload = {
            "transactionId": tx.transaction_id,
            "idTag": tx.token,
            "meterStop": meter_stop,
            "timestamp": timestamp,
            "reason": tx.stop_reason,
        }
        return "StopTransaction", payload

    # --- remote commands -------------------------------------------------------------------------

    def _trigger_message(self, station: Station, payload: Payload) -> Payload:
        requested, connector = payload["requestedMessage"], payload.get("connectorId")
        notification = {"status": "Idle"} if requested in IDLE_NOTIFICATIONS else None
        return status_result(station.trigger(requested, connector, notification))

    def _reset(self, station: Station, payload: Payload) -> Payload:
        return status_result(
            station.reset("HardReset" if payload["type"] == "Hard" else "SoftReset")
        )

    def _remote_start(self, station: Station, payload: Payload) -> Payload:
        started = station.remote_start(payload["idTag"], payload.get("connectorId"))
        return status_result(ACCEPTED if started else REJECTED)

    def _remote_stop(self, station: Station, payload: Payload) -> Payload:
        return status_result(
            ACCEPTED if station.remote_stop(payload["transactionId"]) else REJECTED
        )

    def _change_configuration(self, station: Station, payload: Payload) -> Payload:
        status = station.change_setting(payload["key"], payload["value"])
        return status_result("NotSupported" if status == UNKNOWN else status)

    def _get_configuration(self, station: Station, payload: Payload) -> Payload:
        keys = payload.get("key") or list(self.settings)
        reply: Payload = {
            "configurationKey": [
                {"key": key, "readonly": self.settings[key].readonly, "value": station.setting(key)}
                for key in keys
                if key in self.settings
            ]
        }
        unknown = [key for key in keys if key not in self.settings]
        if unknown:
            reply["unknownKey"] = unknown
        return reply

    commands = {
        "ChangeConfiguration": _change_configuration,
        "GetConfiguration": _get_configuration,
        "RemoteStartTransaction": _remote_start,
        "RemoteStopTransaction": _remote_stop,
        "Reset": _reset,
        "TriggerMessage": _trigger_message,
    }

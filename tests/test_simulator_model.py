"""The simulated station's sans-I/O model and its dialects (OCPP 1.6 and 2.0.1): every frame
the station sends is checked against the official schemas of its version."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema
import pytest
from twisted.logger import capturedLogs, formatEvent

from ocppcable import __version__
from ocppcable.effects import CancelTimer, Close, Send, StartTimer
from ocppcable.simulator.commands import commands_log
from ocppcable.simulator.config import Config
from ocppcable.simulator.dialects import DIALECTS
from ocppcable.simulator.effects import Effect, Finished, Reconnect
from ocppcable.simulator.model import (
    BOOT_RETRY,
    REBOOT_DELAY,
    RECONNECT_DELAY,
    StationModel,
)
from ocppcable.simulator.stats import Stats

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
TIME = "2025-06-15T15:06:40Z"


@functools.cache
def schema(name: str, version: str = "1.6") -> Any:
    """An official OCPP schema (from the ``ocpp`` package), checked with jsonschema (not with
    the fastjsonschema validators the code under test uses)."""
    package = DIALECTS[version].catalog.schema_package
    text = (resources.files(package) / "schemas" / f"{name}.json").read_text("utf-8")
    document = json.loads(text)
    checker = jsonschema.validators.validator_for(document)
    return checker(document, format_checker=checker.FORMAT_CHECKER)


def central_system(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What an accepting central system answers; transaction ids are always 7."""
    if action == "BootNotification":
        return {"status": "Accepted", "currentTime": TIME, "interval": 300}
    if action == "Heartbeat":
        return {"currentTime": TIME}
    if action == "Authorize":
        return {"idTagInfo": {"status": "Accepted"}}
    if action == "StartTransaction":
        return {"transactionId": 7, "idTagInfo": {"status": "Accepted"}}
    return {}


def csms(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What an accepting OCPP 2.0.1 CSMS answers."""
    if action in ("BootNotification", "Heartbeat"):
        return central_system(action, payload)
    if action == "Authorize":
        return {"idTokenInfo": {"status": "Accepted"}}
    if action == "TransactionEvent" and payload["eventType"] == "Started":
        return {"idTokenInfo": {"status": "Accepted"}}
    return {}


ANSWERS = {"1.6": central_system, "2.0.1": csms}


class Harness:
    """A :class:`StationModel` whose effects are recorded, with the clock in the test's hand.

    Every frame the station sends is checked against the official schemas of its OCPP version:
    its CALLs against the request schemas, its answers to commands against the response
    schemas.
    """

    def __init__(self, **settings: Any) -> None:
        self.config = Config(url="ws://test/ocpp", **settings)
        self.stats = Stats()
        self.now = NOW
        catalog = DIALECTS[self.config.ocpp].catalog
        self.request_suffix = catalog.request_schema_suffix
        dialect = DIALECTS[self.config.ocpp]
        self.model = StationModel("CP-1", self.config, dialect, self.stats, lambda: self.now)
        self.frames: list[list[Any]] = []  # everything sent, decoded
        self.timers: dict[str, float] = {}  # running timers: name → seconds
        self.events: list[Effect] = []  # Close, Reconnect, Finished
        self._commands: dict[str, str] = {}  # uniqueId of a command → its action
        self._answered: set[str] = set()

    def apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Send(text):
                    self._sent(json.loads(text))
                case StartTimer(name, seconds):
                    self.timers[name] = seconds
                case CancelTimer(name):
                    self.timers.pop(name, None)
                case _:
                    self.events.append(effect)

    def _sent(self, frame: list[Any]) -> None:
        version = self.config.ocpp
        if frame[0] == 2:
            schema(frame[2] + self.request_suffix, version).validate(frame[3])
        elif frame[0] == 3:
            schema(self._commands[frame[1]] + "Response", version).validate(frame[2])
        self.frames.append(frame)

    # --- driving the model ---

    def connect(self) -> None:
        self.apply(self.model.connected())

    def receive(self, frame: list[Any]) -> None:
        self.apply(self.model.received(json.dumps(frame)))

    def fire(self, name: str, after: float = 0.0) -> None:
        del self.timers[name]
        self.now += after
        if name == "call":  # a timeout: the station gives up on its CALL
            self._answered.add(self.pending()[1])
        self.apply(self.model.timer_fired(name))

    def disconnect(self, reason: str = "close code 1006, gone") -> None:
        call = self.pending()
        if call is not None:  # lost with the connection
            self._answered.add(call[1])
        self.apply(self.model.disconnected(reason))

    def command(self, action: str, payload: dict[str, Any], unique_id: str = "cmd") -> list[Any]:
        """Send a remote command; returns the station's answer."""
        self._commands[unique_id] = action
        self.receive([2, unique_id, action, payload])
        return next(f for f in self.frames if f[0] in (3, 4) and f[1] == unique_id)

    # --- the station's CALLs ---

    def pending(self) -> list[Any] | None:
        """The station's CALL waiting for a reply, if any (there is never more than one)."""
        waiting = [f for f in self.frames if f[0] == 2 and f[1] not in self._answered]
        assert len(waiting) <= 1, waiting
        return waiting[0] if waiting else None

    def reply(self, payload: dict[str, Any]) -> list[Any]:
        call = self.pending()
        self._answered.add(call[1])
        self.receive([3, call[1], payload])
        return call

    def reply_error(self, code: str, description: str = "") -> list[Any]:
        call = self.pending()
        self._answered.add(call[1])
        self.receive([4, call[1], code, description, {}])
        return call

    def serve(self, answer: Any = None) -> list[list[Any]]:
        """Answer CALLs as ``answer`` says (default: an accepting central system of the
        station's version) until the station waits for nothing; returns them."""
        answer = answer or ANSWERS[self.config.ocpp]
        served = []
        while (call := self.pending()) is not None:
            served.append(self.reply(answer(call[2], call[3])))
        return served

    def boot(self) -> None:
        self.connect()
        self.serve()

    def sent_calls(self, action: str) -> list[dict[str, Any]]:
        return [f[3] for f in self.frames if f[0] == 2 and f[2] == action]


def actions(calls: list[list[Any]]) -> list[str]:
    return [call[2] for call in calls]


# --- registration ---------------------------------------------------------------------------


def test_boot_then_one_status_per_connector_one_call_at_a_time():
    station = Harness(connectors=2)
    station.connect()
    boot = station.pending()
    assert boot[2] == "BootNotification" and boot[3]["meterSerialNumber"] == "CP-1"
    assert station.timers == {"call": 30.0}
    station.reply(central_system("BootNotification", {}))
    assert station.timers == {"call": 30.0, "heartbeat": 300}
    statuses = station.serve()
    assert [(c[3]["connectorId"], c[3]["status"]) for c in statuses] == [
        (0, "Available"),
        (1, "Available"),
        (2, "Available"),
    ]
    assert station.timers == {"heartbeat": 300}
    assert (station.stats.connected, station.stats.booted, station.stats.stations_booted) == (
        1,
        1,
        1,
    )
    assert station.stats.calls == {"BootNotification": 1, "StatusNotification": 3}
    assert len(station.stats.latencies) == 4 and not station.stats.problems


def test_heartbeat_option_overrides_the_boot_interval():
    station = Harness(heartbeat=15)
    station.boot()
    assert station.timers == {"heartbeat": 15}
    station.fire("heartbeat", after=15)
    assert station.pending()[2] == "Heartbeat" and station.timers["heartbeat"] == 15
    station.serve()


def test_pending_registration_retries_and_only_answers_triggers():
    station = Harness(sessions=1)
    station.connect()
    station.reply({"status": "Pending", "currentTime": TIME, "interval": 7})
    assert station.pending() is None and station.timers == {"boot": 7}
    assert station.stats.booted == 0
    assert station.command("TriggerMessage", {"requestedMessage": "Heartbeat"})[2] == {
        "status": "Accepted"
    }
    assert actions(station.serve()) == ["Heartbeat"]  # triggered messages go out while Pending
    station.fire("boot", after=7)
    assert actions(station.serve()) == [
        "BootNotification",
        "StatusNotification",
        "StatusNotification",
        "StatusNotification",  # connector 1: Preparing
        "Authorize",
        "StartTransaction",
        "StatusNotification",  # connector 1: Charging
    ]
    assert station.stats.booted == 1


@pytest.mark.parametrize("version", sorted(DIALECTS))
def test_rejected_registration_sends_nothing_but_boots(version: str):
    station = Harness(ocpp=version)
    station.connect()
    station.reply({"status": "Rejected", "currentTime": TIME, "interval": 0})
    assert station.timers == {"boot": BOOT_RETRY}
    answer = station.command("TriggerMessage", {"requestedMessage": "StatusNotification"})
    assert answer[2] == {"status": "Rejected"} and station.pending() is None


def test_call_errors_invalid_replies_and_timeouts_are_counted_and_boot_is_retried():
    station = Harness()
    station.connect()
    station.reply_error("InternalError", "backend sent no reply")
    assert station.stats.call_errors == {"InternalError": 1}
    assert station.timers == {"boot": BOOT_RETRY}
    station.fire("boot", after=BOOT_RETRY)
    station.reply({"status": "Accepted"})  # no currentTime, no interval
    assert station.stats.errors == {"invalid reply": 1}
    station.fire("boot", after=BOOT_RETRY)
    station.fire("call", after=30)
    assert station.stats.timeouts == {"BootNotification": 1}
    assert station.stats.problems == 3 and len(station.stats.latencies) == 2


def test_a_timed_out_call_lets_the_next_one_go():
    station = Harness()
    station.connect()
    station.reply(central_system("BootNotification", {}))
    assert station.pending()[3]["connectorId"] == 0
    station.fire("call", after=30)
    assert station.stats.timeouts == {"StatusNotification": 1}
    assert station.pending()[3]["connectorId"] == 1


def test_unexpected_replies_and_malformed_frames_are_errors():
    station = Harness()
    station.boot()
    station.receive([3, "nobody-asked", {}])
    station.apply(station.model.received("not json"))
    station.apply(station.model.binary_received())
    assert station.stats.errors == {"unexpected reply": 1, "malformed frame": 2}


# --- charging sessions ------------------------------------------------------------------------


def test_a_charging_session_from_authorize_to_stop():
    station = Harness(sessions=1, session_length=60, meter_interval=20)
    station.connect()
    served = station.serve()
    assert actions(served)[-3:] == ["Authorize", "StartTransaction", "StatusNotification"]
    assert served[-2][3] == {
        "connectorId": 1,
        "idTag": "SIMULATOR",
        "meterStart": 0,
        "timestamp": "2025-06-15T15:06:40.000Z",
    }
    assert served[-1][3]["status"] == "Charging"
    assert station.timers == {"heartbeat": 300, "meter:1": 20, "end:1": 60}

    station.fire("meter:1", after=20)
    (values,) = station.serve()
    assert values[3]["transactionId"] == 7
    assert values[3]["meterValue"][0]["sampledValue"][0] == {
        "value": "61",  # 11 kW for 20 s
        "context": "Sample.Periodic",
        "measurand": "Energy.Active.Import.Register",
        "unit": "Wh",
    }
    station.now += 40
    station.fire("end:1")
    stop, available = station.serve()
    assert stop[2] == "StopTransaction" and available[3]["status"] == "Available"
    assert stop[3]["meterStop"] == 183 and stop[3]["reason"] == "Local"
    assert stop[3]["transactionId"] == 7
    assert "meter:1" not in station.timers and "end:1" not in station.timers
    assert station.events == [Finished()]
    stats = station.stats
    assert (stats.sessions_started, stats.sessions_completed, stats.sessions_refused) == (1, 1, 0)


def test_sessions_run_one_after_the_other_then_the_station_is_finished():
    station = Harness(sessions=2, session_length=1, meter_interval=0)
    station.boot()
    assert "meter:1" not in station.timers
    station.fire("end:1", after=1)
    station.serve()
    assert station.events == []
    station.fire("end:1", after=1)
    station.serve()
    assert len(station.sent_calls("StartTransaction")) == 2
    assert station.events == [Finished()]


def test_a_refused_id_tag_ends_the_session():
    station = Harness(sessions=1)

    def refusing(action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "Authorize":
            return {"idTagInfo": {"status": "Invalid"}}
        return central_system(action, payload)

    station.connect()
    served = station.serve(refusing)
    assert actions(served)[-2:] == ["Authorize", "StatusNotification"]
    assert served[-1][3]["status"] == "Available"
    assert station.stats.sessions_refused == 1 and station.events == [Finished()]
    assert not station.stats.problems  # the central system's decision, not an error


# --- remote commands ------------------------------------------------------------------------


def test_remote_start_and_stop():
    station = Harness(meter_interval=0)
    station.boot()
    answer = station.command("RemoteStartTransaction", {"idTag": "R-1", "connectorId": 1}, "s")
    assert answer == [3, "s", {"status": "Accepted"}]
    assert station.frames.index(answer) < station.frames.index(station.pending())
    served = station.serve()
    assert actions(served) == ["StatusNotification", "StartTransaction", "StatusNotification"]
    assert served[1][3]["idTag"] == "R-1"  # started without an Authorize

    busy = station.command("RemoteStartTransaction", {"idTag": "R-2", "connectorId": 1}, "b")
    assert busy[2] == {"status": "Rejected"}
    other = station.command("RemoteStopTransaction", {"transactionId": 8}, "x")
    assert other[2] == {"status": "Rejected"}
    assert station.command("RemoteStopTransaction", {"transactionId": 7}, "t")[2] == {
        "status": "Accepted"
    }
    stop, _ = station.serve()
    assert stop[3]["reason"] == "Remote" and stop[3]["idTag"] == "R-1"
    assert station.model.transactions == {}
    assert station.stats.commands == {"RemoteStartTransaction": 2, "RemoteStopTransaction": 2}
    assert station.events == []  # remote sessions are not the station's own --sessions


def test_reset_stops_transactions_then_reboots():
    station = Harness(sessions=2)
    station.boot()
    station.now += 30
    assert station.command("Reset", {"type": "Hard"})[2] == {"status": "Accepted"}
    stop = station.reply({})
    assert stop[2] == "StopTransaction" and stop[3]["reason"] == "HardReset"
    assert stop[3]["meterStop"] == 92  # 11 kW for 30 s
    assert station.events == [Close(1000, "reset")] and station.pending() is None
    assert station.stats.booted == 0
    station.disconnect("close code 1000, reset")
    assert station.events[-1] == Reconnect(REBOOT_DELAY)
    station.connect()
    served = station.serve()
    assert actions(served)[:4] == ["BootNotification"] + ["StatusNotification"] * 3
    assert station.sent_calls("StartTransaction")[-1]["meterStart"] == stop[3]["meterStop"]
    assert not station.stats.problems and station.stats.booted == 1


def test_reset_without_transactions_closes_right_after_the_reply():
    station = Harness()
    station.boot()
    answer = station.command("Reset", {"type": "Soft"})
    assert answer[2] == {"status": "Accepted"} and station.frames[-1] == answer
    assert station.events == [Close(1000, "reset")] and "heartbeat" not in station.timers


def test_trigger_message_answers_first_then_sends_the_message():
    station = Harness(connectors=2, sessions=1)
    station.boot()
    answer = station.command(
        "TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 1}, "m"
    )
    (values,) = station.serve()
    assert station.frames.index(answer) < station.frames.index(values)
    assert values[3]["transactionId"] == 7
    assert values[3]["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"

    station.command("TriggerMessage", {"requestedMessage": "StatusNotification"}, "s")
    statuses = [c[3]["status"] for c in station.serve()]
    assert statuses == ["Available", "Charging", "Available"]
    for requested in ("BootNotification", "Heartbeat", "FirmwareStatusNotification"):
        station.command("TriggerMessage", {"requestedMessage": requested}, requested)
        assert actions(station.serve())[0] == requested
    unknown = station.command(
        "TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 3}, "u"
    )
    assert unknown[2] == {"status": "Rejected"} and station.pending() is None


def test_configuration_keys():
    station = Harness(connectors=2)
    station.boot()
    everything = station.command("GetConfiguration", {}, "all")[2]
    values = {k["key"]: (k["readonly"], k["value"]) for k in everything["configurationKey"]}
    assert values["HeartbeatInterval"] == (False, "300")
    assert values["NumberOfConnectors"] == (True, "2")
    assert "unknownKey" not in everything

    def change(key: str, value: str) -> str:
        unique_id = f"change-{len(station.frames)}"
        answer = station.command("ChangeConfiguration", {"key": key, "value": value}, unique_id)
        return answer[2]["status"]

    assert change("HeartbeatInterval", "45") == "Accepted" and station.timers["heartbeat"] == 45
    assert change("HeartbeatInterval", "soon") == "Rejected"
    assert change("NumberOfConnectors", "4") == "Rejected"
    assert change("NoSuchKey", "1") == "NotSupported"
    assert change("MeterValuesSampledData", "Power.Active.Import") == "Accepted"
    some = station.command(
        "GetConfiguration", {"key": ["HeartbeatInterval", "MeterValuesSampledData", "Nope"]}, "x"
    )[2]
    assert some == {
        "configurationKey": [
            {"key": "HeartbeatInterval", "readonly": False, "value": "45"},
            {"key": "MeterValuesSampledData", "readonly": False, "value": "Power.Active.Import"},
        ],
        "unknownKey": ["Nope"],
    }


def test_unsimulated_and_invalid_commands_get_callerrors():
    station = Harness()
    station.boot()
    unlock = station.command("UnlockConnector", {"connectorId": 1}, "u")
    assert unlock[:3] == [4, "u", "NotImplemented"]
    invalid = station.command("TriggerMessage", {"requestedMessage": "Coffee"}, "t")
    assert invalid[:3] == [4, "t", "PropertyConstraintViolation"]
    assert station.stats.commands == {"UnlockConnector": 1, "TriggerMessage": 1}
    assert station.stats.errors == {"invalid command": 1}


# --- connections ----------------------------------------------------------------------------


def test_a_network_reconnect_resumes_without_booting():
    station = Harness(sessions=1, meter_interval=10)
    station.boot()
    station.fire("meter:1", after=10)
    station.disconnect()
    assert station.events == [Reconnect(RECONNECT_DELAY)]
    assert station.stats.errors == {"connection lost": 1}
    assert (station.stats.connected, station.stats.booted) == (0, 0)
    assert "meter:1" in station.timers  # the session goes on offline
    station.connect()
    resumed = station.serve()
    assert "BootNotification" not in actions(resumed)
    assert [c[3].get("status") for c in resumed if c[2] == "StatusNotification"] == [
        "Available",
        "Charging",
    ]
    assert station.stats.booted == 1


def test_a_failed_connection_is_retried():
    station = Harness()
    station.apply(station.model.connection_failed("connect failed", "Connection refused"))
    assert station.events == [Reconnect(RECONNECT_DELAY)]
    assert station.stats.errors == {"connect failed": 1}


def test_stop_closes_and_nothing_is_an_error_afterwards():
    station = Harness()
    station.boot()
    station.apply(station.model.stop())
    assert station.events == [Close(1000, "simulation over")]
    station.apply(station.model.received('[2,"late","Reset",{"type":"Soft"}]'))
    station.disconnect("close code 1000, simulation over")
    assert station.events == [Close(1000, "simulation over")]
    assert not station.stats.problems and station.stats.connected == 0


# --- OCPP 2.0.1 -----------------------------------------------------------------------------
# The same Harness, with ocpp="2.0.1": every frame the station sends is checked against the
# official 2.0.1 schemas, and the model checks every reply and command with the 2.0.1 catalog.

V201 = {"ocpp": "2.0.1"}
STAMP = "2025-06-15T15:06:40.000Z"  # the station's own timestamps, at NOW
TOKEN = {"idToken": "SIMULATOR", "type": "ISO14443"}


def reading(event: dict[str, Any]) -> tuple[Any, str]:
    """The value and context of the one sampled value of a TransactionEvent or MeterValues."""
    sample = event["meterValue"][0]["sampledValue"][0]
    return sample["value"], sample["context"]


def test_v201_boot_reports_every_evse_then_heartbeats():
    station = Harness(connectors=2, **V201)
    station.connect()
    boot = station.pending()
    assert boot[2:] == [
        "BootNotification",
        {
            "chargingStation": {
                "model": "simulated station",
                "vendorName": "ocppcable",
                "serialNumber": "CP-1",
                "firmwareVersion": __version__,
            },
            "reason": "PowerUp",
        },
    ]
    station.reply(csms("BootNotification", {}))
    statuses = station.serve()
    assert [c[3] for c in statuses] == [
        {"timestamp": STAMP, "connectorStatus": "Available", "evseId": evse, "connectorId": 1}
        for evse in (1, 2)
    ]  # no status for the station as a whole (1.6's connector 0)
    assert station.timers == {"heartbeat": 300}
    station.fire("heartbeat", after=300)
    assert station.pending()[2:] == ["Heartbeat", {}]
    station.serve()
    assert station.stats.calls == {"BootNotification": 1, "StatusNotification": 2, "Heartbeat": 1}
    assert station.stats.booted == 1 and not station.stats.problems


def test_v201_a_charging_session_is_authorize_then_transaction_events():
    station = Harness(sessions=1, session_length=60, meter_interval=20, **V201)
    station.connect()
    served = station.serve()
    assert actions(served) == [
        "BootNotification",
        "StatusNotification",
        "StatusNotification",
        "Authorize",
        "TransactionEvent",
    ]
    assert [c[3]["connectorStatus"] for c in served[1:3]] == ["Available", "Occupied"]
    assert served[3][3] == {"idToken": TOKEN}
    started = served[4][3]
    transaction_id = started["transactionInfo"]["transactionId"]
    assert 0 < len(transaction_id) <= 36
    assert started == {
        "eventType": "Started",
        "timestamp": STAMP,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": transaction_id, "chargingState": "Charging"},
        "meterValue": [
            {
                "timestamp": STAMP,
                "sampledValue": [
                    {
                        "value": 0,
                        "context": "Transaction.Begin",
                        "measurand": "Energy.Active.Import.Register",
                        "unitOfMeasure": {"unit": "Wh"},
                    }
                ],
            }
        ],
        "evse": {"id": 1, "connectorId": 1},
        "idToken": TOKEN,
    }
    # Occupied was reported already: charging sends no StatusNotification in 2.0.1
    assert station.timers == {"heartbeat": 300, "meter:1": 20, "end:1": 60}

    station.fire("meter:1", after=20)
    (updated,) = station.serve()
    assert updated[2] == "TransactionEvent"
    event = updated[3]
    assert (event["eventType"], event["triggerReason"], event["seqNo"]) == (
        "Updated",
        "MeterValuePeriodic",
        1,
    )
    assert event["transactionInfo"] == {
        "transactionId": transaction_id,
        "chargingState": "Charging",
    }
    assert reading(event) == (61, "Sample.Periodic")  # 11 kW for 20 s

    station.now += 40
    station.fire("end:1")
    ended, available = station.serve()
    event = ended[3]
    assert (event["eventType"], event["triggerReason"], event["seqNo"]) == (
        "Ended",
        "StopAuthorized",
        2,
    )
    assert event["transactionInfo"] == {"transactionId": transaction_id, "stoppedReason": "Local"}
    assert reading(event) == (183, "Transaction.End")
    assert available[3]["connectorStatus"] == "Available"
    assert "meter:1" not in station.timers and "end:1" not in station.timers
    assert station.events == [Finished()]
    stats = station.stats
    assert (stats.sessions_started, stats.sessions_completed, stats.sessions_refused) == (1, 1, 0)
    assert not stats.problems


def test_v201_pending_registration_behaves_as_in_16():
    station = Harness(sessions=1, **V201)
    station.connect()
    station.reply({"status": "Pending", "currentTime": TIME, "interval": 7})
    assert station.pending() is None and station.timers == {"boot": 7}
    start = {"idToken": {"idToken": "R-1", "type": "Central"}, "remoteStartId": 1}
    assert station.command("RequestStartTransaction", start, "s")[2] == {"status": "Rejected"}
    answer = station.command("TriggerMessage", {"requestedMessage": "Heartbeat"}, "t")
    assert answer[2] == {"status": "Accepted"}
    assert actions(station.serve()) == ["Heartbeat"]  # triggered messages go out while Pending
    station.fire("boot", after=7)
    assert actions(station.serve()) == [
        "BootNotification",
        "StatusNotification",
        "StatusNotification",
        "Authorize",
        "TransactionEvent",
    ]
    assert station.sent_calls("BootNotification")[-1]["reason"] == "PowerUp"
    # a rejected registration: test_rejected_registration_sends_nothing_but_boots, per version


def test_v201_replies_are_checked_against_the_201_schemas():
    def answering_16(action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "Authorize":
            return {"idTagInfo": {"status": "Accepted"}}  # a 1.6 Authorize.conf
        return csms(action, payload)

    station = Harness(sessions=1, **V201)
    station.connect()
    served = station.serve(answering_16)
    assert actions(served)[-2:] == ["Authorize", "StatusNotification"]  # no transaction
    assert station.stats.errors == {"invalid reply": 1}
    assert station.events == [Finished()]


def test_v201_refused_tokens_end_the_session():
    def refusing(action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "Authorize":
            return {"idTokenInfo": {"status": "Invalid"}}
        return csms(action, payload)

    station = Harness(sessions=1, **V201)
    station.connect()
    served = station.serve(refusing)
    assert actions(served)[-2:] == ["Authorize", "StatusNotification"]
    assert served[-1][3]["connectorStatus"] == "Available"
    assert station.stats.sessions_refused == 1 and station.events == [Finished()]

    def blocking(action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "TransactionEvent" and payload["eventType"] == "Started":
            return {"idTokenInfo": {"status": "Blocked"}}
        return csms(action, payload)

    station = Harness(sessions=1, **V201)
    station.connect()
    served = station.serve(blocking)
    started, ended, available = served[-3:]
    assert ended[3]["eventType"] == "Ended" and ended[3]["triggerReason"] == "Deauthorized"
    assert ended[3]["transactionInfo"] == {
        "transactionId": started[3]["transactionInfo"]["transactionId"],
        "stoppedReason": "DeAuthorized",
    }
    assert available[3]["connectorStatus"] == "Available"
    assert station.stats.sessions_refused == 1 and not station.stats.problems


def test_v201_request_start_and_stop_transaction():
    station = Harness(meter_interval=0, **V201)
    station.boot()
    token = {"idToken": "R-1", "type": "Central"}
    start = {"idToken": token, "remoteStartId": 42, "evseId": 1}
    answer = station.command("RequestStartTransaction", start, "s")
    assert answer == [3, "s", {"status": "Accepted"}]
    assert station.frames.index(answer) < station.frames.index(station.pending())
    occupied, started = station.serve()  # no Authorize: AuthorizeRemoteStart is false
    assert occupied[3]["connectorStatus"] == "Occupied"
    event = started[3]
    assert (event["eventType"], event["triggerReason"], event["idToken"]) == (
        "Started",
        "RemoteStart",
        token,
    )
    assert event["transactionInfo"]["remoteStartId"] == 42
    transaction_id = event["transactionInfo"]["transactionId"]

    busy = station.command("RequestStartTransaction", {**start, "remoteStartId": 43}, "b")
    assert busy[2] == {"status": "Rejected"}
    other = station.command("RequestStopTransaction", {"transactionId": "not-running"}, "x")
    assert other[2] == {"status": "Rejected"}
    stop = station.command("RequestStopTransaction", {"transactionId": transaction_id}, "t")
    assert stop[2] == {"status": "Accepted"}
    ended, available = station.serve()
    assert ended[3]["transactionInfo"] == {
        "transactionId": transaction_id,
        "stoppedReason": "Remote",
    }
    assert (ended[3]["triggerReason"], ended[3]["seqNo"]) == ("RemoteStop", 1)
    assert available[3]["connectorStatus"] == "Available"
    assert station.model.transactions == {}
    assert station.stats.commands == {"RequestStartTransaction": 2, "RequestStopTransaction": 2}
    assert station.events == []  # remote sessions are not the station's own --sessions


def test_v201_trigger_message():
    station = Harness(connectors=2, sessions=1, **V201)
    station.boot()  # EVSE 1 charges
    answer = station.command(
        "TriggerMessage", {"requestedMessage": "MeterValues", "evse": {"id": 1}}, "m"
    )
    (values,) = station.serve()
    assert station.frames.index(answer) < station.frames.index(values)
    assert values[2] == "MeterValues" and values[3]["evseId"] == 1
    assert reading(values[3])[1] == "Trigger"

    station.command("TriggerMessage", {"requestedMessage": "StatusNotification"}, "all")
    statuses = [(c[3]["evseId"], c[3]["connectorStatus"]) for c in station.serve()]
    assert statuses == [(1, "Occupied"), (2, "Available")]
    one = {"requestedMessage": "StatusNotification", "evse": {"id": 2, "connectorId": 1}}
    station.command("TriggerMessage", one, "one")
    assert [c[3]["evseId"] for c in station.serve()] == [2]

    station.command("TriggerMessage", {"requestedMessage": "Heartbeat"}, "h")
    assert actions(station.serve()) == ["Heartbeat"]
    station.command("TriggerMessage", {"requestedMessage": "BootNotification"}, "b")
    boot = station.serve()[0]
    assert boot[2] == "BootNotification" and boot[3]["reason"] == "Triggered"

    for unique_id, payload, status in [
        ("l", {"requestedMessage": "LogStatusNotification"}, "NotImplemented"),
        ("t", {"requestedMessage": "TransactionEvent"}, "NotImplemented"),
        ("e", {"requestedMessage": "StatusNotification", "evse": {"id": 3}}, "Rejected"),
        ("c", {"requestedMessage": "MeterValues", "evse": {"id": 1, "connectorId": 2}}, "Rejected"),
    ]:
        assert station.command("TriggerMessage", payload, unique_id)[2] == {"status": status}
    assert station.pending() is None and not station.stats.problems


def test_v201_immediate_reset_ends_the_transaction_then_reboots():
    station = Harness(sessions=2, **V201)
    station.boot()
    station.now += 30
    assert station.command("Reset", {"type": "Immediate"})[2] == {"status": "Accepted"}
    ended = station.reply({})
    assert ended[3]["eventType"] == "Ended" and ended[3]["triggerReason"] == "ResetCommand"
    assert ended[3]["transactionInfo"]["stoppedReason"] == "ImmediateReset"
    assert reading(ended[3]) == (92, "Transaction.End")  # 11 kW for 30 s
    assert station.events == [Close(1000, "reset")] and station.pending() is None
    station.disconnect("close code 1000, reset")
    assert station.events[-1] == Reconnect(REBOOT_DELAY)
    station.connect()
    served = station.serve()
    assert served[0][2] == "BootNotification" and served[0][3]["reason"] == "RemoteReset"
    assert actions(served)[-2:] == ["Authorize", "TransactionEvent"]  # the next session
    assert reading(served[-1][3]) == (92, "Transaction.Begin")
    assert not station.stats.problems and station.stats.booted == 1


def test_v201_reset_on_idle_waits_for_the_last_transaction():
    station = Harness(sessions=1, connectors=2, **V201)
    station.boot()
    assert station.command("Reset", {"type": "OnIdle"}, "r")[2] == {"status": "Scheduled"}
    assert station.events == [] and station.pending() is None
    start = {"idToken": {"idToken": "R-1", "type": "Central"}, "remoteStartId": 1}
    assert station.command("RequestStartTransaction", start, "s")[2] == {"status": "Rejected"}
    station.fire("end:1", after=60)
    ended = station.reply({})
    assert ended[3]["transactionInfo"]["stoppedReason"] == "Local"
    assert station.events == [Close(1000, "reset")]

    idle = Harness(**V201)
    idle.boot()
    assert idle.command("Reset", {"type": "OnIdle"})[2] == {"status": "Accepted"}
    assert idle.events == [Close(1000, "reset")]

    evse = Harness(**V201)
    evse.boot()
    assert evse.command("Reset", {"type": "Immediate", "evseId": 1})[2] == {"status": "Rejected"}
    assert evse.events == []


def test_v201_an_immediate_reset_overrides_a_scheduled_one():
    station = Harness(sessions=2, **V201)
    station.boot()
    assert station.command("Reset", {"type": "OnIdle"}, "idle")[2] == {"status": "Scheduled"}
    assert station.command("Reset", {"type": "Immediate"}, "now")[2] == {"status": "Accepted"}
    ended = station.reply({})
    assert ended[3]["transactionInfo"]["stoppedReason"] == "ImmediateReset"
    assert station.events == [Close(1000, "reset")]
    station.disconnect("close code 1000, reset")
    station.connect()
    served = station.serve()  # the next session starts: no reset is left scheduled
    assert actions(served)[-2:] == ["Authorize", "TransactionEvent"]
    station.fire("end:1", after=60)
    station.serve()
    assert station.events[-1] == Finished()


def _variable(component: str, name: str, **more: Any) -> dict[str, Any]:
    return {"component": {"name": component}, "variable": {"name": name}, **more}


def test_v201_get_and_set_variables():
    station = Harness(**V201)
    station.boot()
    asked = [
        _variable("HeartbeatCtrlr", "Interval"),
        _variable("SampledDataCtrlr", "TxUpdatedInterval"),
        _variable("AuthCtrlr", "AuthorizeRemoteStart"),
        _variable("HeartbeatCtrlr", "Nope"),
        _variable("NoSuchCtrlr", "Interval"),
        _variable("HeartbeatCtrlr", "Interval", attributeType="Target"),
        {
            "component": {"name": "HeartbeatCtrlr", "instance": "2"},
            "variable": {"name": "Interval"},
        },
    ]
    results = station.command("GetVariables", {"getVariableData": asked}, "get")[2]
    found = [(r["attributeStatus"], r.get("attributeValue")) for r in results["getVariableResult"]]
    assert found == [
        ("Accepted", "300"),
        ("Accepted", "10"),
        ("Accepted", "false"),
        ("UnknownVariable", None),
        ("UnknownComponent", None),
        ("NotSupportedAttributeType", None),
        ("UnknownComponent", None),
    ]
    for data, result in zip(asked, results["getVariableResult"], strict=True):
        assert (result["component"], result["variable"]) == (data["component"], data["variable"])
    assert results["getVariableResult"][5]["attributeType"] == "Target"

    def setting(component: str, name: str, value: str) -> dict[str, Any]:
        return _variable(component, name, attributeValue=value)

    changes = [
        setting("HeartbeatCtrlr", "Interval", "45"),
        setting("SampledDataCtrlr", "TxUpdatedInterval", "soon"),
        setting("AuthCtrlr", "AuthorizeRemoteStart", "true"),  # read-only
        setting("SampledDataCtrlr", "TxUpdatedMeasurands", "Power.Active.Import"),
        setting("HeartbeatCtrlr", "Nope", "1"),
        setting("NoSuchCtrlr", "Interval", "1"),
    ]
    results = station.command("SetVariables", {"setVariableData": changes}, "set")[2]
    assert [r["attributeStatus"] for r in results["setVariableResult"]] == [
        "Accepted",
        "Rejected",
        "Rejected",
        "Accepted",
        "UnknownVariable",
        "UnknownComponent",
    ]
    assert station.timers["heartbeat"] == 45
    again = [
        _variable("HeartbeatCtrlr", "Interval"),
        _variable("SampledDataCtrlr", "TxUpdatedMeasurands"),
    ]
    results = station.command("GetVariables", {"getVariableData": again}, "again")[2]
    assert [r["attributeValue"] for r in results["getVariableResult"]] == [
        "45",
        "Power.Active.Import",
    ]


def test_v201_unsimulated_and_invalid_commands_get_201_callerrors():
    station = Harness(**V201)
    station.boot()
    unlock = station.command("UnlockConnector", {"evseId": 1, "connectorId": 1}, "u")
    assert unlock[:3] == [4, "u", "NotImplemented"]
    assert station.command("RemoteStartTransaction", {"idTag": "R-1"}, "r")[:3] == [
        4,
        "r",
        "NotImplemented",  # a 1.6 command
    ]
    token = {"idToken": "R-1", "type": "Central"}
    missing = station.command("RequestStartTransaction", {"idToken": token}, "m")
    assert missing[:3] == [4, "m", "OccurrenceConstraintViolation"]  # 2.0.1 spelling
    invalid = station.command("TriggerMessage", {"requestedMessage": "Coffee"}, "t")
    assert invalid[:3] == [4, "t", "PropertyConstraintViolation"]
    assert station.stats.errors == {"invalid command": 2}


def test_every_answered_command_is_logged():
    station = Harness(**V201)
    station.boot()
    with capturedLogs() as events:
        station.command("TriggerMessage", {"requestedMessage": "Heartbeat"}, "t")
        station.command("GetVariables", {"getVariableData": [_variable("X", "Y")]}, "g")
        station.command("UnlockConnector", {"evseId": 1, "connectorId": 1}, "u")
    lines = [formatEvent(e) for e in events if e["log_namespace"] == commands_log.namespace]
    assert lines == [
        "station CP-1 answered TriggerMessage: Accepted",
        "station CP-1 answered GetVariables: CALLRESULT",
        "station CP-1 answered UnlockConnector: CALLERROR NotImplemented",
    ]


@pytest.mark.parametrize("version", sorted(DIALECTS))
def test_dialects_answer_commands_of_their_own_version(version: str):
    dialect = DIALECTS[version]
    assert set(dialect.commands) <= dialect.catalog.command_actions
    assert dialect.subprotocol == f"ocpp{version}"

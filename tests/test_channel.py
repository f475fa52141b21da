"""The Python channel API (:mod:`ocppcable.channel`) and its in-process transport, without
sockets: a station in memory (:mod:`ocppcable.testing`) against ``tests/channels.py``.

The same channel over real sockets with PyPI ``ocpp`` stations: tests/test_e2e_channel.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python import usage

from ocppcable.channel import Channel, ChannelApplication, State
from ocppcable.options import Options
from ocppcable.protos.rpc_pb2 import ERROR, SUCCESS, CommandMessage, ConnectionRequest, Env
from ocppcable.rpc.inprocess import InProcessClient, load_application
from ocppcable.rpc.policy import CallPolicy
from ocppcable.testing import MemoryStation, station_factory
from tests import channels
from tests.channels import SEEN, ChargingChannel
from tests.support import ROOT

SAMPLE = {"timestamp": "2026-01-01T00:01:00Z", "sampledValue": [{"value": "10"}]}
BOOT = [2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]


@pytest.fixture(autouse=True)
def seen():
    SEEN.clear()
    yield SEEN
    SEEN.clear()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _factory(clock: Clock, channel: type[Channel] = ChargingChannel, timeout: float = 10.0):
    client = InProcessClient(ChannelApplication(channel), CallPolicy(clock, 28, timeout))
    return station_factory(clock, client)


def _station(clock: Clock, path: str = "/ocpp/CP-1", version: str = "ocpp1.6", **kwargs):
    station = MemoryStation(_factory(clock, **kwargs))
    assert station.handshake(path, [version]).startswith(b"HTTP/1.1 101 ")
    return station


def _exchange(station: MemoryStation, frame: list) -> list:
    station.send(json.dumps(frame))
    return [json.loads(text) for text in station.texts()]


def test_a_whole_16_session_through_the_channel(clock, seen):
    station = _station(clock)
    [boot] = _exchange(station, BOOT)
    assert boot[:2] == [3, "b"] and boot[2]["interval"] == 60
    assert seen[0] == ("connect", "CP-1", None)
    assert seen[1] == ("subscribed", "CP-1", {"channel": "OCPPChannel", "id": "CP-1"})

    assert _exchange(station, [2, "a1", "Authorize", {"idTag": "TAG-OK"}]) == [
        [3, "a1", {"idTagInfo": {"status": "Accepted"}}]
    ]
    assert _exchange(station, [2, "a2", "Authorize", {"idTag": "TAG-NO"}]) == [
        [3, "a2", {"idTagInfo": {"status": "Invalid"}}]
    ]
    start = {
        "connectorId": 1,
        "idTag": "TAG-OK",
        "meterStart": 0,
        "timestamp": "2026-01-01T00:00:00Z",
    }
    [[_, _, started]] = _exchange(station, [2, "s", "StartTransaction", start])
    transaction = started["transactionId"]
    values = {"connectorId": 1, "transactionId": transaction, "meterValue": [SAMPLE]}
    assert _exchange(station, [2, "m", "MeterValues", values]) == [[3, "m", {}]]

    stop = {"meterStop": 10, "timestamp": "2026-01-01T00:02:00Z", "transactionId": transaction}
    # the reply first, then the remote command the action transmitted
    assert _exchange(station, [2, "e", "StopTransaction", stop]) == [
        [3, "e", {}],
        [2, "reset-1", "Reset", {"type": "Soft"}],
    ]
    # the channel state set by start_transaction came back with stop_transaction
    state = {"protocol": "ocpp1.6", "transaction": str(transaction)}
    assert ("stop_transaction", "CP-1", state) in seen
    assert _exchange(station, [3, "reset-1", {"status": "Accepted"}]) == []
    ack = [data for method, _, data in seen if method == "ack"]
    assert ack == [
        {"action": "ack", "id": "reset-1", "command": "Reset", "payload": {"status": "Accepted"}}
    ]

    station.close()
    clock.advance(60)  # the Disconnect goes through the rate-limited queue
    # unsubscribed gets the channel state the Disconnect carries; transaction was deleted
    assert seen[-2:] == [
        ("unsubscribed", "CP-1", {"protocol": "ocpp1.6"}),
        ("disconnect", "CP-1", None),
    ]


def test_a_201_station_gets_its_version_in_params(clock, seen):
    station = _station(clock, "/ocpp/CS-2", "ocpp2.0.1")
    boot = {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}
    [[kind, _, reply]] = _exchange(station, [2, "b", "BootNotification", boot])
    assert kind == 3 and reply["status"] == "Accepted"
    assert seen[1][2]["protocol"] == "ocpp2.0.1"
    token = {"idToken": "TAG-OK", "type": "ISO14443"}
    assert _exchange(station, [2, "a", "Authorize", {"idToken": token}]) == [
        [3, "a", {"idTokenInfo": {"status": "Accepted"}}]
    ]


def test_a_rejected_connection_or_subscription_rejects_the_boot(clock, seen):
    for path in ("/ocpp/CP-1?token=bad", "/ocpp/BANNED-1"):
        station = _station(clock, path)
        [[kind, _, reply]] = _exchange(station, BOOT)
        assert kind == 3 and reply["status"] == "Rejected", path
        assert ("subscribed", "BANNED-1", {}) not in seen


def test_transmit_error_answers_with_a_callerror(clock):
    station = _station(clock)
    _exchange(station, BOOT)
    assert _exchange(station, [2, "d", "DataTransfer", {"vendorId": "V"}]) == [
        [4, "d", "NotSupported", "no such vendor", {"hint": "none"}]
    ]


def test_an_action_that_raises_is_logged_and_answered_internal_error(clock, fail_on_logged_errors):
    station = _station(clock)
    _exchange(station, BOOT)
    [[kind, unique_id, code, *_]] = _exchange(
        station, [2, "d", "DataTransfer", {"vendorId": "V", "messageId": "fail"}]
    )
    assert (kind, unique_id, code) == (4, "d", "InternalError")
    [logged] = fail_on_logged_errors
    assert logged["station_id"] == "CP-1" and logged["what"] == "data_transfer"
    assert "on purpose" in str(logged["log_failure"].value)
    fail_on_logged_errors.clear()
    # the station goes on
    assert _exchange(
        station, [2, "m", "MeterValues", {"connectorId": 1, "meterValue": [SAMPLE]}]
    ) == [[3, "m", {}]]


class Hanging(Channel):
    def subscribed(self) -> None:
        self.stream_for(f"ev/{self.station_id}")

    async def authorize(self, data):
        await Deferred()  # never fires


def test_an_async_action_that_never_ends_times_out_with_the_rpc_timeout(clock):
    station = _station(clock, channel=Hanging, timeout=5.0)
    _exchange(station, BOOT)
    assert _exchange(station, [2, "a", "Authorize", {"idTag": "T"}]) == []
    clock.advance(5)
    [[kind, unique_id, code, *_]] = [json.loads(text) for text in station.texts()]
    assert (kind, unique_id, code) == (4, "a", "InternalError")


def test_a_station_cannot_call_the_base_class_methods():
    channel = ChargingChannel(ChannelApplication(ChargingChannel)._connection(Env(), {}), "", {})
    for name in ("transmit", "stream_from", "reject", "subscribed", "_id", "__init__", 7, "a b"):
        assert channel.action(name) is None, name
    assert channel.action("ack") == channel.ack
    assert channel.action("boot_notification") == channel.boot_notification


def test_unknown_actions_and_commands():
    app = ChannelApplication(ChargingChannel)
    identifier = json.dumps({"channel": "OCPPChannel", "id": "CP-1"})
    data = json.dumps({"action": "transmit", "id": "x", "command": "X", "payload": {}})
    reply = app.command(CommandMessage(command="message", identifier=identifier, data=data), {})
    assert reply.status == SUCCESS and not reply.transmissions
    assert app.command(CommandMessage(command="whisper", identifier=identifier), {}).status == ERROR


def test_connect_answers_identifiers_and_connection_state():
    app = ChannelApplication(ChargingChannel)
    env = Env(url="http://gw/ocpp/CP-9?token=t1", headers={"x-ocpp-station-id": "CP-9"})
    reply = app.connect(ConnectionRequest(env=env), {"sid": "s-1"})
    assert reply.status == SUCCESS
    assert json.loads(reply.identifiers) == {"station_id": "CP-9"}
    assert dict(reply.env.cstate) == {"token": "t1"}
    assert json.loads(reply.transmissions[0]) == {"type": "welcome", "sid": "s-1"}


def test_state_records_its_changes():
    state = State({"a": "1", "b": "2"})
    state["c"] = "3"
    del state["a"]
    assert dict(state) == {"b": "2", "c": "3"} and state.changes == {"c": "3", "a": ""}
    with pytest.raises(TypeError):
        state["n"] = 1  # type: ignore[assignment]


def test_stream_for_names_streams_as_action_cable_does():
    class OCPPChannel(Channel):
        pass

    class Named(Channel):
        channel_name = "stations"

    assert OCPPChannel.broadcasting_for("ev/CP-1") == "ocpp:ev/CP-1"
    assert ChargingChannel.broadcasting_for("x") == "charging:x"
    assert Named.broadcasting_for("x") == "stations:x"


def test_load_application_takes_a_channel_class_or_an_application():
    app = load_application("python:tests.channels:ChargingChannel")
    assert isinstance(app, ChannelApplication) and app.channel is ChargingChannel
    channels.application = ChannelApplication(ChargingChannel)  # type: ignore[attr-defined]
    try:
        assert load_application("python:tests.channels:application") is channels.application
    finally:
        del channels.application  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("python:tests.channels", "expected python:package.module:ChannelClass"),
        (
            "python:no_such_package.mod:X",
            "cannot import 'no_such_package.mod': ModuleNotFoundError",
        ),
        ("python:tests.channels:Missing", "'tests.channels' has no 'Missing'"),
        ("python:tests.channels:NotAChannel", "is neither a subclass of ocppcable.channel.Channel"),
    ],
)
def test_a_bad_python_target_stops_the_start_naming_rpc_host(target, reason):
    with pytest.raises(ValueError, match=reason):
        load_application(target)
    with pytest.raises(usage.UsageError) as raised:
        Options(environ={}).parseOptions([f"--rpc-host={target}"])
    message = str(raised.value)
    assert message.startswith("--rpc-host") and reason in message and "\n" not in message


def test_a_python_channel_defaults_to_the_http_broadcaster_alone():
    options = Options(environ={})
    options.parseOptions(["--rpc-host=python:tests.channels:ChargingChannel"])
    assert options["broadcast-adapter"] == ["http"]


def test_the_channel_of_docs_plugins_md_passes_its_own_test(tmp_path, monkeypatch):
    """The example channel and its test in docs/plugins.md, run as a reader would."""
    text = (ROOT / "docs" / "plugins.md").read_text("utf-8")
    section = text.split("## Write your channel in Python", 1)[1].split("\n## ", 1)[0]
    channel, tests = re.findall(r"```python\n(.*?)```", section, re.S)
    package = tmp_path / "mycharging"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "channels.py").write_text(channel)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict[str, Any] = {}
    exec(compile(tests, "docs/plugins.md", "exec"), namespace)
    found = [name for name in namespace if name.startswith("test_")]
    assert len(found) == 2
    for name in found:
        namespace[name]()
    assert isinstance(
        load_application("python:mycharging.channels:OCPPChannel"), ChannelApplication
    )


class Streaming(Channel):
    def subscribed(self) -> None:
        self.stream_from("a")
        self.stop_stream_from("b")

    def data_transfer(self, data):
        self.connection.close()
        return {"status": "Accepted"}

    def heartbeat(self, data):
        self.transmit({"command": "Ack", "id": data["id"], "payload": {"at": float("nan")}})


def test_streams_closing_and_a_transmission_that_is_not_json(fail_on_logged_errors):
    app = ChannelApplication(Streaming)
    identifier = json.dumps({"channel": "OCPPChannel", "id": "CP-1"})
    reply = app.command(CommandMessage(command="subscribe", identifier=identifier), {})
    assert (list(reply.streams), list(reply.stopped_streams)) == (["a"], ["b"])
    assert json.loads(reply.transmissions[-1])["type"] == "confirm_subscription"

    def perform(action: str):
        data = json.dumps({"action": action, "id": "1", "command": "X", "payload": {}})
        return app.command(CommandMessage(command="message", identifier=identifier, data=data), {})

    reply = perform("data_transfer")
    assert reply.status == SUCCESS and reply.disconnect
    assert json.loads(reply.transmissions[0])["message"]["payload"] == {"status": "Accepted"}
    assert perform("heartbeat").status == ERROR
    [logged] = fail_on_logged_errors
    assert logged["station_id"] == "CP-1"
    fail_on_logged_errors.clear()

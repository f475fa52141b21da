"""The Action Cable side: identifiers, perform/ack/error data, transmissions, broadcasts, state."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ocppcable import cable
from ocppcable.cable import MalformedMessage
from ocppcable.protos import rpc_pb2 as pb

# --- channel identifier ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "station_id", "serial", "expected"),
    [
        ("OCPPChannel", "CP-1", "SN-1", '{"channel":"OCPPChannel","id":"CP-1","sn":"SN-1"}'),
        ("OCPPChannel", "CP-1", None, '{"channel":"OCPPChannel","id":"CP-1"}'),
        ("OCPPChannel", "CP-1", "", '{"channel":"OCPPChannel","id":"CP-1"}'),
        (
            "Ocpp::Channel",
            "a.b:c_d-e",
            "ü",
            '{"channel":"Ocpp::Channel","id":"a.b:c_d-e","sn":"ü"}',
        ),
        ("C", "x", 'quo"te', '{"channel":"C","id":"x","sn":"quo\\"te"}'),
    ],
)
def test_channel_identifier(
    channel: str, station_id: str, serial: str | None, expected: str
) -> None:
    identifier = cable.channel_identifier(channel, station_id, serial)
    assert identifier == expected
    assert list(json.loads(identifier)) == ["channel", "id", "sn"][: 3 if serial else 2]


# --- perform / ack / error data ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("granular", "action"),
    [(True, "boot_notification"), (False, "receive")],
)
def test_perform_data(granular: bool, action: str) -> None:
    payload = {"chargePointVendor": "V", "chargePointModel": "M"}
    data = cable.perform_data("BootNotification", "id-1", "BootNotification", payload, granular)
    assert json.loads(data) == {
        "action": action,
        "id": "id-1",
        "command": "BootNotification",
        "payload": payload,
    }
    assert list(json.loads(data)) == ["action", "id", "command", "payload"]
    assert " " not in data.replace("chargePointVendor", "")  # compact


def test_perform_data_is_granular_by_default() -> None:
    data = json.loads(cable.perform_data("Get15118EVCertificate", "1", "Get15118EVCertificate", {}))
    assert data["action"] == "get15118_ev_certificate"


@pytest.mark.parametrize(("granular", "action"), [(True, "ack"), (False, "receive")])
def test_ack_data(granular: bool, action: str) -> None:
    data = cable.ack_data("c-1", "Reset", {"status": "Accepted"}, granular)
    assert json.loads(data) == {
        "action": action,
        "id": "c-1",
        "command": "Reset",
        "payload": {"status": "Accepted"},
    }


@pytest.mark.parametrize(("granular", "action"), [(True, "error"), (False, "receive")])
def test_error_data(granular: bool, action: str) -> None:
    data = cable.error_data("c-1", "Reset", "NotSupported", "nope", {"why": 1}, granular)
    assert json.loads(data) == {
        "action": action,
        "id": "c-1",
        "command": "Reset",
        "code": "NotSupported",
        "message": "nope",
        "payload": {"why": 1},
    }


def test_ack_and_error_are_granular_by_default() -> None:
    assert json.loads(cable.ack_data("1", "Reset", {}))["action"] == "ack"
    assert json.loads(cable.error_data("1", "Reset", "Timeout", "t", {}))["action"] == "error"


def test_data_keeps_unicode() -> None:
    assert "ü" in cable.perform_data("DataTransfer", "1", "DataTransfer", {"data": "ü"})


# --- transmissions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"welcome"}',
        '{"type":"welcome","sid":"abc"}',
        '{"type":"ping","message":1700000000}',
        '{"type":"confirm_subscription","identifier":"{\\"channel\\":\\"OCPPChannel\\"}"}',
        '{"type":"reject_subscription","identifier":"x"}',
        '{"type":"disconnect","reason":"unauthorized","reconnect":false}',
    ],
)
def test_control_transmissions_are_not_for_the_station(text: str) -> None:
    assert cable.decode_transmission(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"identifier":"{}","message":{"command":"Ack","id":"1","payload":{"a":1}}}',
            {"command": "Ack", "id": "1", "payload": {"a": 1}},
        ),
        (
            '{"identifier":"{}","message":{"command":"Reset","payload":{"type":"Soft"}}}',
            {"command": "Reset", "payload": {"type": "Soft"}},
        ),
        ('{"message":{"command":"Error","id":"2"}}', {"command": "Error", "id": "2"}),
        ('{"command":"Ack","id":"3","payload":{}}', {"command": "Ack", "id": "3", "payload": {}}),
        ('{"command":"Reset"}', {"command": "Reset"}),
        # "type" values that are not control messages do not hide the command
        ('{"type":"other","command":"Reset"}', {"type": "other", "command": "Reset"}),
    ],
)
def test_decode_transmission(text: str, expected: dict[str, Any]) -> None:
    assert cable.decode_transmission(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '["command","Ack"]',
        '"string"',
        "null",
        "42",
        "{}",
        '{"identifier":"x"}',
        '{"identifier":"x","message":"hello"}',
        '{"identifier":"x","message":null}',
        '{"identifier":"x","message":[1]}',
        '{"identifier":"x","message":{}}',
        '{"identifier":"x","message":{"command":""}}',
        '{"identifier":"x","message":{"command":7}}',
        '{"command":null}',
        '{"command":["Ack"]}',
        '{"type":"unknown"}',
        # what cannot reach a station as standard JSON and UTF-8
        '{"command":"Ack","id":"1","payload":{"x":NaN}}',
        '{"command":"Ack","id":"1","payload":{"x":1e400}}',
        '{"command":"Ack","id":"1","payload":{"x":"\\ud800"}}',
        '{"command":"Ack","id":"1","payload":' + "[" * 40 + "]" * 40 + "}",
    ],
)
def test_malformed_transmission(text: str) -> None:
    with pytest.raises(MalformedMessage):
        cable.decode_transmission(text)


def test_malformed_message_is_a_value_error() -> None:
    assert issubclass(MalformedMessage, ValueError)


# --- broadcasts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            '{"command":"Reset","payload":{"type":"Hard"}}',
            {"command": "Reset", "payload": {"type": "Hard"}},
        ),
        (
            '{"command":"Reset","id":"r-1","payload":{}}',
            {"command": "Reset", "id": "r-1", "payload": {}},
        ),
        (
            {"command": "Ack", "id": "1", "payload": {}},
            {"command": "Ack", "id": "1", "payload": {}},
        ),
        ({"command": "Error", "id": "1"}, {"command": "Error", "id": "1"}),
    ],
)
def test_decode_broadcast(data: Any, expected: dict[str, Any]) -> None:
    assert cable.decode_broadcast(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "",
        "[]",
        '"Reset"',
        "{}",
        '{"payload":{}}',
        '{"command":""}',
        '{"command":1}',
        None,
        42,
        ["command", "Reset"],
        {},
        {"command": None},
    ],
)
def test_malformed_broadcast(data: Any) -> None:
    with pytest.raises(MalformedMessage):
        cable.decode_broadcast(data)


# --- state -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "changes", "expected"),
    [
        ({}, {}, {}),
        ({}, {"a": "1"}, {"a": "1"}),
        ({"a": "1"}, {"a": "2"}, {"a": "2"}),
        ({"a": "1", "b": "2"}, {"c": "3"}, {"a": "1", "b": "2", "c": "3"}),
        ({"a": "1", "b": "2"}, {"a": ""}, {"b": "2"}),
        ({"a": "1"}, {"missing": ""}, {"a": "1"}),
        ({"a": "1", "b": "2"}, {"a": "", "b": "", "c": "x"}, {"c": "x"}),
        ({"a": "1"}, {"a": " "}, {"a": " "}),
    ],
)
def test_merge_state(
    state: dict[str, str], changes: dict[str, str], expected: dict[str, str]
) -> None:
    cable.merge_state(state, changes)
    assert state == expected


def test_encode_state() -> None:
    assert cable.encode_state({}) == "{}"
    encoded = cable.encode_state({"b": "2", "a": "ü"})
    assert json.loads(encoded) == {"b": "2", "a": "ü"}
    assert encoded == '{"b":"2","a":"ü"}'


# --- RPC records and their protobuf form ---------------------------------------------------------

ENV = cable.Env(
    url="http://gw/ocpp/CP-1",
    headers={"authorization": "Basic x"},
    cstate={"user": "u1"},
    istate={"tx": "1"},
)


def test_each_request_names_its_method() -> None:
    assert cable.ConnectRequest().method is cable.Method.CONNECT
    assert cable.CommandRequest().method is cable.Method.COMMAND
    assert cable.DisconnectRequest().method is cable.Method.DISCONNECT
    assert cable.Method.COMMAND == "command"


def test_connect_request_pb() -> None:
    message = cable.connect_request_pb(cable.ConnectRequest(ENV))
    assert isinstance(message, pb.ConnectionRequest)
    assert message.env.url == ENV.url and dict(message.env.headers) == ENV.headers
    assert dict(message.env.cstate) == ENV.cstate and dict(message.env.istate) == ENV.istate


def test_command_request_pb() -> None:
    request = cable.CommandRequest(
        command="message", identifier="{}", connection_identifiers="ids", data="d", env=ENV
    )
    message = cable.command_request_pb(request)
    assert isinstance(message, pb.CommandMessage)
    assert (message.command, message.identifier) == ("message", "{}")
    assert (message.connection_identifiers, message.data) == ("ids", "d")
    assert message.env.url == ENV.url and dict(message.env.cstate) == {"user": "u1"}


def test_disconnect_request_pb() -> None:
    request = cable.DisconnectRequest(identifiers="ids", subscriptions=["{}"], env=ENV)
    message = cable.disconnect_request_pb(request)
    assert isinstance(message, pb.DisconnectRequest)
    assert message.identifiers == "ids" and list(message.subscriptions) == ["{}"]
    assert dict(message.env.istate) == {"tx": "1"}


def test_replies_from_pb() -> None:
    connect = cable.connect_reply_from_pb(
        pb.ConnectionResponse(
            status=pb.SUCCESS,
            identifiers="ids",
            transmissions=["t"],
            env=pb.EnvResponse(cstate={"user": "u1"}),
        )
    )
    assert connect == cable.ConnectReply(
        status=cable.Status.SUCCESS,
        identifiers="ids",
        transmissions=["t"],
        env=cable.ReplyEnv(cstate={"user": "u1"}),
    )
    command = cable.command_reply_from_pb(
        pb.CommandResponse(
            status=pb.FAILURE,
            disconnect=True,
            stop_streams=True,
            streams=["a"],
            stopped_streams=["b"],
            transmissions=["t"],
            error_msg="no",
            env=pb.EnvResponse(istate={"k": ""}),
        )
    )
    assert command == cable.CommandReply(
        status=cable.Status.FAILURE,
        disconnect=True,
        stop_streams=True,
        streams=["a"],
        transmissions=["t"],
        error_msg="no",
        env=cable.ReplyEnv(istate={"k": ""}),
        stopped_streams=["b"],
    )
    disconnect = cable.disconnect_reply_from_pb(pb.DisconnectResponse(error_msg="x"))
    assert disconnect == cable.DisconnectReply(status=cable.Status.ERROR, error_msg="x")


def test_a_status_rpc_proto_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError):
        cable.command_reply_from_pb(pb.CommandResponse(status=7))

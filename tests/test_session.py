"""The sans-I/O station session, driven with plain calls: events in, effects out."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocppcable.cable import (
    CommandReply,
    CommandRequest,
    ConnectReply,
    ConnectRequest,
    DisconnectReply,
    DisconnectRequest,
    Status,
)
from ocppcable.ocpp import v16
from ocppcable.phase import Phase, Stop
from ocppcable.session import (
    COMMAND_TIMER,
    IDLE_TIMER,
    MAX_FORMAT_ERRORS,
    MAX_PIPELINED_CALLS,
    RPC,
    CancelTimer,
    Close,
    Effect,
    JoinStream,
    LeaveStream,
    Send,
    Session,
    SessionSettings,
    StartTimer,
)
from tests.support import (
    BOOT,
    HEADERS,
    IDENTIFIER,
    IDENTIFIERS,
    NOW,
    URL,
    broadcast_command,
    call,
    connect_ok,
    established,
    make,
    message_data,
    ok,
    only_rpc,
    report,
    rpcs,
    sent,
    start,
    transmission,
)

ERROR, SUCCESS, FAILURE = Status.ERROR, Status.SUCCESS, Status.FAILURE
# --- idle timer ------------------------------------------------------------------------------


def test_opened_starts_the_idle_timer() -> None:
    assert make().opened() == [StartTimer(IDLE_TIMER, 10.0)]
    assert make(idle_timeout=2.5).opened() == [StartTimer(IDLE_TIMER, 2.5)]


def test_idle_station_is_closed() -> None:
    session = make()
    session.opened()
    assert session.timer_fired(IDLE_TIMER) == [Close(1000, "idle")]


def test_replies_do_not_count_as_activity() -> None:
    session = make()
    session.opened()
    assert session.frame_received('[3,"x",{}]') == []
    assert session.timer_fired(IDLE_TIMER) == [Close(1000, "idle")]


def test_first_call_cancels_the_idle_timer() -> None:
    session = make()
    session.opened()
    effects = session.frame_received(call("1", "StatusNotification"))
    assert effects[0] == CancelTimer(IDLE_TIMER)
    assert session.timer_fired(IDLE_TIMER) == []
    # only the first CALL cancels it
    assert CancelTimer(IDLE_TIMER) not in session.frame_received(call("2", "Heartbeat"))


def test_idle_timer_after_close_does_nothing() -> None:
    session = make()
    session.opened()
    assert session.connection_lost() == []
    assert session.timer_fired(IDLE_TIMER) == []


# --- Heartbeat ---------------------------------------------------------------------------------


def test_heartbeat_is_answered_locally_before_connect() -> None:
    session = make()
    session.opened()
    effects = session.frame_received(call("hb", "Heartbeat"))
    assert effects == [CancelTimer(IDLE_TIMER), Send(f'[3,"hb",{{"currentTime":"{NOW}"}}]')]
    assert not session.connected


def test_heartbeat_is_answered_locally_after_connect() -> None:
    session = established()
    assert session.frame_received(call("hb", "Heartbeat")) == [
        Send(f'[3,"hb",{{"currentTime":"{NOW}"}}]')
    ]


def test_default_clock_is_utc_iso8601_with_z() -> None:
    session = Session("CP-1", v16.CATALOG, SessionSettings(), URL, HEADERS)
    [reply] = sent(session.frame_received(call("hb", "Heartbeat")))
    current_time = reply[2]["currentTime"]
    assert len(current_time) == len(NOW) and current_time.endswith("Z") and current_time[10] == "T"


# --- the first CALL: Connect, subscribe, message -------------------------------------------------


def test_first_call_connects() -> None:
    session = make()
    session.opened()
    effects = session.frame_received(call("1", "BootNotification", BOOT))
    connect = only_rpc(effects, "connect")
    assert effects == [CancelTimer(IDLE_TIMER), StartTimer("call:1", 10.0), connect]
    assert isinstance(connect.request, ConnectRequest)
    assert connect.request.env.url == URL
    assert dict(connect.request.env.headers) == HEADERS


def test_rpc_timeout_setting_bounds_every_call() -> None:
    session = make(rpc_timeout=3.0)
    assert StartTimer("call:1", 3.0) in session.frame_received(call("1", "StatusNotification"))


@pytest.mark.parametrize(
    ("action", "payload", "identifier"),
    [
        ("BootNotification", BOOT, IDENTIFIER),
        (
            "BootNotification",
            {
                "chargePointVendor": "V",
                "chargePointModel": "M",
                "chargeBoxSerialNumber": "BOX",
                "chargePointSerialNumber": "CP",
            },
            '{"channel":"OCPPChannel","id":"CP-1","sn":"BOX"}',
        ),
        (
            "BootNotification",
            {"chargePointVendor": "V", "chargePointModel": "M", "chargePointSerialNumber": "CP"},
            '{"channel":"OCPPChannel","id":"CP-1","sn":"CP"}',
        ),
        (
            "BootNotification",
            {"chargePointVendor": "V", "chargePointModel": "M"},
            '{"channel":"OCPPChannel","id":"CP-1"}',
        ),
        # a station that reconnects without re-booting has no known serial
        ("StatusNotification", {"connectorId": 1}, '{"channel":"OCPPChannel","id":"CP-1"}'),
    ],
)
def test_connect_then_subscribe(action: str, payload: Any, identifier: str) -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", action, payload)), "connect")
    effects = session.rpc_succeeded(connect.token, connect_ok(env={"cstate": {"user": "u1"}}))
    subscribe = only_rpc(effects, "command")
    assert effects == [subscribe]
    request = subscribe.request
    assert isinstance(request, CommandRequest)
    assert request.command == "subscribe"
    assert request.identifier == identifier
    assert request.connection_identifiers == IDENTIFIERS
    assert request.env.url == URL and dict(request.env.headers) == HEADERS
    assert dict(request.env.cstate) == {"user": "u1"}
    assert session.connected and session.identifiers == IDENTIFIERS


def test_custom_channel_name() -> None:
    session = make(channel="Ocpp::StationChannel")
    message = start(session)
    assert (
        message.request.identifier == '{"channel":"Ocpp::StationChannel","id":"CP-1","sn":"SN-1"}'
    )


@pytest.mark.parametrize(("granular", "action"), [(True, "boot_notification"), (False, "receive")])
def test_subscribe_then_message(granular: bool, action: str) -> None:
    session = make(granular_actions=granular)
    message = start(session, "b-1", "BootNotification", BOOT)
    assert message.request.identifier == IDENTIFIER
    assert message.request.connection_identifiers == IDENTIFIERS
    assert message_data(message) == {
        "action": action,
        "id": "b-1",
        "command": "BootNotification",
        "payload": BOOT,
    }
    assert session.subscribed


def test_later_calls_go_straight_to_message() -> None:
    session = established()
    effects = session.frame_received(call("2", "MeterValues", {"connectorId": 1, "meterValue": []}))
    message = only_rpc(effects)
    assert effects == [StartTimer("call:2", 10.0), message]
    assert message_data(message) == {
        "action": "meter_values",
        "id": "2",
        "command": "MeterValues",
        "payload": {"connectorId": 1, "meterValue": []},
    }


def test_repeated_boot_is_performed_again_and_keeps_the_identifier() -> None:
    session = established()
    other = {"chargePointVendor": "V", "chargePointModel": "M", "meterSerialNumber": "SN-2"}
    message = only_rpc(session.frame_received(call("2", "BootNotification", other)))
    assert message_data(message)["action"] == "boot_notification"
    assert message.request.identifier == IDENTIFIER
    assert session.serial == "SN-2"


# --- default replies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "reply"),
    [
        ("BootNotification", [3, "1", {"status": "Accepted", "currentTime": NOW, "interval": 30}]),
        ("StatusNotification", [3, "1", {}]),
        ("MeterValues", [3, "1", {}]),
        ("StopTransaction", [3, "1", {}]),
        ("DataTransfer", [3, "1", {"status": "Accepted"}]),
        ("Authorize", [4, "1", "InternalError", "backend sent no reply", {}]),
        ("StartTransaction", [4, "1", "InternalError", "backend sent no reply", {}]),
        ("SignCertificate", [4, "1", "InternalError", "backend sent no reply", {}]),
    ],
)
def test_default_reply(action: str, reply: list[Any]) -> None:
    session = make()
    message = start(session, "1", action, BOOT if action == "BootNotification" else {})
    effects = session.rpc_succeeded(message.token, ok())
    assert effects == [Send(json.dumps(reply, separators=(",", ":"))), CancelTimer("call:1")]


def test_boot_default_uses_the_heartbeat_interval() -> None:
    session = make(heartbeat_interval=120)
    message = start(session)
    [reply] = sent(session.rpc_succeeded(message.token, ok()))
    assert reply[2]["interval"] == 120


# --- backend replies in transmissions ----------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        (
            {"command": "Ack", "id": "1", "payload": {"idTagInfo": {"status": "Accepted"}}},
            [3, "1", {"idTagInfo": {"status": "Accepted"}}],
        ),
        ({"command": "Ack", "id": "1"}, [3, "1", {}]),
        ({"command": "Ack", "id": "1", "payload": None}, [3, "1", {}]),
        (
            {"command": "Ack", "id": "1", "payload": ["not", "an", "object"]},
            [4, "1", "InternalError", "malformed backend reply", {}],
        ),
        (
            {
                "command": "Error",
                "id": "1",
                "error_code": "NotSupported",
                "error_message": "no",
                "payload": {"a": 1},
            },
            [4, "1", "NotSupported", "no", {"a": 1}],
        ),
        (
            {"command": "Error", "id": "1", "code": "SecurityError", "message": "who?"},
            [4, "1", "SecurityError", "who?", {}],
        ),
        (
            {
                "command": "Error",
                "id": "1",
                "error_code": "NotSupported",
                "code": "SecurityError",
                "message": "m",
            },
            [4, "1", "NotSupported", "m", {}],
        ),
        # a code OCPP 1.6 does not define becomes GenericError
        (
            {"command": "Error", "id": "1", "code": "NoSuchCode", "message": "m"},
            [4, "1", "GenericError", "m", {}],
        ),
        (
            {"command": "Error", "id": "1", "code": "FormatViolation", "message": "m"},
            [4, "1", "GenericError", "m", {}],
        ),
        ({"command": "Error", "id": "1"}, [4, "1", "GenericError", "", {}]),
        ({"command": "Error", "id": "1", "payload": "x"}, [4, "1", "GenericError", "", {}]),
    ],
)
def test_backend_reply_in_transmissions(message: dict[str, Any], reply: list[Any]) -> None:
    session = make()
    rpc = start(session, "1", "Authorize", {"idTag": "T"})
    effects = session.rpc_succeeded(rpc.token, ok(transmissions=[transmission(message)]))
    assert sent(effects) == [reply]
    assert CancelTimer("call:1") in effects


def test_bare_command_transmission_is_a_reply_too() -> None:
    session = make()
    rpc = start(session, "1", "Authorize", {"idTag": "T"})
    bare = json.dumps(
        {"command": "Ack", "id": "1", "payload": {"idTagInfo": {"status": "Blocked"}}}
    )
    assert sent(session.rpc_succeeded(rpc.token, ok(transmissions=[bare]))) == [
        [3, "1", {"idTagInfo": {"status": "Blocked"}}]
    ]


def test_reply_for_another_id_is_dropped_and_the_default_sent() -> None:
    session = make()
    rpc = start(session, "1", "StatusNotification", {})
    stray = transmission({"command": "Ack", "id": "other", "payload": {"x": 1}})
    assert sent(session.rpc_succeeded(rpc.token, ok(transmissions=[stray]))) == [[3, "1", {}]]


def test_only_the_first_reply_counts() -> None:
    session = make()
    rpc = start(session, "1", "Authorize", {"idTag": "T"})
    first = transmission(
        {"command": "Ack", "id": "1", "payload": {"idTagInfo": {"status": "Accepted"}}}
    )
    second = transmission({"command": "Error", "id": "1", "code": "GenericError"})
    assert sent(session.rpc_succeeded(rpc.token, ok(transmissions=[first, second]))) == [
        [3, "1", {"idTagInfo": {"status": "Accepted"}}]
    ]


@pytest.mark.parametrize(
    "control",
    [
        '{"type":"welcome"}',
        '{"type":"ping","message":1}',
        '{"type":"confirm_subscription","identifier":"x"}',
        '{"type":"reject_subscription","identifier":"x"}',
        '{"type":"disconnect","reason":"server_restart"}',
    ],
)
def test_control_transmissions_never_reach_the_station(control: str) -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", "StatusNotification")), "connect")
    subscribe = only_rpc(
        session.rpc_succeeded(connect.token, connect_ok(transmissions=[control])), "command"
    )
    message = only_rpc(session.rpc_succeeded(subscribe.token, ok(transmissions=[control])))
    assert sent(session.rpc_succeeded(message.token, ok(transmissions=[control]))) == [[3, "1", {}]]


@pytest.mark.parametrize(
    "malformed",
    ["not json", "[]", '{"identifier":"x","message":"text"}', '{"identifier":"x","message":{}}'],
)
def test_malformed_transmission_is_an_internal_error(malformed: str) -> None:
    """Bad input (docs/contract.md, "Bad input"): logged, and the station gets InternalError for its CALL,
    not a default reply."""
    session = make()
    rpc = start(session, "1", "StatusNotification", {})
    effects = session.rpc_succeeded(rpc.token, ok(transmissions=[malformed]))
    assert sent(effects) == [[4, "1", "InternalError", "malformed backend reply", {}]]


def test_malformed_transmission_does_not_hide_a_valid_reply() -> None:
    session = make()
    rpc = start(session, "1", "Authorize", {"idTag": "T"})
    ack = transmission(
        {"command": "Ack", "id": "1", "payload": {"idTagInfo": {"status": "Accepted"}}}
    )
    effects = session.rpc_succeeded(rpc.token, ok(transmissions=["not json", ack]))
    assert sent(effects) == [[3, "1", {"idTagInfo": {"status": "Accepted"}}]]


# --- Connect / subscribe refused -----------------------------------------------------------------


def test_connect_failure_on_boot_rejects_and_closes() -> None:
    session = make()
    session.opened()
    connect = only_rpc(session.frame_received(call("1", "BootNotification", BOOT)), "connect")
    effects = session.rpc_succeeded(connect.token, ConnectReply(status=FAILURE))
    assert effects == [
        Send(
            json.dumps(
                [3, "1", {"status": "Rejected", "currentTime": NOW, "interval": 30}],
                separators=(",", ":"),
            )
        ),
        CancelTimer("call:1"),
        Close(1008, "rejected"),
    ]
    # the station is being closed: nothing more is processed, and no Disconnect RPC is made
    assert session.frame_received(call("2", "BootNotification", BOOT)) == []
    assert session.connection_lost() == []


@pytest.mark.parametrize("action", ["StatusNotification", "Authorize", "MeterValues"])
def test_connect_failure_on_other_call_is_a_security_error(action: str) -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", action)), "connect")
    effects = session.rpc_succeeded(connect.token, ConnectReply(status=FAILURE))
    assert sent(effects) == [[4, "1", "SecurityError", "rejected by backend", {}]]
    assert effects[-1] == Close(1008, "rejected")
    assert rpcs(session.connection_lost()) == []


def test_connect_failure_leaves_queued_calls_unprocessed() -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", "BootNotification", BOOT)), "connect")
    assert rpcs(session.frame_received(call("2", "StatusNotification"))) == []
    effects = session.rpc_succeeded(connect.token, ConnectReply(status=FAILURE))
    assert rpcs(effects) == []
    assert [reply[1] for reply in sent(effects)] == ["1"]


def test_subscribe_failure_rejects_and_closes() -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", "BootNotification", BOOT)), "connect")
    subscribe = only_rpc(session.rpc_succeeded(connect.token, connect_ok()), "command")
    effects = session.rpc_succeeded(subscribe.token, CommandReply(status=FAILURE))
    assert sent(effects) == [[3, "1", {"status": "Rejected", "currentTime": NOW, "interval": 30}]]
    assert effects[-1] == Close(1008, "rejected")
    # Connect did succeed: the backend hears about the end of the connection
    disconnect = only_rpc(session.connection_lost(), "disconnect")
    assert list(disconnect.request.subscriptions) == []


# --- backend errors: InternalError and retry -------------------------------------------------------


def test_connect_error_is_an_internal_error_and_retried_on_the_next_call() -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", "BootNotification", BOOT)), "connect")
    effects = session.rpc_succeeded(connect.token, ConnectReply(status=ERROR, error_msg="db down"))
    assert sent(effects) == [[4, "1", "InternalError", "backend error on Connect", {}]]
    assert not any(isinstance(e, Close) for e in effects)
    assert not session.connected
    retry = only_rpc(session.frame_received(call("2", "BootNotification", BOOT)), "connect")
    subscribe = only_rpc(session.rpc_succeeded(retry.token, connect_ok()), "command")
    assert subscribe.request.command == "subscribe"


def test_connect_rpc_failure_is_an_internal_error_and_retried() -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", "StatusNotification")), "connect")
    effects = session.rpc_failed(connect.token, "RPC unavailable")
    assert sent(effects) == [[4, "1", "InternalError", "RPC unavailable", {}]]
    assert not session.connected
    only_rpc(session.frame_received(call("2", "StatusNotification")), "connect")
    # no Disconnect RPC for a session that never connected
    assert session.connection_lost() == []


def test_subscribe_error_is_an_internal_error_and_retried() -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", "StatusNotification")), "connect")
    subscribe = only_rpc(session.rpc_succeeded(connect.token, connect_ok()))
    effects = session.rpc_succeeded(subscribe.token, CommandReply(status=ERROR))
    assert sent(effects) == [[4, "1", "InternalError", "backend error on subscribe", {}]]
    again = only_rpc(session.frame_received(call("2", "StatusNotification")))
    assert again.request.command == "subscribe"


def test_message_error_is_an_internal_error() -> None:
    session = established()
    rpc = only_rpc(session.frame_received(call("2", "StatusNotification")))
    effects = session.rpc_succeeded(rpc.token, CommandReply(status=ERROR, error_msg="boom"))
    assert sent(effects) == [[4, "2", "InternalError", "backend error on StatusNotification", {}]]


def test_message_rpc_failure_is_an_internal_error_and_the_next_call_proceeds() -> None:
    session = established()
    rpc = only_rpc(session.frame_received(call("2", "StatusNotification")))
    assert rpcs(session.frame_received(call("3", "StatusNotification"))) == []
    effects = session.rpc_failed(rpc.token, "deadline exceeded")
    assert sent(effects) == [[4, "2", "InternalError", "deadline exceeded", {}]]
    assert message_data(only_rpc(effects))["id"] == "3"


def test_message_failure_is_a_generic_error() -> None:
    session = established()
    rpc = only_rpc(session.frame_received(call("2", "StatusNotification")))
    effects = session.rpc_succeeded(rpc.token, CommandReply(status=FAILURE))
    assert sent(effects) == [[4, "2", "GenericError", "rejected by backend", {}]]


def test_message_failure_with_an_explicit_reply_sends_that_reply() -> None:
    session = established()
    rpc = only_rpc(session.frame_received(call("2", "Authorize", {"idTag": "T"})))
    ack = transmission(
        {"command": "Ack", "id": "2", "payload": {"idTagInfo": {"status": "Invalid"}}}
    )
    effects = session.rpc_succeeded(rpc.token, CommandReply(status=FAILURE, transmissions=[ack]))
    assert sent(effects) == [[3, "2", {"idTagInfo": {"status": "Invalid"}}]]


# --- disconnect: true ----------------------------------------------------------------------------


def test_disconnect_true_replies_then_closes() -> None:
    session = established()
    rpc = only_rpc(session.frame_received(call("2", "StatusNotification")))
    effects = session.rpc_succeeded(rpc.token, ok(disconnect=True))
    assert effects == [
        Send('[3,"2",{}]'),
        CancelTimer("call:2"),
        Close(1000, "disconnected by backend"),
    ]


def test_disconnect_true_with_failure() -> None:
    session = established()
    rpc = only_rpc(session.frame_received(call("2", "StatusNotification")))
    effects = session.rpc_succeeded(rpc.token, CommandReply(status=FAILURE, disconnect=True))
    assert sent(effects) == [[4, "2", "GenericError", "rejected by backend", {}]]
    assert effects[-1] == Close(1000, "disconnected by backend")


# --- streams and state -------------------------------------------------------------------------


def test_streams_are_joined_once_and_left_on_request() -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", "StatusNotification")), "connect")
    subscribe = only_rpc(session.rpc_succeeded(connect.token, connect_ok()))
    effects = session.rpc_succeeded(subscribe.token, ok(streams=["station/CP-1", "all"]))
    assert [e for e in effects if isinstance(e, JoinStream)] == [
        JoinStream("station/CP-1"),
        JoinStream("all"),
    ]
    message = only_rpc(effects)
    effects = session.rpc_succeeded(message.token, ok(streams=["all", "extra"]))
    assert [e for e in effects if isinstance(e, JoinStream)] == [JoinStream("extra")]
    assert session.streams == {"station/CP-1", "all", "extra"}

    rpc = only_rpc(session.frame_received(call("2", "StatusNotification")))
    effects = session.rpc_succeeded(rpc.token, ok(stopped_streams=["all", "never-joined"]))
    assert [e for e in effects if isinstance(e, LeaveStream)] == [LeaveStream("all")]
    assert session.streams == {"station/CP-1", "extra"}

    rpc = only_rpc(session.frame_received(call("3", "StatusNotification")))
    effects = session.rpc_succeeded(rpc.token, ok(stop_streams=True, streams=["fresh"]))
    assert {e for e in effects if isinstance(e, LeaveStream)} == {
        LeaveStream("station/CP-1"),
        LeaveStream("extra"),
    }
    assert [e for e in effects if isinstance(e, JoinStream)] == [JoinStream("fresh")]
    # stop_streams is applied before the new streams
    assert max(i for i, e in enumerate(effects) if isinstance(e, LeaveStream)) < effects.index(
        JoinStream("fresh")
    )
    assert session.streams == {"fresh"}


def test_state_is_merged_and_sent_with_every_command() -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", "StatusNotification")), "connect")
    subscribe = only_rpc(
        session.rpc_succeeded(connect.token, connect_ok(env={"cstate": {"user": "u1", "tmp": "x"}}))
    )
    message = only_rpc(
        session.rpc_succeeded(
            subscribe.token, ok(env={"istate": {"tx": "1"}, "cstate": {"tmp": ""}})
        )
    )
    assert dict(message.request.env.cstate) == {"user": "u1"}
    assert dict(message.request.env.istate) == {"tx": "1"}
    session.rpc_succeeded(
        message.token, ok(env={"istate": {"tx": "", "meter": "5"}, "cstate": {"user": "u2"}})
    )
    assert session.cstate == {"user": "u2"}
    assert session.istate == {"meter": "5"}
    rpc = only_rpc(session.frame_received(call("2", "StatusNotification")))
    assert dict(rpc.request.env.cstate) == {"user": "u2"}
    assert dict(rpc.request.env.istate) == {"meter": "5"}
    assert rpc.request.env.url == URL and dict(rpc.request.env.headers) == HEADERS


# --- station mistakes ----------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["Reset", "TransactionEvent", "NoSuchAction", "heartbeat"])
def test_unknown_action_is_not_implemented_without_rpc(action: str) -> None:
    session = make()
    effects = session.frame_received(call("1", action))
    assert rpcs(effects) == []
    assert sent(effects) == [[4, "1", "NotImplemented", f"unknown action {action}", {}]]


def test_duplicate_unique_id_in_flight_is_a_protocol_error() -> None:
    session = established()
    rpc = only_rpc(session.frame_received(call("dup", "StatusNotification")))
    effects = session.frame_received(call("dup", "MeterValues"))
    assert effects == [Send('[4,"dup","ProtocolError","uniqueId already in flight",{}]')]
    # the first one is still answered normally, and the id may be used again afterwards
    assert sent(session.rpc_succeeded(rpc.token, ok())) == [[3, "dup", {}]]
    only_rpc(session.frame_received(call("dup", "StatusNotification")))


def test_too_many_pipelined_calls() -> None:
    session = established()
    for i in range(MAX_PIPELINED_CALLS):
        assert not sent(session.frame_received(call(f"p{i}", "StatusNotification")))
    assert sent(session.frame_received(call("one-more", "StatusNotification"))) == [
        [4, "one-more", "ProtocolError", "too many CALLs in flight", {}]
    ]


def test_pipelined_calls_are_processed_in_order_one_at_a_time() -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", "BootNotification", BOOT)), "connect")
    for uid, action in [("2", "StatusNotification"), ("3", "Authorize"), ("4", "MeterValues")]:
        effects = session.frame_received(call(uid, action))
        assert effects == [StartTimer(f"call:{uid}", 10.0)]  # queued: no RPC yet
    subscribe = only_rpc(session.rpc_succeeded(connect.token, connect_ok()))
    rpc = only_rpc(session.rpc_succeeded(subscribe.token, ok()))
    order = []
    replies = []
    while rpc is not None:
        order.append(message_data(rpc)["id"])
        effects = session.rpc_succeeded(rpc.token, ok())
        replies += sent(effects)
        found = rpcs(effects)
        assert len(found) <= 1
        rpc = found[0] if found else None
    assert order == ["1", "2", "3", "4"]
    assert [r[1] for r in replies] == ["1", "2", "3", "4"]
    assert replies[2] == [4, "3", "InternalError", "backend sent no reply", {}]


def test_heartbeat_is_answered_even_while_calls_wait() -> None:
    session = established()
    only_rpc(session.frame_received(call("2", "StatusNotification")))
    assert sent(session.frame_received(call("hb", "Heartbeat"))) == [
        [3, "hb", {"currentTime": NOW}]
    ]


# --- the per-CALL timer --------------------------------------------------------------------------


def test_call_timer_answers_internal_error_and_the_late_reply_is_dropped() -> None:
    session = established()
    rpc = only_rpc(session.frame_received(call("2", "StatusNotification")))
    session.frame_received(call("3", "StatusNotification"))
    effects = session.timer_fired("call:2")
    assert effects == [
        Send('[4,"2","InternalError","backend did not reply in time",{}]'),
        CancelTimer("call:2"),
    ]
    assert session.timer_fired("call:2") == []  # fired twice: nothing more
    # the late response answers nothing, and the next CALL goes ahead
    late = transmission({"command": "Ack", "id": "2", "payload": {}})
    effects = session.rpc_succeeded(rpc.token, ok(transmissions=[late]))
    assert sent(effects) == []
    assert message_data(only_rpc(effects))["id"] == "3"


def test_call_timer_of_a_queued_call_skips_it() -> None:
    session = established()
    rpc = only_rpc(session.frame_received(call("2", "StatusNotification")))
    session.frame_received(call("3", "StatusNotification"))
    session.frame_received(call("4", "StatusNotification"))
    assert sent(session.timer_fired("call:3")) == [
        [4, "3", "InternalError", "backend did not reply in time", {}]
    ]
    effects = session.rpc_succeeded(rpc.token, ok())
    assert sent(effects) == [[3, "2", {}]]
    assert message_data(only_rpc(effects))["id"] == "4"


def test_unknown_timer_is_ignored() -> None:
    session = established()
    assert session.timer_fired("call:nothing") == []
    assert session.timer_fired("something-else") == []


# --- malformed frames ----------------------------------------------------------------------------


def test_three_malformed_frames_in_a_row_close_the_connection() -> None:
    session = make()
    first = session.frame_received("nope")
    assert first == [Send('[4,"-1","FormationViolation","frame is not valid JSON",{}]')]
    second = session.frame_received('[2,"x","Heartbeat"]')
    assert sent(second) == [[4, "x", "FormationViolation", "message type 2 needs 4 elements", {}]]
    third = session.frame_received('[7,"y"]')
    assert sent(third) == [[4, "y", "FormationViolation", "unknown message type id 7", {}]]
    assert third[-1] == Close(1002, "too many malformed frames")
    assert MAX_FORMAT_ERRORS == 3


def test_a_good_frame_resets_the_malformed_count() -> None:
    session = make()
    for _ in range(MAX_FORMAT_ERRORS - 1):
        session.frame_received("[]")
    session.frame_received(call("hb", "Heartbeat"))
    for _ in range(MAX_FORMAT_ERRORS - 1):
        assert not any(isinstance(e, Close) for e in session.frame_received("{}"))
    assert isinstance(session.frame_received("{}")[-1], Close)


def test_station_replies_with_unknown_ids_are_dropped() -> None:
    session = established()
    assert session.frame_received('[3,"nobody",{}]') == []
    assert session.frame_received('[4,"nobody","GenericError","",{}]') == []


# --- remote commands -----------------------------------------------------------------------------


def test_broadcast_command_becomes_a_call_with_its_id() -> None:
    session = established()
    effects = broadcast_command(session, id="r-1")
    assert effects == [
        Send('[2,"r-1","Reset",{"type":"Soft"}]'),
        StartTimer(COMMAND_TIMER, 30.0),
    ]


@pytest.mark.parametrize("bad_id", [None, "", "x" * 37, 42])
def test_broadcast_command_without_a_usable_id_gets_a_uuid(bad_id: Any) -> None:
    session = established(call_timeout=5.0)
    fields = {} if bad_id is None else {"id": bad_id}
    effects = broadcast_command(session, **fields)
    [frame] = sent(effects)
    assert frame[0] == 2 and frame[2] == "Reset" and frame[3] == {"type": "Soft"}
    assert str(uuid.UUID(frame[1], version=4)) == frame[1]
    assert StartTimer(COMMAND_TIMER, 5.0) in effects


def test_command_without_payload_gets_an_empty_one() -> None:
    session = established()
    assert sent(session.broadcast({"command": "ClearCache", "id": "c"})) == [
        [2, "c", "ClearCache", {}]
    ]


def test_command_in_a_transmission() -> None:
    session = established()
    rpc = only_rpc(session.frame_received(call("2", "StatusNotification")))
    command = transmission({"command": "GetConfiguration", "id": "g-1", "payload": {"key": ["A"]}})
    effects = session.rpc_succeeded(rpc.token, ok(transmissions=[command]))
    assert sorted(sent(effects), key=lambda f: f[0]) == [
        [2, "g-1", "GetConfiguration", {"key": ["A"]}],
        [3, "2", {}],
    ]
    assert StartTimer(COMMAND_TIMER, 30.0) in effects


def test_one_outstanding_command_and_ack_report() -> None:
    session = established()
    broadcast_command(session, id="r-1")
    assert session.broadcast({"command": "ClearCache", "id": "r-2"}) == []  # queued
    effects = session.frame_received('[3,"r-1",{"status":"Accepted"}]')
    assert effects[0] == CancelTimer(COMMAND_TIMER)
    assert report(only_rpc(effects)) == {
        "action": "ack",
        "id": "r-1",
        "command": "Reset",
        "payload": {"status": "Accepted"},
    }
    # the next command goes out only now
    assert effects[-2:] == [Send('[2,"r-2","ClearCache",{}]'), StartTimer(COMMAND_TIMER, 30.0)]
    effects = session.frame_received('[3,"r-2",{"status":"Accepted"}]')
    assert report(only_rpc(effects))["id"] == "r-2"
    assert sent(effects) == []


@pytest.mark.parametrize(("granular", "action"), [(True, "error"), (False, "receive")])
def test_station_callerror_is_reported(granular: bool, action: str) -> None:
    session = established(granular_actions=granular)
    broadcast_command(session, id="r-1")
    effects = session.frame_received('[4,"r-1","NotSupported","cannot reset",{"why":"busy"}]')
    assert effects[0] == CancelTimer(COMMAND_TIMER)
    assert report(only_rpc(effects)) == {
        "action": action,
        "id": "r-1",
        "command": "Reset",
        "code": "NotSupported",
        "message": "cannot reset",
        "payload": {"why": "busy"},
    }


def test_ack_report_is_receive_when_not_granular() -> None:
    session = established(granular_actions=False)
    broadcast_command(session, id="r-1")
    assert report(only_rpc(session.frame_received('[3,"r-1",{}]')))["action"] == "receive"


def test_reply_to_a_queued_command_id_is_not_accepted() -> None:
    session = established()
    broadcast_command(session, id="r-1")
    session.broadcast({"command": "ClearCache", "id": "r-2"})
    assert session.frame_received('[3,"r-2",{}]') == []


def test_command_timeout_reports_and_sends_the_next_one() -> None:
    session = established()
    broadcast_command(session, id="r-1")
    session.broadcast({"command": "ClearCache", "id": "r-2"})
    effects = session.timer_fired(COMMAND_TIMER)
    assert report(only_rpc(effects)) == {
        "action": "error",
        "id": "r-1",
        "command": "Reset",
        "code": "Timeout",
        "message": "station did not reply in time",
        "payload": {},
    }
    assert effects[-2:] == [Send('[2,"r-2","ClearCache",{}]'), StartTimer(COMMAND_TIMER, 30.0)]
    # a late reply to the timed-out command is dropped
    assert session.frame_received('[3,"r-1",{}]') == []
    assert session.timer_fired(COMMAND_TIMER) != []  # r-2 times out in turn
    assert session.timer_fired(COMMAND_TIMER) == []  # nothing outstanding


def test_queue_overflow_is_reported_and_the_command_dropped() -> None:
    session = established(max_queue=2)
    broadcast_command(session, id="r-0")  # outstanding
    assert session.broadcast({"command": "ClearCache", "id": "r-1"}) == []
    assert session.broadcast({"command": "ClearCache", "id": "r-2"}) == []
    effects = session.broadcast(
        {"command": "UnlockConnector", "id": "r-3", "payload": {"connectorId": 1}}
    )
    assert sent(effects) == []
    assert report(only_rpc(effects)) == {
        "action": "error",
        "id": "r-3",
        "command": "UnlockConnector",
        "code": "QueueOverflow",
        "message": "command queue is full",
        "payload": {},
    }
    # the queued ones still go out in order
    assert sent(session.frame_received('[3,"r-0",{}]')) == [[2, "r-1", "ClearCache", {}]]
    assert sent(session.frame_received('[3,"r-1",{}]')) == [[2, "r-2", "ClearCache", {}]]
    assert sent(session.frame_received('[3,"r-2",{}]')) == []


def test_report_responses_are_applied() -> None:
    session = established()
    broadcast_command(session, id="r-1")
    rpc = only_rpc(session.frame_received('[3,"r-1",{}]'))
    effects = session.rpc_succeeded(rpc.token, ok(streams=["s"], disconnect=True))
    assert effects == [JoinStream("s"), Close(1000, "disconnected by backend")]


@pytest.mark.parametrize(
    "response", [CommandReply(status=ERROR, error_msg="x"), CommandReply(status=FAILURE)]
)
def test_report_errors_are_only_logged(response: CommandReply) -> None:
    session = established()
    broadcast_command(session, id="r-1")
    rpc = only_rpc(session.frame_received('[3,"r-1",{}]'))
    assert sent(session.rpc_succeeded(rpc.token, response)) == []


def test_report_rpc_failure_is_only_logged() -> None:
    session = established()
    broadcast_command(session, id="r-1")
    rpc = only_rpc(session.frame_received('[3,"r-1",{}]'))
    assert session.rpc_failed(rpc.token, "unavailable") == []


# --- asynchronous backend replies (broadcast Ack/Error) ------------------------------------------


def test_broadcast_ack_answers_a_waiting_call() -> None:
    session = established()
    rpc = only_rpc(session.frame_received(call("2", "Authorize", {"idTag": "T"})))
    effects = session.broadcast(
        {"command": "Ack", "id": "2", "payload": {"idTagInfo": {"status": "Accepted"}}}
    )
    assert effects == [
        Send('[3,"2",{"idTagInfo":{"status":"Accepted"}}]'),
        CancelTimer("call:2"),
    ]
    # the Command's own response no longer produces a default reply
    assert sent(session.rpc_succeeded(rpc.token, ok())) == []


def test_broadcast_error_answers_a_waiting_call() -> None:
    session = established()
    only_rpc(session.frame_received(call("2", "StartTransaction", {})))
    effects = session.broadcast(
        {"command": "Error", "id": "2", "code": "GenericError", "message": "m"}
    )
    assert sent(effects) == [[4, "2", "GenericError", "m", {}]]


@pytest.mark.parametrize("unique_id", ["unknown", None, 7])
def test_broadcast_reply_for_unknown_call_is_dropped(unique_id: Any) -> None:
    session = established()
    assert session.broadcast({"command": "Ack", "id": unique_id, "payload": {}}) == []


# --- the end of the connection ---------------------------------------------------------------------


def test_connection_lost_leaves_streams_reports_commands_and_disconnects() -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", "BootNotification", BOOT)), "connect")
    subscribe = only_rpc(
        session.rpc_succeeded(connect.token, connect_ok(env={"cstate": {"user": "u1"}}))
    )
    message = only_rpc(
        session.rpc_succeeded(subscribe.token, ok(streams=["a", "b"], env={"istate": {"k": "v"}}))
    )
    session.rpc_succeeded(message.token, ok())
    broadcast_command(session, id="r-1")  # in flight
    session.broadcast({"command": "ClearCache", "id": "r-2"})  # queued

    effects = session.connection_lost()
    leaves = [e for e in effects if isinstance(e, LeaveStream)]
    assert set(leaves) == {LeaveStream("a"), LeaveStream("b")} and len(leaves) == 2
    *reports, disconnect = rpcs(effects)
    assert [report(r)["id"] for r in reports] == ["r-1", "r-2"]
    assert all(
        report(r)["code"] == "Disconnected" and report(r)["action"] == "error" for r in reports
    )
    assert disconnect.method == "disconnect"
    request = disconnect.request
    assert isinstance(request, DisconnectRequest)
    assert request.identifiers == IDENTIFIERS
    assert list(request.subscriptions) == [IDENTIFIER]
    assert request.env.url == URL
    assert dict(request.env.headers) == HEADERS
    assert dict(request.env.cstate) == {"user": "u1"}
    assert {k: json.loads(v) for k, v in request.env.istate.items()} == {IDENTIFIER: {"k": "v"}}
    assert effects[-1] is disconnect
    assert session.streams == set()

    # only once; the session is inert afterwards
    assert session.connection_lost() == []
    assert session.broadcast({"command": "Reset", "payload": {}}) == []
    assert session.remote_disconnect() == []
    assert session.frame_received(call("9", "StatusNotification")) == []
    assert session.rpc_succeeded(disconnect.token, DisconnectReply(status=SUCCESS)) == []


def test_disconnect_rpc_error_is_only_logged() -> None:
    session = established()
    disconnect = only_rpc(session.connection_lost(), "disconnect")
    assert session.rpc_succeeded(disconnect.token, DisconnectReply(status=ERROR)) == []


def test_connection_lost_before_any_call() -> None:
    session = make()
    session.opened()
    assert session.connection_lost() == []


def test_connection_lost_while_connect_is_in_flight() -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", "BootNotification", BOOT)), "connect")
    assert session.connection_lost() == []
    effects = session.rpc_succeeded(connect.token, connect_ok())
    disconnect = only_rpc(effects, "disconnect")
    assert effects == [disconnect]
    assert disconnect.request.identifiers == IDENTIFIERS
    assert list(disconnect.request.subscriptions) == []


def test_no_streams_are_joined_after_the_connection_is_lost() -> None:
    session = established()
    rpc = only_rpc(session.frame_received(call("2", "StatusNotification")))
    session.connection_lost()
    effects = session.rpc_succeeded(rpc.token, ok(streams=["late"]))
    assert not any(isinstance(e, JoinStream) for e in effects)
    assert session.streams == set()


def test_remote_disconnect_closes() -> None:
    session = established()
    assert session.remote_disconnect() == [Close(1000, "disconnected by backend")]


# --- properties ------------------------------------------------------------------------------------

ACTIONS = [
    "Heartbeat",
    "BootNotification",
    "StatusNotification",
    "MeterValues",
    "Authorize",
    "DataTransfer",
    "Reset",  # a command action: not for a station to send
    "X",
]
IDS = ["a", "b", "c", "d", "e"] * 3 + ["-1", "", "x" * 37]  # mostly valid and colliding

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=10,
)
payloads = st.one_of(
    st.just({}),
    st.just({}),
    st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    json_values,
)
call_frames = st.builds(
    lambda uid, action, payload: json.dumps([2, uid, action, payload]),
    st.sampled_from(IDS),
    st.sampled_from(ACTIONS),
    payloads,
)
reply_frames = st.builds(
    lambda kind, uid: json.dumps([3, uid, {}] if kind == 3 else [4, uid, "GenericError", "", {}]),
    st.sampled_from([3, 4]),
    st.sampled_from(IDS),
)
array_frames = st.lists(
    st.sampled_from([2, 3, 4, 5, "2", None]) | json_values, min_size=0, max_size=6
).map(json.dumps)
# mostly CALLs, the frames that must be answered
frames = st.one_of(
    call_frames,
    call_frames,
    call_frames,
    call_frames,
    reply_frames,
    st.text(max_size=40),
    array_frames,
)

#: what happens next: the oldest RPC returns (or fails), the oldest running timer fires, or the
#: backend broadcasts a remote command (whose id the station's replies may use)
outcomes = st.sampled_from(
    ["success"] * 4 + ["failure", "error", "rpc-failed", "disconnect", "ack", "timer", "command"]
)


def _expected_reply_id(text: str) -> str | None:
    """The uniqueId the gateway must answer ``text`` with, exactly once, or None."""
    from ocppcable.ocpp import framing

    try:
        message = framing.parse(text)
    except framing.FrameError as e:
        return e.unique_id
    return message.unique_id if isinstance(message, framing.Call) else None


class Harness:
    """Carries out a session's effects the way the transport does, and records replies."""

    def __init__(self) -> None:
        self.session = make()
        self.pending: list[RPC] = []
        self.timers: set[str] = set()
        self.replies: list[Any] = []
        self.closed = False
        self.connected = False  # a Connect succeeded
        self.disconnected = False

    def run(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                frame = json.loads(effect.text)
                assert isinstance(frame, list) and frame[0] in (2, 3, 4)
                if frame[0] in (3, 4) and not self.closed:
                    self.replies.append(frame[1])
            elif isinstance(effect, RPC):
                # the Disconnect comes once, after the socket closed, and nothing after it
                assert not self.disconnected, effect
                if effect.method == "disconnect":
                    assert self.session.closed and self.connected
                    self.disconnected = True
                self.pending.append(effect)
            elif isinstance(effect, StartTimer):
                self.timers.add(effect.name)
            elif isinstance(effect, CancelTimer):
                self.timers.discard(effect.name)
            elif isinstance(effect, Close) and not self.closed:
                self.closed = True
                self.timers.clear()
                self.run(self.session.connection_lost())

    def fire_a_timer(self) -> None:
        running = sorted(self.timers - {IDLE_TIMER})
        if running:
            self.timers.discard(running[0])
            self.run(self.session.timer_fired(running[0]))

    def resolve(self, outcome: str) -> None:
        rpc = self.pending.pop(0)
        if outcome == "rpc-failed":
            self.run(self.session.rpc_failed(rpc.token, "unavailable"))
            return
        status = {"failure": FAILURE, "error": ERROR}.get(outcome, SUCCESS)
        if rpc.method == "connect":
            response: Any = ConnectReply(status=status, identifiers="i")
            self.connected = self.connected or status == SUCCESS
        elif rpc.method == "disconnect":
            response = DisconnectReply(status=status)
        else:
            transmissions = []
            if outcome == "ack" and rpc.request.command == "message":
                unique_id = json.loads(rpc.request.data)["id"]
                transmissions = [json.dumps({"command": "Ack", "id": unique_id, "payload": {}})]
            response = CommandReply(
                status=status, disconnect=outcome == "disconnect", transmissions=transmissions
            )
        self.run(self.session.rpc_succeeded(rpc.token, response))


@settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(st.tuples(frames, st.lists(outcomes, max_size=3)), max_size=20))
def test_any_frames_never_raise_and_every_call_is_answered_once(
    steps: list[tuple[str, list[str]]],
) -> None:
    harness = Harness()
    harness.run(harness.session.opened())
    expected: Counter[str] = Counter()
    for text, outcomes in steps:
        if harness.closed:
            break
        reply_id = _expected_reply_id(text)
        if reply_id is not None:
            expected[reply_id] += 1
        harness.run(harness.session.frame_received(text))
        for outcome in outcomes:
            if outcome == "timer":
                harness.fire_a_timer()
            elif outcome == "command":
                harness.run(harness.session.broadcast({"command": "Reset", "id": "a"}))
            elif harness.pending:
                harness.resolve(outcome)
    # let every RPC return: then every CALL has its answer, none is left to a timer
    while harness.pending and not harness.closed:
        harness.resolve("success")
    answered = Counter(harness.replies)
    # never more than one reply per CALL frame; exactly one unless the socket was closed first
    assert all(answered[uid] <= expected[uid] for uid in answered), (answered, expected)
    if not harness.closed:
        assert answered == expected
        assert not {t for t in harness.timers if t.startswith("call:")}
        harness.closed = True
        harness.run(harness.session.connection_lost())
    # once every answer is in, the backend has heard of the end exactly when it connected
    while harness.pending:
        harness.resolve("success")
    assert harness.disconnected == harness.connected
    assert harness.session.phase is Phase.CLOSED


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(array_frames | st.text(max_size=60), max_size=10))
def test_arbitrary_frames_never_raise(texts: list[str]) -> None:
    session = make()
    session.opened()
    for text in texts:
        for effect in session.frame_received(text):
            if isinstance(effect, Send):
                frame = json.loads(effect.text)
                assert frame[0] in (3, 4)
                assert isinstance(frame[1], str) and 0 < len(frame[1]) <= 36


# --- phases ----------------------------------------------------------------------------


def test_a_session_goes_through_the_phases() -> None:
    session = make()
    assert session.phase is Phase.IDLE
    connect = only_rpc(session.frame_received(call("1", "BootNotification", BOOT)), "connect")
    assert session.phase is Phase.CONNECTING
    subscribe = only_rpc(session.rpc_succeeded(connect.token, connect_ok()), "command")
    assert session.phase is Phase.SUBSCRIBING and session.connected and not session.subscribed
    session.rpc_succeeded(subscribe.token, ok())
    assert session.phase is Phase.ACTIVE and session.subscribed
    disconnect = only_rpc(session.connection_lost(), "disconnect")
    assert list(disconnect.request.subscriptions) == [IDENTIFIER]
    assert session.phase is Phase.CLOSED and session.closed and not session.connected


def test_closing_while_subscribing_waits_for_the_answer() -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", "BootNotification", BOOT)), "connect")
    subscribe = only_rpc(session.rpc_succeeded(connect.token, connect_ok()), "command")
    assert session.connection_lost() == []
    assert session.phase is Phase.CLOSED_SUBSCRIBING and session.closed
    disconnect = only_rpc(session.rpc_succeeded(subscribe.token, ok()), "disconnect")
    assert list(disconnect.request.subscriptions) == [IDENTIFIER]
    assert session.phase is Phase.CLOSED


def test_closing_while_subscribing_then_the_subscribe_fails() -> None:
    session = make()
    connect = only_rpc(session.frame_received(call("1", "BootNotification", BOOT)), "connect")
    subscribe = only_rpc(session.rpc_succeeded(connect.token, connect_ok()), "command")
    session.connection_lost()
    disconnect = only_rpc(session.rpc_failed(subscribe.token, "unavailable"), "disconnect")
    assert list(disconnect.request.subscriptions) == []
    assert session.phase is Phase.CLOSED


def test_a_heartbeat_ends_the_idle_phase() -> None:
    session = make()
    session.opened()
    session.frame_received(call("hb", "Heartbeat"))
    assert session.phase is Phase.CONNECTING
    assert session.timer_fired(IDLE_TIMER) == []


def test_the_idle_timer_closes_an_idle_session() -> None:
    session = make()
    session.opened()
    assert session.timer_fired(IDLE_TIMER) == [Close(1000, "idle")]
    assert session.phase is Phase.IDLE
    assert session.connection_lost() == []
    assert session.phase is Phase.CLOSED


class _Gauge:
    def __init__(self) -> None:
        self.authenticated = 0

    def __getattr__(self, name: str):  # every other metric: ignored
        return lambda *args, **kwargs: None

    def session_authenticated(self, delta: int) -> None:
        self.authenticated += delta


@pytest.mark.parametrize("late", [False, True])
def test_authenticated_sessions_gauge_is_balanced(late: bool) -> None:
    gauge = _Gauge()
    session = make()
    session.metrics = gauge
    connect = only_rpc(session.frame_received(call("1", "BootNotification", BOOT)), "connect")
    if late:  # the Connect succeeds after the socket closed: its Disconnect follows at once
        session.connection_lost()
        only_rpc(session.rpc_succeeded(connect.token, connect_ok()), "disconnect")
        assert gauge.authenticated == 0
    else:
        session.rpc_succeeded(connect.token, connect_ok())
        assert gauge.authenticated == 1
        session.connection_lost()
    assert gauge.authenticated == 0


def test_an_established_session_is_active() -> None:
    assert established().phase is Phase.ACTIVE


# --- remote commands too large to send (issue 12 item 11) -------------------------------------


def test_a_command_too_large_to_send_is_refused_at_once_and_the_queue_goes_on() -> None:
    session = established(max_frame=1000)
    effects = session.broadcast(
        {"command": "DataTransfer", "id": "big", "payload": {"vendorId": "v", "data": "x" * 2000}}
    )
    assert sent(effects) == [] and not any(isinstance(e, StartTimer) for e in effects)
    data = report(only_rpc(effects))
    assert (data["action"], data["id"], data["code"]) == ("error", "big", "TooLarge")
    assert "exceeds 1000" in data["message"]
    # the next command goes out at once: nothing waits behind the refused one
    effects = broadcast_command(session, id="r-1")
    assert sent(effects) == [[2, "r-1", "Reset", {"type": "Soft"}]]


def test_a_command_of_exactly_the_frame_limit_is_sent() -> None:
    frame = json.dumps(
        [2, "r", "DataTransfer", {"vendorId": "v", "data": ""}], separators=(",", ":")
    )
    session = established(max_frame=len(frame) + 10)
    effects = session.broadcast(
        {"command": "DataTransfer", "id": "r", "payload": {"vendorId": "v", "data": "é" * 5}}
    )
    assert sent(effects) == [[2, "r", "DataTransfer", {"vendorId": "v", "data": "é" * 5}]]


# --- graceful stop (issue 12 item 9) ----------------------------------------------------------


def test_stopping_an_idle_session_closes_it_at_once() -> None:
    session = make()
    session.opened()
    assert session.shutdown() == [Close(1001, "going away")]
    assert session.shutdown() == []


def test_stopping_waits_for_the_call_in_flight_and_refuses_new_ones() -> None:
    session = established()
    rpc = only_rpc(session.frame_received(call("a1", "DataTransfer", {"vendorId": "v"})))
    # a pipelined CALL not yet sent to the backend is refused when the stop begins
    assert rpcs(session.frame_received(call("a2", "DataTransfer", {"vendorId": "v"}))) == []
    effects = session.shutdown()
    assert sent(effects) == [[4, "a2", "InternalError", "gateway shutting down", {}]]
    assert not any(isinstance(e, Close) for e in effects)
    # a new CALL is refused; the one in flight is still answered, then the station closed
    assert sent(session.frame_received(call("a3", "Heartbeat"))) == [
        [4, "a3", "InternalError", "gateway shutting down", {}]
    ]
    effects = session.rpc_succeeded(rpc.token, ok())
    assert sent(effects)[0][:2] == [3, "a1"]
    closes = [e for e in effects if isinstance(e, Close)]
    assert closes == [Close(1001, "going away")]
    assert effects.index(closes[0]) > [type(e) for e in effects].index(Send)


def test_stopping_closes_when_the_call_times_out() -> None:
    session = established()
    only_rpc(session.frame_received(call("a1", "Authorize", {"idTag": "T"})))
    assert not any(isinstance(e, Close) for e in session.shutdown())
    effects = session.timer_fired("call:a1")
    assert sent(effects)[0][:3] == [4, "a1", "InternalError"]
    assert effects[-1] == Close(1001, "going away")


def test_a_stop_drains_before_it_closes() -> None:
    session = established()
    assert session.stop is Stop.RUNNING
    only_rpc(session.frame_received(call("a1", "Authorize", {"idTag": "T"})))
    session.shutdown()
    assert session.stop is Stop.DRAINING
    session.timer_fired("call:a1")
    assert session.stop is Stop.CLOSING
    # the session still moves through its phases while it stops
    session.connection_lost()
    assert (session.phase, session.stop) == (Phase.CLOSED, Stop.CLOSING)

"""Session behaviour beyond the 1.6 basics: validation, Defer, rate limit, ordering, 2.x frames."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ocppcable.cable import CommandReply, Status
from ocppcable.ocpp import v21, v201
from ocppcable.ocpp.validation import validator_for
from ocppcable.session import RPC, Close, JoinStream, Send, Session, SessionSettings
from tests.support import (
    BOOT,
    HEADERS,
    NOW,
    URL,
    call,
    connect_ok,
    established,
    make,
    message_data,
    ok,
    only_rpc,
    rpcs,
    sent,
    start,
    transmission,
)


def reply_with(message: dict[str, Any]) -> CommandReply:
    return CommandReply(status=Status.SUCCESS, transmissions=[transmission(message)])


def test_defer_holds_the_default_until_the_broadcast_reply():
    session = established()
    message = only_rpc(session.frame_received(call("a", "Authorize", {"idTag": "T"})))
    effects = session.rpc_succeeded(message.token, reply_with({"command": "Defer", "id": "a"}))
    assert sent(effects) == []
    ack = {"command": "Ack", "id": "a", "payload": {"idTagInfo": {"status": "Accepted"}}}
    assert sent(session.broadcast(ack)) == [[3, "a", {"idTagInfo": {"status": "Accepted"}}]]
    assert session.broadcast(ack) == []  # a duplicate is dropped


def test_deferred_call_gets_the_default_at_its_deadline():
    session = established()
    message = only_rpc(session.frame_received(call("d", "DataTransfer", {"vendorId": "v"})))
    session.rpc_succeeded(message.token, reply_with({"command": "Defer", "id": "d"}))
    assert sent(session.timer_fired("call:d")) == [[3, "d", {"status": "Accepted"}]]


def test_validation_refuses_without_rpc():
    session = make()
    session.validator = validator_for(session.catalog)
    effects = session.frame_received(call("1", "BootNotification", {"chargePointVendor": "V"}))
    assert rpcs(effects) == []
    assert sent(effects)[0][:3] == [4, "1", "OccurenceConstraintViolation"]


def test_invalid_backend_ack_becomes_internal_error():
    session = established()
    session.validator = validator_for(session.catalog)
    message = only_rpc(session.frame_received(call("a", "Authorize", {"idTag": "T"})))
    bad = {"command": "Ack", "id": "a", "payload": {"idTagInfo": {"status": "Perhaps"}}}
    effects = session.rpc_succeeded(message.token, reply_with(bad))
    assert sent(effects) == [[4, "a", "InternalError", "malformed backend reply", {}]]


def test_non_ocpp_error_code_becomes_generic_error():
    session = established()
    message = only_rpc(session.frame_received(call("a", "Authorize", {"idTag": "T"})))
    error = {"command": "Error", "id": "a", "error_code": "Teapot", "error_message": "no"}
    assert sent(session.rpc_succeeded(message.token, reply_with(error))) == [
        [4, "a", "GenericError", "no", {}]
    ]


def test_rate_limit_refuses_then_recovers():
    now = [0.0]
    session = Session(
        station_id="CP-1",
        catalog=make().catalog,
        settings=SessionSettings(rate_limit=2.0, rate_burst=2.0),
        url=URL,
        headers=HEADERS,
        utc_now=lambda: NOW,
        clock=lambda: now[0],
    )
    replies = [sent(session.frame_received(call(f"h{i}", "Heartbeat")))[0] for i in range(3)]
    assert [r[0] for r in replies] == [3, 3, 4]
    assert replies[2][2:4] == ["GenericError", "rate limit exceeded"]
    now[0] = 1.0  # two tokens back
    assert sent(session.frame_received(call("h9", "Heartbeat")))[0][0] == 3


def test_sustained_flood_closes():
    session = make(rate_limit=1.0, rate_burst=1.0)
    effects: list = []
    for i in range(200):
        effects = session.frame_received(call(f"f{i}", "Heartbeat"))
        if any(isinstance(e, Close) for e in effects):
            break
    assert Close(1008, "rate limit exceeded") in effects


def test_reply_to_the_station_goes_before_queued_commands():
    session = established()
    message = only_rpc(session.frame_received(call("s", "StatusNotification", {})))
    command = {"command": "Reset", "id": "r", "payload": {"type": "Soft"}}
    frames = sent(session.rpc_succeeded(message.token, reply_with(command)))
    assert frames == [[3, "s", {}], [2, "r", "Reset", {"type": "Soft"}]]


def test_disconnect_waits_for_an_in_flight_subscribe():
    session = make()
    connect = only_rpc(session.frame_received(call("1", "BootNotification", BOOT)), "connect")
    subscribe = only_rpc(session.rpc_succeeded(connect.token, connect_ok()), "command")
    assert rpcs(session.connection_lost()) == []  # not yet: the subscribe decides
    effects = session.rpc_succeeded(subscribe.token, ok(streams=["s"]))
    assert not any(isinstance(e, JoinStream) for e in effects)
    (disconnect,) = rpcs(effects)
    assert disconnect.method == "disconnect"
    assert list(disconnect.request.subscriptions) == [session.identifier]


def _session(catalog) -> Session:
    return Session(
        station_id="CS-1",
        catalog=catalog,
        settings=SessionSettings(),
        url=URL,
        headers=HEADERS,
        utc_now=lambda: NOW,
        validator=validator_for(catalog),
    )


BOOT_201 = {
    "chargingStation": {"model": "M", "vendorName": "V", "serialNumber": "S"},
    "reason": "PowerUp",
}


def test_201_identifier_names_the_protocol_and_serial():
    session = _session(v201.CATALOG)
    message = start(session, payload=BOOT_201)
    assert json.loads(message.request.identifier) == {
        "channel": "OCPPChannel",
        "id": "CS-1",
        "sn": "S",
        "protocol": "ocpp2.0.1",
    }


def test_21_send_is_performed_and_never_answered():
    session = _session(v21.CATALOG)
    message = start(session, payload=BOOT_201)
    session.rpc_succeeded(message.token, ok())
    stream = {"id": 1, "pending": 0, "basetime": NOW, "data": [{"t": 0, "v": "1"}]}
    effects = session.frame_received(json.dumps([6, "s", "NotifyPeriodicEventStream", stream]))
    perform: RPC = only_rpc(effects, "command")
    assert message_data(perform)["action"] == "notify_periodic_event_stream"
    assert sent(session.rpc_succeeded(perform.token, ok())) == []
    # an invalid SEND, an unknown one and a CALLRESULTERROR get no reply either
    for frame in (
        [6, "x", "NotifyPeriodicEventStream", {}],
        [6, "y", "Heartbeat", {}],
        [5, "z", "InternalError", "bad", {}],
    ):
        assert session.frame_received(json.dumps(frame)) == []


def test_201_only_knows_its_own_frames():
    session = _session(v201.CATALOG)
    (reply,) = [
        e for e in session.frame_received('[6,"s","NotifyEvent",{}]') if isinstance(e, Send)
    ]
    assert json.loads(reply.text)[:3] == [4, "s", "MessageTypeNotSupported"]


# --- docs/contract.md, "Bad input", row by row (the transport-level rows — binary and oversized frames — are
# --- end-to-end tests in test_e2e_hostile.py; malformed broadcasts are the hub's, test_hub.py)

BAD_INPUT = [
    ("not JSON", ["{nope"], [4, "-1", "FormationViolation"]),
    ("not an array", ['{"a":1}'], [4, "-1", "FormationViolation"]),
    ("wrong arity", ['[2,"w","Heartbeat"]'], [4, "w", "FormationViolation"]),
    ("unknown message type", ['[8,"t",{}]'], [4, "t", "FormationViolation"]),
    ("unknown action", ['[2,"u","Teleport",{}]'], [4, "u", "NotImplemented"]),
    (
        "schema: wrong type",
        ['[2,"s","BootNotification",{"chargePointVendor":1,"chargePointModel":"M"}]'],
        [4, "s", "TypeConstraintViolation"],
    ),
    (
        "schema: missing field",
        ['[2,"s","BootNotification",{"chargePointVendor":"V"}]'],
        [4, "s", "OccurenceConstraintViolation"],
    ),
    (
        "schema: value out of range",
        ['[2,"s","StatusNotification",{"connectorId":1,"errorCode":"X","status":"Available"}]'],
        [4, "s", "PropertyConstraintViolation"],
    ),
    (
        "schema: extra property",
        ['[2,"s","Heartbeat",{}]', '[2,"s2","DataTransfer",{"vendorId":"v","x":1}]'],
        [4, "s2", "FormationViolation"],
    ),
    ("reply to an unknown CALL", ['[3,"nobody",{}]', '[4,"nobody","GenericError","",{}]'], None),
]


@pytest.mark.parametrize(("row", "frames", "expected"), BAD_INPUT, ids=[r[0] for r in BAD_INPUT])
def test_bad_input(row, frames, expected):
    session = make()
    session.validator = validator_for(session.catalog)
    effects = []
    for frame in frames:
        effects = session.frame_received(frame)
    assert rpcs(effects) == []  # never an RPC for bad input
    replies = sent(effects)
    if expected is None:
        assert replies == []
    else:
        assert replies[-1][:3] == expected


def test_three_malformed_frames_in_a_row_close():
    session = make()
    effects = [session.frame_received("[") for _ in range(3)]
    assert Close(1002, "too many malformed frames") in effects[-1]
    assert not any(isinstance(e, Close) for e in effects[0] + effects[1])


def test_duplicate_unique_id_in_flight():
    session = established()
    only_rpc(session.frame_received(call("d", "DataTransfer", {"vendorId": "v"})))
    assert sent(session.frame_received(call("d", "DataTransfer", {"vendorId": "v"}))) == [
        [4, "d", "ProtocolError", "uniqueId already in flight", {}]
    ]


def test_malformed_backend_response():
    session = established()
    message = only_rpc(session.frame_received(call("m", "DataTransfer", {"vendorId": "v"})))
    response = CommandReply(status=Status.SUCCESS, transmissions=["[not json"])
    assert sent(session.rpc_succeeded(message.token, response)) == [
        [4, "m", "InternalError", "malformed backend reply", {}]
    ]


def test_validation_never_changes_a_payload():
    payload = {
        "eventType": "Started",
        "timestamp": NOW,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "t"},
        "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": 1.0, "unitOfMeasure": {}}]}],
    }
    before = json.dumps(payload, sort_keys=True)
    validator_for(v201.CATALOG).check_request("TransactionEvent", payload)
    assert json.dumps(payload, sort_keys=True) == before

"""The WebSocket transport (Autobahn glue) over an in-memory transport and a fake clock: the
handshake, frames to the session and back, close codes, the write backlog, timers.

End-to-end behaviour over real sockets is in tests/test_e2e_*.py; these run in milliseconds."""

from __future__ import annotations

import json
import pprint

import pytest
import txaio
from autobahn.websocket import protocol as autobahn_protocol
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher

from ocppcable import websocket
from ocppcable.session import SessionSettings
from ocppcable.testing import (
    BINARY,
    CLOSE,
    TEXT,
    AnsweringRPC,
    MemoryStation,
    close_code,
    station_factory,
)
from ocppcable.websocket import PrettyWhenLogged

BOOT = json.dumps([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rpc(clock) -> AnsweringRPC:
    return AnsweringRPC(clock)


@pytest.fixture
def factory(clock, rpc):
    return station_factory(clock, rpc)


def opened(factory, path: str = "/ocpp/CP-1", subprotocols=("ocpp1.6",), **headers):
    station = MemoryStation(factory)
    response = station.handshake(path, subprotocols, headers)
    assert response.startswith(b"HTTP/1.1 101 "), response
    return station


def booted(factory, path: str = "/ocpp/CP-1"):
    station = opened(factory, path)
    station.send(BOOT)
    [reply] = station.texts()
    assert json.loads(reply)[2]["status"] == "Accepted"
    return station


def closes(station) -> list[tuple[int | None, bytes]]:
    """(code, reason) of the close frames the gateway sent."""
    return [(close_code(p), p[2:]) for opcode, p in station.received() if opcode == CLOSE]


# --- opening handshake ------------------------------------------------------------------------


def test_the_first_offered_subprotocol_the_gateway_serves_is_chosen(factory):
    station = MemoryStation(factory)
    response = station.handshake("/ocpp/CP-1", ["ocpp9", "ocpp2.0.1", "ocpp1.6"])
    assert response.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Protocol: ocpp2.0.1\r\n" in response
    assert station.protocol.websocket_protocol_in_use == "ocpp2.0.1"


@pytest.mark.parametrize(
    ("path", "subprotocols", "status"),
    [
        ("/ocpp/CP-1", ["ocpp9"], b"400"),
        ("/ocpp/CP-1", [], b"400"),
        ("/other/CP-1", ["ocpp1.6"], b"404"),
        ("/ocpp/", ["ocpp1.6"], b"404"),
        ("/ocpp/bad%20id", ["ocpp1.6"], b"404"),
        ("/ocpp/" + "X" * 49, ["ocpp1.6"], b"404"),
    ],
)
def test_refused_handshakes(factory, rpc, path, subprotocols, status):
    station = MemoryStation(factory)
    response = station.handshake(path, subprotocols)
    assert response.split(b" ")[1] == status, response
    assert station.transport.disconnecting
    assert rpc.calls == [] and len(factory.hub) == 0


def test_a_draining_gateway_refuses_new_stations_with_503(factory):
    factory.draining = True
    response = MemoryStation(factory).handshake()
    assert response.startswith(b"HTTP/1.1 503 ")


def test_the_connect_request_carries_the_url_and_the_forwarded_headers(factory, rpc):
    station = opened(factory, authorization="Basic abc", cookie="not forwarded")
    assert factory.hub.station("CP-1") is station.protocol
    station.send(BOOT)
    connect = next(request for method, request in rpc.calls if method == "connect")
    assert connect.env.url == "http://127.0.0.1/ocpp/CP-1"
    headers = dict(connect.env.headers)
    assert {
        "authorization": "Basic abc",
        "REMOTE_ADDR": "127.0.0.1",
        "sec-websocket-protocol": "ocpp1.6",
    }.items() <= headers.items()
    assert "cookie" not in headers  # only --headers are forwarded


def test_every_connection_gets_a_session_id_of_its_own(factory):
    sids = {opened(factory, f"/ocpp/CP-{n}").protocol.sid for n in range(3)}
    assert len(sids) == 3 and {len(sid) for sid in sids} == {21}


# --- frames in, frames out --------------------------------------------------------------------


def test_a_call_goes_through_the_session_and_its_reply_comes_back(factory, rpc):
    station = booted(factory)
    assert [method for method, _ in rpc.calls][:1] == ["connect"]
    station.send(json.dumps([2, "h", "Heartbeat", {}]))
    [(opcode, payload)] = station.received()
    assert opcode == TEXT
    assert json.loads(payload)[:2] == [3, "h"]


def test_a_failed_rpc_answers_the_call_with_an_internal_error(factory, rpc, warnings):
    rpc.failure = "backend unreachable"
    station = opened(factory)
    station.send(BOOT)
    [reply] = station.texts()
    assert json.loads(reply)[:3] == [4, "b", "InternalError"]
    assert any("backend unreachable" in line for line in warnings)


def test_a_broadcast_reaches_the_station_as_a_call(factory):
    station = booted(factory)
    station.protocol.deliver({"command": "Reset", "id": "r", "payload": {"type": "Soft"}})
    [call] = station.texts()
    assert json.loads(call) == [2, "r", "Reset", {"type": "Soft"}]


# --- close codes ------------------------------------------------------------------------------


def test_a_binary_frame_is_closed_with_1003(factory):
    station = booted(factory)
    station.send(b"\x00\x01", BINARY)
    assert closes(station) == [(1003, b"binary frames are not OCPP")]


def test_a_message_over_the_size_limit_is_closed_with_1009(clock, rpc):
    station = booted(station_factory(clock, rpc, max_message_size=1024))
    station.send("[" + " " * 1024 + "]")
    assert [code for code, _ in closes(station)] == [1009]


def test_invalid_utf8_is_closed_with_1007(factory):
    station = booted(factory)
    station.send(b"\xff\xfe", TEXT)
    assert [code for code, _ in closes(station)] == [1007]


@pytest.mark.parametrize(
    ("event", "expected"),
    [("replace", (1000, b"replaced")), ("shutdown", (1001, b"going away"))],
)
def test_hub_requests_close_with_their_codes(factory, event, expected):
    station = booted(factory)
    getattr(station.protocol, event)()
    assert closes(station) == [expected]


def test_a_remote_disconnect_closes_with_1000(factory):
    station = booted(factory)
    station.protocol.disconnect(reconnect=False)
    assert closes(station) == [(1000, b"disconnected by backend")]


def test_a_close_from_the_station_is_answered_and_makes_the_disconnect_rpc(factory, rpc):
    station = booted(factory)
    station.close(1000)
    assert [code for code, _ in closes(station)] == [1000]  # the close handshake's reply
    assert station.transport.disconnecting
    assert station.protocol.gone.called
    assert factory.hub.station("CP-1") is None
    assert [method for method, _ in rpc.calls][-1] == "disconnect"


def test_a_dropped_connection_makes_the_disconnect_rpc(factory, rpc):
    station = booted(factory)
    station.lose()
    assert station.protocol.gone.called
    assert factory.hub.station("CP-1") is None
    assert [method for method, _ in rpc.calls][-1] == "disconnect"


def test_a_dropped_connection_leaves_no_timer(clock, factory):
    station = opened(factory)
    assert clock.getDelayedCalls()  # the idle timer
    station.lose()
    assert clock.getDelayedCalls() == []


# --- timers on the clock ----------------------------------------------------------------------


def test_a_station_that_sends_no_call_is_closed_when_idle(clock, rpc):
    station = opened(station_factory(clock, rpc, settings=SessionSettings(idle_timeout=10)))
    clock.advance(9.9)
    assert station.received() == []
    clock.advance(0.1)
    assert closes(station) == [(1000, b"idle")]


def test_a_station_that_sent_a_call_is_not_closed_when_idle(clock, rpc):
    station = booted(station_factory(clock, rpc, settings=SessionSettings(idle_timeout=10)))
    clock.advance(60)
    assert closes(station) == []


# --- write backlog ----------------------------------------------------------------------------


def test_a_station_that_does_not_read_is_dropped_once_its_backlog_is_full(
    factory, monkeypatch, warnings
):
    monkeypatch.setattr(websocket, "MAX_PENDING_BYTES", 500)
    station = booted(factory)
    station.transport.producer.pauseProducing()  # the socket's buffer is full
    for n in range(20):
        if not station.transport.connected:
            break
        station.send(json.dumps([2, f"h{n}", "Heartbeat", {}]))
    assert station.transport.aborted
    assert station.protocol.gone.called
    assert any("does not read its socket" in line for line in warnings)


def test_a_backlog_that_drains_is_forgiven(factory, monkeypatch):
    monkeypatch.setattr(websocket, "MAX_PENDING_BYTES", 500)
    station = booted(factory)
    producer = station.transport.producer
    for n in range(20):
        producer.pauseProducing()
        station.send(json.dumps([2, f"h{n}", "Heartbeat", {}]))
        producer.resumeProducing()  # the socket drained
    assert station.transport.connected
    assert len(station.texts()) == 20


# --- Autobahn's per-connection costs ----------------------------------------------------------


def test_pretty_when_logged_formats_like_pformat():
    value = [("openHandshakeTimeout", 5, "Factory"), ("utf8validateIncoming", True, "Factory")]
    pretty = PrettyWhenLogged(value)
    assert str(pretty) == repr(pretty) == pprint.pformat(value)
    assert f"{pretty}" == pprint.pformat(value)
    assert formatEvent({"log_format": "\n{attrs}", "attrs": pretty}) == "\n" + pprint.pformat(value)


def test_autobahn_options_line_is_logged_unchanged_at_debug_level(factory):
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    txaio.set_global_log_level("debug")
    try:
        opened(factory)
    finally:
        txaio.set_global_log_level("info")
        globalLogPublisher.removeObserver(events.append)

    # the debug line Autobahn writes on every connection carries its options, put off until
    # formatted and then the text pformat gives
    [options] = [e for e in events if e.get("log_format") == "\n{attrs}"]
    assert isinstance(options["attrs"], PrettyWhenLogged)
    assert formatEvent(options) == "\n" + pprint.pformat(options["attrs"].value)
    assert "'openHandshakeTimeout'" in formatEvent(options)
    # and Autobahn's own pformat is back for everything else
    assert autobahn_protocol.pformat is pprint.pformat

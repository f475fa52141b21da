"""Tracked remote commands in the session: how each ended comes back as a CommandEnded effect,
the session's start as Started, and the source in the backend's #ack/#error data."""

from __future__ import annotations

from typing import Any

from ocppcable.commands import CommandEnded, Ending, RemoteCommand
from ocppcable.ocpp import v16
from ocppcable.ocpp.validation import validator_for
from ocppcable.session import COMMAND_TIMER, Send, Started
from tests.support import (
    BOOT,
    call,
    established,
    make,
    ok,
    only_rpc,
    report,
    rpcs,
    start,
)

RESET = RemoteCommand("api-1", "Reset", {"type": "Soft"}, token="t1", source="api")


def ends(effects: list[Any]) -> list[CommandEnded]:
    return [e for e in effects if isinstance(e, CommandEnded)]


def test_a_result_ends_the_command_and_the_ack_says_where_it_came_from() -> None:
    session = established()
    effects = session.command(RESET)
    assert effects[0] == Send('[2,"api-1","Reset",{"type":"Soft"}]')
    effects = session.frame_received('[3,"api-1",{"status":"Accepted"}]')
    assert ends(effects) == [CommandEnded(RESET, Ending.RESULT, {"status": "Accepted"})]
    assert report(only_rpc(effects)) == {
        "action": "ack",
        "id": "api-1",
        "command": "Reset",
        "payload": {"status": "Accepted"},
        "source": "api",
    }


def test_a_callerror_ends_the_command_as_error() -> None:
    session = established()
    session.command(RESET)
    effects = session.frame_received('[4,"api-1","NotSupported","no",{"why":"busy"}]')
    assert ends(effects) == [
        CommandEnded(RESET, Ending.ERROR, {"why": "busy"}, "NotSupported", "no")
    ]
    assert report(only_rpc(effects))["source"] == "api"


def test_a_station_that_does_not_answer_ends_it_as_timeout() -> None:
    session = established()
    session.command(RESET)
    effects = session.timer_fired(COMMAND_TIMER)
    [ended] = ends(effects)
    assert (ended.ending, ended.code) == (Ending.TIMEOUT, "Timeout")


def test_an_invalid_command_is_never_sent() -> None:
    session = established()
    session.validator = validator_for(v16.CATALOG)
    bad = RemoteCommand("api-2", "Reset", {"type": "Medium"}, token="t2", source="api")
    effects = session.command(bad)
    [ended] = ends(effects)
    assert ended.ending is Ending.INVALID and ended.code == "PropertyConstraintViolation"
    assert not [e for e in effects if isinstance(e, Send)]
    assert report(only_rpc(effects))["source"] == "api"


def test_a_full_queue_drops_it() -> None:
    session = established(max_queue=1)
    session.command(RESET)  # outstanding
    session.command(RemoteCommand("api-2", "ClearCache", {}, token="t2"))  # queued
    effects = session.command(RemoteCommand("api-3", "ClearCache", {}, token="t3"))
    [ended] = ends(effects)
    assert (ended.ending, ended.code) == (Ending.DROPPED, "QueueOverflow")


def test_a_disconnect_loses_the_sent_one_and_keeps_an_unsent_one_with_a_ttl() -> None:
    session = established()
    session.command(RESET)
    kept = RemoteCommand("api-2", "ClearCache", {}, token="t2", ttl=60.0)
    dropped = RemoteCommand("api-3", "ClearCache", {}, token="t3")
    session.command(kept)
    session.command(dropped)
    effects = session.connection_lost()
    assert [(e.command.unique_id, e.ending, e.code) for e in ends(effects)] == [
        ("api-1", Ending.LOST, "Disconnected"),
        ("api-2", Ending.UNSENT, None),
        ("api-3", Ending.UNSENT, "Disconnected"),
    ]
    # the one kept for the next session is not reported as disconnected
    reported = [report(rpc)["id"] for rpc in rpcs(effects) if rpc.method == "command"]
    assert reported == ["api-1", "api-3"]


def test_a_closed_session_does_not_take_a_command() -> None:
    session = established()
    session.connection_lost()
    assert session.command(RESET) == [CommandEnded(RESET, Ending.UNSENT)]


def test_a_broadcast_with_a_ttl_not_yet_sent_waits_for_the_next_session() -> None:
    session = established()
    session.broadcast({"command": "Reset", "id": "b-1", "payload": {"type": "Soft"}})
    session.broadcast({"command": "ClearCache", "id": "b-2", "ttl": 30})
    session.broadcast({"command": "ClearCache", "id": "b-3", "ttl": "soon"})  # ttl ignored
    [ended] = ends(session.connection_lost())
    assert ended.command == RemoteCommand("b-2", "ClearCache", {}, ttl=30.0)
    assert ended.ending is Ending.UNSENT


def test_untracked_commands_give_no_ends() -> None:
    session = established()
    session.broadcast({"command": "Reset", "id": "b-1", "payload": {"type": "Soft"}})
    assert ends(session.frame_received('[3,"b-1",{"status":"Accepted"}]')) == []
    # and their reports stay as they were: no source
    session.broadcast({"command": "Reset", "id": "b-2", "payload": {"type": "Soft"}})
    effects = session.frame_received('[3,"b-2",{"status":"Accepted"}]')
    assert "source" not in report(only_rpc(effects))


def test_started_comes_once_after_the_first_call_is_answered() -> None:
    session = make(report_start=True)
    session.opened()
    message = start(session)
    effects = session.rpc_succeeded(message.token, ok())
    assert isinstance(effects[0], Send) and Started() in effects
    assert effects.index(Started()) > 0  # after the station's reply
    again = only_rpc(session.frame_received(call("2", "BootNotification", BOOT)))
    assert Started() not in session.rpc_succeeded(again.token, ok())


def test_no_started_unless_asked() -> None:
    session = make()
    session.opened()
    message = start(session)
    assert Started() not in session.rpc_succeeded(message.token, ok())


def test_an_expired_command_is_reported_as_such() -> None:
    session = established()
    effects = session.command_expired(RESET)
    assert report(only_rpc(effects)) == {
        "action": "error",
        "id": "api-1",
        "command": "Reset",
        "code": "Expired",
        "message": "expired before the station connected",
        "payload": {},
        "source": "api",
    }


def test_before_the_backend_holds_a_connection_the_answer_goes_to_the_tracker_only() -> None:
    session = make()
    session.opened()
    session.command(RESET)  # the station connected, sent no CALL yet
    effects = session.frame_received('[3,"api-1",{"status":"Accepted"}]')
    assert ends(effects) == [CommandEnded(RESET, Ending.RESULT, {"status": "Accepted"})]
    assert rpcs(effects) == []

"""The sans-I/O session driven with plain calls, and the frames and replies it is fed."""

from __future__ import annotations

import json
from typing import Any

from ocppcable.cable import CommandReply, ConnectReply, ReplyEnv, Status
from ocppcable.ocpp import v16
from ocppcable.session import RPC, Effect, Send, Session, SessionSettings

NOW = "2026-01-01T00:00:00.000Z"
URL = "http://gateway.test/ocpp/CP-1?token=t"
HEADERS = {"authorization": "Basic Q1AtMTpwdw==", "REMOTE_ADDR": "10.0.0.1"}
IDENTIFIERS = '{"station":"CP-1"}'
BOOT = {"chargePointVendor": "V", "chargePointModel": "M", "meterSerialNumber": "SN-1"}
IDENTIFIER = '{"channel":"OCPPChannel","id":"CP-1","sn":"SN-1"}'


def make(**overrides: Any) -> Session:
    return Session(
        station_id="CP-1",
        catalog=v16.CATALOG,
        settings=SessionSettings(**overrides),
        url=URL,
        headers=HEADERS,
        utc_now=lambda: NOW,
    )


def call(unique_id: str, action: str, payload: dict[str, Any] | None = None) -> str:
    return json.dumps([2, unique_id, action, {} if payload is None else payload])


def sent(effects: list[Effect]) -> list[Any]:
    return [json.loads(e.text) for e in effects if isinstance(e, Send)]


def rpcs(effects: list[Effect]) -> list[RPC]:
    return [e for e in effects if isinstance(e, RPC)]


def only_rpc(effects: list[Effect], method: str | None = None) -> RPC:
    found = rpcs(effects)
    assert len(found) == 1, effects
    if method is not None:
        assert found[0].method == method
    return found[0]


def _reply_env(kwargs: dict[str, Any]) -> dict[str, Any]:
    if isinstance(kwargs.get("env"), dict):
        kwargs["env"] = ReplyEnv(**kwargs["env"])
    return kwargs


def connect_ok(**kwargs: Any) -> ConnectReply:
    return ConnectReply(status=Status.SUCCESS, identifiers=IDENTIFIERS, **_reply_env(kwargs))


def ok(**kwargs: Any) -> CommandReply:
    return CommandReply(status=Status.SUCCESS, **_reply_env(kwargs))


def transmission(message: dict[str, Any], identifier: str = IDENTIFIER) -> str:
    return json.dumps({"identifier": identifier, "message": message})


def message_data(rpc: RPC) -> dict[str, Any]:
    assert rpc.method == "command" and rpc.request.command == "message"
    return json.loads(rpc.request.data)


def start(
    session: Session, unique_id: str = "1", action: str = "BootNotification", payload: Any = BOOT
) -> RPC:
    """Send the first CALL and let Connect and subscribe succeed: the ``message`` RPC."""
    connect = only_rpc(session.frame_received(call(unique_id, action, payload)), "connect")
    subscribe = only_rpc(session.rpc_succeeded(connect.token, connect_ok()), "command")
    return only_rpc(session.rpc_succeeded(subscribe.token, ok()), "command")


def established(**overrides: Any) -> Session:
    """A session whose BootNotification went through and was answered by default."""
    session = make(**overrides)
    session.opened()
    message = start(session)
    assert sent(session.rpc_succeeded(message.token, ok()))[0][0] == 3
    return session


def broadcast_command(session: Session, command: str = "Reset", **fields: Any) -> list[Effect]:
    return session.broadcast({"command": command, "payload": {"type": "Soft"}, **fields})


def report(rpc: RPC) -> dict[str, Any]:
    """The data of an ``ack``/``error`` report RPC."""
    assert rpc.method == "command" and rpc.request.command == "message"
    assert rpc.request.identifier == IDENTIFIER
    return json.loads(rpc.request.data)

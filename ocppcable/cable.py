# -*- test-case-name: tests.test_cable -*-
"""The Action Cable side of the mapping: channel identifiers, perform data, transmissions, and
the AnyCable RPC messages.

Pure functions over strings, dicts and records, no I/O. The session builds its RPC requests as
the plain records below (:class:`ConnectRequest`, :class:`CommandRequest`,
:class:`DisconnectRequest`) and reads the answers as plain records (:class:`ConnectReply`,
:class:`CommandReply`, :class:`DisconnectReply`); their fields carry the names of AnyCable's
``rpc.proto``, which are also the keys of its HTTP RPC JSON. A transport turns them into what
it sends: the gRPC and in-process clients into protobuf messages with the ``*_pb`` functions
here, and the protobuf answers back with the ``*_from_pb`` ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, ClassVar

from ocppcable.ocpp import framing
from ocppcable.ocpp.naming import snake_case
from ocppcable.protos import rpc_pb2 as pb

#: standard JSON only, out and in: no NaN or infinities, no lone surrogates, bounded nesting
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_decode = framing.loads

#: Action Cable protocol messages that are never forwarded to a station.
_CONTROL_TYPES = frozenset(
    {"welcome", "ping", "confirm_subscription", "reject_subscription", "disconnect"}
)


class MalformedMessage(ValueError):
    """A backend transmission or broadcast that cannot be mapped to OCPP."""


def channel_identifier(
    channel: str, station_id: str, serial: str | None, protocol: str | None = None
) -> str:
    """``{"channel":…,"id":…,"sn":…,"protocol":…}`` with keys in that order, ``sn`` omitted
    when unknown and ``protocol`` when not given."""
    identifier: dict[str, str] = {"channel": channel, "id": station_id}
    if serial:
        identifier["sn"] = serial
    if protocol:
        identifier["protocol"] = protocol
    return _encode(identifier)


def perform_data(
    action: str, unique_id: str, command: str, payload: Any, granular: bool = True
) -> str:
    """The ``data`` of a ``message`` Command for a station CALL."""
    return _encode(
        {
            "action": snake_case(action) if granular else "receive",
            "id": unique_id,
            "command": command,
            "payload": payload,
        }
    )


def ack_data(
    unique_id: str, command: str, payload: Any, granular: bool = True, source: str | None = None
) -> str:
    """The ``data`` reporting a station CALLRESULT for a remote command; ``source`` says where
    a command not sent by the backend came from (``"api"``)."""
    data = {
        "action": "ack" if granular else "receive",
        "id": unique_id,
        "command": command,
        "payload": payload,
    }
    if source is not None:
        data["source"] = source
    return _encode(data)


def error_data(
    unique_id: str,
    command: str,
    code: str,
    message: str,
    payload: Any,
    granular: bool = True,
    source: str | None = None,
) -> str:
    """The ``data`` reporting a station CALLERROR (or a gateway-side failure) for a command."""
    data = {
        "action": "error" if granular else "receive",
        "id": unique_id,
        "command": command,
        "code": code,
        "message": message,
        "payload": payload,
    }
    if source is not None:
        data["source"] = source
    return _encode(data)


def _as_command(message: Any, source: str) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise MalformedMessage(f"{source} is not a JSON object")
    command = message.get("command")
    if not isinstance(command, str) or not command:
        raise MalformedMessage(f"{source} has no command")
    return message


def decode_transmission(text: str) -> dict[str, Any] | None:
    """The OCPP-level message inside a transmission, or None for Action Cable control messages.

    Accepts ``{"identifier":…,"message":{"command":…}}`` (what ``transmit`` produces) and a bare
    ``{"command":…}``.
    """
    try:
        decoded = _decode(text)
    except ValueError:
        raise MalformedMessage("transmission is not JSON") from None
    if not isinstance(decoded, dict):
        raise MalformedMessage("transmission is not a JSON object")
    if decoded.get("type") in _CONTROL_TYPES:
        return None
    if "message" in decoded:
        return _as_command(decoded["message"], "transmitted message")
    return _as_command(decoded, "transmission")


def decode_broadcast(data: Any) -> dict[str, Any]:
    """The OCPP-level message in a publication's ``data`` (a JSON string, or already decoded)."""
    if isinstance(data, str):
        try:
            data = _decode(data)
        except ValueError:
            raise MalformedMessage("broadcast data is not JSON") from None
    return _as_command(data, "broadcast data")


def merge_state(state: MutableMapping[str, str], changes: Mapping[str, str]) -> None:
    """AnyCable state semantics: changes are merged, an empty value deletes the key."""
    for key, value in changes.items():
        if value == "":
            state.pop(key, None)
        else:
            state[key] = value


def encode_state(state: Mapping[str, str]) -> str:
    return _encode(dict(state))


# --- AnyCable RPC messages, independent of the transport ---------------------------------------


class Method(StrEnum):
    """The three AnyCable RPC methods."""

    CONNECT = "connect"
    COMMAND = "command"
    DISCONNECT = "disconnect"


class Status(IntEnum):
    """An RPC answer's status, with ``rpc.proto``'s numbers (a missing status is ERROR)."""

    ERROR = 0
    SUCCESS = 1
    FAILURE = 2


def _no_state() -> dict[str, str]:
    return {}


@dataclass(frozen=True, slots=True)
class Env:
    """The connection's environment sent with every request."""

    url: str = ""
    headers: Mapping[str, str] = field(default_factory=_no_state)
    #: connection state (``cstate``)
    cstate: Mapping[str, str] = field(default_factory=_no_state)
    #: channel state: the channel's own in a Command, JSON per subscription in a Disconnect
    istate: Mapping[str, str] = field(default_factory=_no_state)


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """``Connection#connect``."""

    method: ClassVar[Method] = Method.CONNECT
    env: Env = field(default_factory=Env)


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """A channel command: ``subscribe`` or ``message`` (a perform with ``data``)."""

    method: ClassVar[Method] = Method.COMMAND
    command: str = ""
    identifier: str = ""
    connection_identifiers: str = ""
    data: str = ""
    env: Env = field(default_factory=Env)


@dataclass(frozen=True, slots=True)
class DisconnectRequest:
    """``Connection#disconnect`` and the ``unsubscribed`` of every subscribed channel."""

    method: ClassVar[Method] = Method.DISCONNECT
    identifiers: str = ""
    subscriptions: Sequence[str] = ()
    env: Env = field(default_factory=Env)


#: what an RPC effect carries; ``request.method`` says which RPC to make
Request = ConnectRequest | CommandRequest | DisconnectRequest


@dataclass(frozen=True, slots=True)
class ReplyEnv:
    """State changes in an answer (``EnvResponse``): an empty value deletes the key."""

    cstate: Mapping[str, str] = field(default_factory=_no_state)
    istate: Mapping[str, str] = field(default_factory=_no_state)


@dataclass(frozen=True, slots=True)
class ConnectReply:
    status: Status = Status.ERROR
    identifiers: str = ""
    transmissions: Sequence[str] = ()
    error_msg: str = ""
    env: ReplyEnv = field(default_factory=ReplyEnv)


@dataclass(frozen=True, slots=True)
class CommandReply:
    status: Status = Status.ERROR
    disconnect: bool = False
    stop_streams: bool = False
    streams: Sequence[str] = ()
    transmissions: Sequence[str] = ()
    error_msg: str = ""
    env: ReplyEnv = field(default_factory=ReplyEnv)
    stopped_streams: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class DisconnectReply:
    status: Status = Status.ERROR
    error_msg: str = ""


Reply = ConnectReply | CommandReply | DisconnectReply


# --- to and from protobuf (gRPC, the in-process channels) -------------------------------------


def _env_pb(env: Env) -> pb.Env:
    return pb.Env(url=env.url, headers=env.headers, cstate=env.cstate, istate=env.istate)


def connect_request_pb(request: ConnectRequest) -> pb.ConnectionRequest:
    return pb.ConnectionRequest(env=_env_pb(request.env))


def command_request_pb(request: CommandRequest) -> pb.CommandMessage:
    return pb.CommandMessage(
        command=request.command,
        identifier=request.identifier,
        connection_identifiers=request.connection_identifiers,
        data=request.data,
        env=_env_pb(request.env),
    )


def disconnect_request_pb(request: DisconnectRequest) -> pb.DisconnectRequest:
    return pb.DisconnectRequest(
        identifiers=request.identifiers,
        subscriptions=request.subscriptions,
        env=_env_pb(request.env),
    )


def _reply_env(env: pb.EnvResponse) -> ReplyEnv:
    return ReplyEnv(cstate=dict(env.cstate), istate=dict(env.istate))


def connect_reply_from_pb(response: pb.ConnectionResponse) -> ConnectReply:
    """Raises ValueError for a status ``rpc.proto`` does not know."""
    return ConnectReply(
        status=Status(response.status),
        identifiers=response.identifiers,
        transmissions=list(response.transmissions),
        error_msg=response.error_msg,
        env=_reply_env(response.env),
    )


def command_reply_from_pb(response: pb.CommandResponse) -> CommandReply:
    """Raises ValueError for a status ``rpc.proto`` does not know."""
    return CommandReply(
        status=Status(response.status),
        disconnect=response.disconnect,
        stop_streams=response.stop_streams,
        streams=list(response.streams),
        transmissions=list(response.transmissions),
        error_msg=response.error_msg,
        env=_reply_env(response.env),
        stopped_streams=list(response.stopped_streams),
    )


def disconnect_reply_from_pb(response: pb.DisconnectResponse) -> DisconnectReply:
    """Raises ValueError for a status ``rpc.proto`` does not know."""
    return DisconnectReply(status=Status(response.status), error_msg=response.error_msg)

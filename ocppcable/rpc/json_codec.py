"""AnyCable HTTP RPC's JSON, straight from and to the transport-neutral records of
:mod:`ocppcable.cable`: no protobuf on the way (its ``json_format`` costs three times a plain
``json`` encode).

Requests carry ``rpc.proto``'s field names (snake_case) with zero values omitted, as AnyCable-Go
sends them. Answers are read as AnyCable-Go reads them: unknown fields ignored, a missing
``status`` is ERROR, ``null`` is the zero value; a field of the wrong JSON type, a status
``rpc.proto`` does not know, or text :func:`ocppcable.ocpp.framing.loads` refuses (deep nesting,
a lone surrogate, ``NaN``) makes the whole answer malformed (:class:`ValueError`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ocppcable import cable
from ocppcable.ocpp import framing

_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
_decode = framing.loads

#: per request record, its fields besides ``env``
_REQUEST_FIELDS: dict[type, tuple[str, ...]] = {
    cable.ConnectRequest: (),
    cable.CommandRequest: ("command", "identifier", "connection_identifiers", "data"),
    cable.DisconnectRequest: ("identifiers", "subscriptions"),
}


def _env(env: cable.Env) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if env.url:
        fields["url"] = env.url
    for name in ("headers", "cstate", "istate"):
        value = getattr(env, name)
        if value:
            fields[name] = dict(value)
    return fields


def encode_request(request: cable.Request) -> bytes:
    """The body of an HTTP RPC request."""
    fields: dict[str, Any] = {}
    for name in _REQUEST_FIELDS[type(request)]:
        value = getattr(request, name)
        if value:
            fields[name] = value if isinstance(value, str) else list(value)
    fields["env"] = _env(request.env)
    return _encode(fields).encode("utf-8")


# --- answers ------------------------------------------------------------------------------------


def _status(fields: dict[str, Any]) -> cable.Status:
    status = fields.get("status")
    if status is None:
        return cable.Status.ERROR
    if type(status) is not int:
        raise ValueError("status is not an integer")
    return cable.Status(status)


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if type(value) is not str:
        raise ValueError(f"{name} is not a string")
    return value


def _texts(fields: dict[str, Any], name: str) -> list[str]:
    value = fields.get(name)
    if value is None:
        return []
    if type(value) is not list or not all(type(item) is str for item in value):
        raise ValueError(f"{name} is not an array of strings")
    return value


def _flag(fields: dict[str, Any], name: str) -> bool:
    value = fields.get(name)
    if value is None:
        return False
    if type(value) is not bool:
        raise ValueError(f"{name} is not a boolean")
    return value


def _state(env: dict[str, Any], name: str) -> dict[str, str]:
    value = env.get(name)
    if value is None:
        return {}
    if type(value) is not dict or not all(type(item) is str for item in value.values()):
        raise ValueError(f"env.{name} is not an object of strings")
    return value


def _reply_env(fields: dict[str, Any]) -> cable.ReplyEnv:
    env = fields.get("env")
    if env is None:
        return cable.ReplyEnv()
    if type(env) is not dict:
        raise ValueError("env is not an object")
    if not env:
        return cable.ReplyEnv()
    return cable.ReplyEnv(cstate=_state(env, "cstate"), istate=_state(env, "istate"))


def _connect_reply(fields: dict[str, Any]) -> cable.ConnectReply:
    return cable.ConnectReply(
        status=_status(fields),
        identifiers=_text(fields, "identifiers"),
        transmissions=_texts(fields, "transmissions"),
        error_msg=_text(fields, "error_msg"),
        env=_reply_env(fields),
    )


def _command_reply(fields: dict[str, Any]) -> cable.CommandReply:
    return cable.CommandReply(
        status=_status(fields),
        disconnect=_flag(fields, "disconnect"),
        stop_streams=_flag(fields, "stop_streams"),
        streams=_texts(fields, "streams"),
        transmissions=_texts(fields, "transmissions"),
        error_msg=_text(fields, "error_msg"),
        env=_reply_env(fields),
        stopped_streams=_texts(fields, "stopped_streams"),
    )


def _disconnect_reply(fields: dict[str, Any]) -> cable.DisconnectReply:
    return cable.DisconnectReply(status=_status(fields), error_msg=_text(fields, "error_msg"))


#: the reply record of each request record
_REPLIES: dict[type, Callable[[dict[str, Any]], cable.Reply]] = {
    cable.ConnectRequest: _connect_reply,
    cable.CommandRequest: _command_reply,
    cable.DisconnectRequest: _disconnect_reply,
}


def decode_reply(request: type, body: bytes) -> cable.Reply:
    """The reply record answering a ``request`` record type, from a response body; raises
    :class:`ValueError` when the body is malformed."""
    fields = _decode(body.decode("utf-8"))
    if type(fields) is not dict:
        raise ValueError("not a JSON object")
    return _REPLIES[request](fields)

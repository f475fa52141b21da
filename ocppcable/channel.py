# -*- test-case-name: tests.test_channel -*-
"""Write the backend channel in Python: the Action Cable contract without Rails.

A :class:`Channel` subclass is what an ``OCPPChannel < ApplicationCable::Channel`` is in Rails:
``subscribed`` and ``unsubscribed``, one method per snake_case OCPP action receiving the perform
``data`` (``{"action","id","command","payload"}``), ``ack``/``error`` for the station's replies
to remote commands, and ``transmit``, ``stream_for``/``stream_from``, ``reject`` to answer. Its
:class:`Connection` is ``ApplicationCable::Connection``: ``connect`` (which may ``reject``),
``disconnect`` and the connection's identifiers. The gateway runs it in its own process::

    twistd -n ocppcable --rpc-host=python:mypackage.channels:OCPPChannel

:class:`ChannelApplication` turns the three AnyCable RPCs (protobuf messages, as a gRPC server
hands them) into calls of those methods; :mod:`ocppcable.rpc.inprocess` calls it from the
gateway, and :mod:`ocppcable.rpc.grpc_server` can serve it to a gateway elsewhere. See
``docs/plugins.md``, "Write your channel in Python".
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote, urlsplit

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ocppcable.ocpp.naming import snake_case
from ocppcable.protos.rpc_pb2 import (
    ERROR,
    FAILURE,
    SUCCESS,
    CommandMessage,
    CommandResponse,
    ConnectionRequest,
    ConnectionResponse,
    DisconnectRequest,
    DisconnectResponse,
    EnvResponse,
)

__all__ = ["Channel", "ChannelApplication", "Connection", "State"]

log = Logger()

#: standard JSON only, as the gateway reads it
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode

R = TypeVar("R")


class State(MutableMapping[str, str]):
    """AnyCable's connection (``cstate``) or channel (``istate``) state: string values that
    live as long as the connection, sent back to the gateway as changes."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})
        #: what was set or deleted ("" deletes), to send back
        self.changes: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __setitem__(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("state keys and values are strings (encode others with json)")
        self._values[key] = value
        self.changes[key] = value

    def __delitem__(self, key: str) -> None:
        del self._values[key]
        self.changes[key] = ""

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class Connection:
    """``ApplicationCable::Connection``: one per RPC, restored from what the gateway keeps.

    Override :meth:`connect` to check the station (``headers["authorization"]``, the client
    certificate's ``headers["x-client-cert-cn"]``) and :meth:`disconnect` to clean up."""

    def __init__(
        self,
        application: ChannelApplication,
        url: str,
        headers: Mapping[str, str],
        state: Mapping[str, str],
        identifiers: Mapping[str, Any] | None = None,
        sid: str = "",
    ) -> None:
        #: the :class:`ChannelApplication` serving this connection
        self.application = application
        #: ``http(s)://<Host><ocpp-path>/<station id>?<query>``
        self.url = url
        #: the forwarded headers (lower-case names) and ``x-ocpp-station-id``
        self.headers = dict(headers)
        #: the connection state (``cstate``): strings kept as long as the connection
        self.state = State(state)
        #: what :meth:`connect` identified the connection by (a JSON object)
        self.identifiers: dict[str, Any] = dict(identifiers or {})
        #: the gateway's session id, unique per WebSocket connection
        self.sid = sid
        self.rejected = False
        self.closing = False

    @property
    def station_id(self) -> str:
        """The station's id, as the gateway serves it."""
        return self.headers.get("x-ocpp-station-id") or unquote(
            urlsplit(self.url).path.rsplit("/", 1)[-1]
        )

    def connect(self) -> Any:
        """``Connection#connect``: identify the station, or :meth:`reject` it. By default it is
        identified by ``{"station_id": …}``. May be ``async`` (in-process only)."""
        self.identifiers["station_id"] = self.station_id

    def disconnect(self) -> Any:
        """``Connection#disconnect``, after every channel's ``unsubscribed``. A station that
        reconnects has its new connection's ``connect`` first (``docs/channel-contract.md``)."""

    def reject(self) -> None:
        """Refuse the connection (``reject_unauthorized_connection``): the station's
        BootNotification is answered ``Rejected`` and the station closed."""
        self.rejected = True

    def close(self) -> None:
        """Close the station after this command's reply (``disconnect: true``)."""
        self.closing = True


class Channel:
    """``ApplicationCable::Channel`` for stations: subclass it and add one method per action.

    A new instance serves each RPC (as AnyCable does); keep what must last in :attr:`state` or
    :attr:`connection`'s state, or in your own storage. Methods run in the gateway's reactor
    thread: return quickly, or make them ``async`` (awaiting Deferreds or treq) and the station's
    CALL waits for them, within ``--rpc-timeout``. An action that returns a dict has it sent as
    the CALL's reply (a shorthand for :meth:`transmit_ack`); one that transmits nothing gets the
    gateway's default reply. An exception is logged with the station id and the CALL answered
    ``InternalError``.
    """

    #: the Connection class of this channel's application
    connection_class: ClassVar[type[Connection]] = Connection
    #: the prefix of :meth:`stream_for` broadcastings, as Action Cable's ``channel_name``
    #: (``ocpp`` for ``OCPPChannel``); set from the class name unless a subclass sets it
    channel_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "channel_name" not in cls.__dict__:
            base = cls.__name__.removesuffix("Channel") or cls.__name__
            cls.channel_name = snake_case(base)

    def __init__(self, connection: Connection, identifier: str, state: Mapping[str, str]) -> None:
        self.connection = connection
        #: the channel identifier, as the gateway sent it (JSON)
        self.identifier = identifier
        #: the decoded identifier: ``{"channel", "id", "sn"?, "protocol"?}``
        self.params: dict[str, Any] = json.loads(identifier) if identifier else {}
        #: the channel state (``istate``): strings kept as long as the subscription
        self.state = State(state)
        self.transmissions: list[Any] = []
        self.streams: list[str] = []
        self.stopped_streams: list[str] = []
        self.stop_streams = False
        self.rejected = False

    @property
    def application(self) -> ChannelApplication:
        return self.connection.application

    @property
    def station_id(self) -> str:
        """``params["id"]``."""
        return str(self.params.get("id", ""))

    @property
    def protocol(self) -> str:
        """The station's OCPP version: ``params["protocol"]``, absent (``ocpp1.6``) for 1.6."""
        return str(self.params.get("protocol", "ocpp1.6"))

    # --- what the gateway calls ---------------------------------------------------------------

    def subscribed(self) -> Any:
        """The station's first CALL: stream, keep state, or :meth:`reject`."""

    def unsubscribed(self) -> Any:
        """The station is gone."""

    # --- what a channel does ------------------------------------------------------------------

    def transmit(self, message: Any) -> None:
        """Send ``message`` to this station: a reply (``{"command": "Ack"|"Error"|"Defer",
        "id": …}``) or a remote command (``{"command": "Reset", "payload": {…}}``)."""
        self.transmissions.append(message)

    def transmit_ack(self, data: Mapping[str, Any], payload: Any = None, /, **fields: Any) -> None:
        """Answer the CALL of ``data`` with ``payload`` (a dict, or keyword arguments)."""
        body = dict(payload or {}, **fields)
        self.transmit({"command": "Ack", "id": data["id"], "payload": body})

    def transmit_error(
        self, data: Mapping[str, Any], code: str, message: str = "", details: Any = None
    ) -> None:
        """Answer the CALL of ``data`` with a CALLERROR (``code`` from the OCPP version's)."""
        self.transmit(
            {
                "command": "Error",
                "id": data["id"],
                "error_code": code,
                "error_message": message,
                "payload": details or {},
            }
        )

    def transmit_defer(self, data: Mapping[str, Any]) -> None:
        """Answer the CALL of ``data`` later, by a broadcast to the station's stream."""
        self.transmit({"command": "Defer", "id": data["id"]})

    def stream_from(self, broadcasting: str) -> None:
        """Deliver what is broadcast to ``broadcasting`` to this station."""
        self.streams.append(broadcasting)

    def stream_for(self, model: Any) -> None:
        """``stream_from("<channel_name>:<model>")``: ``stream_for(f"ev/{self.station_id}")``
        in ``OCPPChannel`` streams ``ocpp:ev/CP-001``."""
        self.stream_from(self.broadcasting_for(model))

    @classmethod
    def broadcasting_for(cls, model: Any) -> str:
        """The stream name :meth:`stream_for` uses (what a broadcast names)."""
        return f"{cls.channel_name}:{model}"

    def stop_stream_from(self, broadcasting: str) -> None:
        self.stopped_streams.append(broadcasting)

    def stop_all_streams(self) -> None:
        self.stop_streams = True

    def reject(self) -> None:
        """In :meth:`subscribed`: refuse the subscription (the station is then closed)."""
        self.rejected = True

    def action(self, name: Any) -> Callable[[dict[str, Any]], Any] | None:
        """The method performing ``name``: a public method of the subclass, never one of
        :class:`Channel`'s own (a station cannot make the gateway call ``transmit``)."""
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            return None
        if name in _RESERVED:
            return None
        method = getattr(self, name, None)
        return method if callable(method) else None


_RESERVED = frozenset(dir(Channel))


def _awaitable(result: Any) -> bool:
    return isinstance(result, Deferred) or inspect.iscoroutine(result)


class ChannelApplication:
    """The AnyCable RPC handlers of one :class:`Channel` class, over protobuf messages:
    ``connect``, ``command`` and ``disconnect(request, metadata)``.

    A response is returned at once when every method called was synchronous, or as a Deferred
    when one was ``async`` (only the in-process client takes those)."""

    def __init__(self, channel: type[Channel]) -> None:
        self.channel = channel

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.channel.__module__}.{self.channel.__qualname__})"

    def _connection(self, env: Any, meta: Mapping[str, str], identifiers: str = "") -> Connection:
        return self.channel.connection_class(
            self,
            env.url,
            dict(env.headers),
            dict(env.cstate),
            json.loads(identifiers) if identifiers else {},
            meta.get("sid", ""),
        )

    # --- the RPCs -----------------------------------------------------------------------------

    def connect(self, request: ConnectionRequest, meta: Mapping[str, str]) -> Any:
        connection = self._connection(request.env, meta)

        def answer(failed: bool) -> ConnectionResponse:
            if failed:
                return ConnectionResponse(status=ERROR, error_msg="connect failed")
            if connection.rejected:
                refusal = {"type": "disconnect", "reason": "unauthorized", "reconnect": False}
                return ConnectionResponse(status=FAILURE, transmissions=[_encode(refusal)])
            return ConnectionResponse(
                status=SUCCESS,
                identifiers=_encode(connection.identifiers),
                transmissions=[_encode({"type": "welcome", "sid": connection.sid})],
                env=EnvResponse(cstate=connection.state.changes),
            )

        steps = [(connection.connect, None)]
        return _run(steps, answer, "connect", connection.station_id)

    def command(self, request: CommandMessage, meta: Mapping[str, str]) -> Any:
        connection = self._connection(request.env, meta, request.connection_identifiers)
        channel = self.channel(connection, request.identifier, dict(request.env.istate))
        station_id = channel.station_id or connection.station_id
        if request.command == "subscribe":
            step: Callable[[], Any] = channel.subscribed
        elif request.command == "unsubscribe":
            channel.stop_all_streams()
            step = channel.unsubscribed
        elif request.command == "message":
            data = json.loads(request.data)
            action = data.get("action") if isinstance(data, dict) else None
            method = channel.action(action)
            if method is None:
                log.debug(
                    "channel {channel} has no action {action!r} (for {station_id})",
                    channel=self.channel.__name__,
                    action=action,
                    station_id=station_id,
                )
                return self._command_response(request, channel, False)
            return _run(
                [(lambda: method(data), lambda reply: _reply_with(channel, data, reply))],
                lambda failed: self._command_response(request, channel, failed),
                action,
                station_id,
            )
        else:
            return CommandResponse(status=ERROR, error_msg=f"unknown command {request.command}")
        return _run(
            [(step, None)],
            lambda failed: self._command_response(request, channel, failed),
            request.command,
            station_id,
        )

    def disconnect(self, request: DisconnectRequest, meta: Mapping[str, str]) -> Any:
        connection = self._connection(request.env, meta, request.identifiers)
        steps: list[tuple[Callable[[], Any], Any]] = []
        for identifier in request.subscriptions:
            try:
                state = json.loads(request.env.istate.get(identifier) or "{}")
            except ValueError:
                state = {}
            channel = self.channel(connection, identifier, state)
            steps.append((channel.unsubscribed, None))
        steps.append((connection.disconnect, None))

        def answer(failed: bool) -> DisconnectResponse:
            if failed:
                return DisconnectResponse(status=ERROR, error_msg="disconnect failed")
            return DisconnectResponse(status=SUCCESS)

        return _run(steps, answer, "disconnect", connection.station_id)

    def _command_response(
        self, request: CommandMessage, channel: Channel, failed: bool
    ) -> CommandResponse:
        if failed:
            return CommandResponse(status=ERROR, error_msg=f"{request.command} failed")
        try:
            transmissions = [
                _encode({"identifier": request.identifier, "message": message})
                for message in channel.transmissions
            ]
        except (TypeError, ValueError):  # not JSON: a datetime, a set, NaN
            _logged(Failure(), "transmit", channel.station_id)
            return CommandResponse(status=ERROR, error_msg="a transmission is not JSON")
        if request.command == "subscribe":
            kind = "reject_subscription" if channel.rejected else "confirm_subscription"
            transmissions.append(_encode({"identifier": request.identifier, "type": kind}))
        return CommandResponse(
            status=FAILURE if channel.rejected else SUCCESS,
            disconnect=channel.connection.closing,
            stop_streams=channel.stop_streams,
            streams=[] if channel.rejected else channel.streams,
            stopped_streams=channel.stopped_streams,
            transmissions=transmissions,
            env=EnvResponse(cstate=channel.connection.state.changes, istate=channel.state.changes),
        )


def _reply_with(channel: Channel, data: Mapping[str, Any], reply: Any) -> None:
    """An action's return value: a dict is the CALL's reply."""
    if isinstance(reply, Mapping):
        channel.transmit_ack(data, reply)


Step = tuple[Callable[[], Any], Callable[[Any], None] | None]


def _run(
    steps: list[Step], answer: Callable[[bool], R], what: Any, station_id: str, failed: bool = False
) -> Any:
    """Run each ``(call, use_result)`` step in order, then ``answer(failed)``: at once while the
    calls are synchronous, in a Deferred from the first that returns an awaitable. An exception
    is logged with the station id and makes the answer a failed one; later steps still run."""
    for index, (call, use) in enumerate(steps):
        try:
            result = call()
        except Exception:
            _logged(Failure(), what, station_id)
            failed = True
            continue
        if _awaitable(result):
            return _resume(result, use, steps[index + 1 :], answer, what, station_id, failed)
        if use is not None:
            use(result)
    return answer(failed)


def _resume(
    result: Any,
    use: Callable[[Any], None] | None,
    rest: list[Step],
    answer: Callable[[bool], R],
    what: Any,
    station_id: str,
    failed: bool,
) -> Deferred[R]:
    """:func:`_run` goes on when the awaitable ``result`` of a step is there."""

    def resumed(value: Any) -> Any:
        if use is not None:
            use(value)
        return _run(rest, answer, what, station_id, failed)

    def raised(failure: Failure) -> Any:
        if failure.check(CancelledError):  # the gateway gave up (--rpc-timeout): let it end
            return failure
        _logged(failure, what, station_id)
        return _run(rest, answer, what, station_id, True)

    return ensureDeferred(result).addCallbacks(resumed, raised)


def _logged(failure: Failure, what: Any, station_id: str) -> None:
    log.failure(
        "the channel raised in {what} for {station_id}",
        failure,
        what=what,
        station_id=station_id,
    )

"""Test doubles: stations connected to the gateway's WebSocket protocol in memory.

Like :mod:`twisted.internet.testing`, for this project's tests, ``bench/micro.py`` and plugin
authors (a station hook, an RPC transport or an in-process backend is unit-tested with these,
without sockets). No socket, no reactor: the protocol runs over a
:class:`~twisted.internet.testing.StringTransport` and every timer on a
:class:`~twisted.internet.task.Clock`::

    gateway = MemoryGateway(hooks=[MyHook()])        # rpc=...: your backend instead
    station = gateway.connect("CP-1", "ocpp1.6")
    reply = station.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    assert reply[2]["status"] == "Accepted"
    gateway.clock.advance(30)                        # timers fire
    station.close()

The lower level, as ``bench/micro.py`` uses it::

    clock = Clock()
    station = MemoryStation(station_factory(clock, AnsweringRPC(clock)))
    station.handshake("/ocpp/CP-1", ["ocpp1.6"])
    station.send('[2,"1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]')
    [(opcode, payload)] = station.received()
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from ocppcable.cable import CommandReply, ConnectReply, DisconnectReply, Status
from ocppcable.channel import Channel, ChannelApplication
from ocppcable.hub import Hub
from ocppcable.metrics import IMetrics, PrometheusMetrics
from ocppcable.ocpp.validation import validator_for
from ocppcable.rpc.inprocess import InProcessClient
from ocppcable.rpc.interface import IRPCClient, RPCUnavailable
from ocppcable.rpc.policy import CallPolicy
from ocppcable.service import CATALOGS
from ocppcable.session import SessionSettings
from ocppcable.stations import StationFactory
from ocppcable.websocket import StationProtocol

#: WebSocket opcodes (RFC 6455 §5.2)
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def client_frame(payload: str | bytes, opcode: int = TEXT, fin: bool = True) -> bytes:
    """One frame as a station sends it: masked, as RFC 6455 requires of clients."""
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    mask = os.urandom(4)
    n = len(data)
    if n < 126:
        length = bytes([0x80 | n])
    elif n < 1 << 16:
        length = bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        length = bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return bytes([(0x80 if fin else 0) | opcode]) + length + mask + masked


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The ``(opcode, payload)`` of every complete frame in what the gateway wrote."""
    frames = []
    while len(data) >= 2:
        opcode, n, offset = data[0] & 0x0F, data[1] & 0x7F, 2
        if n == 126:
            (n,), offset = struct.unpack("!H", data[2:4]), 4
        elif n == 127:
            (n,), offset = struct.unpack("!Q", data[2:10]), 10
        if len(data) < offset + n:
            break
        frames.append((opcode, data[offset : offset + n]))
        data = data[offset + n :]
    return frames


def close_code(payload: bytes) -> int | None:
    """The status code in a close frame's payload (None when it has none)."""
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


class MemoryTransport(StringTransport):
    """A :class:`StringTransport` that, as a TCP transport, tells its protocol when it closes
    and lets a producer be unregistered when none is (as behind a plain listener)."""

    protocol: Any = None

    def loseConnection(self) -> None:
        self._lost(ConnectionDone("closed by the gateway"))

    def abortConnection(self) -> None:
        self.aborted = True
        self._lost(ConnectionAborted("aborted by the gateway"))

    def unregisterProducer(self) -> None:
        self.producer = None

    def _lost(self, reason: Exception) -> None:
        self.disconnecting = True
        if self.connected:
            self.connected = False
            self.protocol.connectionLost(Failure(reason))


@implementer(IRPCClient)
class AnsweringRPC:
    """An AnyCable backend that answers every RPC at once with success, through the real
    :class:`~ocppcable.rpc.policy.CallPolicy` as the gRPC and HTTP transports do.

    ``calls`` records ``(method, request)``; set ``failure`` to a message to fail every call
    with :class:`RPCUnavailable` instead; ``streams`` are those a subscribe answers with."""

    target = "in-memory backend"

    def __init__(self, clock: IReactorTime, metrics: IMetrics | None = None) -> None:
        self.policy = CallPolicy(clock, 28, 10.0, metrics)
        self.calls: list[tuple[str, Any]] = []
        self.failure: str | None = None
        self.streams = ["station/CP"]

    def _run(self, method: str, sid: str, request: Any, response: Any) -> Deferred[Any]:
        self.calls.append((method, request))
        if self.failure is not None:
            error = RPCUnavailable(self.failure)
            return self.policy.run(method, sid, lambda remaining: fail(error), str)
        return self.policy.run(method, sid, lambda remaining: succeed(response), repr)

    def connect(self, sid: str, request: Any) -> Deferred[Any]:
        return self._run(
            "connect", sid, request, ConnectReply(status=Status.SUCCESS, identifiers="{}")
        )

    def command(self, sid: str, request: Any) -> Deferred[Any]:
        streams = self.streams if request.command == "subscribe" else []
        return self._run(
            "command", sid, request, CommandReply(status=Status.SUCCESS, streams=streams)
        )

    def disconnect(self, sid: str, request: Any) -> Deferred[Any]:
        return self._run("disconnect", sid, request, DisconnectReply(status=Status.SUCCESS))


def station_factory(
    clock: IReactorTime,
    rpc: IRPCClient,
    *,
    versions: Iterable[str] = tuple(CATALOGS),
    settings: SessionSettings | None = None,
    metrics: IMetrics | None = None,
    **options: Any,
) -> StationFactory:
    """A :class:`StationFactory` as the gateway builds it, with its timers on ``clock``; other
    keyword arguments (``max_message_size``, ``ping_interval``, …) override the defaults."""
    metrics = metrics or PrometheusMetrics()
    catalogs = {version: CATALOGS[version] for version in versions}
    arguments: dict[str, Any] = {
        "reactor": clock,
        "hub": Hub(metrics),
        "rpc": rpc,
        "catalogs": catalogs,
        "validators": {name: validator_for(catalog) for name, catalog in catalogs.items()},
        "settings": settings or SessionSettings(rate_limit=0),
        "ocpp_path": "/ocpp",
        "forward_headers": ["authorization"],
        "max_message_size": 65536,
        "ping_interval": 0,
        "metrics": metrics,
    }
    return StationFactory(**{**arguments, **options})


class MemoryStation:
    """One station's connection to ``factory``, written and read in memory."""

    #: the gateway's answer to the opening handshake (status line first), once sent
    response = b""

    def __init__(self, factory: StationFactory, host: str = "127.0.0.1", port: int = 40000):
        address = IPv4Address("TCP", host, port)
        self.protocol: StationProtocol = factory.buildProtocol(address)
        self.transport = MemoryTransport(peerAddress=address)
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        self._ids = itertools.count(1)
        #: messages received that no :meth:`call` or :meth:`reply_to` took, decoded
        self.unread: list[Any] = []

    @property
    def accepted(self) -> bool:
        """The gateway accepted the opening handshake (101)."""
        return self.response.startswith(b"HTTP/1.1 101")

    @property
    def status(self) -> int:
        """The HTTP status of the gateway's answer to the opening handshake."""
        return int(self.response.split(b" ", 2)[1])

    def handshake(
        self,
        path: str = "/ocpp/CP-1",
        subprotocols: Sequence[str] = ("ocpp1.6",),
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """Send the opening handshake; returns the gateway's HTTP response (status line first)."""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            "Host: 127.0.0.1",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocols:
            lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.protocol.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.response = self.transport.value()
        self.transport.clear()
        return self.response

    def send(self, payload: str | bytes, opcode: int = TEXT) -> None:
        """One frame (a text frame unless told), as the station sends it."""
        self.protocol.dataReceived(client_frame(payload, opcode))

    def close(self, code: int = 1000) -> None:
        """The station's close frame."""
        self.send(struct.pack("!H", code), CLOSE)

    def call(self, action: str, payload: Mapping[str, Any], unique_id: str | None = None) -> Any:
        """Send a CALL; returns the gateway's reply to it, decoded (a CALLRESULT or CALLERROR
        list), or None when none came yet (the backend has not answered: see :meth:`replies`).
        Other frames received meanwhile (remote commands) stay in :attr:`unread`."""
        unique_id = unique_id if unique_id is not None else str(next(self._ids))
        self.send(json.dumps([2, unique_id, action, dict(payload)]))
        return self.reply_to(unique_id)

    def reply_to(self, unique_id: str) -> Any:
        """The reply to the CALL ``unique_id`` among the frames received, or None."""
        self.unread.extend(json.loads(text) for text in self.texts())
        for message in self.unread:
            if message[0] in (3, 4) and message[1] == unique_id:
                self.unread.remove(message)
                return message
        return None

    def received(self) -> list[tuple[int, bytes]]:
        """The frames the gateway wrote since the last call."""
        frames = server_frames(self.transport.value())
        self.transport.clear()
        return frames

    def texts(self) -> list[str]:
        """The text messages among :meth:`received`, decoded."""
        return [payload.decode("utf-8") for opcode, payload in self.received() if opcode == TEXT]

    def lose(self) -> None:
        """The TCP connection drops (the station goes away without a close frame)."""
        if self.transport.connected:
            self.transport.connected = False
            self.protocol.connectionLost(Failure(ConnectionDone("the station went away")))


class MemoryGateway:
    """The gateway's station side in memory: stations connect with :meth:`connect`, RPCs go to
    ``rpc`` (an :class:`AnsweringRPC` unless given: your in-process backend, for instance) or to
    ``channel`` (a :class:`~ocppcable.channel.Channel` subclass, run as with
    ``--rpc-host=python:…``), timers run on :attr:`clock`, and ``hooks`` (station hook objects)
    run as with ``--hooks``. Other keyword arguments go to :func:`station_factory`."""

    def __init__(
        self,
        hooks: Sequence[Any] = (),
        rpc: IRPCClient | None = None,
        clock: Clock | None = None,
        channel: type[Channel] | None = None,
        **options: Any,
    ) -> None:
        self.clock = clock if clock is not None else Clock()
        if channel is not None:
            policy = CallPolicy(self.clock, 28, 10.0)
            rpc = InProcessClient(ChannelApplication(channel), policy)
        self.rpc = rpc if rpc is not None else AnsweringRPC(self.clock)
        self.factory = station_factory(self.clock, self.rpc, hooks=hooks, **options)
        self.hub: Hub = self.factory.hub

    def connect(
        self,
        station_id: str = "CP-1",
        subprotocol: str = "ocpp1.6",
        headers: Mapping[str, str] | None = None,
    ) -> MemoryStation:
        """A station that opened its connection (see :attr:`MemoryStation.accepted`)."""
        station = MemoryStation(self.factory)
        station.handshake(f"{self.factory.prefix}{station_id}", [subprotocol], headers)
        return station

    def broadcast(self, stream: str, data: Mapping[str, Any]) -> int:
        """Publish ``data`` (a remote command: ``{"command": ..., "payload": ...}``) on
        ``stream``, as a backend does; returns the stations it reached."""
        return self.hub.dispatch(json.dumps({"stream": stream, "data": json.dumps(data)}), "test")

"""A measurement, not a product: unary gRPC over one HTTP/2 connection on the reactor thread.

The gateway's gRPC client runs grpc.aio in a thread of its own (``AioBridge``): every RPC
crosses threads twice and wakes gRPC's C event-engine thread. This client speaks gRPC's wire
format itself with the pure-Python ``h2`` (``pip install h2``; not a dependency of the
project) over a Twisted protocol, so an RPC costs the reactor thread's work and nothing else.
It serves :mod:`bench.grpc_cost` (``--client h2``) to measure what such a client would cost per
RPC. It has none of what a real client needs: no reconnection, no GOAWAY or stream-limit
handling, no deadlines on the wire, no retries; the call policy (gate, timeout) is the
gateway's own.
"""

from __future__ import annotations

from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset, TrailersReceived
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from ocppcable import cable
from ocppcable.protos.rpc_pb2 import CommandResponse
from ocppcable.rpc.policy import CallPolicy

_WINDOW = 1 << 24


class GRPCError(Exception):
    pass


class H2Channel(Protocol):
    def __init__(self, authority: str) -> None:
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.authority = authority.encode()
        self.streams: dict[int, tuple[Deferred[bytes], bytearray, list[Any]]] = {}

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(_WINDOW)
        self.transport.write(self.conn.data_to_send())

    def call(self, path: bytes, message: bytes, metadata: tuple[tuple[bytes, bytes], ...]) -> Any:
        conn = self.conn
        stream = conn.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path),
            (b":authority", self.authority),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            *metadata,
        ]
        conn.send_headers(stream, headers)
        conn.send_data(stream, b"\0" + len(message).to_bytes(4, "big") + message, end_stream=True)
        self.transport.write(conn.data_to_send())
        d: Deferred[bytes] = Deferred()
        self.streams[stream] = (d, bytearray(), [])
        return d

    def dataReceived(self, data: bytes) -> None:
        conn = self.conn
        for event in conn.receive_data(data):
            entry = self.streams.get(getattr(event, "stream_id", 0))
            if entry is None:
                continue
            if isinstance(event, DataReceived):
                entry[1].extend(event.data)
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, (ResponseReceived, TrailersReceived)):
                entry[2].extend(event.headers)
            elif isinstance(event, StreamEnded):
                del self.streams[event.stream_id]
                status = dict(entry[2]).get(b"grpc-status", b"2")
                if status == b"0":
                    entry[0].callback(bytes(entry[1][5:]))
                else:
                    entry[0].errback(GRPCError(status))
            elif isinstance(event, StreamReset):
                del self.streams[event.stream_id]
                entry[0].errback(GRPCError(b"reset"))
        out = conn.data_to_send()
        if out:
            self.transport.write(out)


class H2GRPCClient:
    """``command`` as :class:`ocppcable.rpc.grpc_client.GRPCClient` has it, same call policy."""

    def __init__(self, reactor: Any, target: str, concurrency: int, timeout: float) -> None:
        self.reactor = reactor
        self.target = target
        self.policy = CallPolicy(reactor, concurrency, timeout, None)
        self.channel: H2Channel | None = None

    def start(self) -> Deferred[Any]:
        host, port = self.target.rsplit(":", 1)
        endpoint = TCP4ClientEndpoint(self.reactor, host, int(port))
        self.channel = H2Channel(self.target)
        return connectProtocol(endpoint, self.channel)

    def stop(self) -> None:
        if self.channel is not None and self.channel.transport is not None:
            self.channel.transport.loseConnection()

    def command(self, sid: str, request: cable.CommandRequest) -> Deferred[cable.CommandReply]:
        message = cable.command_request_pb(request).SerializeToString()
        metadata = ((b"sid", sid.encode()), (b"protov", b"v1"))

        def attempt(remaining: float) -> Deferred[Any]:
            assert self.channel is not None
            d = self.channel.call(b"/anycable.RPC/Command", message, metadata)
            return d.addCallback(CommandResponse.FromString)

        d = self.policy.run("command", sid, attempt, repr)
        return d.addCallback(cable.command_reply_from_pb)

"""Serve an AnyCable RPC application (``connect/command/disconnect(request, meta)``) over gRPC.

The gateway itself never serves RPC: this is the backend side for the end-to-end tests (the
:mod:`ocppcable.demo` channel, see ``tests/support/backends.py``), for the benchmark's no-op
backend (``bench/backend.py``), and for a channel written on :mod:`ocppcable.channel` that
gateways elsewhere call (its ``ChannelApplication``).
"""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc

from ocppcable.protos import rpc_pb2_grpc

#: what AnyCable's Ruby server allows, so that 10 s client keepalive pings are accepted
SERVER_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


class _Servicer(rpc_pb2_grpc.RPCServicer):
    def __init__(self, app: Any) -> None:
        self.app = app

    def Connect(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.app.connect(request, dict(context.invocation_metadata()))

    def Command(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.app.command(request, dict(context.invocation_metadata()))

    def Disconnect(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.app.disconnect(request, dict(context.invocation_metadata()))


def serve(app: Any, address: str = "127.0.0.1:0", workers: int = 16) -> tuple[grpc.Server, int]:
    """Start a gRPC server for ``app``; returns the server and the port it listens on."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=SERVER_OPTIONS)
    rpc_pb2_grpc.add_RPCServicer_to_server(_Servicer(app), server)
    port = server.add_insecure_port(address)
    server.start()
    return server, port

"""An RPC "transport" that calls an application object in this process (``--rpc-host=demo``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from zope.interface import implementer

from ocppcable import cable
from ocppcable.rpc.interface import IRPCClient, RPCUnavailable

R = TypeVar("R")


@implementer(IRPCClient)
class InProcessClient:
    """Calls ``app.connect/command/disconnect(request, meta)`` directly, with the protobuf
    messages a gRPC server would hand it."""

    def __init__(self, app: Any, target: str = "in-process demo backend") -> None:
        self.app = app
        self.target = target

    def _call(
        self, handler: Callable[..., Any], sid: str, request: Any, reply: Callable[[Any], R]
    ) -> Deferred[R]:
        d = maybeDeferred(handler, request, {"sid": sid, "protov": "v1"}).addCallback(reply)

        def unavailable(failure: Any) -> None:
            raise RPCUnavailable(f"in-process backend raised {failure.value!r}")

        return d.addErrback(unavailable)

    def connect(self, sid: str, request: cable.ConnectRequest) -> Deferred[cable.ConnectReply]:
        pb = cable.connect_request_pb(request)
        return self._call(self.app.connect, sid, pb, cable.connect_reply_from_pb)

    def command(self, sid: str, request: cable.CommandRequest) -> Deferred[cable.CommandReply]:
        pb = cable.command_request_pb(request)
        return self._call(self.app.command, sid, pb, cable.command_reply_from_pb)

    def disconnect(
        self, sid: str, request: cable.DisconnectRequest
    ) -> Deferred[cable.DisconnectReply]:
        pb = cable.disconnect_request_pb(request)
        return self._call(self.app.disconnect, sid, pb, cable.disconnect_reply_from_pb)

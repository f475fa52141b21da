"""An RPC "transport" that calls an application object in this process (``--rpc-host=demo``)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from zope.interface import implementer

from ocppcable.rpc.interface import IRPCClient, RPCUnavailable


@implementer(IRPCClient)
class InProcessClient:
    """Calls ``app.connect/command/disconnect(request, meta)`` directly."""

    def __init__(self, app: Any, target: str = "in-process demo backend") -> None:
        self.app = app
        self.target = target

    def _call(self, method: str, sid: str, request: Any) -> Deferred[Any]:
        d = maybeDeferred(getattr(self.app, method), request, {"sid": sid, "protov": "v1"})

        def unavailable(failure: Any) -> None:
            raise RPCUnavailable(f"in-process backend raised {failure.value!r}")

        return d.addErrback(unavailable)

    def connect(self, sid: str, request: Any) -> Deferred[Any]:
        return self._call("connect", sid, request)

    def command(self, sid: str, request: Any) -> Deferred[Any]:
        return self._call("command", sid, request)

    def disconnect(self, sid: str, request: Any) -> Deferred[Any]:
        return self._call("disconnect", sid, request)

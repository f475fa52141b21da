# -*- test-case-name: tests.test_channel -*-
"""The RPC "transport" to a channel application in this process: ``--rpc-host=demo`` (the
built-in demo backend) and ``--rpc-host=python:package.module:ChannelClass`` (yours, written on
:mod:`ocppcable.channel`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from zope.interface import implementer

from ocppcable import cable
from ocppcable.channel import Channel, ChannelApplication
from ocppcable.rpc.interface import IRPCClient
from ocppcable.rpc.policy import CallPolicy

R = TypeVar("R")

#: the ``--rpc-host`` scheme of a Python channel
PYTHON = "python:"


def load_application(target: str) -> ChannelApplication:
    """The application ``python:package.module:Name`` names: ``Name`` is a :class:`Channel`
    subclass (served by a :class:`ChannelApplication` of its own) or a
    :class:`ChannelApplication`. Raises ValueError with one line saying what is wrong."""
    spec = target.removeprefix(PYTHON)
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected python:package.module:ChannelClass, got {target!r}")
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as e:  # the operator's module: any error it raises is a config mistake
        raise ValueError(f"cannot import {module_name!r}: {type(e).__name__}: {e}") from None
    for name in attribute.split("."):
        if not hasattr(found, name):
            raise ValueError(f"{module_name!r} has no {attribute!r}")
        found = getattr(found, name)
    if isinstance(found, type) and issubclass(found, Channel):
        return ChannelApplication(found)
    if isinstance(found, ChannelApplication):
        return found
    raise ValueError(
        f"{spec!r} is neither a subclass of ocppcable.channel.Channel nor a ChannelApplication"
    )


@implementer(IRPCClient)
class InProcessClient:
    """Calls ``app.connect/command/disconnect(request, meta)`` directly, with the protobuf
    messages a gRPC server would hand it, through the call ``policy`` (``--rpc-concurrency``,
    ``--rpc-timeout``) as the network transports do: an ``async`` channel method that never
    ends fails its CALL after the timeout."""

    def __init__(self, app: Any, policy: CallPolicy, target: str = "") -> None:
        self.app = app
        self.policy = policy
        self.target = target or f"in-process {app!r}"

    def _call(
        self,
        method: str,
        handler: Callable[..., Any],
        sid: str,
        request: Any,
        reply: Callable[[Any], R],
    ) -> Deferred[R]:
        meta = {"sid": sid, "protov": "v1"}

        def attempt(remaining: float) -> Deferred[R]:
            return maybeDeferred(handler, request, meta).addCallback(reply)

        return self.policy.run(method, sid, attempt, lambda error: f"in-process {error!r}")

    def connect(self, sid: str, request: cable.ConnectRequest) -> Deferred[cable.ConnectReply]:
        pb = cable.connect_request_pb(request)
        return self._call("connect", self.app.connect, sid, pb, cable.connect_reply_from_pb)

    def command(self, sid: str, request: cable.CommandRequest) -> Deferred[cable.CommandReply]:
        pb = cable.command_request_pb(request)
        return self._call("command", self.app.command, sid, pb, cable.command_reply_from_pb)

    def disconnect(
        self, sid: str, request: cable.DisconnectRequest
    ) -> Deferred[cable.DisconnectReply]:
        pb = cable.disconnect_request_pb(request)
        return self._call(
            "disconnect", self.app.disconnect, sid, pb, cable.disconnect_reply_from_pb
        )

"""The RPC client interface every transport implements."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from ocppcable.protos.rpc_pb2 import (
    CommandMessage,
    CommandResponse,
    ConnectionRequest,
    ConnectionResponse,
    DisconnectRequest,
    DisconnectResponse,
)


class RPCUnavailable(Exception):
    """The call could not be completed (transport failure, deadline, retries exhausted)."""


class IRPCClient(Interface):
    """An AnyCable RPC client. Every method returns a Deferred that fires with the response
    message or fails with :class:`RPCUnavailable`; none ever blocks the reactor."""

    target = Attribute("A human-readable description of where calls go (for logs).")

    def connect(sid: str, request: ConnectionRequest) -> Deferred[ConnectionResponse]:
        """``Connection#connect``."""

    def command(sid: str, request: CommandMessage) -> Deferred[CommandResponse]:
        """``subscribe`` / ``message`` / ``unsubscribe``."""

    def disconnect(sid: str, request: DisconnectRequest) -> Deferred[DisconnectResponse]:
        """``Connection#disconnect`` and every channel's ``unsubscribed``."""

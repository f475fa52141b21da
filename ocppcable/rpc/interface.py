"""The RPC client interface every transport implements."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from ocppcable.cable import (
    CommandReply,
    CommandRequest,
    ConnectReply,
    ConnectRequest,
    DisconnectReply,
    DisconnectRequest,
)


class RPCUnavailable(Exception):
    """The call could not be completed (transport failure, deadline, retries exhausted)."""


class IRPCClient(Interface):
    """An AnyCable RPC client.

    Requests and answers are the transport-neutral records of :mod:`ocppcable.cable`, whose
    fields carry AnyCable's names: a transport encodes them as it needs (protobuf for gRPC with
    ``cable.*_request_pb``, JSON for HTTP) and decodes the answer into the matching ``*Reply``
    record. Every method returns a Deferred that fires with that reply or fails with
    :class:`RPCUnavailable`; none ever blocks the reactor. ``sid`` is the session id, sent as
    the ``sid`` metadata.
    """

    target = Attribute("A human-readable description of where calls go (for logs).")

    def connect(sid: str, request: ConnectRequest) -> Deferred[ConnectReply]:
        """``Connection#connect``."""

    def command(sid: str, request: CommandRequest) -> Deferred[CommandReply]:
        """A channel command (the gateway sends ``subscribe`` and ``message``)."""

    def disconnect(sid: str, request: DisconnectRequest) -> Deferred[DisconnectReply]:
        """``Connection#disconnect`` and every channel's ``unsubscribed``."""

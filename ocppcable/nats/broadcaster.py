# -*- test-case-name: tests.test_nats_broadcast -*-
"""The ``nats`` broadcaster: AnyCable's legacy NATS broadcaster, every node receives every
publication (a JSON publication, or an array of them) on the subject ``--nats-channel``."""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.logger import Logger
from zope.interface import implementer

from ocppcable.broadcast.interface import Dispatch, IBroadcaster
from ocppcable.nats.client import NatsClient
from ocppcable.publication import MalformedPublication

log = Logger()


@implementer(IBroadcaster)
class NatsBroadcaster(MultiService):
    """Subscribes to ``subject`` on the node's NATS connection and hands every message to
    ``dispatch``. The connection reconnects and subscribes again; it is a child service of the
    broadcaster unless the cluster transport runs it."""

    name = "broadcast-nats"

    def __init__(self, client: NatsClient, subject: str, dispatch: Dispatch) -> None:
        super().__init__()
        self.client = client
        self.subject = subject
        self.dispatch = dispatch
        self.description = f"nats {subject!r} ({client.description})"
        client.subscribe(subject, self.received)

    @property
    def connected(self) -> bool:
        return self.client.connected

    def received(self, message: bytes) -> None:
        if not self.running:
            return
        try:
            self.dispatch(message, "nats")
        except MalformedPublication as e:
            log.warn("dropped a malformed nats publication: {reason}", reason=str(e))

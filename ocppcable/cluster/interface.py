"""The cluster transport interface (``--pubsub``): what the nodes of a cluster tell each other.
Plugins import it from :mod:`ocppcable.plugin`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import Attribute, Interface


class ICluster(Interface):
    """Messages between the nodes of a cluster: every node subscribed to a channel receives
    what any node publishes on it, itself included. An outage is the transport's to log and
    to recover from (resubscribing after a reconnect); it never blocks the reactor.

    If the object provides ``IService`` it is started before, and stopped after, the
    broadcasters and the takeover that use it."""

    description = Attribute("Where the messages go, for the startup log line.")
    connected = Attribute("True while publications reach the other nodes.")

    def publish(channel: str, message: str) -> Any:
        """Send ``message`` to every subscriber of ``channel``; a Deferred that fails when it
        could not be sent (within a few seconds)."""

    def subscribe(channel: str, receiver: Callable[[str | bytes], None]) -> None:
        """Call ``receiver(message)`` for every message on ``channel`` from now on."""

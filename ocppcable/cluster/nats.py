# -*- test-case-name: tests.test_nats_e2e -*-
"""The ``nats`` cluster transport (``--pubsub nats``): NATS subjects between the nodes, so that
a cluster runs with NATS and no Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ocppcable.nats.client import NatsClient


class NatsCluster:
    """The cluster's messages on the node's shared NATS connection (started and stopped as a
    service of its own, before and after everything that uses it)."""

    def __init__(self, client: NatsClient) -> None:
        self.client = client
        self.description = client.description

    @property
    def connected(self) -> bool:
        return self.client.connected

    def publish(self, channel: str, message: str) -> Any:
        return self.client.publish(channel, message)

    def subscribe(self, channel: str, receiver: Callable[[str | bytes], None]) -> None:
        self.client.subscribe(channel, receiver)

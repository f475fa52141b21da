# -*- test-case-name: tests.test_nats_e2e -*-
"""The factories of the ``nats`` plugins (declared in ``ocppcable/plugins/ocppcable_nats.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ocppcable.nats.client import NatsClient
from ocppcable.nats.servers import parse_servers


def client(config: Mapping[str, Any], wiring: Any) -> NatsClient:
    """The node's one NATS connection, shared by the adapter and the cluster transport."""
    nats = wiring.shared.get("nats")
    if nats is None:
        nats = wiring.shared["nats"] = NatsClient(
            wiring.reactor, parse_servers(config["nats-servers"])
        )
        wiring.metrics.watch_nats(nats)
    return nats


def broadcaster(config: Mapping[str, Any], wiring: Any) -> Any:
    """The ``nats`` adapter; it runs the connection itself unless ``--pubsub nats`` does."""
    from ocppcable.nats.broadcaster import NatsBroadcaster

    nats = client(config, wiring)
    broadcaster = NatsBroadcaster(nats, config["nats-channel"], wiring.dispatch)
    if nats.parent is None:  # the gateway runs the cluster transport's before the adapters
        nats.setServiceParent(broadcaster)
    return broadcaster


def cluster(config: Mapping[str, Any], wiring: Any) -> Any:
    """``--pubsub nats``: the connection itself, which the gateway runs as a service."""
    return client(config, wiring)

# -*- test-case-name: tests.test_nats_e2e -*-
"""The factories of the ``nats`` plugins (declared in ``ocppcable/plugins/ocppcable_nats.py``)
and the checks of their options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ocppcable.nats import wire
from ocppcable.nats.client import NatsClient, parse_servers


def servers_option(value: str) -> str:
    """``--nats-servers``: comma-separated ``nats://[user:password@|token@]host[:port]`` URLs."""
    parse_servers(value)  # ValueError naming what is wrong
    return value


servers_option.coerceDoc = "Comma-separated nats:// URLs."  # type: ignore[attr-defined]


def subject_option(value: str) -> str:
    """``--nats-channel``: a NATS subject to publish on (no wildcards, no whitespace)."""
    if not wire.valid_subject(value):
        raise ValueError(f"not a NATS subject: {value!r}")
    return value


subject_option.coerceDoc = "A NATS subject."  # type: ignore[attr-defined]

#: the options of the nats plugins
OPTIONS = [
    [
        "nats-servers",
        None,
        "nats://127.0.0.1:4222",
        "NATS servers for the nats broadcast adapter and --pubsub nats, comma-separated "
        "(tried in turn): nats://[user:password@|token@]host[:port].",
        servers_option,
    ],
    [
        "nats-channel",
        None,
        "__anycable__",
        "NATS subject the nats broadcast adapter subscribes to.",
        subject_option,
    ],
]


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
    from ocppcable.broadcast.nats import NatsBroadcaster

    nats = client(config, wiring)
    broadcaster = NatsBroadcaster(nats, config["nats-channel"], wiring.dispatch)
    if nats.parent is None:  # the gateway runs the cluster transport's before the adapters
        nats.setServiceParent(broadcaster)
    return broadcaster


def cluster(config: Mapping[str, Any], wiring: Any) -> Any:
    """``--pubsub nats``: the connection itself, which the gateway runs as a service."""
    return client(config, wiring)

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
    """The node's one NATS connection, shared by the adapter and the cluster transport; a
    service of the gateway, started before what uses it."""
    nats = wiring.shared.get("nats")
    if nats is None:
        nats = wiring.shared["nats"] = NatsClient(
            wiring.reactor, parse_servers(config["nats-servers"])
        )
        wiring.metrics.watch_nats(nats)
        nats.setServiceParent(wiring.gateway)
    return nats


def broadcaster(config: Mapping[str, Any], wiring: Any) -> Any:
    from ocppcable.broadcast.nats import NatsBroadcaster

    return NatsBroadcaster(client(config, wiring), config["nats-channel"], wiring.dispatch)


def cluster(config: Mapping[str, Any], wiring: Any) -> Any:
    from ocppcable.cluster.nats import NatsCluster

    return NatsCluster(client(config, wiring))

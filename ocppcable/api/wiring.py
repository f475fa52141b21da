"""Building the call API from the gateway's options (one node: presence, routing and the queue
in memory)."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

from ocppcable import keys
from ocppcable.api.calls import CallService
from ocppcable.api.models import Limits
from ocppcable.api.presence import LocalPresence
from ocppcable.api.queue import MemoryQueue
from ocppcable.api.resource import APIResource
from ocppcable.hub import Hub
from ocppcable.metrics import PrometheusMetrics
from ocppcable.ocpp.catalog import Catalog
from ocppcable.ocpp.validation import Validator


def api_key(config: Any) -> str | None:
    return keys.resolve(config["api-key"], config["secret"], keys.API_PHRASE)


def api_enabled(config: Any) -> bool:
    """On with a key; without one only in demo mode (then beside the keyless broadcaster)."""
    return api_key(config) is not None or config["rpc-host"] == "demo"


def make_call_api(
    config: Any,
    reactor: Any,
    hub: Hub,
    catalogs: Mapping[str, Catalog],
    validators: Mapping[str, Validator],
    metrics: PrometheusMetrics,
    limits: Limits | None = None,
) -> tuple[CallService, APIResource]:
    from ocppcable.api.router import LocalRouter

    limits = limits or Limits()
    presence = LocalPresence(hub, platform.node() or "local")
    queue = MemoryQueue(reactor.seconds, limits.max_queue, limits.max_queued, metrics)
    metrics.watch_queue(queue.depth)
    calls = CallService(
        reactor, presence, LocalRouter(hub), queue, catalogs, validators, limits, metrics
    )
    return calls, APIResource(calls, presence, api_key(config), limits)

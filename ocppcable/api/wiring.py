"""Building the call API from the gateway's options: in a cluster with Redis (``--pubsub`` and
a ``redis``/``redisx`` adapter or ``--pubsub redis``) presence and the queue are the cluster's,
in Redis, and routing goes over the cluster transport; otherwise they are this node's, in
memory."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from twisted.logger import Logger

from ocppcable import keys
from ocppcable.api.calls import CallService
from ocppcable.api.models import Limits
from ocppcable.api.presence import LocalPresence
from ocppcable.api.queue import MemoryQueue
from ocppcable.api.resource import APIResource
from ocppcable.broadcast.redisx import consumer_name
from ocppcable.cluster.interface import ICluster
from ocppcable.hub import Hub
from ocppcable.metrics import PrometheusMetrics
from ocppcable.ocpp.catalog import Catalog
from ocppcable.ocpp.validation import Validator
from ocppcable.redis_connection import RedisLink

log = Logger()


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
    cluster: ICluster | None = None,
    redis: RedisLink | None = None,
) -> tuple[CallService, APIResource]:
    """The call service (a child of the gateway) and its resource. With ``cluster`` (the
    cluster transport) and ``redis`` (the node's Redis) it serves the whole cluster."""
    limits = replace(limits or Limits(), max_queue=config["api-max-queue"])
    if cluster is not None and redis is None:
        log.warn(
            "the call API serves this node's stations only: its cluster-wide presence and "
            "queue need Redis (a redis or redisx --broadcast-adapter, or --pubsub redis)"
        )
    if cluster is None or redis is None:
        from ocppcable.api.router import LocalRouter

        presence: Any = LocalPresence(hub, platform.node() or "local")
        queue: Any = MemoryQueue(reactor.seconds, limits.max_queue, limits.max_queued, metrics)
        router: Any = LocalRouter(hub)
        node = "local"
        services = []
    else:
        from ocppcable.api.cluster_presence import RedisPresence
        from ocppcable.api.cluster_router import ClusterRouter
        from ocppcable.api.redis_queue import RedisQueue
        from ocppcable.api.redis_store import RedisStore

        node = consumer_name()
        store = RedisStore(reactor, redis)
        presence = RedisPresence(reactor, store, hub, node, config["api-presence-ttl"])
        queue = RedisQueue(reactor.seconds, store, limits.max_queue, limits.max_queued, metrics)
        router = ClusterRouter(reactor, hub, presence, node, cluster, metrics)
        services = [store, presence]
    metrics.watch_queue(queue.depth)
    calls = CallService(
        reactor, presence, router, queue, catalogs, validators, limits, metrics, node
    )
    if services:
        router.tracker = calls
    for service in services:
        service.setServiceParent(calls)
    return calls, APIResource(calls, presence, api_key(config), limits)

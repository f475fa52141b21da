# -*- test-case-name: tests.test_plugins -*-
"""The factories of the built-in plugins (declared in ``ocppcable/plugins/ocppcable_builtins.py``):
each takes the parsed options and a :class:`~ocppcable.plugin.Wiring`, as a third party's does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ocppcable import keys
from ocppcable.plugin import Wiring
from ocppcable.redis_connection import RedisLink

# --- RPC transports ----------------------------------------------------------------------------


def check_grpc(target: str) -> None:
    host, _, port_text = target.rpartition(":")
    if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(
            f"expected host:port (port 1-65535) for gRPC, an http:// or https:// URL for HTTP "
            f"RPC, python:package.module:ChannelClass, or demo; got {target!r}"
        )


def check_http(target: str) -> None:
    url = urlsplit(target)
    if not url.hostname:
        raise ValueError("an HTTP RPC URL needs a host, e.g. http://localhost:3000/_anycable")
    try:
        port = url.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"the port in {target!r} must be 1-65535")


def grpc(config: Mapping[str, Any], wiring: Wiring) -> Any:
    from ocppcable.rpc.grpc_client import GRPCClient

    return GRPCClient(
        wiring.reactor,
        config["rpc-host"],
        config["rpc-concurrency"],
        config["rpc-timeout"],
        metrics=wiring.metrics,
    )


def http(config: Mapping[str, Any], wiring: Wiring) -> Any:
    from ocppcable.rpc.http_client import HTTPRPCClient

    key = keys.resolve(config["http-rpc-secret"], config["secret"], keys.RPC_PHRASE)
    return HTTPRPCClient(
        wiring.reactor,
        config["rpc-host"],
        key,
        config["rpc-concurrency"],
        config["rpc-timeout"],
        metrics=wiring.metrics,
    )


def check_python(target: str) -> None:
    """Imports the channel of ``python:package.module:ChannelClass``, so that a mistake stops
    the start."""
    from ocppcable.rpc.inprocess import load_application

    load_application(target)


def _in_process(app: Any, config: Mapping[str, Any], wiring: Wiring) -> Any:
    from ocppcable.rpc.inprocess import InProcessClient
    from ocppcable.rpc.policy import CallPolicy

    policy = CallPolicy(
        wiring.reactor, config["rpc-concurrency"], config["rpc-timeout"], wiring.metrics
    )
    return InProcessClient(app, policy)


def demo(config: Mapping[str, Any], wiring: Wiring) -> Any:
    from ocppcable.demo import OCPPApplication

    return _in_process(OCPPApplication(id_tags=config["demo-id-tags"]), config, wiring)


def python_channel(config: Mapping[str, Any], wiring: Wiring) -> Any:
    """A channel written on :mod:`ocppcable.channel`, run in this process."""
    from ocppcable.rpc.inprocess import load_application

    return _in_process(load_application(config["rpc-host"]), config, wiring)


# --- cluster transports --------------------------------------------------------------------------


def uses_redis(config: Mapping[str, Any]) -> bool:
    """Redis is part of this configuration (``--redis-url`` was checked)."""
    return config["pubsub"] == "redis" or bool(
        {"redis", "redisx"} & set(config["broadcast-adapter"])
    )


def redis_link(config: Mapping[str, Any], wiring: Wiring) -> RedisLink:
    """The one watcher of the node's Redis connections (one warning per outage for all)."""
    link = wiring.shared.get("redis")
    if link is None:
        link = wiring.shared["redis"] = RedisLink(wiring.reactor, config["redis-url"])
    return link


def redis_cluster(config: Mapping[str, Any], wiring: Wiring) -> Any:
    from ocppcable.cluster.redis import RedisCluster

    return RedisCluster(wiring.reactor, redis_link(config, wiring))


# --- broadcast adapters ----------------------------------------------------------------------------


def _legacy_channel(config: Mapping[str, Any]) -> str | None:
    """The legacy ``redis`` adapter's channel, when it is on: every node subscribes to it."""
    return config["redis-channel"] if "redis" in config["broadcast-adapter"] else None


def http_broadcaster(config: Mapping[str, Any], wiring: Wiring) -> Any:
    """With a key: on the main site; without: on its own listener. In a cluster, what it takes
    is relayed to every node."""
    from ocppcable.broadcast.http import HTTPBroadcaster
    from ocppcable.broadcast.redisx import internal_channel
    from ocppcable.cluster.relay import RELAY_CHANNEL, ClusterRelay
    from ocppcable.http_limits import SiteLimits
    from ocppcable.listener import Listener
    from ocppcable.options import tcp_endpoint
    from ocppcable.reuseport import shares_port
    from ocppcable.web import mount

    dispatch, relay = wiring.dispatch, None
    if wiring.cluster is not None:
        legacy = _legacy_channel(config)
        # the Redis adapters read what is relayed through Redis; any other way, the relay does
        read_by_adapter = config["pubsub"] == "redis" and {"redis", "redisx"} & set(
            config["broadcast-adapter"]
        )
        channel = legacy if read_by_adapter else RELAY_CHANNEL
        relay = ClusterRelay(
            wiring.cluster, wiring.dispatch, wiring.metrics, channel, internal_channel(legacy)
        )
        if not read_by_adapter:
            relay.listen()
        dispatch = relay.dispatch
    key = keys.resolve(config["broadcast-key"], config["secret"], keys.BROADCAST_PHRASE)
    path = config["http-broadcast-path"]
    max_body = config["http-broadcast-max-body"]
    if key is not None:
        broadcaster = HTTPBroadcaster(dispatch, key, path, "the main port", max_body)
        wiring.main_site[path] = broadcaster.resource
    else:
        # instances that share their main port (reuseport:) share the broadcaster's port as
        # well; a broadcast that reaches any of them is relayed to all over the cluster
        shared = any(shares_port(description) for description in config["listen"])
        endpoint = tcp_endpoint(config["http-broadcast-port"], config["host"], shared)
        broadcaster = HTTPBroadcaster(dispatch, None, path, endpoint, max_body)
        limits = SiteLimits(config["handshake-timeout"], config["max-pending-connections"])
        site = broadcaster.site(limits, wiring.reactor)
        listener = Listener(wiring.reactor, endpoint, site, "--http-broadcast-port")
        listener.setServiceParent(broadcaster)
        if wiring.unkeyed and wiring.unkeyed_at is None:
            for beside, resource in wiring.unkeyed.items():
                mount(site.resource, beside, resource)
                broadcaster.description += f"; {beside} beside it (no auth)"
            wiring.unkeyed_at = listener.description
    if relay is not None:
        broadcaster.description += f", {relay.description}"
    return broadcaster


def redis_broadcaster(config: Mapping[str, Any], wiring: Wiring) -> Any:
    from ocppcable.broadcast.redis import RedisBroadcaster

    link = redis_link(config, wiring)
    broadcaster = RedisBroadcaster(link, config["redis-channel"], wiring.dispatch)
    wiring.metrics.watch_redis("redis", broadcaster)
    return broadcaster


def redisx_broadcaster(config: Mapping[str, Any], wiring: Wiring) -> Any:
    from ocppcable.broadcast.redisx import RedisXBroadcaster, internal_channel

    broadcaster = RedisXBroadcaster(
        wiring.reactor,
        redis_link(config, wiring),
        config["redisx-stream"],
        wiring.hub,
        wiring.dispatch,
        internal_channel(_legacy_channel(config)),
    )
    wiring.metrics.watch_redis("redisx", broadcaster)
    return broadcaster

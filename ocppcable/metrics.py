"""Prometheus metrics (``ocppcable_*``), kept in a registry of the gateway's own.

The session layer reports events through the small :class:`IMetrics` interface
(:class:`NoMetrics` is the default for unit tests, :class:`PrometheusMetrics` the real thing
behind ``/metrics``); levels such as connected stations or RPCs in flight are read from their
owners when scraped (``Gauge.set_function``), so they cost nothing per message.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from zope.interface import Interface, implementer

CONTENT_TYPE = CONTENT_TYPE_LATEST


class IMetrics(Interface):
    """What the gateway counts."""

    def call_in(action: str, result: str) -> None:
        """A station CALL was answered: result is "ok" (CALLRESULT) or "error" (CALLERROR)."""

    def call_out(action: str, result: str) -> None:
        """A remote command ended: "ok", "error", "timeout", "dropped" or "disconnected"."""

    def call_error(code: str) -> None:
        """A CALLERROR with ``code`` was sent to a station."""

    def rpc(method: str, status: str, seconds: float) -> None:
        """An RPC finished with ``status`` (SUCCESS/FAILURE/ERROR or "unavailable")."""

    def session_authenticated(delta: int) -> None:
        """A session's Connect succeeded (+1) or such a session ended (-1)."""

    def broadcast(adapter: str, outcome: str, stations: int) -> None:
        """A broadcast body arrived: "delivered" to ``stations`` stations, or "dropped"."""

    def admission_refused() -> None:
        """A WebSocket handshake was refused (503) by the admission limit."""

    def boot_pending() -> None:
        """A new station's BootNotification was answered Pending: the backend is saturated."""

    def api_call(outcome: str) -> None:
        """The call API answered a call for one station with ``outcome``."""

    def api_route(seconds: float) -> None:
        """A command went to the station's node in the cluster, which took it after
        ``seconds`` (the round trip through the cluster transport)."""

    def queue_expired(count: int) -> None:
        """``count`` queued commands expired before their station connected."""


@implementer(IMetrics)
class NoMetrics:
    """Counts nothing."""

    def call_in(self, action: str, result: str) -> None:
        pass

    def call_out(self, action: str, result: str) -> None:
        pass

    def call_error(self, code: str) -> None:
        pass

    def rpc(self, method: str, status: str, seconds: float) -> None:
        pass

    def session_authenticated(self, delta: int) -> None:
        pass

    def broadcast(self, adapter: str, outcome: str, stations: int) -> None:
        pass

    def admission_refused(self) -> None:
        pass

    def boot_pending(self) -> None:
        pass

    def api_call(self, outcome: str) -> None:
        pass

    def api_route(self, seconds: float) -> None:
        pass

    def queue_expired(self, count: int) -> None:
        pass


@implementer(IMetrics)
class PrometheusMetrics:
    """The metrics of docs/operations.md, "Metrics", in a private registry."""

    def __init__(self) -> None:
        #: labelled children by (metric, label values); label values come from bounded sets
        #: (catalog actions, "other", result and status names, error codes, adapters)
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self.registry = registry = CollectorRegistry()
        self.stations = Gauge(
            "ocppcable_stations_connected", "Stations with an open WebSocket.", registry=registry
        )
        self.sessions = Gauge(
            "ocppcable_sessions_authenticated",
            "Station sessions whose Connect succeeded.",
            registry=registry,
        )
        self.calls_in = Counter(
            "ocppcable_ocpp_calls_in",
            "Station CALLs answered, by action and result.",
            ["action", "result"],
            registry=registry,
        )
        self.calls_out = Counter(
            "ocppcable_ocpp_calls_out",
            "Remote commands sent to stations, by action and result.",
            ["action", "result"],
            registry=registry,
        )
        self.call_errors = Counter(
            "ocppcable_ocpp_call_errors",
            "CALLERRORs sent to stations, by code.",
            ["code"],
            registry=registry,
        )
        self.rpc_calls = Counter(
            "ocppcable_rpc_calls",
            "RPC calls by method and status.",
            ["method", "status"],
            registry=registry,
        )
        self.rpc_seconds = Histogram(
            "ocppcable_rpc_duration_seconds",
            "RPC latency by method, retries included.",
            ["method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.rpc_in_flight = Gauge(
            "ocppcable_rpc_in_flight", "RPC calls being made.", registry=registry
        )
        self.rpc_pending = Gauge(
            "ocppcable_rpc_pending",
            "RPC calls waiting for a slot (--rpc-concurrency).",
            registry=registry,
        )
        self.rpc_waiting = Gauge(
            "ocppcable_rpc_waiting",
            "RPC calls waiting at the gate, by priority: connected (the calls of started "
            "sessions) or new (Connects, which wait behind them).",
            ["priority"],
            registry=registry,
        )
        self.broadcasts = Counter(
            "ocppcable_broadcasts",
            "Broadcast bodies received, by adapter and outcome (delivered/dropped).",
            ["adapter", "outcome"],
            registry=registry,
        )
        self.broadcast_deliveries = Counter(
            "ocppcable_broadcast_deliveries",
            "Broadcast messages handed to stations.",
            registry=registry,
        )
        self.redis_connected = Gauge(
            "ocppcable_redis_connected",
            "1 while the Redis subscriber is connected.",
            ["adapter"],
            registry=registry,
        )
        self.nats_connected = Gauge(
            "ocppcable_nats_connected",
            "1 while the NATS connection is up (the nats adapter and cluster transport).",
            registry=registry,
        )
        self.admissions_refused = Counter(
            "ocppcable_admission_refused",
            "WebSocket handshakes answered 503 by the admission limit (--admission-rate).",
            registry=registry,
        )
        self.boots_pending = Counter(
            "ocppcable_boots_pending",
            "BootNotifications of new stations answered Pending without an RPC while the "
            "backend was saturated.",
            registry=registry,
        )
        self.backend_saturated = Gauge(
            "ocppcable_backend_saturated",
            "1 while the backend counts as saturated (--overload-queue, --overload-latency).",
            registry=registry,
        )
        self.disconnect_queue = Gauge(
            "ocppcable_disconnect_queue_size",
            "Disconnect RPCs waiting to be made.",
            registry=registry,
        )
        self.api_calls = Counter(
            "ocppcable_api_calls",
            "Calls answered by the call API, one per station, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "ocppcable_api_queue_depth",
            "Commands queued for offline stations.",
            registry=registry,
        )
        self.api_route_seconds = Histogram(
            "ocppcable_api_route_duration_seconds",
            "Cross-node routing of call API commands: from handing a command to the cluster "
            "until the station's node confirms its session took it.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.queue_expirations = Counter(
            "ocppcable_api_queue_expired",
            "Queued commands that expired before their station connected.",
            registry=registry,
        )

    def watch(self, hub: Any, rpc: Any, disconnects: Any) -> None:
        """Read levels from their owners at scrape time."""
        self.stations.set_function(hub.__len__)
        policy = getattr(rpc, "policy", None)  # a third party's transport may have none
        if policy is not None:
            self.rpc_in_flight.set_function(lambda: policy.in_flight)
            self.rpc_pending.set_function(lambda: policy.pending)
            for kind, name in enumerate(policy.CLASSES):
                self.rpc_waiting.labels(name).set_function(partial(policy.waiting, kind))
        self.disconnect_queue.set_function(disconnects.__len__)

    def watch_queue(self, depth: Any) -> None:
        """``depth()`` is the number of queued commands."""
        self.queue_depth.set_function(depth)

    def watch_saturation(self, saturated: Any) -> None:
        self.backend_saturated.set_function(lambda: int(saturated()))

    def watch_redis(self, adapter: str, broadcaster: Any) -> None:
        self.redis_connected.labels(adapter).set_function(lambda: int(broadcaster.connected))

    def watch_nats(self, client: Any) -> None:
        self.nats_connected.set_function(lambda: int(client.connected))

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: labels() takes a lock and builds a tuple on
        every call, and these are counted once or twice per station CALL."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def call_in(self, action: str, result: str) -> None:
        self._child(self.calls_in, action, result).inc()

    def call_out(self, action: str, result: str) -> None:
        self._child(self.calls_out, action, result).inc()

    def call_error(self, code: str) -> None:
        self._child(self.call_errors, code).inc()

    def rpc(self, method: str, status: str, seconds: float) -> None:
        self._child(self.rpc_calls, method, status).inc()
        self._child(self.rpc_seconds, method).observe(seconds)

    def session_authenticated(self, delta: int) -> None:
        self.sessions.inc(delta)

    def broadcast(self, adapter: str, outcome: str, stations: int) -> None:
        self._child(self.broadcasts, adapter, outcome).inc()
        if stations:
            self.broadcast_deliveries.inc(stations)

    def api_call(self, outcome: str) -> None:
        self._child(self.api_calls, outcome).inc()

    def api_route(self, seconds: float) -> None:
        self.api_route_seconds.observe(seconds)

    def queue_expired(self, count: int) -> None:
        self.queue_expirations.inc(count)

    def admission_refused(self) -> None:
        self.admissions_refused.inc()

    def boot_pending(self) -> None:
        self.boots_pending.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

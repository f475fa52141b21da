"""Service wiring: builds the gateway's MultiService from parsed options."""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService, MultiService
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.task import Cooperator
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized

from ocppcable.admission import Admission
from ocppcable.api.resource import API_PATH
from ocppcable.api.wiring import api_enabled, make_call_api
from ocppcable.builtins import redis_link, uses_redis
from ocppcable.cluster.takeover import ClusterTakeover
from ocppcable.http_limits import SiteLimits, connection_budget
from ocppcable.hub import Hub
from ocppcable.listener import Listener
from ocppcable.metrics import IMetrics, PrometheusMetrics
from ocppcable.ocpp import v16, v21, v201
from ocppcable.ocpp.validation import validator_for
from ocppcable.options import tcp_endpoint
from ocppcable.overload import Saturation, never
from ocppcable.plugin import Wiring
from ocppcable.registry import Registry, installed
from ocppcable.rpc.disconnects import RateLimitedDisconnects
from ocppcable.rpc.interface import IRPCClient
from ocppcable.session import SessionSettings
from ocppcable.stations import StationFactory
from ocppcable.web import MetricsResource, build_metrics_site, build_site

log = Logger()

CATALOGS = {c.subprotocol: c for c in (v21.CATALOG, v201.CATALOG, v16.CATALOG)}


class Gateway(MultiService):
    """The whole gateway; children start in the order added and stop in reverse."""

    def __init__(
        self,
        reactor: Any,
        hub: Hub,
        client: IRPCClient,
        rpc: RateLimitedDisconnects,
        stations: StationFactory,
        metrics: PrometheusMetrics,
        shutdown_timeout: float,
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.hub = hub
        #: the RPC transport (gRPC, HTTP, an in-process channel or a plugin's)
        self.client = client
        #: what stations use: the transport with Disconnect RPCs queued
        self.rpc = rpc
        self.stations = stations
        self.metrics = metrics
        self.shutdown_timeout = shutdown_timeout
        self.listeners: list[Listener] = []
        #: the --metrics-listen listener, if any
        self.metrics_listener: Listener | None = None
        self.broadcasters: list[Any] = []
        #: the cluster transport (``--pubsub``), if any
        self.cluster: Any = None
        #: the names of the station hooks (``--hooks``), in their order
        self.hook_names: list[str] = []

    #: installed as twistd's log observer when set (see :mod:`ocppcable.logs`)
    log_observer: ILogObserver | None = None

    @property
    def draining(self) -> bool:
        return self.stations.draining

    def setServiceParent(self, parent: Any) -> None:
        # twistd hands the application itself here, before it starts logging: an
        # ILogObserver component on it becomes the process's log observer
        if self.log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)

    def startService(self) -> None:
        super().startService()
        log.info(
            "ocppcable serving OCPP ({versions}) at {endpoints} under {path}/<station_id>; "
            "RPC: {rpc}; broadcasts: {adapters}; cluster: {cluster}; hooks: {hooks}; "
            "metrics: {metrics}",
            versions=", ".join(self.stations.catalogs),
            endpoints=", ".join(listener.description for listener in self.listeners),
            path=self.stations.prefix.rstrip("/"),
            rpc=self.rpc.target,
            adapters=", ".join(b.description for b in self.broadcasters) or "none",
            cluster=self.cluster.description if self.cluster is not None else "none",
            hooks=", ".join(self.hook_names) or "none",
            metrics=self.metrics_listener.description if self.metrics_listener else "main port",
        )

    @inlineCallbacks
    def stopService(self) -> Any:
        """The graceful stop (docs/operations.md, "Health, shutdown, restarts"): refuse new
        stations (``/health`` 503), leave a port shared with other instances first, stop the
        connected stations spread over half of ``--shutdown-timeout`` (each refuses new CALLs,
        and closes with 1001 once the CALLs in flight are answered: within three quarters of the
        timeout), make every Disconnect RPC, then stop the listeners, broadcasters and RPC
        client."""
        deadline = self.reactor.seconds() + self.shutdown_timeout
        self.stations.draining = True
        # a port shared with other instances (reuseport:) closes first: the kernel then hands
        # the stations that reconnect to the other instances, not to this draining one
        closing = [listener.stop_listening() for listener in self.listeners if listener.shared]
        yield gatherResults([d for d in closing if d is not None])
        stations = self.hub.stations()
        if stations:
            log.info("closing {count} station(s)", count=len(stations))
            timeout = self.shutdown_timeout
            yield self.stations.close_all(stations, timeout / 2, within=timeout * 3 / 4)
        remaining = max(0.1, deadline - self.reactor.seconds())
        yield self.rpc.drain(remaining)
        self.rpc.stop()
        yield super().stopService()


def make_rpc(config: Any, reactor: Any, metrics: IMetrics) -> IRPCClient:
    """The RPC client the transport plugin of ``--rpc-host``'s scheme builds."""
    hub = Hub(metrics)
    wiring = Wiring(reactor=reactor, dispatch=hub.dispatch, metrics=metrics, hub=hub)
    return _build(_plugins(config).transport(config["rpc-host"]), "rpc-host", config, wiring)


def _plugins(config: Any) -> Registry:
    return getattr(config, "plugins", None) or installed()


def _build(plugin: Any, option: str, config: Any, wiring: Wiring) -> Any:
    """``plugin``'s object. A ValueError of its factory (a configuration it cannot use) stops
    the start with one line naming the option and the plugin, and no traceback."""
    try:
        return plugin.build(config, wiring)
    except ValueError as e:
        raise SystemExit(f"--{option} {plugin.name}: {e}") from None


def make_admission(config: Any, reactor: Any) -> Admission | None:
    rate = config["admission-rate"]
    if not rate:
        return None
    burst = config["admission-burst"] or max(1.0, 2 * rate)
    return Admission(rate, burst, reactor.seconds)


def make_saturation(config: Any, reactor: Any, client: IRPCClient) -> Saturation | None:
    """The backend's saturation, watched at the RPC gate of ``client`` (None: not watched,
    because both signals are off or the client has no gate)."""
    policy = getattr(client, "policy", None)  # a third party's transport may have none
    queue, latency = config["overload-queue"], config["overload-latency"]
    if policy is None or not (queue or latency):
        return None
    saturation = Saturation(reactor.seconds, lambda: policy.pending, queue, latency)
    policy.latency_observer = saturation.observe
    return saturation


def makeService(config: Any, reactor: Any = None) -> Gateway:
    if reactor is None:
        from twisted.internet import reactor
    metrics = PrometheusMetrics()
    hub = Hub(metrics, Cooperator(scheduler=lambda step: reactor.callLater(0, step)))
    plugins = _plugins(config)
    wiring = Wiring(reactor=reactor, dispatch=hub.dispatch, metrics=metrics, hub=hub)
    client = _build(plugins.transport(config["rpc-host"]), "rpc-host", config, wiring)
    hooks = tuple(
        _build(plugin, "hooks", config, wiring)
        for plugin in plugins.chosen("hooks", config["hooks"])
    )
    rpc = RateLimitedDisconnects(reactor, client, config["disconnect-rate"])
    saturation = make_saturation(config, reactor, client)
    if saturation is not None:
        metrics.watch_saturation(saturation)
    settings = SessionSettings(
        channel=config["ocpp-channel"],
        granular_actions=config["ocpp-granular-actions"],
        heartbeat_interval=config["ocpp-heartbeat-interval"],
        idle_timeout=config["ocpp-idle-timeout"],
        rpc_timeout=config["rpc-timeout"],
        call_timeout=config["ocpp-call-timeout"],
        max_queue=config["ocpp-max-queue"],
        max_frame=config["max-message-size"],
        rate_limit=config["ocpp-rate-limit"],
        rate_burst=max(1.0, 2.5 * config["ocpp-rate-limit"]),
        pending_interval=config["overload-boot-interval"],
        backend_saturated=saturation or never,
        report_start=api_enabled(config),
    )
    catalogs = {version: CATALOGS[version] for version in config["ocpp-versions"]}
    validators = (
        {name: validator_for(catalog) for name, catalog in catalogs.items()}
        if config["ocpp-validate"]
        else {}
    )
    stations = StationFactory(
        reactor=reactor,
        hub=hub,
        rpc=rpc,
        catalogs=catalogs,
        validators=validators,
        settings=settings,
        ocpp_path=config["ocpp-path"],
        forward_headers=config["headers"],
        max_message_size=config["max-message-size"],
        ping_interval=config["ping-interval"],
        handshake_timeout=config["handshake-timeout"],
        metrics=metrics,
        require_cert_match=config["ocpp-require-cert-match"],
        admission=make_admission(config, reactor),
        hooks=hooks,
    )
    gateway = Gateway(reactor, hub, client, rpc, stations, metrics, config["shutdown-timeout"])
    metrics.watch(hub=hub, rpc=client, disconnects=rpc)
    if IService.providedBy(client):
        client.setServiceParent(gateway)
    gateway.hook_names = list(config["hooks"])
    for hook in hooks:
        if IService.providedBy(hook):
            hook.setServiceParent(gateway)
    if config["pubsub"] != "none":
        [cluster_plugin] = plugins.chosen("pubsub", [config["pubsub"]])
        wiring.cluster = gateway.cluster = _build(cluster_plugin, "pubsub", config, wiring)
        if IService.providedBy(wiring.cluster):
            wiring.cluster.setServiceParent(gateway)
    on_main_site = wiring.main_site
    api = None
    if api_enabled(config):
        calls, api = make_call_api(
            config,
            reactor,
            hub,
            catalogs,
            validators,
            metrics,
            cluster=wiring.cluster,
            redis=redis_link(config, wiring) if uses_redis(config) else None,
        )
        stations.tracker = calls
        hub.undelivered = calls.undelivered
        calls.setServiceParent(gateway)
        if api.keyed:
            on_main_site[API_PATH] = api
            calls.description = f"{API_PATH} on the main port (bearer key)"
        else:  # demo mode: beside a broadcaster without a key
            wiring.unkeyed[API_PATH] = api
    for adapter in plugins.chosen("broadcast-adapter", config["broadcast-adapter"]):
        broadcaster = _build(adapter, "broadcast-adapter", config, wiring)
        broadcaster.setServiceParent(gateway)
        gateway.broadcasters.append(broadcaster)
    if api is not None and not api.keyed:
        if wiring.unkeyed_at is None:
            log.warn(
                "the call API is off: it has no key (--api-key) and no keyless HTTP broadcaster"
            )
        else:
            calls.description = f"{API_PATH} on {wiring.unkeyed_at} (no auth)"
    if wiring.cluster is not None:
        ClusterTakeover(wiring.cluster, hub).setServiceParent(gateway)
    if config["metrics-path"] and not config["metrics-listen"]:
        on_main_site[config["metrics-path"]] = MetricsResource(metrics)
    limits = SiteLimits(
        handshake_timeout=config["handshake-timeout"],
        max_pending=config["max-pending-connections"],
        max_connections=config["max-connections"] or connection_budget(),
    )
    site = build_site(config["ocpp-path"], stations, on_main_site, limits)
    from_port = [tcp_endpoint(config["port"], config["host"])]
    option = "--port" if config["listen"] == from_port else "--listen"
    for description in config["listen"]:
        listener = Listener(reactor, description, site, option)
        listener.setServiceParent(gateway)
        gateway.listeners.append(listener)
    if config["metrics-listen"]:
        metrics_site = build_metrics_site(stations, config["metrics-path"], metrics)
        gateway.metrics_listener = Listener(
            reactor, config["metrics-listen"], metrics_site, "--metrics-listen"
        )
        gateway.metrics_listener.setServiceParent(gateway)
    return gateway

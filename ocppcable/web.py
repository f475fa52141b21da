"""The HTTP resource tree on the main port: the OCPP WebSocket endpoint, ``/health`` and extras."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.web.resource import Resource
from twisted.web.server import Request

from ocppcable.http_limits import BoundedRequest, LimitedSite, SiteLimits
from ocppcable.metrics import CONTENT_TYPE, PrometheusMetrics
from ocppcable.stations import StationFactory

_QUIET_PATHS = frozenset({b"/health", b"/metrics"})


class Health(Resource):
    """200 while serving, 503 while draining on shutdown."""

    isLeaf = True

    def __init__(self, stations: StationFactory) -> None:
        super().__init__()
        self.stations = stations

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        if self.stations.draining:
            request.setResponseCode(503)
            return b"draining\n"
        return b"ok\n"

    render_HEAD = render_GET


class StationEndpoint(WebSocketResource):
    """The stations' WebSocket endpoint: a handshake over the admission limit
    (:mod:`ocppcable.admission`) is answered 503 with ``Retry-After`` before anything else is
    done for it; the others are upgraded."""

    def __init__(self, stations: StationFactory) -> None:
        super().__init__(stations)
        self.stations = stations

    def render(self, request: BoundedRequest) -> Any:
        admission = self.stations.admission
        retry_after = admission.admit() if admission is not None else None
        if retry_after is None:
            return super().render(request)
        self.stations.metrics.admission_refused()
        request.quiet = True  # counted, and logged in summary by the admission limit
        request.channel.persistent = False  # the station opens a new connection to retry
        request.setHeader(b"connection", b"close")
        request.setResponseCode(503)
        request.setHeader(b"retry-after", b"%d" % retry_after)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"too many new connections: retry later\n"


class MetricsResource(Resource):
    """Prometheus text exposition."""

    isLeaf = True

    def __init__(self, metrics: PrometheusMetrics) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE.encode("ascii"))
        return self.metrics.exposition()


class QuietSite(LimitedSite):
    """A :class:`~ocppcable.http_limits.LimitedSite` that does not access-log probes."""

    def log(self, request: BoundedRequest) -> None:
        if request.path not in _QUIET_PATHS and not request.quiet:
            super().log(request)


def mount(root: Resource, path: str, resource: Resource) -> Resource:
    """Put ``resource`` at ``path`` (e.g. ``/a/b``) under ``root``, creating the parents."""
    *parents, leaf = path.strip("/").encode("utf-8").split(b"/")
    node = root
    for segment in parents:
        child = node.children.get(segment)
        if child is None:
            child = Resource()
            node.putChild(segment, child)
        node = child
    node.putChild(leaf, resource)
    return root


def build_site(
    ocpp_path: str,
    stations: StationFactory,
    extra: Mapping[str, Resource] | None = None,
    limits: SiteLimits | None = None,
) -> QuietSite:
    """``/health``, the station endpoint at ``ocpp_path`` (every path below it) and ``extra``
    resources by path (e.g. the HTTP broadcaster)."""
    root = Resource()
    root.putChild(b"health", Health(stations))
    mount(root, ocpp_path, StationEndpoint(stations))
    for path, resource in (extra or {}).items():
        mount(root, path, resource)
    site = QuietSite(root, limits, stations.reactor)
    site.upgraded_closed = lambda: stations.connections_closed
    return site


def build_metrics_site(
    stations: StationFactory, path: str, metrics: PrometheusMetrics
) -> QuietSite:
    """``/health`` and the Prometheus endpoint at ``path``: the site of ``--metrics-listen``,
    a port of each instance's own when several share the main port."""
    root = Resource()
    root.putChild(b"health", Health(stations))
    return QuietSite(mount(root, path, MetricsResource(metrics)), reactor=stations.reactor)

"""The HTTP resource tree on the main port: the OCPP WebSocket endpoint and ``/health``."""

from __future__ import annotations

from autobahn.twisted.resource import WebSocketResource
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from ocppcable.websocket import StationFactory

_QUIET_PATHS = frozenset({b"/health", b"/metrics"})


class Health(Resource):
    """200 while serving."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"ok\n"

    render_HEAD = render_GET


class QuietSite(Site):
    """A Site that does not access-log probes."""

    def log(self, request: Request) -> None:
        if request.path not in _QUIET_PATHS:
            super().log(request)


def build_site(ocpp_path: str, stations: StationFactory) -> QuietSite:
    """``/health`` plus the station endpoint at ``ocpp_path`` (every path below it)."""
    root = Resource()
    root.putChild(b"health", Health())
    *parents, leaf = ocpp_path.strip("/").encode("utf-8").split(b"/")
    node = root
    for segment in parents:
        child = Resource()
        node.putChild(segment, child)
        node = child
    node.putChild(leaf, WebSocketResource(stations))
    return QuietSite(root)

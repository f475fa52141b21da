"""The HTTP resource tree on the main port: the OCPP WebSocket endpoint, ``/health`` and extras."""

from __future__ import annotations

from collections.abc import Mapping

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
    ocpp_path: str, stations: StationFactory, extra: Mapping[str, Resource] | None = None
) -> QuietSite:
    """``/health``, the station endpoint at ``ocpp_path`` (every path below it) and ``extra``
    resources by path (e.g. the HTTP broadcaster)."""
    root = Resource()
    root.putChild(b"health", Health())
    mount(root, ocpp_path, WebSocketResource(stations))
    for path, resource in (extra or {}).items():
        mount(root, path, resource)
    return QuietSite(root)

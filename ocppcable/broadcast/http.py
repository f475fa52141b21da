"""The ``http`` broadcaster: the backend POSTs publications to ``/_broadcast``."""

from __future__ import annotations

import hmac

from twisted.application.service import MultiService
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface import implementer

from ocppcable.broadcast.interface import Dispatch, IBroadcaster
from ocppcable.publication import MalformedPublication
from ocppcable.web import QuietSite, mount

log = Logger()


class BroadcastResource(Resource):
    """``POST`` a publication (or a batch) → 201; bad bearer → 401; not POST or bad body → 422."""

    isLeaf = True

    def __init__(self, dispatch: Dispatch, key: str | None) -> None:
        super().__init__()
        self.dispatch = dispatch
        self._authorization = None if key is None else b"Bearer " + key.encode("utf-8")

    def render(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        if request.method != b"POST":
            return self._status(request, 422, b"POST a publication\n")
        if not self._authorized(request):
            return self._status(request, 401, b"unauthorized\n")
        try:
            self.dispatch(request.content.read(), "http")
        except MalformedPublication as e:
            log.warn("rejected a malformed HTTP broadcast: {reason}", reason=str(e))
            return self._status(request, 422, str(e).encode("utf-8") + b"\n")
        return self._status(request, 201, b"")

    def _authorized(self, request: Request) -> bool:
        if self._authorization is None:
            return True
        given = request.getHeader(b"authorization") or b""
        return hmac.compare_digest(given, self._authorization)

    @staticmethod
    def _status(request: Request, code: int, body: bytes) -> bytes:
        request.setResponseCode(code)
        return body


@implementer(IBroadcaster)
class HTTPBroadcaster(MultiService):
    """Receives publications over HTTP at ``path``.

    With a ``key`` the :attr:`resource` is mounted on the main site (the station port); without
    one it is served on its own endpoint (the wiring adds a listener child for :meth:`site`).
    """

    name = "broadcast-http"

    def __init__(self, dispatch: Dispatch, key: str | None, path: str, where: str) -> None:
        super().__init__()
        self.key = key
        self.path = path
        self.resource = BroadcastResource(dispatch, key)
        auth = "bearer key" if key is not None else "no auth"
        self.description = f"HTTP POST {path} on {where} ({auth})"

    def site(self) -> Site:
        """A site of its own serving only :attr:`resource` at :attr:`path`."""
        return QuietSite(mount(Resource(), self.path, self.resource))

"""The ``http`` broadcaster: the backend POSTs publications to ``/_broadcast``."""

from __future__ import annotations

import hmac
from typing import Any

from twisted.application.service import MultiService
from twisted.logger import Logger
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface import implementer

from ocppcable.broadcast.interface import Dispatch, IBroadcaster
from ocppcable.http_limits import IAcceptsBody, Refusal, SiteLimits
from ocppcable.publication import MalformedPublication
from ocppcable.web import QuietSite, mount

log = Logger()


#: the default of ``--http-broadcast-max-body``
MAX_BODY = 4 * 1024 * 1024


@implementer(IAcceptsBody)
class BroadcastResource(Resource):
    """``POST`` a publication (or a batch) → 201; another method → 405 (``Allow: POST``); bad
    bearer → 401; bad body → 422; a body over ``max_body`` → 413. On a
    :class:`~ocppcable.web.QuietSite` the method, the key and the size are checked from the
    request head, before the body is read."""

    isLeaf = True

    def __init__(self, dispatch: Dispatch, key: str | None, max_body: int = MAX_BODY) -> None:
        super().__init__()
        self.dispatch = dispatch
        self.max_body = max_body
        self._authorization = None if key is None else b"Bearer " + key.encode("utf-8")

    def refusal(self, method: bytes, headers: Headers) -> Refusal | None:
        if method != b"POST":
            return 405, b"POST a publication\n", ((b"allow", b"POST"),)
        if self._authorization is not None:
            given = (headers.getRawHeaders(b"authorization") or [b""])[-1]
            if not hmac.compare_digest(given, self._authorization):
                return 401, b"unauthorized\n"
        return None

    def render(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        refused = self.refusal(request.method, request.requestHeaders)
        if refused is not None:
            return self._status(request, *refused)
        try:
            self.dispatch(request.content.read(), "http")
        except MalformedPublication as e:
            log.warn("rejected a malformed HTTP broadcast: {reason}", reason=str(e))
            return self._status(request, 422, str(e).encode("utf-8") + b"\n")
        return self._status(request, 201, b"")

    @staticmethod
    def _status(
        request: Request, code: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()
    ) -> bytes:
        request.setResponseCode(code)
        for name, value in headers:
            request.setHeader(name, value)
        return body


@implementer(IBroadcaster)
class HTTPBroadcaster(MultiService):
    """Receives publications over HTTP at ``path``.

    With a ``key`` the :attr:`resource` is mounted on the main site (the station port); without
    one it is served on its own endpoint (the wiring adds a listener child for :meth:`site`).
    """

    name = "broadcast-http"

    def __init__(
        self,
        dispatch: Dispatch,
        key: str | None,
        path: str,
        where: str,
        max_body: int = MAX_BODY,
    ) -> None:
        super().__init__()
        self.key = key
        self.path = path
        self.resource = BroadcastResource(dispatch, key, max_body)
        auth = "bearer key" if key is not None else "no auth"
        self.description = f"HTTP POST {path} on {where} ({auth})"

    def site(self, limits: SiteLimits | None = None, reactor: Any = None) -> Site:
        """A site of its own serving only :attr:`resource` at :attr:`path`."""
        return QuietSite(mount(Resource(), self.path, self.resource), limits, reactor)

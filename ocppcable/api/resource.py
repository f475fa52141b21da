# -*- test-case-name: tests.test_call_api -*-
"""The call API over HTTP, JSON in and out, under ``/_ocpp``:

- ``POST /_ocpp/stations/<id>/calls``: one call (:class:`~ocppcable.api.models.Answer`)
- ``POST /_ocpp/calls``: the same call for several stations
- ``GET /_ocpp/stations`` and ``GET /_ocpp/stations/<id>``: presence
- ``GET /_ocpp/openapi.json``: the OpenAPI document

Every request needs ``Authorization: Bearer <key>`` when the API has a key.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from ocppcable.api import models
from ocppcable.api.calls import CallService
from ocppcable.api.interfaces import IPresence, Unavailable
from ocppcable.api.models import STATION_ID, Answer, Invalid, Limits, Outcome
from ocppcable.api.openapi import OPENAPI
from ocppcable.http_limits import IAcceptsBody

log = Logger()

#: where the API is mounted
API_PATH = "/_ocpp"

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _encode(value: Any) -> bytes:
    return _encoder.encode(value).encode("utf-8")


Reply = tuple[int, Any]

#: what the API serves: path segments under :data:`API_PATH` (``*``: a station id), the method,
#: and the method of :class:`APIResource` that answers
ROUTES: list[tuple[tuple[str, ...], bytes, str]] = [
    (("openapi.json",), b"GET", "_openapi"),
    (("stations",), b"GET", "_stations"),
    (("stations", "*"), b"GET", "_station"),
    (("stations", "*", "calls"), b"POST", "_call"),
    (("calls",), b"POST", "_batch"),
]


def _matches(template: tuple[str, ...], path: list[str]) -> bool:
    return len(template) == len(path) and all(
        t == "*" or t == segment for t, segment in zip(template, path, strict=True)
    )


@implementer(IAcceptsBody)
class APIResource(Resource):
    """Routes ``/_ocpp/...`` itself (a leaf), so that the whole API is one resource. On a
    :class:`~ocppcable.http_limits.LimitedSite` the key and the body size are checked from the
    request head, before the body is read (413 over :attr:`max_body`)."""

    isLeaf = True

    def __init__(
        self, calls: CallService, presence: IPresence, key: str | None, limits: Limits
    ) -> None:
        super().__init__()
        self.calls = calls
        self.presence = presence
        self.limits = limits
        #: the largest request body taken
        self.max_body = limits.max_body
        self._authorization = None if key is None else b"Bearer " + key.encode("utf-8")

    @property
    def keyed(self) -> bool:
        """It asks for a key (and is then served on the main port)."""
        return self._authorization is not None

    def refusal(self, method: bytes, headers: Headers) -> tuple[int, bytes] | None:
        """A refusal from the request head alone (a bad key), or None to read the body."""
        if self._authorization is not None:
            given = (headers.getRawHeaders(b"authorization") or [b""])[-1]
            if not hmac.compare_digest(given, self._authorization):
                return 401, _encode({"errors": ["a valid Authorization: Bearer key is needed"]})
        return None

    def render(self, request: Request) -> Any:
        refused = self.refusal(request.method, request.requestHeaders)
        if refused is not None:
            return self._head(request, *refused)
        path = [unquote(segment.decode("utf-8", "replace")) for segment in request.postpath]
        if path and path[-1] == "":
            path.pop()
        route = self._route(request, path)
        if isinstance(route, tuple):
            return self._head(request, route[0], _encode(route[1]))
        finished: list[bool] = []
        request.notifyFinish().addBoth(finished.append)
        done = ensureDeferred(route())

        def reply(result: Reply) -> None:
            if not finished:  # the client may have gone
                request.write(self._head(request, result[0], _encode(result[1])))
                request.finish()

        def failed(failure: Any) -> None:
            status, errors = 500, {"errors": ["internal error"]}
            if failure.check(Unavailable):  # its connection logs the outage
                status, errors = 503, {"errors": [failure.getErrorMessage()]}
            else:
                log.failure("call API error on {path}", failure, path=request.path)
            if not finished and not request.finished:
                request.write(self._head(request, status, _encode(errors)))
                request.finish()

        done.addCallback(reply).addErrback(failed)
        return NOT_DONE_YET

    def _route(self, request: Request, path: list[str]) -> Reply | Callable[[], Awaitable[Reply]]:
        """An answer at once, or what makes it."""
        method = b"GET" if request.method == b"HEAD" else request.method
        found = [route for route in ROUTES if _matches(route[0], path)]
        if not found:
            return 404, {"errors": [f"no such resource: {request.path.decode('latin-1')[:200]}"]}
        [(template, allowed, name)] = found
        if method != allowed:
            request.setHeader(b"allow", b"GET, HEAD" if allowed == b"GET" else allowed)
            return 405, {"errors": [f"use {allowed.decode()}"]}
        body = request.content.read() if allowed == b"POST" else b""
        params = [segment for t, segment in zip(template, path, strict=True) if t == "*"]
        handler = getattr(self, name)
        return lambda: handler(request, *params, body)

    async def _openapi(self, request: Request, body: bytes) -> Reply:
        return 200, OPENAPI

    async def _call(self, request: Request, station_id: str, body: bytes) -> Reply:
        decoded: dict[str, Any] = {}
        try:
            decoded = models.decode(body, self.limits)
            call = models.parse_call(decoded, self.limits)
            if not STATION_ID.match(station_id):
                raise Invalid([f"not a station id: {station_id[:60]!r}"])
        except Invalid as e:
            action = decoded.get("action")
            answer = Answer(
                station_id[:60],
                "",
                action if isinstance(action, str) else "",
                Outcome.INVALID,
                errors=e.errors,
            )
            self.calls.metrics.api_call(str(answer.outcome))
            return answer.status, answer.to_json()
        answer = await self.calls.call(station_id, call)
        return answer.status, answer.to_json()

    async def _batch(self, request: Request, body: bytes) -> Reply:
        try:
            batch = models.parse_batch(models.decode(body, self.limits), self.limits)
        except Invalid as e:
            return 422, {"outcome": str(Outcome.INVALID), "errors": e.errors}
        answers = await self.calls.batch(batch.stations, batch.call)
        return 200, {"results": {station: a.to_json() for station, a in answers.items()}}

    async def _stations(self, request: Request, body: bytes) -> Reply:
        try:
            after, limit = models.parse_page(request.args or {}, self.limits)
        except Invalid as e:
            return 422, {"errors": e.errors}
        stations = await self.presence.page(after, limit)
        cursor = stations[-1].id if len(stations) == limit else None
        return 200, {"stations": [s.to_json() for s in stations], "next": cursor}

    async def _station(self, request: Request, station_id: str, body: bytes) -> Reply:
        info = await self.presence.lookup(station_id) if STATION_ID.match(station_id) else None
        if info is None:
            return 404, {"id": station_id[:60], "errors": ["not connected"]}
        return 200, info.to_json()

    @staticmethod
    def _head(request: Request, status: int, body: bytes) -> bytes:
        """Set the status and headers of a JSON answer; returns its body."""
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return body

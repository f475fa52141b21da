"""The AnyCable backends the gateway talks to in tests: the demo channel over real gRPC
(:class:`Backend`) and over HTTP RPC (:class:`HTTPBackend`), and an HTTP client."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from ocppcable.demo import OCPPApplication, RecordedCall
from ocppcable.protos.rpc_pb2 import CommandMessage, ConnectionRequest, DisconnectRequest
from ocppcable.rpc.grpc_server import serve
from tests.support.common import TIMEOUT

# --- backend ------------------------------------------------------------------------------------


class Backend(OCPPApplication):
    """The demo OCPPChannel served over real gRPC, with switches tests flip."""

    def __init__(self) -> None:
        super().__init__(id_tags={"TAG-OK"}, heartbeat_interval=60)
        self.connect_status: int | None = None  # force a Connect status
        self.message_status: int | None = None  # force a message Command status
        self.replies: dict[str, Any] = {}  # action → full CommandResponse override
        self.server: Any = None
        self.port = 0
        #: cleared, Connect and Disconnect RPCs wait (in the gRPC worker thread) until set again
        self.connects_flow = threading.Event()
        self.connects_flow.set()
        self.disconnects_flow = threading.Event()
        self.disconnects_flow.set()

    def start(self, port: int = 0) -> None:
        self.server, self.port = serve(self, f"127.0.0.1:{port}")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(None).wait()
            self.server = None

    def connect(self, request: Any, meta: Any) -> Any:
        response = super().connect(request, meta)  # recorded, then held while the flow is off
        self.connects_flow.wait(TIMEOUT)
        if self.connect_status is not None:
            response.status = self.connect_status
        return response

    def command(self, request: Any, meta: Any) -> Any:
        response = super().command(request, meta)
        if request.command == "message":
            action = json.loads(request.data).get("action")
            if action in self.replies:
                return self.replies[action](request)
            if self.message_status is not None:
                response.status = self.message_status
        return response

    def disconnect(self, request: Any, meta: Any) -> Any:
        self.disconnects_flow.wait(TIMEOUT)
        return super().disconnect(request, meta)

    def recorded(self, method: str, action: str | None = None) -> list[RecordedCall]:
        return [
            c
            for c in list(self.calls)
            if c.method == method and (action is None or c.action == action)
        ]


# --- HTTP: an AnyCable HTTP RPC backend, a client for the HTTP broadcaster ------------------------


@dataclass(frozen=True)
class SeenRequest:
    """One request an :class:`HTTPBackend` received."""

    method: str  # "connect", "command", "disconnect"
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]


class HTTPBackend(Resource):
    """A :class:`Backend` served over AnyCable HTTP RPC by twisted.web in this process, answering
    as anycable-rb's HTTP server does (snake_case JSON, integer status, 401 on a bad bearer)."""

    isLeaf = True
    REQUESTS = {
        "connect": ConnectionRequest,
        "command": CommandMessage,
        "disconnect": DisconnectRequest,
    }

    def __init__(self, app: Backend, key: str | None = None) -> None:
        super().__init__()
        self.app = app
        self.key = key
        self.seen: list[SeenRequest] = []
        self.status = 200  # answer every request with this HTTP status
        self.body: bytes | None = None  # answer every request with this body
        self.stall = False  # send the headers, then never the body
        self.drop = False  # close the connection without an answer
        self.stalled: list[Deferred[None]] = []  # their notifyFinish(): fails when closed
        self.url = ""  # the base URL for --rpc-host, once started
        self._port: Any = None

    def render_POST(self, request: Request) -> Any:
        method = request.postpath[-1].decode()
        headers = {
            name.decode().lower(): values[-1].decode()
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        body = request.content.read()
        self.seen.append(SeenRequest(method, headers, json.loads(body)))
        if self.drop:
            request.transport.abortConnection()
            return NOT_DONE_YET
        if self.key is not None and headers.get("authorization") != f"Bearer {self.key}":
            request.setResponseCode(401)
            return b"Unauthorized"
        if method not in self.REQUESTS:
            request.setResponseCode(404)
            return b"Not found"
        request.setResponseCode(self.status)
        request.setHeader(b"content-type", b"application/json")
        if self.stall:
            request.write(b'{"status":')
            self.stalled.append(request.notifyFinish())
            return NOT_DONE_YET
        if self.body is not None:
            return self.body
        prefix = "x-anycable-meta-"
        meta = {k[len(prefix) :]: v for k, v in headers.items() if k.startswith(prefix)}
        message = json_format.Parse(body, self.REQUESTS[method]())
        response = getattr(self.app, method)(message, meta)
        fields = json_format.MessageToDict(
            response, preserving_proto_field_name=True, use_integers_for_enums=True
        )
        return json.dumps(fields).encode()

    def requests(self, method: str) -> list[SeenRequest]:
        return [seen for seen in self.seen if seen.method == method]

    async def start(self, reactor: Any) -> str:
        """Listen on a free loopback port; returns the base URL for ``--rpc-host``."""
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        self._port = await endpoint.listen(Site(self))
        self.url = f"http://127.0.0.1:{self._port.getHost().port}/_anycable"
        return self.url

    async def stop(self) -> None:
        if self._port is not None:
            await self._port.stopListening()
            self._port = None


def http_client(reactor: Any) -> HTTPClient:
    """A treq client whose connections do not outlive a request (no idle sockets after tests)."""
    return HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))

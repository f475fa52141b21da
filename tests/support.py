"""The helpers every test module shares (tests import from here and conftest, never from each
other): real parts for end-to-end tests (a redis-server, a gRPC or HTTP backend, the gateway,
OCPP stations, twistd, a PKI, a fresh checkout) and plain calls driving the sans-I/O session."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf import json_format
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16 import call as calls
from ocpp.v16.enums import Action
from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from ocppcable.cable import CommandReply, ConnectReply, ReplyEnv, Status
from ocppcable.demo import OCPPApplication, RecordedCall
from ocppcable.ocpp import v16
from ocppcable.options import Options
from ocppcable.protos.rpc_pb2 import CommandMessage, ConnectionRequest, DisconnectRequest
from ocppcable.rpc.grpc_server import serve
from ocppcable.service import makeService
from ocppcable.session import RPC, Effect, Send, Session, SessionSettings

TIMEOUT = 10.0

#: how long a test waits for a ``twistd`` to start, fail or stop: generous, since a loaded
#: 2-core machine takes seconds where an idle one takes one; each wait ends at its event
PROCESS_TIMEOUT = 60.0

#: the checkout's root directory
ROOT = Path(__file__).resolve().parents[1]

#: the installed ``twistd`` script, next to this Python
TWISTD = [str(Path(sys.executable).with_name("twistd"))]


def aio(coro: Coroutine[Any, Any, Any]) -> Deferred[Any]:
    """Await an asyncio coroutine from Twisted code (the asyncio reactor is installed)."""
    return Deferred.fromFuture(asyncio.ensure_future(coro))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(predicate: Callable[[], Any], reactor: Any, timeout: float = TIMEOUT) -> Any:
    """Poll ``predicate`` on the reactor until it returns something truthy."""
    from twisted.internet.task import deferLater

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        await deferLater(reactor, 0.02, lambda: None)


# --- Redis ------------------------------------------------------------------------------------


class RedisServer:
    """A private redis-server on a free loopback port (never the machine's own Redis), asking
    for ``password`` when one is given (:meth:`command` logs in with it)."""

    def __init__(self, port: int | None = None, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (.ci/run installs it)")
        self.binary = binary
        self.port = free_port() if port is None else port
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="ocppcable-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self.dir,
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                if self.command("PING") == "PONG":
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(TIMEOUT)
            self.process = None

    def connection(self) -> socket.socket:
        """A new connection, logged in when the server asks for a password."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        if self.password:
            s.sendall(b"AUTH %s\r\n" % self.password.encode())
            reply = s.recv(5)
            if reply != b"+OK\r\n":
                s.close()
                raise RuntimeError(f"AUTH refused: {reply!r}")
        return s

    def command(self, *args: str) -> Any:
        """One command over a short-lived connection (RESP2, replies parsed minimally)."""
        with self.connection() as s:
            out = [f"*{len(args)}\r\n".encode()]
            for arg in args:
                data = arg.encode()
                out.append(b"$%d\r\n%s\r\n" % (len(data), data))
            s.sendall(b"".join(out))
            reply = s.makefile("rb").readline().rstrip(b"\r\n")
        kind, rest = reply[:1], reply[1:].decode()
        if kind == b"-":
            raise RuntimeError(rest)
        return int(rest) if kind == b":" else rest

    def publish(self, channel: str, message: Any) -> int:
        body = message if isinstance(message, str) else json.dumps(message)
        return self.command("PUBLISH", channel, body)

    def subscribers(self, channel: str) -> int:
        with self.connection() as s:
            s.sendall(b"PUBSUB NUMSUB %s\r\n" % channel.encode())
            lines = s.makefile("rb")
            lines.readline()  # *2
            lines.readline()  # $len
            lines.readline()  # channel
            return int(lines.readline()[1:])

    def channels(self, pattern: str) -> list[str]:
        """The channels matching ``pattern`` that have subscribers (``PUBSUB CHANNELS``)."""
        with self.connection() as s:
            s.sendall(b"PUBSUB CHANNELS %s\r\n" % pattern.encode())
            lines = s.makefile("rb")
            count = int(lines.readline()[1:])
            names = []
            for _ in range(count):
                lines.readline()  # $len
                names.append(lines.readline().rstrip(b"\r\n").decode())
            return names


# --- NATS -------------------------------------------------------------------------------------


class NatsServer:
    """A private nats-server on a free loopback port (never the machine's own NATS), with
    ``user:password`` required when given, and TLS with ``tls`` (a certificate and its key);
    :meth:`publish` speaks the NATS text protocol over a plain socket (a client we did not
    write into the gateway)."""

    def __init__(
        self,
        port: int | None = None,
        user: str | None = None,
        password: str = "",
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        binary = shutil.which("nats-server")
        if binary is None:
            raise RuntimeError("nats-server is not installed (.ci/run installs it)")
        self.binary = binary
        self.port = free_port() if port is None else port
        self.user = user
        self.password = password
        #: the server's certificate and key: it requires TLS
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f"{self.user}:{self.password}@" if self.user else ""
        return f"nats://{auth}127.0.0.1:{self.port}"

    def start(self) -> None:
        args = ["--user", self.user, "--pass", self.password] if self.user else []
        if self.tls is not None:
            args += ["--tls", "--tlscert", str(self.tls[0]), "--tlskey", str(self.tls[1])]
        self.process = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(4096).startswith(b"INFO "):  # sent in the clear, TLS or not
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(TIMEOUT)
            self.process = None

    def connection(self) -> socket.socket:
        """A new connection past CONNECT (answered by a PONG: the server took it)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        try:
            s.recv(4096)  # INFO
            options = {"verbose": False, "pedantic": False, "echo": False}
            if self.user:
                options.update(user=self.user, **{"pass": self.password})
            s.sendall(b"CONNECT %s\r\nPING\r\n" % json.dumps(options).encode())
            reply = b""
            while b"PONG" not in reply:
                chunk = s.recv(4096)
                if not chunk or b"-ERR" in chunk:
                    raise OSError(f"NATS refused: {(reply + chunk)!r}")
                reply += chunk
        except BaseException:
            s.close()
            raise
        return s

    def publish(self, subject: str, message: Any) -> None:
        body = (message if isinstance(message, str) else json.dumps(message)).encode()
        with self.connection() as s:
            s.sendall(b"PUB %s %d\r\n%s\r\nPING\r\n" % (subject.encode(), len(body), body))
            s.recv(4096)  # the PONG: the server has handled the PUB


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


# --- gateway ------------------------------------------------------------------------------------


class Gateway:
    """The gateway service started in this process on a free loopback port."""

    def __init__(self, reactor: Any, args: list[str]) -> None:
        options = Options(environ={})
        options.parseOptions(
            ["--listen=tcp:0:interface=127.0.0.1", "--http-broadcast-port=0", *args]
        )
        self.options = options
        self.service = makeService(options, reactor)
        self.port = 0

    async def start(self) -> Gateway:
        self.service.startService()
        port = await self.service.listeners[0].when_listening()
        self.port = port.getHost().port
        return self

    async def stop(self) -> None:
        if self.service.running:
            await self.service.stopService()

    def url(self, station_id: str, path: str = "/ocpp") -> str:
        return f"ws://127.0.0.1:{self.port}{path}/{station_id}"


def twistd(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """``twistd -n ocppcable *args`` as operators run it, its output on ``stdout``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [*TWISTD, "-n", "--pidfile=", "ocppcable", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        **kwargs,
    )


async def read_line(
    process: subprocess.Popen[str], reactor: Any, timeout: float = PROCESS_TIMEOUT
) -> str:
    """One line of ``process``'s output ("" at its end), read in a thread so that the reactor
    runs meanwhile (a readline on the reactor would freeze it, and the test's own deadline,
    while the process says nothing); raises ``TimeoutError`` past ``timeout``."""
    from twisted.internet.threads import deferToThread

    assert process.stdout is not None
    reading: Deferred[str] = deferToThread(process.stdout.readline)
    reading.addTimeout(timeout, reactor)
    return await reading


async def wait_output(
    process: subprocess.Popen[str],
    reactor: Any,
    text: str = "ocppcable serving OCPP",
    timeout: float = PROCESS_TIMEOUT,
) -> list[str]:
    """The lines ``process`` writes up to the first that holds ``text`` (by default, up to a
    started gateway's banner); fails if it ends first or says nothing of it within ``timeout``."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while not lines or text not in lines[-1]:
        line = await read_line(process, reactor, max(0.0, deadline - time.monotonic()))
        assert line, f"the process ended before {text!r}: {''.join(lines)[-2000:]}"
        lines.append(line)
    return lines


async def wait_exit(
    process: subprocess.Popen[str], reactor: Any, timeout: float = PROCESS_TIMEOUT
) -> int:
    """``process``'s exit code, waited for in a thread (the reactor runs meanwhile)."""
    from twisted.internet.threads import deferToThread

    return await deferToThread(process.wait, timeout)


# --- stations -----------------------------------------------------------------------------------


class Station(ChargePoint):
    """A 1.6 charge point from the PyPI ``ocpp`` package that answers a few remote commands."""

    def __init__(self, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection, response_timeout=TIMEOUT)
        self.commands: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message: str, **kwargs: Any) -> Any:
        await self.commands.put(("TriggerMessage", {"requestedMessage": requested_message}))
        return call_result.TriggerMessage(status="Accepted")

    @on(Action.reset)
    async def on_reset(self, type: str) -> Any:
        await self.commands.put(("Reset", {"type": type}))
        return call_result.Reset(status="Accepted")


async def charging_session(cp: Station) -> None:
    """Boot → Authorize → StartTransaction → MeterValues → StopTransaction against the demo
    channel (tests.support.Backend or ocppcable.demo), checking each reply."""
    boot = await cp.call(
        calls.BootNotification(
            charge_point_model="M1", charge_point_vendor="V", meter_serial_number="SN-1"
        )
    )
    assert boot.status == "Accepted" and boot.interval == 60
    auth = await cp.call(calls.Authorize(id_tag="TAG-OK"))
    assert auth.id_tag_info["status"] == "Accepted"
    start = await cp.call(
        calls.StartTransaction(
            connector_id=1, id_tag="TAG-OK", meter_start=0, timestamp="2026-01-01T00:00:00Z"
        )
    )
    assert start.transaction_id == 1
    sample = {"timestamp": "2026-01-01T00:01:00Z", "sampledValue": [{"value": "10"}]}
    values = await cp.call(
        calls.MeterValues(connector_id=1, transaction_id=1, meter_value=[sample])
    )
    assert values is not None  # {} (the default reply), schema-validated by the client
    stop = await cp.call(
        calls.StopTransaction(meter_stop=10, timestamp="2026-01-01T00:02:00Z", transaction_id=1)
    )
    assert stop is not None


CHARGING_ACTIONS = [
    "boot_notification", "authorize", "start_transaction", "meter_values", "stop_transaction"
]  # fmt: skip


class StationConnection:
    """A station connected to the gateway with its message loop running."""

    def __init__(
        self,
        url: str,
        station_id: str,
        subprotocols: tuple[str, ...],
        station_class: type[Station] = Station,
    ) -> None:
        self.url = url
        self.station_id = station_id
        self.subprotocols = subprotocols
        self.station_class = station_class
        self.ws: Any = None
        self.station: Station | None = None
        self._loop: asyncio.Task[Any] | None = None

    async def open(self) -> Station:
        self.ws = await websockets.connect(
            self.url, subprotocols=list(self.subprotocols), open_timeout=TIMEOUT
        )
        self.station = self.station_class(self.station_id, self.ws)
        self._loop = asyncio.ensure_future(self._serve())
        return self.station

    async def _serve(self) -> None:
        try:
            await self.station.start()
        except websockets.ConnectionClosed:
            pass

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._loop is not None:
            self._loop.cancel()


async def open_station(
    url: str,
    station_id: str,
    subprotocols: tuple[str, ...] = ("ocpp1.6",),
    station_class: type[Station] = Station,
) -> StationConnection:
    connection = StationConnection(url, station_id, subprotocols, station_class)
    await connection.open()
    return connection


async def raw_socket(url: str, subprotocols: tuple[str, ...] = ("ocpp1.6",)) -> Any:
    """A bare WebSocket (no OCPP client) for frames no real client would send."""
    return await websockets.connect(url, subprotocols=list(subprotocols), open_timeout=TIMEOUT)


def upgrade_request(path: str, host: str = "localhost", *extra: str) -> bytes:
    """A WebSocket upgrade request for ``path`` offering ocpp1.6, with ``extra`` header lines."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: ocpp1.6",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def http_status(port: int, request: bytes) -> int:
    """Send raw ``request`` bytes to the gateway and return the status code of its answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        status = await asyncio.wait_for(reader.readline(), TIMEOUT)
        return int(status.split()[1])
    finally:
        writer.close()


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


# --- a fresh checkout ----------------------------------------------------------------------------


def fresh_copy(destination: Path) -> None:
    """The repository's files (tracked, and new ones not ignored) as they are now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # not a file deleted in the work tree
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def clean_environment() -> dict[str, str]:
    """This process's environment (pip's settings included) without anything that would
    configure the gateway or point at this test run's virtualenv."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ANYCABLE_", "OCPPCABLE_"))
        and name not in ("PORT", "REDIS_URL", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    # pip compiles no bytecode (a third of an install's time): Python compiles what it imports
    env["PIP_COMPILE"] = "0"
    if sys.prefix != sys.base_prefix:  # run from a virtualenv: "python3" must not be its own
        ours = str(Path(sys.prefix) / "bin")
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != ours)
    return env


# --- TLS ------------------------------------------------------------------------------------------


def _certificate(subject: str, issuer_key, issuer_name, key, ca: bool = False):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if subject == "localhost":
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


class PKI:
    """A CA, a server certificate for localhost and station certificates, as PEM files."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
        ca = _certificate("Test CA", self.ca_key, self.ca_name, self.ca_key, ca=True)
        self.ca = self._write("ca", ca, None)
        self.server_cert, self.server_key = self.issue("localhost")

    def _write(self, name, cert, key) -> Path:
        path = self.dir / f"{name}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            key_path = self.dir / f"{name}.key"
            key_path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        return path

    def issue(self, subject: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(subject, self.ca_key, self.ca_name, key)
        return self._write(subject, cert, key), self.dir / f"{subject}.key"

    def client_context(self, station: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if station is not None:
            cert, key = self.issue(station)
            context.load_cert_chain(str(cert), str(key))
        return context


# --- processes ------------------------------------------------------------------------------------


class Process:
    """A README command run by bash in its own process group, its output collected line by
    line (stdout and stderr together)."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.command = command
        self.popen = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line)
            self._new.put(line)
        self._new.put(None)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float) -> re.Match[str]:
        """Wait until a line matches ``pattern``; fails (with the output) on exit or timeout."""
        pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        for line in self.lines:
            if found := pattern.search(line):
                return found
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"exited ({self.popen.wait()}) before {pattern.pattern!r}:\n{self}")
            if found := pattern.search(line):
                return found
        pytest.fail(f"no {pattern.pattern!r} within {timeout:.0f} s:\n{self}")

    def finish(self, timeout: float) -> int:
        code = self.popen.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        """Kill whatever is left of the process group (cleanup after a failure)."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(10)

    def __str__(self) -> str:
        return f"$ {self.command}\n" + "".join(self.lines[-60:])


# --- the sans-I/O session, driven with plain calls ---------------------------------------------


NOW = "2026-01-01T00:00:00.000Z"
URL = "http://gateway.test/ocpp/CP-1?token=t"
HEADERS = {"authorization": "Basic Q1AtMTpwdw==", "REMOTE_ADDR": "10.0.0.1"}
IDENTIFIERS = '{"station":"CP-1"}'
BOOT = {"chargePointVendor": "V", "chargePointModel": "M", "meterSerialNumber": "SN-1"}
IDENTIFIER = '{"channel":"OCPPChannel","id":"CP-1","sn":"SN-1"}'


def make(**overrides: Any) -> Session:
    return Session(
        station_id="CP-1",
        catalog=v16.CATALOG,
        settings=SessionSettings(**overrides),
        url=URL,
        headers=HEADERS,
        utc_now=lambda: NOW,
    )


def call(unique_id: str, action: str, payload: dict[str, Any] | None = None) -> str:
    return json.dumps([2, unique_id, action, {} if payload is None else payload])


def sent(effects: list[Effect]) -> list[Any]:
    return [json.loads(e.text) for e in effects if isinstance(e, Send)]


def rpcs(effects: list[Effect]) -> list[RPC]:
    return [e for e in effects if isinstance(e, RPC)]


def only_rpc(effects: list[Effect], method: str | None = None) -> RPC:
    found = rpcs(effects)
    assert len(found) == 1, effects
    if method is not None:
        assert found[0].method == method
    return found[0]


def _reply_env(kwargs: dict[str, Any]) -> dict[str, Any]:
    if isinstance(kwargs.get("env"), dict):
        kwargs["env"] = ReplyEnv(**kwargs["env"])
    return kwargs


def connect_ok(**kwargs: Any) -> ConnectReply:
    return ConnectReply(status=Status.SUCCESS, identifiers=IDENTIFIERS, **_reply_env(kwargs))


def ok(**kwargs: Any) -> CommandReply:
    return CommandReply(status=Status.SUCCESS, **_reply_env(kwargs))


def transmission(message: dict[str, Any], identifier: str = IDENTIFIER) -> str:
    return json.dumps({"identifier": identifier, "message": message})


def message_data(rpc: RPC) -> dict[str, Any]:
    assert rpc.method == "command" and rpc.request.command == "message"
    return json.loads(rpc.request.data)


def start(
    session: Session, unique_id: str = "1", action: str = "BootNotification", payload: Any = BOOT
) -> RPC:
    """Send the first CALL and let Connect and subscribe succeed: the ``message`` RPC."""
    connect = only_rpc(session.frame_received(call(unique_id, action, payload)), "connect")
    subscribe = only_rpc(session.rpc_succeeded(connect.token, connect_ok()), "command")
    return only_rpc(session.rpc_succeeded(subscribe.token, ok()), "command")


def established(**overrides: Any) -> Session:
    """A session whose BootNotification went through and was answered by default."""
    session = make(**overrides)
    session.opened()
    message = start(session)
    assert sent(session.rpc_succeeded(message.token, ok()))[0][0] == 3
    return session


def broadcast_command(session: Session, command: str = "Reset", **fields: Any) -> list[Effect]:
    return session.broadcast({"command": command, "payload": {"type": "Soft"}, **fields})


def report(rpc: RPC) -> dict[str, Any]:
    """The data of an ``ack``/``error`` report RPC."""
    assert rpc.method == "command" and rpc.request.command == "message"
    assert rpc.request.identifier == IDENTIFIER
    return json.loads(rpc.request.data)

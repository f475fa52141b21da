"""The keep-alive HTTP/1.1 pool (ocppcable.rpc.http1) against servers we did not write
(twisted.web) and against hostile ones: stalls, resets, garbage, huge lengths."""

from __future__ import annotations

import time

import pytest
import pytest_twisted
from twisted.internet.defer import CancelledError, gatherResults, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.policies import WrappingFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from ocppcable.cable import ConnectRequest
from ocppcable.protos.rpc_pb2 import SUCCESS
from ocppcable.rpc.http1 import (
    MAX_HEAD,
    BadResponse,
    ConnectionLost,
    HTTP1Pool,
    RequestNotSent,
    _Connection,
    _Request,
)
from ocppcable.rpc.http_client import HTTPRPCClient
from ocppcable.rpc.interface import RPCUnavailable
from tests.support import PKI, TIMEOUT, free_port, wait_for


def _request(path: str = "/echo", body: bytes = b"{}") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )


class Echo(Resource):
    """twisted.web answers: the body back with a Content-Length (``/echo``), in chunks without
    one (``/chunked``), or with ``Connection: close`` (``/close``)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bytes] = []

    def render_POST(self, request):  # type: ignore[no-untyped-def]
        body = request.content.read()
        self.seen.append(body)
        path = request.path
        if path == b"/chunked":
            for part in (b"one,", b"two,", b"three"):
                request.write(part)  # no Content-Length on HTTP/1.1: chunked
            request.finish()
            return NOT_DONE_YET
        if path == b"/close":
            request.setHeader(b"connection", b"close")
        if path == b"/missing":
            request.setResponseCode(404)
            return b"not here"
        return body


class Raw(Protocol):
    """A server that answers every read with the factory's canned bytes (or nothing)."""

    def connectionMade(self) -> None:
        self.factory.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.factory.received.append(data)
        answer = self.factory.answer
        if callable(answer):
            answer(self)
        elif answer is not None:
            self.transport.write(answer)


async def _raw_server(reactor, answer):
    factory = Factory.forProtocol(Raw)
    factory.answer = answer
    factory.received = []
    factory.connections = []
    port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
    return port, factory


@pytest.fixture
def listen(reactor):
    ports = []

    async def start(factory, port=0):
        listener = await serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1").listen(
            factory
        )
        ports.append(listener)
        return listener

    yield start
    for port in ports:
        pytest_twisted.blockon(maybeDeferred(port.stopListening))


@pytest.fixture
def pool_for(reactor):
    pools = []

    def make(port, **kwargs):
        number = port if isinstance(port, int) else port.getHost().port
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", number)
        pool = HTTP1Pool(reactor, endpoint, **{"connections": 2, **kwargs})
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pytest_twisted.blockon(pool.close())


def _timed(d, reactor):
    return d.addTimeout(TIMEOUT, reactor)


# --- twisted.web ----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_content_length_chunked_and_connection_close(reactor, listen, pool_for):
    echo = Echo()
    pool = pool_for(await listen(Site(echo)), connections=1)
    assert await _timed(pool.request(_request(body=b'{"a":1}')), reactor) == (200, b'{"a":1}')
    assert await _timed(pool.request(_request("/chunked")), reactor) == (200, b"one,two,three")
    assert await _timed(pool.request(_request("/missing")), reactor) == (404, b"not here")
    assert pool.open_connections == 1  # all three over one kept-alive connection
    assert await _timed(pool.request(_request("/close", b"x")), reactor) == (200, b"x")
    assert pool.open_connections == 0  # the server said close: the pool let it go
    assert await _timed(pool.request(_request(body=b"y")), reactor) == (200, b"y")
    assert echo.seen == [b'{"a":1}', b"{}", b"{}", b"x", b"y"]


@pytest_twisted.ensureDeferred
async def test_pipelined_requests_are_answered_in_order_across_a_server_restart(
    reactor, listen, pool_for
):
    echo = Echo()
    site = WrappingFactory(Site(echo))  # knows its connections
    port = await listen(site)
    number = port.getHost().port
    pool = pool_for(port, connections=1, pipeline=8)

    async def batch(first):
        bodies = [str(n).encode() for n in range(first, first + 8)]
        answers = await _timed(
            gatherResults([pool.request(_request(body=body)) for body in bodies]), reactor
        )
        assert [body for _, body in answers] == bodies
        return bodies

    sent = await batch(0)
    assert len(site.protocols) == 1  # eight requests, one connection

    # the server restarts: its connections close, it listens on the same port again
    await port.stopListening()
    for connection in list(site.protocols):
        connection.transport.loseConnection()
    await wait_for(lambda: pool.open_connections == 0, reactor)
    await listen(site, number)

    sent += await batch(8)
    assert echo.seen == sent and len(site.protocols) == 1


@pytest_twisted.ensureDeferred
async def test_requests_beyond_the_pipeline_wait_for_a_slot(reactor, listen, pool_for):
    echo = Echo()
    pool = pool_for(await listen(Site(echo)), connections=1, pipeline=1)
    bodies = [str(n).encode() for n in range(5)]
    answers = await _timed(
        gatherResults([pool.request(_request(body=body)) for body in bodies]), reactor
    )
    assert [body for _, body in answers] == bodies and echo.seen == bodies


# --- hostile servers ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_huge_content_length_is_refused_not_buffered(reactor, pool_for):
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2147483648\r\n\r\n"
    port, server = await _raw_server(reactor, head + b"x" * 65536)
    try:
        pool = pool_for(port)
        with pytest.raises(BadResponse, match="2147483648 bytes refused"):
            await _timed(pool.request(_request()), reactor)
        assert pool.open_connections == 0
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_chunked_body_over_the_bound_is_refused(reactor, pool_for):
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n%s\r\n" % (4096, b"x" * 4096)
    port, _ = await _raw_server(reactor, head + chunk * 4)
    try:
        pool = pool_for(port, max_response=10000)
        with pytest.raises(BadResponse, match="over 10000 bytes"):
            await _timed(pool.request(_request()), reactor)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_endless_headers_are_refused(reactor, pool_for):
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"y" * (MAX_HEAD + 10)
    port, _ = await _raw_server(reactor, head)
    try:
        with pytest.raises(BadResponse, match="headers over"):
            await _timed(pool_for(port).request(_request()), reactor)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_garbage_is_refused(reactor, pool_for):
    port, _ = await _raw_server(reactor, b"SSH-2.0-OpenSSH\r\n\r\n")
    try:
        with pytest.raises(BadResponse):
            await _timed(pool_for(port).request(_request()), reactor)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_informational_responses_are_skipped(reactor, pool_for):
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"
    )
    port, _ = await _raw_server(reactor, answer)
    try:
        assert await _timed(pool_for(port).request(_request()), reactor) == (500, b"oops")
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_body_delimited_by_the_close(reactor, pool_for):
    def answer(protocol):
        protocol.transport.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
        protocol.transport.loseConnection()

    port, _ = await _raw_server(reactor, answer)
    try:
        assert await _timed(pool_for(port).request(_request()), reactor) == (200, b"until the end")
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_body_not_chunked_is_delimited_by_the_close(reactor, pool_for):
    def answer(protocol):
        protocol.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nto the end")
        protocol.transport.loseConnection()

    port, _ = await _raw_server(reactor, answer)
    try:
        assert await _timed(pool_for(port).request(_request()), reactor) == (200, b"to the end")
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_reset_mid_response_fails_what_was_written(reactor, pool_for):
    def answer(protocol):
        protocol.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        protocol.transport.abortConnection()

    port, _ = await _raw_server(reactor, answer)
    try:
        with pytest.raises(ConnectionLost):
            await _timed(pool_for(port).request(_request()), reactor)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_refused_connection_is_not_sent(reactor, pool_for):
    with pytest.raises(RequestNotSent, match="refused"):
        await _timed(pool_for(free_port()).request(_request()), reactor)


@pytest_twisted.ensureDeferred
async def test_after_a_close_announcement_pipelined_requests_are_not_sent(reactor, pool_for):
    def answer(protocol):
        if len(protocol.factory.received) == 1:  # both requests may arrive in one read
            protocol.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            )

    port, _ = await _raw_server(reactor, answer)
    try:
        pool = pool_for(port, connections=1, pipeline=2)
        first, second = pool.request(_request()), pool.request(_request())
        assert await _timed(first, reactor) == (200, b"ok")
        with pytest.raises(RequestNotSent, match="closed the connection"):
            await _timed(second, reactor)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_stalled_response_cancelled_closes_its_connection(reactor, pool_for):
    port, server = await _raw_server(reactor, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{")
    try:
        pool = pool_for(port)
        d = pool.request(_request())
        await wait_for(lambda: server.received, reactor)
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        await wait_for(lambda: not server.connections[0].transport.connected, reactor)
        assert pool.open_connections == 0
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_an_unanswered_server_does_not_block_other_connections(reactor, pool_for):
    port, server = await _raw_server(reactor, None)  # reads, never answers
    try:
        pool = pool_for(port, connections=2)
        stalled = pool.request(_request())
        await wait_for(lambda: server.received, reactor)
        server.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        assert await _timed(pool.request(_request()), reactor) == (200, b"ok")
        stalled.cancel()
        with pytest.raises(CancelledError):
            await stalled
    finally:
        await port.stopListening()


# --- TLS, through the RPC client ------------------------------------------------------------------


async def _tls_backend(reactor, pki, answer):
    factory = Factory.forProtocol(Raw)
    factory.answer = answer
    factory.received = []
    factory.connections = []
    endpoint = serverFromString(
        reactor, f"ssl:0:privateKey={pki.server_key}:certKey={pki.server_cert}:interface=127.0.0.1"
    )
    return await endpoint.listen(factory), factory


@pytest.mark.parametrize("trusted", [True, False])
@pytest_twisted.ensureDeferred
async def test_tls_with_a_trusted_and_an_untrusted_certificate(
    reactor, tmp_path, monkeypatch, trusted
):
    pki = PKI(tmp_path)
    if trusted:  # the platform's trust store, as OpenSSL finds it, holds our test CA
        monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    body = b'{"status":1,"identifiers":"{}"}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    port, server = await _tls_backend(reactor, pki, answer)
    client = HTTPRPCClient(
        reactor, f"https://localhost:{port.getHost().port}/_anycable", None, 4, timeout=5
    )
    client.startService()
    try:
        started = time.monotonic()
        if trusted:
            response = await _timed(client.connect("sid-1", ConnectRequest()), reactor)
            assert response.status == SUCCESS
            assert server.received[0].startswith(b"POST /_anycable/connect HTTP/1.1\r\n")
        else:
            with pytest.raises(RPCUnavailable, match="certificate verify failed"):
                await _timed(client.connect("sid-1", ConnectRequest()), reactor)
            assert time.monotonic() - started < 2  # not retried until the budget ends
            assert not server.received
    finally:
        await client.stopService()
        await port.stopListening()


def test_a_request_leaves_at_once_not_at_the_next_reactor_turn():
    """During a boot storm one reactor turn handles hundreds of handshakes: a request left in
    the transport's buffer until the next poll waited for all of them (2× longer storms)."""

    class Socket(StringTransport):
        sent = 0

        def doWrite(self):  # what the reactor calls when the socket is writable
            self.sent += 1

    pool = HTTP1Pool(Clock(), TCP4ClientEndpoint(Clock(), "127.0.0.1", 1), connections=1)
    connection = _Connection(pool)
    socket = Socket()
    connection.makeConnection(socket)
    connection.send(_Request(pool, _request()))
    assert socket.value() == _request() and socket.sent == 1
    pool.close()

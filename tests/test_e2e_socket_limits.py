"""Attacks on the socket itself (issue 12, items 1, 6 and 7), each over real loopback sockets:
ping floods, peers that never read, slow handshakes, oversized request bodies."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import socket
import struct
import time

import pytest_twisted
from twisted.internet.task import deferLater

from tests.support import (
    TIMEOUT,
    aio,
    free_port,
    raw_socket,
    twistd,
    upgrade_request,
    wait_for,
    wait_output,
)

PING = 0x9
PONG = 0xA
CLOSE = 0x8


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (zero mask: the payload goes as is) of at most 125 bytes."""
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


async def open_upgraded(port: int, path: str, rcvbuf: int | None = None):
    """A raw WebSocket connection after a 101 (optionally with a small receive buffer)."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
    writer.write(upgrade_request(path))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def server_frames(reader) -> list[tuple[int, bytes]]:
    """Every frame the server sends until it closes the connection."""
    frames = []
    while True:
        try:
            head = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
        except (asyncio.IncompleteReadError, ConnectionError):
            return frames
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", await reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await reader.readexactly(8))[0]
        frames.append((head[0] & 0x0F, await reader.readexactly(length)))


async def _gateway(start_gateway, backend, *args):
    return await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}", "--broadcast-adapter=http", *args
    )


# --- item 1: ping floods and peers that never read ------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_ping_flood_is_answered_within_the_ping_rate_then_closed(start_gateway, backend):
    from ocppcable.websocket import MAX_UNANSWERED_PINGS, PING_BURST

    gateway = await _gateway(start_gateway, backend)

    async def attack():
        reader, writer = await open_upgraded(gateway.port, "/ocpp/CP-PING")
        for i in range(MAX_UNANSWERED_PINGS + 50):
            writer.write(client_frame(PING, b"%05d" % i + b"x" * 120))
        await writer.drain()
        frames = await server_frames(reader)
        writer.close()
        return frames

    frames = await aio(attack())
    pongs = [payload for opcode, payload in frames if opcode == PONG]
    assert 1 <= len(pongs) <= PING_BURST + 2  # a refill while the flood arrives
    closes = [payload for opcode, payload in frames if opcode == CLOSE]
    assert closes and struct.unpack("!H", closes[0][:2])[0] == 1008
    assert not backend.calls


@pytest_twisted.ensureDeferred
async def test_a_peer_that_never_reads_is_dropped_at_its_write_budget(
    start_gateway, backend, warnings, monkeypatch
):
    """Every byte we write counts, pongs included: with the ping rate out of the way, a
    connection without a session that does not read is dropped once its (small) budget is
    spent, instead of having pongs queued for it without bound."""
    from ocppcable import websocket

    monkeypatch.setattr(websocket, "PING_RATE", 1e9)
    monkeypatch.setattr(websocket, "PING_BURST", 1e9)
    gateway = await _gateway(start_gateway, backend)
    ping = client_frame(PING, b"p" * 125)

    async def attack() -> int:
        _, writer = await open_upgraded(gateway.port, "/ocpp/CP-DEAF", rcvbuf=4096)
        sent = 0
        try:
            while sent < 64 * 1024 * 1024:
                writer.write(ping * 256)
                await asyncio.wait_for(writer.drain(), TIMEOUT)
                sent += len(ping) * 256
        except ConnectionError:
            return sent
        finally:
            writer.close()
        raise AssertionError("the gateway kept a peer that never reads")

    sent = await aio(attack())
    assert any("does not read its socket" in w for w in warnings), warnings
    assert sent < 64 * 1024 * 1024


# --- item 6: slow handshakes and too many sockets ---------------------------------------------


async def _eof_within(reader, seconds: float) -> bool:
    """True when the server closes the connection within ``seconds``."""
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


@pytest_twisted.ensureDeferred
async def test_a_trickled_upgrade_is_closed_at_the_handshake_deadline(start_gateway, backend):
    gateway = await _gateway(start_gateway, backend, "--handshake-timeout=0.5")

    async def attack() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        started = time.monotonic()
        for byte in upgrade_request("/ocpp/CP-SLOW"):
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            if reader.at_eof():
                break
            await asyncio.sleep(0.05)  # the attack's pace: one byte every 50 ms
        assert await _eof_within(reader, TIMEOUT)
        writer.close()
        return time.monotonic() - started

    assert await aio(attack()) < 3.0  # the deadline, not the 60 s idle timeout
    assert not backend.calls


@pytest_twisted.ensureDeferred
async def test_sockets_without_a_request_head_are_capped(start_gateway, backend, reactor):
    gateway = await _gateway(
        start_gateway, backend, "--max-pending-connections=3", "--handshake-timeout=30"
    )
    site = gateway.service.listeners[0].factory

    async def hold():
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(b"GET /ocpp/CP-HOLD HTTP/1.1\r\n")
        return writer

    held = [await aio(hold()) for _ in range(3)]
    await wait_for(lambda: site.pending == 3, reactor)

    async def fourth() -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        try:
            return await _eof_within(reader, TIMEOUT)
        finally:
            writer.close()

    assert await aio(fourth())  # closed on accept, before it sent anything
    held.pop().close()  # one slot frees: a real station gets in
    await wait_for(lambda: site.pending == 2, reactor)
    ws = await aio(raw_socket(gateway.url("CP-REAL")))
    await aio(ws.close())
    for writer in held:
        writer.close()


@pytest_twisted.ensureDeferred
async def test_open_connections_are_capped_and_counted_back(start_gateway, backend, reactor):
    gateway = await _gateway(start_gateway, backend, "--max-connections=3")
    site = gateway.service.listeners[0].factory
    stations = [await aio(raw_socket(gateway.url(f"CP-{i}"))) for i in range(3)]

    async def fourth() -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        try:
            return await _eof_within(reader, TIMEOUT)
        finally:
            writer.close()

    assert await aio(fourth())  # closed on accept
    await aio(stations.pop().close())
    await wait_for(lambda: site.open_connections == 2, reactor)
    stations.append(await aio(raw_socket(gateway.url("CP-AGAIN"))))
    for ws in stations:
        await aio(ws.close())


def test_the_connection_budget_keeps_descriptors_free():
    from ocppcable.http_limits import FD_RESERVE, connection_budget

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_budget() == max(1, soft - FD_RESERVE)


# --- item 7: request bodies -------------------------------------------------------------------

KEY = "s3cret"


def _post_head(path: str, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _answer(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send a request head (and ``body``), then read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


@pytest_twisted.ensureDeferred
async def test_bodies_are_refused_from_the_request_head(start_gateway, backend):
    gateway = await _gateway(start_gateway, backend, f"--broadcast-key={KEY}")
    huge = "Content-Length: 268435456"  # 256 MiB announced, never sent

    async def scenario():
        wrong = await _answer(
            gateway.port, _post_head("/_broadcast", "Authorization: Bearer nope", huge)
        )
        assert wrong.startswith(b"HTTP/1.1 401 ")
        # nor does a wrong key get a 100 Continue first
        wrong = await _answer(
            gateway.port,
            _post_head("/_broadcast", "Authorization: Bearer no", huge, "Expect: 100-continue"),
        )
        assert wrong.startswith(b"HTTP/1.1 401 ") and b"100 Continue" not in wrong
        right = await _answer(
            gateway.port, _post_head("/_broadcast", f"Authorization: Bearer {KEY}", huge)
        )
        assert right.startswith(b"HTTP/1.1 413 ")
        health = await _answer(gateway.port, _post_head("/health", huge))
        assert health.startswith(b"HTTP/1.1 413 ")

    await aio(scenario())


@pytest_twisted.ensureDeferred
async def test_a_chunked_body_is_refused_once_it_exceeds_the_limit(start_gateway, backend):
    gateway = await _gateway(
        start_gateway, backend, f"--broadcast-key={KEY}", "--http-broadcast-max-body=1024"
    )
    head = _post_head("/_broadcast", f"Authorization: Bearer {KEY}", "Transfer-Encoding: chunked")
    chunk = b"%x\r\n%s\r\n" % (512, b" " * 512)

    async def scenario():
        fits = await _answer(gateway.port, head, chunk + b"2\r\n{}\r\n0\r\n\r\n")
        assert fits.startswith(b"HTTP/1.1 422 ")  # read and parsed: not a publication
        # 3 × 512 bytes, no last chunk: answered as soon as the limit is passed
        over = await _answer(gateway.port, head, chunk * 3)
        assert over.startswith(b"HTTP/1.1 413 ")

    await aio(scenario())


def _low_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


@pytest_twisted.ensureDeferred
async def test_slowloris_under_a_low_fd_limit_keeps_stations_out_for_the_deadline_only(reactor):
    """Issue 12 item 6 as reported, scaled down: more trickling sockets than the process has
    file descriptors. The ones beyond its budget (256 less the 100 kept free) are closed on
    accept, no accept fails for want of descriptors, and a station gets in once the handshake
    deadline has closed the rest."""
    port = free_port()
    process = twistd(
        f"--port={port}",
        "--host=127.0.0.1",
        "--rpc-host=demo",
        "--http-broadcast-port=0",
        "--handshake-timeout=2",
        preexec_fn=_low_fd_limit,
    )
    try:
        await wait_output(process, reactor)

        async def attack() -> int:
            held = []
            for _ in range(300):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /ocpp/CP-LORIS HTTP/1.1\r\nHo")
                held.append((reader, writer))
            closed = await asyncio.gather(*(_eof_within(r, TIMEOUT) for r, _ in held))
            for _, writer in held:
                writer.close()
            return sum(closed)

        assert await aio(attack()) == 300  # on accept, or at the deadline
        ws = await aio(raw_socket(f"ws://127.0.0.1:{port}/ocpp/CP-REAL"))
        boot = [2, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
        await aio(ws.send(json.dumps(boot)))
        assert json.loads(await aio(ws.recv()))[:2] == [3, "1"]
        await aio(ws.close())
        process.send_signal(signal.SIGTERM)
        output = (await deferLater(reactor, 0, process.communicate, None, TIMEOUT))[0]
        assert process.returncode == 0
        assert "refusing new connections: too many open connections" in output
        assert "Too many open files" not in output and "EMFILE" not in output
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()

"""Attacks on the socket itself (issue 12, items 1, 6 and 7), each over real loopback sockets:
ping floods, peers that never read, slow handshakes, oversized request bodies."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest_twisted

from tests.support import TIMEOUT, aio, upgrade_request

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

"""A private redis-server for the tests that need real Redis."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
from typing import Any

from tests.support.common import LocalServer, free_port


class RedisServer(LocalServer):
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

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._run(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self.dir,
                *(["--requirepass", self.password] if self.password else []),
            ],
            lambda: self.command("PING") == "PONG",
        )  # fmt: skip

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

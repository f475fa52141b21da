"""A private nats-server for the tests that need real NATS."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

from tests.support.common import LocalServer, free_port


class NatsServer(LocalServer):
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

    @property
    def url(self) -> str:
        auth = f"{self.user}:{self.password}@" if self.user else ""
        return f"nats://{auth}127.0.0.1:{self.port}"

    def start(self) -> None:
        args = ["--user", self.user, "--pass", self.password] if self.user else []
        if self.tls is not None:
            args += ["--tls", "--tlscert", str(self.tls[0]), "--tlskey", str(self.tls[1])]
        self._run([self.binary, "-a", "127.0.0.1", "-p", str(self.port), *args], self._greets)

    def _greets(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            return s.recv(4096).startswith(b"INFO ")  # sent in the clear, TLS or not

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

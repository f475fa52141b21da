# -*- test-case-name: tests.test_nats_client -*-
"""The NATS options: ``--nats-servers`` (where, with which credentials) and ``--nats-channel``.

Imported by the plugin's dropin at every start to check the options: keep it light."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from ocppcable import __version__
from ocppcable.nats.wire import valid_subject


@dataclass(frozen=True)
class NatsURL:
    """One of ``--nats-servers``: ``nats://[user:password@|token@]host[:port]``, or ``tls://``
    for a server that must be reached over TLS (``nats://`` uses TLS when the server requires
    it)."""

    host: str
    port: int
    user: str | None = None
    password: str | None = None
    token: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> NatsURL:
        """Raises ValueError naming what is wrong with ``url``."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("nats", "tls"):
            raise ValueError(f"not a nats:// or tls:// URL: {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        port = parts.port or 4222  # ValueError for a port that is not a number
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        tls = parts.scheme == "tls"
        if password is None:  # nats://token@host
            return cls(parts.hostname, port, token=user, tls=tls)
        return cls(parts.hostname, port, user=user, password=password, tls=tls)

    @property
    def where(self) -> str:
        """The URL fit for a log line: no credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'tls' if self.tls else 'nats'}://{host}:{self.port}"

    def connect_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "verbose": False,
            "pedantic": False,
            "name": "ocppcable",
            "lang": "python-twisted",
            "version": __version__,
            "protocol": 1,
            "echo": True,  # a node receives what it publishes, as Redis pub/sub does
            "headers": False,
        }
        if self.token is not None:
            options["auth_token"] = self.token
        if self.user is not None:
            options["user"], options["pass"] = self.user, self.password
        return options


def parse_servers(value: str | Sequence[str]) -> list[NatsURL]:
    """``--nats-servers``: comma-separated ``nats://`` URLs; ValueError for a bad one."""
    urls = value.split(",") if isinstance(value, str) else list(value)
    servers = [NatsURL.parse(url) for url in urls if url.strip()]
    if not servers:
        raise ValueError("no NATS server given")
    return servers


def servers_option(value: str) -> str:
    """``--nats-servers``: comma-separated ``nats://`` or ``tls://`` URLs; ValueError naming a
    bad one."""
    parse_servers(value)
    return value


servers_option.coerceDoc = "Comma-separated nats:// or tls:// URLs."  # type: ignore[attr-defined]


def subject_option(value: str) -> str:
    """``--nats-channel``: a NATS subject to publish on (no wildcards, no whitespace)."""
    if not valid_subject(value):
        raise ValueError(f"not a NATS subject: {value!r}")
    return value


subject_option.coerceDoc = "A NATS subject."  # type: ignore[attr-defined]

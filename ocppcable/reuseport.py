# -*- test-case-name: tests.test_reuseport -*-
"""A listening port shared by several gateway processes (``SO_REUSEPORT``) as an endpoint type.

``reuseport:8080:interface=0.0.0.0:backlog=1024`` listens like Twisted's ``tcp:`` endpoint (the
same options), with ``SO_REUSEPORT`` set before it binds: every process of the same user that
listens so on the same address shares the port, and the kernel spreads new connections between
them. ``privateKey=key.pem`` (and ``certKey=cert.pem``) makes it a TLS listener like ``ssl:``;
``caCerts=ca.pem`` in addition requires client certificates like ``mtls:``. The dropin
``twisted/plugins/ocppcable_endpoints.py`` registers the prefix.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from ocppcable.tls import certificate_options

PREFIX = "reuseport"


def shares_port(description: str) -> bool:
    """Whether a server endpoint string is a ``reuseport:`` one."""
    return description.split(":", 1)[0].strip().lower() == PREFIX


@implementer(IStreamServerEndpoint)
class ReusePortEndpoint:
    """Binds at once (like ``tcp:``, so that a failure fails the start) and hands the listening
    socket to the reactor."""

    def __init__(
        self,
        reactor: Any,
        port: int,
        backlog: int = 50,
        interface: str = "",
        tls: Any = None,
    ) -> None:
        self.reactor = reactor
        self.port = port
        self.backlog = backlog
        self.interface = interface
        #: CertificateOptions for a TLS listener, None for plain TCP
        self.tls = tls

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        try:
            return succeed(self._listen(factory))
        except CannotListenError:
            return fail()

    def _listen(self, factory: IProtocolFactory) -> IListeningPort:
        family = socket.AF_INET6 if isIPv6Address(self.interface) else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as listening:
            try:
                listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                listening.bind((self.interface, self.port))
                listening.listen(self.backlog)
            except OSError as e:
                raise CannotListenError(self.interface, self.port, e) from None
            listening.setblocking(False)
            if self.tls is not None:
                factory = TLSMemoryBIOFactory(self.tls, False, factory)
            # the reactor listens on a duplicate of the descriptor: ours is closed on leaving
            port: IListeningPort = self.reactor.adoptStreamPort(listening.fileno(), family, factory)
            return port


def reuseport_endpoint(
    reactor: Any,
    port: str,
    interface: str = "",
    backlog: str = "50",
    privateKey: str | None = None,
    certKey: str | None = None,
    caCerts: str | None = None,
) -> ReusePortEndpoint:
    """The endpoint of a ``reuseport:`` string (TLS files are read here, at parse time)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuseport: endpoints need SO_REUSEPORT, which this system lacks")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"reuseport: the port must be 0-65535, got {port!r}")
    if not backlog.isdigit() or int(backlog) <= 0:
        raise ValueError(f"reuseport: backlog must be an integer > 0, got {backlog!r}")
    if privateKey is None and (certKey is not None or caCerts is not None):
        raise ValueError("reuseport: certKey and caCerts need privateKey=<PEM key file>")
    tls = None if privateKey is None else certificate_options(privateKey, certKey, caCerts)
    return ReusePortEndpoint(reactor, int(port), int(backlog), interface, tls)

# -*- test-case-name: tests.test_twistd -*-
"""One listening endpoint as a service: it binds before twistd drops privileges, and a bind
that fails gives one line naming the option and a non-zero exit."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from ocppcable.reuseport import shares_port

log = Logger()


class ListenFailed(SystemExit, Exception):
    """A listener could not bind; the detailed reason is logged before this is raised.

    An Exception, so that a daemonizing twistd hands it to its waiting parent (which prints the
    first 100 bytes: keep the message short); a SystemExit with code 1, so that a foreground
    twistd exits non-zero without printing a traceback after the logged line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 1


class Listener(Service):
    """Listens on one endpoint string; binds in privilegedStartService (before twistd --uid)."""

    def __init__(
        self, reactor: Any, description: str, factory: IProtocolFactory, option: str = "--listen"
    ) -> None:
        self.reactor = reactor
        self.description = description
        self.factory = factory
        #: the option that configured this endpoint, named when it cannot listen
        self.option = option
        #: a reuseport: endpoint, shared with other processes
        self.shared = shares_port(description)
        self.port: IListeningPort | None = None
        self._binding: Deferred[None] | None = None
        self._waiting: list[Deferred[IListeningPort]] = []

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        listening = serverFromString(self.reactor, self.description).listen(self.factory)
        outcome: list[Any] = []
        listening.addBoth(lambda result: outcome.append(result) or result)
        if outcome and isinstance(outcome[0], Failure):
            # TCP and TLS bind at once: fail the start itself, so twistd exits non-zero
            listening.addErrback(lambda _: None)
            error = outcome[0].value
            self._log_failure(error)
            reason = error.socketError if isinstance(error, CannotListenError) else error
            raise ListenFailed(f"{self.option}: {getattr(reason, 'strerror', None) or reason}")
        self._binding = listening.addCallbacks(self._listening, self._failed)

    def startService(self) -> None:
        if self._binding is None:
            self.privilegedStartService()
        super().startService()

    def when_listening(self) -> Deferred[IListeningPort]:
        """Fires with the listening port (tests read the port number from it)."""
        if self.port is not None:
            return succeed(self.port)
        d: Deferred[IListeningPort] = Deferred()
        self._waiting.append(d)
        return d

    def _listening(self, port: IListeningPort) -> None:
        log.info("listening on {address}", address=port.getHost())
        self.port = port
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(port)

    def _log_failure(self, error: BaseException) -> None:
        log.critical(
            "{option}: cannot listen on {endpoint}: {error}",
            option=self.option,
            endpoint=self.description,
            error=error,
        )

    def _failed(self, failure: Failure) -> None:
        self._log_failure(failure.value)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(failure)
        self.reactor.stop()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        return self.stop_listening()

    def stop_listening(self) -> Deferred[None] | None:
        """Close the listening port (again: nothing)."""
        binding, self._binding = self._binding, None
        if binding is None:
            return None

        def stop(_: None) -> Any:
            port, self.port = self.port, None
            return port.stopListening() if port is not None else None

        return binding.addCallback(stop)

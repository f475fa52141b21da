"""A fleet of simulated stations on Twisted and Autobahn.

:class:`Simulator` runs the stations of a :class:`~ocppcable.simulator.config.Config`: it
connects them at the ramp rate, reports progress, stops them and summarises the run. Each
station is a :class:`~ocppcable.simulator.model.StationModel` whose effects a
:class:`StationDriver` carries out over its :class:`StationProtocol` connection; one process
drives thousands of stations.
"""

from __future__ import annotations

import random
import sys
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.types import ConnectingRequest
from twisted.internet import defer
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.interfaces import IDelayedCall, IStreamClientEndpoint
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ocppcable import __version__
from ocppcable.effects import CancelTimer, Close, Send, StartTimer
from ocppcable.simulator.config import Config
from ocppcable.simulator.dialects import DIALECTS
from ocppcable.simulator.effects import Effect, Finished, Reconnect
from ocppcable.simulator.model import StationModel
from ocppcable.simulator.stats import Stats, Summary

log = Logger()

USER_AGENT = f"ocppcable-station/{__version__}"
#: seconds for the TCP connect, and again for the opening handshake
CONNECT_TIMEOUT = 10.0
#: seconds the server has to answer a close frame before the connection is dropped
CLOSE_TIMEOUT = 2.0
#: seconds between progress lines
PROGRESS_INTERVAL = 5.0
#: seconds the stations get to close their connections at the end of a run
STOP_TIMEOUT = 5.0
#: shortest interval between two ramp steps, in seconds
RAMP_TICK = 0.05


class StationProtocol(WebSocketClientProtocol):
    """One WebSocket connection of a station; its driver does the rest."""

    def __init__(self, driver: StationDriver) -> None:
        super().__init__()
        self.driver = driver
        self.factory = driver.simulator.factory  # what Factory.buildProtocol would have set

    def onConnecting(self, transport_details: Any) -> ConnectingRequest:
        factory = self.factory
        return ConnectingRequest(
            host=factory.host,
            port=factory.port,
            resource=self.driver.resource,
            useragent=factory.useragent,
            protocols=factory.protocols,
        )

    def onOpen(self) -> None:
        self.driver.opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.driver.received(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.driver.closed(code, reason)


class StationDriver:
    """Carries out one station model's effects: connections, timers and reconnects."""

    __slots__ = (
        "model",
        "simulator",
        "resource",
        "protocol",
        "_open",
        "_refusal",
        "_timers",
        "_connecting",
        "_reconnect",
        "_closed",
    )

    def __init__(self, model: StationModel, simulator: Simulator, resource: str) -> None:
        self.model = model
        self.simulator = simulator
        self.resource = resource  # the request path: <base path>/<station id>[?query]
        self.protocol: StationProtocol | None = None
        self._open = False
        self._refusal: str | None = None
        self._timers: dict[str, IDelayedCall] = {}
        self._connecting: Deferred[Any] | None = None
        self._reconnect: IDelayedCall | None = None
        self._closed: Deferred[None] | None = None

    def connect(self) -> None:
        self._reconnect = None
        self.protocol = StationProtocol(self)
        self._connecting = connectProtocol(self.simulator.endpoint, self.protocol)
        self._connecting.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, protocol: StationProtocol) -> None:
        self._connecting = None

    def _connect_failed(self, failure: Failure) -> None:
        self._connecting = None
        self.protocol = None
        self._run(self.model.connection_failed("connect failed", failure.getErrorMessage()))

    def opened(self, protocol: StationProtocol) -> None:
        if protocol.websocket_protocol_in_use != self.model.dialect.subprotocol:
            self._refusal = f"the server chose subprotocol {protocol.websocket_protocol_in_use!r}"
            protocol.dropConnection(abort=True)
            return
        self._open = True
        self._run(self.model.connected())

    def received(self, payload: bytes, binary: bool) -> None:
        if binary:
            self._run(self.model.binary_received())
            return
        text = payload.decode("utf-8")
        if self.simulator.config.verbose:
            log.info("{station_id} ← {frame}", station_id=self.model.station_id, frame=text)
        self._run(self.model.received(text))

    def closed(self, code: int | None, reason: str | None) -> None:
        self.protocol = None
        if self._open:
            self._open = False
            self._run(self.model.disconnected(f"close code {code}, {reason or 'no reason'}"))
        else:
            refusal, self._refusal = self._refusal, None
            detail = refusal or reason or "the connection closed during the opening handshake"
            self._run(self.model.connection_failed("handshake failed", detail))
        closed, self._closed = self._closed, None
        if closed is not None and not closed.called:
            closed.callback(None)

    def stop(self) -> Deferred[None]:
        """Close the station's connection; fires once it is closed (cancel: abort it)."""
        effects = self.model.stop()
        if self._connecting is not None:
            self._connecting.cancel()
        if self._reconnect is not None and self._reconnect.active():
            self._reconnect.cancel()
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        self._run(effects)
        protocol = self.protocol
        if protocol is None:
            return succeed(None)
        if not self._open:
            protocol.transport.abortConnection()
        self._closed = Deferred(lambda d: protocol.transport.abortConnection())
        return self._closed

    def _run(self, effects: list[Effect]) -> None:
        reactor = self.simulator.reactor
        for effect in effects:
            match effect:
                case Send(text):
                    if self.simulator.config.verbose:
                        log.info(
                            "{station_id} → {frame}", station_id=self.model.station_id, frame=text
                        )
                    self.protocol.sendMessage(text.encode("utf-8"))
                case StartTimer(name, seconds):
                    self._cancel_timer(name)
                    self._timers[name] = reactor.callLater(seconds, self._timer_fired, name)
                case CancelTimer(name):
                    self._cancel_timer(name)
                case Close(code, reason):
                    self.protocol.sendClose(code, reason)
                case Reconnect(delay):
                    jittered = delay * random.uniform(0.5, 1.5)  # no reconnect stampede
                    self._reconnect = reactor.callLater(jittered, self.connect)
                case Finished():
                    self.simulator.station_finished()

    def _cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _timer_fired(self, name: str) -> None:
        del self._timers[name]
        self._run(self.model.timer_fired(name))


def client_endpoint(reactor: Any, factory: WebSocketClientFactory) -> IStreamClientEndpoint:
    """Where the stations connect; IP literals skip the per-connection name lookup."""
    host, port = factory.host, factory.port
    endpoint: IStreamClientEndpoint
    if isIPv6Address(host):
        endpoint = TCP6ClientEndpoint(reactor, host, port, timeout=CONNECT_TIMEOUT)
    elif isIPAddress(host):
        endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=CONNECT_TIMEOUT)
    else:
        endpoint = HostnameEndpoint(reactor, host, port, timeout=CONNECT_TIMEOUT)
    if factory.isSecure:
        endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
    return endpoint


class Simulator:
    """One run: connects the stations at the ramp rate, reports progress, stops, summarises."""

    def __init__(self, reactor: Any, config: Config, progress: TextIO | None = None) -> None:
        self.reactor = reactor
        self.config = config
        self.stats = Stats()
        dialect = DIALECTS[config.ocpp]
        self.factory = WebSocketClientFactory(
            config.url, protocols=[dialect.subprotocol], useragent=USER_AGENT, reactor=reactor
        )
        self.factory.setProtocolOptions(
            openHandshakeTimeout=CONNECT_TIMEOUT, closeHandshakeTimeout=CLOSE_TIMEOUT
        )
        self.endpoint = client_endpoint(reactor, self.factory)
        url = urlsplit(config.url)
        base, query = url.path.rstrip("/"), f"?{url.query}" if url.query else ""
        self.drivers = [
            StationDriver(
                StationModel(station_id, config, dialect, self.stats, reactor.seconds),
                self,
                f"{base}/{quote(station_id, safe='')}{query}",
            )
            for station_id in config.station_ids()
        ]
        self._progress = progress or sys.stderr
        self._ramp: LoopingCall | None = None
        self._reporter: LoopingCall | None = None
        self._deadline: IDelayedCall | None = None
        self._began = 0.0
        self._connects = 0  # stations connected for the first time so far
        self._finished = 0  # stations that ran all their sessions
        self._stopping = False
        self._summary: Summary | None = None
        self._waiters: list[Deferred[Summary]] = []

    def run(self) -> Deferred[Summary]:
        """Start the stations; fires with the summary once the run is over."""
        self._began = self.reactor.seconds()
        ramp = self.config.ramp
        self._ramp = LoopingCall(self._connect_due)
        self._start(self._ramp, max(RAMP_TICK, 1 / ramp) if ramp else RAMP_TICK, now=True)
        if not self.config.quiet:
            self._reporter = LoopingCall(self._report)
            self._start(self._reporter, PROGRESS_INTERVAL, now=False)
        if self.config.duration:
            self._deadline = self.reactor.callLater(self.config.duration, self.stop)
        return self._result()

    def stop(self) -> Deferred[Summary]:
        """End the run: close every station; fires with the summary."""
        if not self._stopping:
            self._stopping = True
            shutdown = Deferred.fromCoroutine(self._shutdown())
            shutdown.addErrback(lambda f: log.failure("stopping the simulation failed", f))
        return self._result()

    def station_finished(self) -> None:
        self._finished += 1
        if self._finished == len(self.drivers) and not self.config.duration:
            self.reactor.callLater(0, self.stop)

    def _start(self, loop: LoopingCall, interval: float, now: bool) -> None:
        loop.clock = self.reactor
        done = loop.start(interval, now=now)
        done.addErrback(lambda f: log.failure("{name} failed", f, name=loop.f.__name__))

    def _connect_due(self) -> None:
        total = due = len(self.drivers)
        if self.config.ramp:
            elapsed = self.reactor.seconds() - self._began
            due = min(total, int(elapsed * self.config.ramp) + 1)
        while self._connects < due:
            self.drivers[self._connects].connect()
            self._connects += 1
        if self._connects == total:
            self._ramp.stop()

    def _report(self) -> None:
        elapsed = self.reactor.seconds() - self._began
        self._progress.write(self.stats.progress(elapsed, len(self.drivers)) + "\n")
        self._progress.flush()

    async def _shutdown(self) -> None:
        for loop in (self._ramp, self._reporter):
            if loop is not None and loop.running:
                loop.stop()
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        closing = DeferredList([driver.stop() for driver in self.drivers], consumeErrors=True)
        try:
            await closing.addTimeout(STOP_TIMEOUT, self.reactor)
        except defer.TimeoutError:
            log.warn("stations still open after {seconds} s were aborted", seconds=STOP_TIMEOUT)
        elapsed = self.reactor.seconds() - self._began
        self._summary = self.stats.summary(len(self.drivers), elapsed)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(self._summary)

    def _result(self) -> Deferred[Summary]:
        if self._summary is not None:
            return succeed(self._summary)
        waiter: Deferred[Summary] = Deferred()
        self._waiters.append(waiter)
        return waiter


def run(reactor: Any, config: Config, progress: TextIO | None = None) -> Deferred[Summary]:
    """Run the stations of ``config`` on ``reactor``; fires with the summary."""
    return Simulator(reactor, config, progress).run()

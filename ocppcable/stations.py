"""A listener's station connections: the configuration and collaborators every
:class:`~ocppcable.websocket.StationProtocol` shares, the refusal of new stations once the
gateway stops, and the graceful close of all of them at shutdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger

from ocppcable.admission import Admission
from ocppcable.commands import ICallTracker
from ocppcable.hooks import Hooks
from ocppcable.hub import Hub
from ocppcable.metrics import IMetrics, NoMetrics
from ocppcable.ocpp.catalog import Catalog
from ocppcable.ocpp.validation import Validator
from ocppcable.rpc.interface import IRPCClient
from ocppcable.session import SessionSettings
from ocppcable.websocket import StationProtocol

log = Logger()

#: seconds a closing station has to answer our close frame
CLOSE_TIMEOUT = 2


def _drop(stations: Sequence[StationProtocol]) -> None:
    """The stations :meth:`StationFactory.close_all` had no time left to close: their
    connections are cut (their Disconnect RPCs are still made)."""
    left = [station for station in stations if not station.gone.called]
    log.warn("{count} station(s) did not close in time: dropped", count=len(left))
    for station in left:
        station.dropConnection(abort=True)


class StationFactory(WebSocketServerFactory):
    """Shared configuration and collaborators of every station connection."""

    protocol = StationProtocol

    def __init__(
        self,
        *,
        reactor: Any,
        hub: Hub,
        rpc: IRPCClient,
        catalogs: Mapping[str, Catalog],
        validators: Mapping[str, Validator],
        settings: SessionSettings,
        ocpp_path: str,
        forward_headers: Sequence[str],
        max_message_size: int,
        ping_interval: float,
        handshake_timeout: float = 5.0,
        metrics: IMetrics | None = None,
        require_cert_match: bool = False,
        admission: Admission | None = None,
        hooks: Sequence[Any] = (),
    ) -> None:
        super().__init__(server="ocppcable", reactor=reactor)
        #: the limit on new handshakes per second (None: no limit), checked by the endpoint
        self.admission = admission
        #: the station hooks (``--hooks``) in their order; None when there is none
        self.hooks = Hooks(hooks) if hooks else None
        self.require_cert_match = require_cert_match
        self.reactor = reactor
        self.metrics = metrics or NoMetrics()
        #: set at shutdown: new stations are refused (503) and /health answers 503
        self.draining = False
        #: station connections (upgraded from HTTP) closed so far, for the site's count of open
        #: connections
        self.connections_closed = 0
        self.hub = hub
        self.rpc = rpc
        #: told of tracked commands' ends and of session starts (the call API), when set
        self.tracker: ICallTracker | None = None
        self.catalogs = dict(catalogs)
        self.validators = dict(validators)
        self.settings = settings
        self.prefix = ocpp_path.rstrip("/") + "/"
        self.forward_headers = [h.lower() for h in forward_headers]
        self.setProtocolOptions(
            versions=[13],
            maxMessagePayloadSize=max_message_size,
            maxFramePayloadSize=max_message_size,
            openHandshakeTimeout=handshake_timeout,
            closeHandshakeTimeout=CLOSE_TIMEOUT,
            autoPingInterval=ping_interval,
            autoPingTimeout=ping_interval / 2 if ping_interval else 0,
            webStatus=False,
            failByDrop=False,  # send the close code (1009, 1002, …) before dropping
        )

    def close_all(
        self, stations: Sequence[StationProtocol], spread: float, within: float
    ) -> Deferred[Any]:
        """Stop ``stations``, spread evenly over ``spread`` seconds (at most 0.5 s apart) so
        that their Disconnect RPCs and reconnects elsewhere do not come as one burst: each
        refuses new CALLs and closes with 1001 once its CALLs in flight are answered (within
        ``rpc_timeout``); those still open after ``within`` seconds are dropped. Fires when
        all are gone."""
        interval = min(0.5, spread / len(stations))
        for i, station in enumerate(stations):
            self.reactor.callLater(i * interval, station.shutdown)
        last = interval * len(stations) + self.settings.rpc_timeout + CLOSE_TIMEOUT + 1
        timer = self.reactor.callLater(min(last, within), _drop, stations)
        done = DeferredList([station.gone for station in stations], consumeErrors=True)
        return done.addCallback(lambda _: timer.active() and timer.cancel())

"""The WebSocket transport: one Autobahn protocol per station, carrying out its session's effects.

The OCPP and AnyCable logic lives in :mod:`ocppcable.session`, what an upgrade must be and the
``env`` built from it in :mod:`ocppcable.upgrade`, the listener's shared configuration and the
graceful close of all its stations in :mod:`ocppcable.stations`. This module refuses the
upgrades those rules (or a client certificate, or a hook) refuse; after that it only turns
network events into session events and session effects into network actions, within a write
budget and a ping rate.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pprint import pformat
from typing import Any

from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket import protocol as autobahn_protocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, ISSLTransport
from twisted.logger import Logger
from zope.interface import implementer

from ocppcable.answers import Error, Result
from ocppcable.cable import Method
from ocppcable.commands import CommandEnded, RemoteCommand
from ocppcable.hooks import StationView
from ocppcable.rpc.interface import RPCUnavailable
from ocppcable.session import (
    RPC,
    CancelTimer,
    Close,
    Effect,
    JoinStream,
    LeaveStream,
    Send,
    Session,
    Started,
    StartTimer,
)
from ocppcable.tls import certificate_common_name, peer_certificate
from ocppcable.upgrade import (
    PLAIN_HOST,
    bounded_request_id,
    first_served,
    new_sid,
    station_env,
    station_id_in,
)

log = Logger()

#: bytes we may queue for a station whose socket does not drain before dropping it: every byte
#: written counts (our frames, pongs, closes), beyond the transport's own 64 KiB buffer
MAX_PENDING_BYTES = 1024 * 1024
#: the same for a connection that has not started a session (no successful Connect yet)
MAX_PENDING_BYTES_BEFORE_SESSION = 64 * 1024

#: pings a station may send per second on average, and in a burst, that we answer
PING_RATE = 1.0
PING_BURST = 10.0
#: pings over the rate in a row after which the connection is closed (1008)
MAX_UNANSWERED_PINGS = 100


class PrettyWhenLogged:
    """``pprint.pformat(value)``, worked out only when a log line is formatted with it."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __format__(self, spec: str) -> str:
        return format(pformat(self.value), spec)

    def __str__(self) -> str:
        return pformat(self.value)

    __repr__ = __str__


@implementer(IPushProducer)
class _WriteWatch:
    """Tells the protocol when the transport's write buffer is full (the station reads slowly)."""

    def __init__(self, protocol: StationProtocol) -> None:
        self.protocol = protocol

    def pauseProducing(self) -> None:
        self.protocol.write_paused = True

    def resumeProducing(self) -> None:
        self.protocol.write_paused = False
        self.protocol.pending_bytes = 0

    def stopProducing(self) -> None:
        self.protocol.write_paused = True


class StationProtocol(WebSocketServerProtocol):
    """One station's WebSocket connection."""

    _log = Logger()  # autobahn owns self.log
    #: the listener's :class:`~ocppcable.stations.StationFactory` (which imports this module:
    #: named here, not imported)
    factory: Any
    station_id = ""
    sid = ""
    #: the station's X-Request-Id, bounded, logged beside our sid
    request_id = ""
    session: Session | None = None
    #: what the hooks see of this station; None when no hook is configured (then no hook code
    #: runs at all)
    view: StationView | None = None
    write_paused = False
    pending_bytes = 0
    #: epoch seconds of the opening and of the last frame received (presence shows them)
    connected_at = 0.0
    last_frame_at: float | None = None
    _ping_tokens = PING_BURST
    _last_ping = 0.0
    _unanswered_pings = 0

    def __init__(self) -> None:
        super().__init__()
        #: fires when the connection is gone, whatever the reason
        self.gone: Deferred[None] = Deferred()
        self._timers: dict[str, IDelayedCall] = {}
        self._effects: deque[Effect] = deque()
        self._running = False

    # --- hub.Station -----------------------------------------------------------------------------

    @property
    def identifiers(self) -> str:
        return self.session.identifiers if self.session else ""

    def deliver(self, message: dict[str, Any]) -> None:
        if self.session is not None:
            self._event(self.session.broadcast, message)

    def replace(self) -> None:
        self._close(1000, "replaced")

    # --- the call API (presence and routing) ------------------------------------------------------

    @property
    def protocol(self) -> str:
        return self.session.catalog.subprotocol if self.session else ""

    @property
    def serial_number(self) -> str | None:
        return self.session.serial if self.session else None

    def command(self, command: RemoteCommand) -> None:
        if self.session is not None:
            self._event(self.session.command, command)

    def command_expired(self, command: RemoteCommand) -> None:
        if self.session is not None:
            self._event(self.session.command_expired, command)

    def shutdown(self) -> None:
        """The gateway stops: the session refuses new CALLs and closes (1001) once the CALLs in
        flight are answered."""
        if self.session is None:
            self._close(1001, "going away")
        else:
            self._event(self.session.shutdown)

    def disconnect(self, reconnect: bool) -> None:
        if self.session is not None:
            self._event(self.session.remote_disconnect)

    # --- autobahn internals ----------------------------------------------------------------------

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """Every byte Autobahn writes (handshake, our frames, pongs, closes) passes here and
        counts against the connection's write budget while its socket does not drain."""
        if self.state == self.STATE_CLOSED:
            return
        if self.write_paused:
            self.pending_bytes += len(data)
            if self.pending_bytes > self._write_budget():
                self._log.warn(
                    "station {station_id} does not read its socket: dropping the connection",
                    station_id=self.station_id,
                    sid=self.sid,
                    pending=self.pending_bytes,
                )
                self.dropConnection(abort=True)
                return
        super().sendData(data, sync, chopsize)

    def _write_budget(self) -> int:
        if self.session is not None and self.session.connected:
            return MAX_PENDING_BYTES
        return MAX_PENDING_BYTES_BEFORE_SESSION

    def onPing(self, payload: bytes) -> None:
        """Pongs only within :data:`PING_RATE`: a station that floods pings and never reads
        made us queue pongs without bound (they count against the write budget as well)."""
        if self.state != self.STATE_OPEN:
            return  # closing: nothing more is answered
        now = self.factory.reactor.seconds()
        tokens = min(PING_BURST, self._ping_tokens + (now - self._last_ping) * PING_RATE)
        self._last_ping = now
        if tokens >= 1.0:
            self._ping_tokens = tokens - 1.0
            self._unanswered_pings = 0
            super().onPing(payload)
            return
        self._ping_tokens = tokens
        self._unanswered_pings += 1
        if self._unanswered_pings == MAX_UNANSWERED_PINGS:
            self._log.info(
                "station {station_id} floods pings: closing",
                station_id=self.station_id,
                sid=self.sid,
            )
            self._close(1008, "too many pings")

    def dataReceived(self, data: bytes) -> None:
        # Autobahn's own only adds a debug line whose arguments it formats on every read,
        # logged or not
        self._dataReceived(data)

    def _connectionMade(self) -> None:
        # Autobahn pretty-prints its 29 options for a debug line on every new connection, logged
        # or not: about 0.2 ms, a tenth of the gateway's CPU in a boot storm. While it runs, the
        # pformat it imported puts the work off until the line is formatted (never, unless
        # txaio's log level is debug), with the same text.
        autobahn_protocol.pformat = PrettyWhenLogged
        try:
            super()._connectionMade()
        finally:
            autobahn_protocol.pformat = pformat

    # --- autobahn callbacks ------------------------------------------------------------------------

    def onConnect(self, request: Any) -> str:
        try:
            return self._accept(request)
        except ConnectionDeny:
            raise
        except Exception:
            self._log.failure("refusing a WebSocket upgrade after an internal error")
            raise

    def _accept(self, request: Any) -> str:
        factory = self.factory
        if factory.draining:
            raise ConnectionDeny(ConnectionDeny.SERVICE_UNAVAILABLE, "shutting down")
        station_id = station_id_in(factory.prefix, request.path)
        if station_id is None:
            raise ConnectionDeny(ConnectionDeny.NOT_FOUND, "not an OCPP station path")
        subprotocol = first_served(factory.catalogs, request.protocols)
        if subprotocol is None:
            self._log.info(
                "station {station_id} offered no supported subprotocol: {offered}",
                station_id=station_id,
                offered=request.protocols,
            )
            raise ConnectionDeny(ConnectionDeny.BAD_REQUEST, "no supported OCPP subprotocol")
        headers = request.headers
        host = headers.get("host", "")
        if not PLAIN_HOST.match(host):
            raise ConnectionDeny(ConnectionDeny.BAD_REQUEST, "Host is not a plain host[:port]")
        certificate = peer_certificate(self.transport)
        common_name = certificate_common_name(certificate) if certificate is not None else None
        # the rule is for connections with a client certificate (mtls: listeners); stations on
        # the gateway's tcp: and ssl: listeners present none and are not held to it
        if factory.require_cert_match and certificate is not None and common_name != station_id:
            self._log.info(
                "station {station_id} refused: client certificate CN {cn!r} does not match",
                station_id=station_id,
                cn=common_name,
            )
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "client certificate does not match")
        self.station_id = station_id
        self.sid = new_sid()
        self.request_id = bounded_request_id(headers.get("x-request-id"))
        peer = getattr(self.transport.getPeer(), "host", "")
        hooks = factory.hooks
        if hooks is not None:
            view = StationView(station_id, self.sid, subprotocol, headers, peer, self._close)
            refusal = hooks.refusal(view)
            if refusal is not None:
                self._log.info(
                    "station {station_id} refused by a hook: {reason}",
                    station_id=station_id,
                    sid=self.sid,
                    reason=refusal,
                )
                raise ConnectionDeny(ConnectionDeny.FORBIDDEN, refusal)
            self.view = view
        url, forwarded = station_env(
            secure=ISSLTransport.providedBy(self.transport),
            host=host,
            prefix=factory.prefix,
            station_id=station_id,
            request_uri=self.http_request_uri,
            headers=headers,
            forward_headers=factory.forward_headers,
            peer=peer,
            subprotocol=subprotocol,
            common_name=common_name,
        )
        self.session = Session(
            station_id=station_id,
            catalog=factory.catalogs[subprotocol],
            validator=factory.validators.get(subprotocol),
            settings=factory.settings,
            url=url,
            headers=forwarded,
            sid=self.sid,
            metrics=factory.metrics,
            local_answer=self._hook_answer if self.view is not None else None,
        )
        return subprotocol

    def _hook_answer(
        self, unique_id: str, action: str, payload: Mapping[str, Any]
    ) -> Result | Error | None:
        return self.factory.hooks.answer(self.view, unique_id, action, payload)

    def onOpen(self) -> None:
        self._log.info(
            "station {station_id} connected ({subprotocol}, sid {sid})",
            station_id=self.station_id,
            sid=self.sid,
            request_id=self.request_id,
            subprotocol=self.websocket_protocol_in_use,
        )
        # behind WebSocketResource the HTTP channel is still the transport's producer
        self.transport.unregisterProducer()
        self.transport.registerProducer(_WriteWatch(self), True)
        self.connected_at = self.factory.reactor.seconds()
        self.factory.hub.register(self)
        if self.view is not None:
            self.factory.hooks.notify("connected", self.view)
        self._event(self.session.opened)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            self._log.info(
                "station {station_id} sent a binary frame", station_id=self.station_id, sid=self.sid
            )
            self._close(1003, "binary frames are not OCPP")
            return
        self.last_frame_at = self.factory.reactor.seconds()
        text = payload.decode("utf-8")
        if self.view is not None:
            self.factory.hooks.notify("frame_received", self.view, text)
        self._event(self.session.frame_received, text)

    def connectionLost(self, reason: Any) -> None:
        self.factory.connections_closed += 1
        super().connectionLost(reason)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.session is not None:
            by = "station"
            if self.closedByMe and self.localCloseCode is not None:
                # Autobahn reports the code the station echoed: log the one we sent
                by, code = "gateway", self.localCloseCode
                reason = (self.localCloseReason or b"").decode("utf-8", "replace") or None
            self._log.info(
                "station {station_id} disconnected (code {code}, {reason}; closed by the {by})",
                station_id=self.station_id,
                sid=self.sid,
                code=code,
                reason=reason,
                by=by,
            )
            self.factory.hub.unregister(self)
            if self.factory.tracker is not None and self.session.streams:
                self.factory.tracker.gone(self.station_id, sorted(self.session.streams))
            for timer in self._timers.values():
                if timer.active():
                    timer.cancel()
            self._timers.clear()
            self._event(self.session.connection_lost)  # queues the Disconnect RPC
            if self.view is not None:
                self.factory.hooks.notify("closed", self.view, code, reason)
        if not self.gone.called:
            self.gone.callback(None)

    # --- effects -----------------------------------------------------------------------------------

    def _event(self, handler: Callable[..., list[Effect]], *args: Any) -> None:
        """Feed an event to the session and carry out what it returns. A bug in the session
        is logged with the station id and never escapes into Autobahn or a Deferred; the
        station's pending CALLs are still answered by their timers."""
        try:
            effects = handler(*args)
        except Exception:
            self._log.failure(
                "station {station_id}: session error in {event}",
                station_id=self.station_id,
                sid=self.sid,
                event=handler.__name__,
            )
            return
        self._run(effects)

    def _run(self, effects: Iterable[Effect]) -> None:
        """Carry out effects in order, also those produced while carrying them out."""
        self._effects.extend(effects)
        if self._running:
            return
        self._running = True
        try:
            while self._effects:
                effect = self._effects.popleft()
                try:
                    self._execute(effect)
                except Exception:
                    self._log.failure(
                        "station {station_id}: failed to carry out {effect!r}",
                        station_id=self.station_id,
                        sid=self.sid,
                        effect=effect,
                    )
        finally:
            self._running = False

    def _execute(self, effect: Effect) -> None:
        kind = type(effect)
        if kind is Send:
            if self.view is not None and self.state == self.STATE_OPEN:
                self.factory.hooks.notify("frame_sent", self.view, effect.text)
            self._send(effect.text.encode("utf-8"))
        elif kind is RPC:
            self._call(effect)
        elif kind is StartTimer:
            self._cancel_timer(effect.name)
            self._timers[effect.name] = self.factory.reactor.callLater(
                effect.seconds, self._timer_fired, effect.name
            )
        elif kind is CancelTimer:
            self._cancel_timer(effect.name)
        elif kind is JoinStream:
            self.factory.hub.join(effect.stream, self)
        elif kind is LeaveStream:
            self.factory.hub.leave(effect.stream, self)
        elif kind is Close:
            self._close(effect.code, effect.reason)
        elif kind is CommandEnded:
            if self.factory.tracker is not None:
                self.factory.tracker.ended(self.station_id, effect)
        elif kind is Started:
            if self.factory.tracker is not None:
                self.factory.tracker.started(self.station_id)

    def _send(self, data: bytes) -> None:
        if self.state == self.STATE_OPEN:
            self.sendMessage(data)

    def _cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _timer_fired(self, name: str) -> None:
        self._timers.pop(name, None)
        self._event(self.session.timer_fired, name)

    def _call(self, effect: RPC) -> None:
        rpc, request = self.factory.rpc, effect.request
        match effect.method:
            case Method.CONNECT:
                d = rpc.connect(self.sid, request)
            case Method.COMMAND:
                d = rpc.command(self.sid, request)
            case Method.DISCONNECT:
                d = rpc.disconnect(self.sid, request)
        d.addCallbacks(
            self._rpc_succeeded,
            self._rpc_failed,
            callbackArgs=(effect.token,),
            errbackArgs=(effect.token,),
        )

    def _rpc_succeeded(self, response: Any, token: int) -> None:
        if self.view is None:
            self._event(self.session.rpc_succeeded, token, response)
            return
        was_connected = self.session.connected
        self._event(self.session.rpc_succeeded, token, response)
        if not was_connected and self.session.connected:
            self.factory.hooks.notify("session_started", self.view)

    def _rpc_failed(self, failure: Any, token: int) -> None:
        if failure.check(RPCUnavailable):
            reason = failure.getErrorMessage()
        else:
            self._log.failure(
                "station {station_id}: unexpected RPC error", failure, station_id=self.station_id
            )
            reason = "RPC failed"
        self._event(self.session.rpc_failed, token, reason)

    def _close(self, code: int, reason: str) -> None:
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8"), isReply=False)

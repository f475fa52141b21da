"""One simulated station's OCPP behaviour, without I/O.

:class:`StationModel` takes events (connected, a frame arrived, a timer fired, disconnected) and
returns effects (send, start or cancel a timer, close, reconnect, finished); its
:class:`~ocppcable.simulator.dialects.Dialect` turns that behaviour into one OCPP version's
messages and that version's commands into the model's operations.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from ocppcable.effects import CancelTimer, Close, Send, StartTimer
from ocppcable.ocpp import framing
from ocppcable.ocpp.validation import validator_for
from ocppcable.simulator.calls import Call, Outbox
from ocppcable.simulator.commands import Responder
from ocppcable.simulator.config import Config
from ocppcable.simulator.dialects import Dialect
from ocppcable.simulator.dialects.base import (
    ACCEPTED,
    AVAILABLE,
    CHARGING,
    HEARTBEAT,
    PENDING,
    PREPARING,
    REJECTED,
    SCHEDULED,
    Reply,
    Transaction,
)
from ocppcable.simulator.effects import Effect, Finished, Reconnect
from ocppcable.simulator.meter import Meter
from ocppcable.simulator.settings import Settings
from ocppcable.simulator.stats import Stats

#: seconds before a station retries a BootNotification that failed or gave no usable interval
BOOT_RETRY = 10.0
#: seconds before reconnecting after a lost or failed connection (the driver adds ±50 % jitter)
RECONNECT_DELAY = 5.0
#: seconds a station is off between a Reset and its reconnect
REBOOT_DELAY = 1.0

CALL_TIMER = "call"
HEARTBEAT_TIMER = "heartbeat"
BOOT_TIMER = "boot"
METER_TIMER = "meter:"  # + connector id
END_TIMER = "end:"  # + connector id


class StationModel:
    """One station's OCPP behaviour, without I/O; its :class:`Dialect` speaks the version.

    Every event method returns the effects to carry out, in order. The station's own CALLs go
    through its :class:`~ocppcable.simulator.calls.Outbox`, one at a time.

    The public methods after the events (:meth:`trigger`, :meth:`remote_start`,
    :meth:`remote_stop`, :meth:`reset`, :meth:`setting`, :meth:`change_setting`) are what the
    dialect's remote commands do, in terms every version shares: the model is the dialect's
    :class:`~ocppcable.simulator.dialects.base.Station`.
    """

    __slots__ = (
        "station_id",
        "config",
        "stats",
        "clock",
        "dialect",
        "sessions_left",
        "settings",
        "outbox",
        "responder",
        "registration",
        "transactions",
        "meter",
        "_reported",
        "_online",
        "_counted_booted",
        "_ever_booted",
        "_boot_reason",
        "_reset_requested",
        "_reset_when_idle",
        "_rebooting",
        "_stopped",
        "_finished",
        "_out",
    )

    def __init__(
        self,
        station_id: str,
        config: Config,
        dialect: Dialect,
        stats: Stats,
        clock: Callable[[], float],
    ) -> None:
        self.station_id = station_id
        self.config = config
        self.dialect = dialect
        self.stats = stats
        self.clock = clock  # seconds since the epoch (reactor.seconds)
        self.sessions_left = config.sessions
        self.settings = Settings(dialect.settings, config)
        #: status of the last BootNotification reply since power-up, None before one
        self.registration: str | None = None
        self.transactions: dict[int, Transaction] = {}  # by connector id
        self.meter = Meter(config.connectors, clock)
        self._reported: dict[int, str] = {}  # the last status sent per connector
        validator = validator_for(dialect.catalog)
        self.outbox = Outbox(station_id, stats, validator, clock)
        self.responder = Responder(station_id, dialect, validator, stats)
        self._online = False
        self._counted_booted = False
        self._ever_booted = False
        self._boot_reason = "PowerUp"  # of the next BootNotification (2.0.1)
        self._reset_requested = False  # Reset accepted: stop transactions, then reboot
        self._reset_when_idle = False  # Reset accepted for when the last transaction ends
        self._rebooting = False  # closing for a Reset; reconnect and boot once closed
        self._stopped = False
        self._finished = False
        self._out: list[Effect] = []

    # --- events ----------------------------------------------------------------------------------

    def connected(self) -> list[Effect]:
        """The WebSocket is open."""
        self._online = True
        self.stats.connected += 1
        if self.registration == ACCEPTED:
            # a network reconnect, not a reboot: no BootNotification
            self._schedule_heartbeat()
            self._status_all()
        else:
            self._boot()
        self._update_booted()
        return self._effects()

    def received(self, text: str) -> list[Effect]:
        """A text frame arrived."""
        if self._stopped or self._rebooting:
            return []
        try:
            message = framing.parse(text)
        except framing.FrameError as e:
            self._error("malformed frame", e.description)
        else:
            if isinstance(message, framing.Call):
                self._command(message)
            else:
                self._reply(message)
        return self._effects()

    def binary_received(self) -> list[Effect]:
        self._error("malformed frame", "binary frame")
        return self._effects()

    def timer_fired(self, name: str) -> list[Effect]:
        if name == CALL_TIMER:
            self._timed_out()
        elif name == HEARTBEAT_TIMER:
            self.outbox.add(Call("Heartbeat", {}))
            self._schedule_heartbeat()
        elif name == BOOT_TIMER:
            self._boot()
        elif name.startswith(METER_TIMER):
            self._sample(self.transactions[int(name[len(METER_TIMER) :])])
        elif name.startswith(END_TIMER):
            self._stop(self.transactions[int(name[len(END_TIMER) :])], self.dialect.LOCAL)
        return self._effects()

    def disconnected(self, reason: str) -> list[Effect]:
        """The WebSocket closed, whoever closed it."""
        self._online = False
        self.stats.connected -= 1
        self._update_booted()
        self._emit(CancelTimer(HEARTBEAT_TIMER))
        self._emit(CancelTimer(BOOT_TIMER))
        call = self.outbox.lost()
        if call is not None:
            self._emit(CancelTimer(CALL_TIMER))
            call.answered(None)
        rebooting, self._rebooting = self._rebooting, False
        if self._stopped:
            return self._effects()
        if rebooting:
            self._emit(Reconnect(REBOOT_DELAY))
        else:
            self._error("connection lost", reason)
            self._emit(Reconnect(RECONNECT_DELAY))
        return self._effects()

    def connection_failed(self, kind: str, reason: str) -> list[Effect]:
        """No WebSocket came about (``kind``: "connect failed", "handshake failed")."""
        if self._stopped:
            return []
        self._error(kind, reason)
        self._emit(Reconnect(RECONNECT_DELAY))
        return self._effects()

    def stop(self) -> list[Effect]:
        """The run is over: close, and ignore everything from now on."""
        self._stopped = True
        if self._online:
            self._emit(Close(1000, "simulation over"))
        return self._effects()

    # --- what remote commands do -------------------------------------------------------------

    def trigger(
        self, requested: str, connector: int | None, notification: dict[str, Any] | None = None
    ) -> str:
        """Send ``requested`` (BootNotification, Heartbeat, StatusNotification, MeterValues of
        one connector or all, else the ``notification`` payload) ahead of everything queued;
        returns ACCEPTED or REJECTED."""
        connectors = self.dialect.status_connectors(self.config.connectors)
        if connector is not None and connector not in connectors:
            return REJECTED
        if requested == "BootNotification":
            self._boot("Triggered")
            return ACCEPTED
        if self.registration not in (ACCEPTED, PENDING):
            return REJECTED
        if requested == "Heartbeat":
            self.outbox.add(Call("Heartbeat", {}), urgent=True)
        elif requested == "StatusNotification":
            for c in connectors if connector is None else [connector]:
                self._status(c, self._connector_status(c), urgent=True, again=True)
        elif requested == "MeterValues":
            for c in range(1, self.config.connectors + 1) if connector is None else [connector]:
                message = self.dialect.triggered_sample(
                    c,
                    self.transactions.get(c),
                    self.meter.reading(self.transactions, c),
                    self._timestamp(),
                )
                self.outbox.add(Call(*message), urgent=True)
        else:
            self.outbox.add(Call(requested, notification or {}), urgent=True)
        return ACCEPTED

    def remote_start(self, token: Any, connector: int | None, remote_id: int | None = None) -> bool:
        """Start a transaction for ``token`` without asking the central system (it asked us);
        on a free connector when ``connector`` is None. Whether it starts."""
        if self.registration != ACCEPTED or self._reset_requested or self._reset_when_idle:
            return False
        if connector is None:
            connector = self._free_connector()
        elif not 1 <= connector <= self.config.connectors or connector in self.transactions:
            connector = None
        if connector is None:
            return False
        tx = Transaction(connector, token, local=False, remote_id=remote_id)
        self.transactions[connector] = tx
        self._status(connector, PREPARING)
        self._start_transaction(tx)  # remote starts are not authorized again
        return True

    def remote_stop(self, transaction_id: Any) -> bool:
        """Stop the running transaction ``transaction_id``; whether there is one."""
        for tx in self.transactions.values():
            if tx.transaction_id == transaction_id and tx.stop_reason is None:
                self._stop(tx, self.dialect.REMOTE)
                return True
        return False

    def reset(self, reason: str, on_idle: bool = False) -> str:
        """Stop every transaction with ``reason``, then reboot; ``on_idle``: reboot once the
        last transaction ends by itself (SCHEDULED), or now if there is none (ACCEPTED)."""
        if on_idle and self.transactions:
            self._reset_when_idle = True
            return SCHEDULED
        self._reset_requested = True
        for tx in list(self.transactions.values()):
            self._stop(tx, reason)
        return ACCEPTED

    def setting(self, name: str) -> str:
        """The value of one of the dialect's settings."""
        return self.settings.value(name)

    def change_setting(self, name: str, value: str) -> str:
        """Change a setting; ACCEPTED, REJECTED (read-only, bad value) or UNKNOWN."""
        status = self.settings.change(name, value)
        heartbeat = status == ACCEPTED and self.dialect.settings[name].state == HEARTBEAT
        if heartbeat and self.registration == ACCEPTED:
            self._schedule_heartbeat()
        return status

    # --- plumbing ----------------------------------------------------------------------------

    def _emit(self, effect: Effect) -> None:
        self._out.append(effect)

    def _effects(self) -> list[Effect]:
        """Send the next CALL if possible, and hand over the effects of this event."""
        self._pump()
        out, self._out = self._out, []
        return out

    def _error(self, kind: str, detail: str) -> None:
        self.stats.error(self.station_id, kind, detail)

    def _timestamp(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def _update_booted(self) -> None:
        booted = self._online and self.registration == ACCEPTED
        if booted != self._counted_booted:
            self._counted_booted = booted
            self.stats.booted += 1 if booted else -1

    # --- own CALLs ---------------------------------------------------------------------------

    def _started(self) -> bool:
        return any(tx.transaction_id is not None for tx in self.transactions.values())

    def _pump(self) -> None:
        if self.outbox.outstanding is not None or not self._online:
            return
        if self._stopped or self._rebooting:
            return
        if self._reset_requested and not self.outbox.urgent and not self._started():
            self._reboot()
            return
        frame = self.outbox.send_next(self.registration == ACCEPTED and not self._reset_requested)
        if frame is None:
            self._check_finished()
            return
        self._emit(Send(frame))
        self._emit(StartTimer(CALL_TIMER, self.config.call_timeout))

    def _check_finished(self) -> None:
        """Report once that the station ran all its own sessions and has nothing left to send."""
        idle = not (self.outbox or self.sessions_left or self._finished)
        if idle and self.config.sessions and not any(tx.local for tx in self.transactions.values()):
            self._finished = True
            self._emit(Finished())

    def _reply(self, message: framing.CallResult | framing.CallError) -> None:
        answered = self.outbox.reply(message)
        if answered is not None:
            self._emit(CancelTimer(CALL_TIMER))
            call, payload = answered
            call.answered(payload)

    def _timed_out(self) -> None:
        self.outbox.timed_out(self.config.call_timeout).answered(None)

    # --- registration ------------------------------------------------------------------------

    def _boot(self, reason: str | None = None) -> None:
        if reason is not None:
            self._boot_reason = reason
        payload = self.dialect.boot(self.station_id, self._boot_reason)
        self.outbox.add(Call("BootNotification", payload, self._booted), urgent=True)

    def _booted(self, reply: Reply) -> None:
        if reply is None:
            if self._online:
                self._emit(StartTimer(BOOT_TIMER, BOOT_RETRY))
            return
        self.registration = reply["status"]
        self._update_booted()
        interval = reply["interval"]
        if self.registration != ACCEPTED:
            if self.registration == REJECTED:
                self.outbox.urgent.clear()  # while Rejected a station sends nothing else
            self._emit(StartTimer(BOOT_TIMER, interval if interval > 0 else BOOT_RETRY))
            return
        self._emit(CancelTimer(BOOT_TIMER))
        if not self._ever_booted:
            self._ever_booted = True
            self.stats.stations_booted += 1
        if self.config.heartbeat is None:
            self.settings.heartbeat = interval
        self._schedule_heartbeat()
        self._status_all()
        self._next_session()

    def _schedule_heartbeat(self) -> None:
        if self.settings.heartbeat > 0:
            self._emit(StartTimer(HEARTBEAT_TIMER, self.settings.heartbeat))
        else:
            self._emit(CancelTimer(HEARTBEAT_TIMER))

    def _reboot(self) -> None:
        """The last step of a Reset: forget everything volatile and close; reconnect later."""
        self._reset_requested = self._reset_when_idle = False
        self._rebooting = True
        self.sessions_left += sum(tx.local for tx in self.transactions.values())
        self.transactions.clear()
        self.outbox.queue.clear()
        self.registration = None
        self._boot_reason = "RemoteReset"
        self._update_booted()
        self._emit(CancelTimer(HEARTBEAT_TIMER))
        self._emit(Close(1000, "reset"))

    # --- connectors and sessions ---------------------------------------------------------------

    def _connector_status(self, connector: int) -> str:
        tx = self.transactions.get(connector)
        if tx is None:
            return AVAILABLE
        return PREPARING if tx.started_at is None else CHARGING

    def _status(
        self, connector: int, state: str, urgent: bool = False, again: bool = False
    ) -> None:
        """Report a connector's state, unless the version's status for it was the last one sent
        (``again``: even so)."""
        status = self.dialect.connector_status(state)
        if not again and self._reported.get(connector) == status:
            return
        self._reported[connector] = status
        payload = self.dialect.status(connector, status, self._timestamp())
        self.outbox.add(Call("StatusNotification", payload), urgent)

    def _status_all(self) -> None:
        for connector in self.dialect.status_connectors(self.config.connectors):
            self._status(connector, self._connector_status(connector), again=True)

    def _free_connector(self) -> int | None:
        free = (c for c in range(1, self.config.connectors + 1) if c not in self.transactions)
        return next(free, None)

    def _next_session(self) -> None:
        """Start the station's next own session, if it has one left and a free connector."""
        if not self.sessions_left or any(tx.local for tx in self.transactions.values()):
            return
        if self.registration != ACCEPTED or self._reset_requested or self._reset_when_idle:
            return
        connector = self._free_connector()
        if connector is None:
            return  # all busy with remote starts: tried again when one ends
        self.sessions_left -= 1
        tx = Transaction(connector, self.dialect.id_token(self.config.id_tag), local=True)
        self.transactions[connector] = tx
        self._status(connector, PREPARING)
        authorize = self.dialect.authorize(tx.token)
        self.outbox.add(Call("Authorize", authorize, partial(self._authorized, tx)))

    def _authorized(self, tx: Transaction, reply: Reply) -> None:
        accepted = reply is not None and self.dialect.authorized(reply)
        if reply is not None and not accepted:
            self.stats.sessions_refused += 1
        if accepted and tx.stop_reason is None:
            self._start_transaction(tx)
        else:
            self._end_session(tx)

    def _start_transaction(self, tx: Transaction) -> None:
        meter_start = self.meter.register(tx.connector_id)
        action, payload = self.dialect.start(tx, meter_start, self._timestamp())
        self.outbox.add(Call(action, payload, partial(self._transaction_started, tx, payload)))

    def _transaction_started(self, tx: Transaction, request: dict[str, Any], reply: Reply) -> None:
        outcome = self.dialect.started(request, reply)
        if outcome is None:
            self._end_session(tx)
            return
        tx.transaction_id, accepted = outcome
        tx.started_at = self.clock()
        if not accepted:
            self.stats.sessions_refused += 1
            tx.stop_reason = tx.stop_reason or self.dialect.DEAUTHORIZED
        else:
            self.stats.sessions_started += 1
        if tx.stop_reason is not None:
            self._send_stop(tx)
            return
        connector = tx.connector_id
        self._status(connector, CHARGING)
        if self.settings.meter > 0:
            self._emit(StartTimer(f"{METER_TIMER}{connector}", self.settings.meter))
        self._emit(StartTimer(f"{END_TIMER}{connector}", self.config.session_length))

    def _sample(self, tx: Transaction) -> None:
        message = self.dialect.sample(
            tx, self.meter.reading(self.transactions, tx.connector_id), self._timestamp()
        )
        self.outbox.add(Call(*message))
        if self.settings.meter > 0:
            self._emit(StartTimer(f"{METER_TIMER}{tx.connector_id}", self.settings.meter))

    def _stop(self, tx: Transaction, reason: str) -> None:
        """End a session; one not started yet ends when its Authorize/start message returns."""
        if tx.stop_reason is None:
            tx.stop_reason = reason
            if tx.transaction_id is not None:
                self._send_stop(tx)

    def _send_stop(self, tx: Transaction) -> None:
        connector = tx.connector_id
        self._emit(CancelTimer(f"{METER_TIMER}{connector}"))
        self._emit(CancelTimer(f"{END_TIMER}{connector}"))
        meter_stop = self.meter.settle(self.transactions, connector)
        action, payload = self.dialect.stop(tx, meter_stop, self._timestamp())
        call = Call(action, payload, partial(self._transaction_stopped, tx))
        self.outbox.add(call, urgent=self._reset_requested)

    def _transaction_stopped(self, tx: Transaction, reply: Reply) -> None:
        if reply is not None:
            self.stats.sessions_completed += 1
        self._end_session(tx)

    def _end_session(self, tx: Transaction) -> None:
        del self.transactions[tx.connector_id]
        self._status(tx.connector_id, AVAILABLE)
        if self._reset_when_idle and not self.transactions:
            self._reset_when_idle = False
            self._reset_requested = True
        self._next_session()

    # --- remote commands -----------------------------------------------------------------------

    def _command(self, call: framing.Call) -> None:
        self._emit(Send(self.responder.answer(self, call)))

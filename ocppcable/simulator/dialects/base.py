"""What every dialect shares: the station's records, the :class:`Station` a dialect's commands
act on, and the :class:`Dialect` interface the station model uses."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ocppcable.ocpp.catalog import Catalog

ACCEPTED, PENDING, REJECTED, SCHEDULED = "Accepted", "Pending", "Rejected", "Scheduled"
#: a configuration key / variable the station does not have (the dialect names it its own way)
UNKNOWN = "Unknown"

#: what a connector is doing, whatever the version calls it
AVAILABLE, PREPARING, CHARGING = "Available", "Preparing", "Charging"

MEASURAND = "Energy.Active.Import.Register"

#: what a simulated station calls itself (fits 2.0.1's ChargingStationType.model, string(20))
VENDOR, MODEL = "ocppcable", "simulated station"

#: settings whose value is part of the station's state rather than a stored string
HEARTBEAT, METER, CONNECTORS = "heartbeat", "meter", "connectors"

Payload = dict[str, Any]
Message = tuple[str, Payload]  # (action, payload) of a CALL
Reply = Payload | None  # a valid CALLRESULT payload, or None (CALLERROR, timeout, lost)


@dataclass(frozen=True, slots=True)
class Setting:
    """A configuration key (1.6) or a component variable (2.0.1) of the station."""

    readonly: bool
    default: str = ""  # empty for settings whose value is the station's state
    seconds: bool = False  # the value must be a whole number of seconds
    state: str | None = None  # HEARTBEAT, METER or CONNECTORS


@dataclass(slots=True)
class Transaction:
    """A charging session on one connector (EVSE in 2.0.1), from its start until its stop
    message is answered."""

    connector_id: int
    token: Any  # 1.6: the idTag string; 2.0.1: the IdTokenType object
    local: bool  # one of the station's own sessions, not a remote start
    remote_id: int | None = None  # 2.0.1 remoteStartId
    transaction_id: Any = None  # known to both sides once the start message is answered
    started_at: float | None = None  # clock() when charging began
    stop_reason: str | None = None  # set once the session is to end (the version's reason)
    seq_no: int = 0  # the next TransactionEvent seqNo (2.0.1)


class Station(Protocol):
    """What a dialect's remote commands do to the station, in terms every version shares
    (:class:`ocppcable.simulator.model.StationModel` is one)."""

    def trigger(
        self, requested: str, connector: int | None, notification: Payload | None = None
    ) -> str: ...

    def remote_start(
        self, token: Any, connector: int | None, remote_id: int | None = None
    ) -> bool: ...

    def remote_stop(self, transaction_id: Any) -> bool: ...

    def reset(self, reason: str, on_idle: bool = False) -> str: ...

    def setting(self, name: str) -> str: ...

    def change_setting(self, name: str, value: str) -> str: ...


Command = Callable[[Any, Station, Payload], Payload]


class Dialect(abc.ABC):
    """One OCPP version as a simulated station speaks it.

    A dialect builds the payloads of the station's CALLs from the model's state, reads the
    replies that carry a decision, and turns remote commands into calls of the model's
    version-neutral operations (the :class:`Station`'s ``trigger``, ``remote_start``,
    ``remote_stop``, ``reset``, ``setting``, ``change_setting``). It keeps no state of its own.
    """

    version: ClassVar[str]  # as given to --ocpp
    catalog: ClassVar[Catalog]
    #: longest idTag / idToken the version allows
    max_id_token: ClassVar[int]
    #: the station's settings by the version's name for them
    settings: ClassVar[Mapping[str, Setting]]
    #: remote commands the station answers; anything else gets CALLERROR NotImplemented
    commands: ClassVar[Mapping[str, Command]]
    #: the reason of a transaction stopped by the station itself, by a remote stop, and
    #: because the central system refused the token
    LOCAL, REMOTE, DEAUTHORIZED = "Local", "Remote", "DeAuthorized"

    @property
    def subprotocol(self) -> str:
        return self.catalog.subprotocol

    def answer(self, station: Station, action: str, payload: Payload) -> Payload:
        """The CALLRESULT payload for a command in :attr:`commands` (already validated)."""
        return self.commands[action](self, station, payload)

    @abc.abstractmethod
    def status_connectors(self, connectors: int) -> range:
        """The connectors whose status the station reports (1.6 includes 0, the station)."""

    @abc.abstractmethod
    def id_token(self, tag: str) -> Any:
        """The token of the station's own sessions, from --id-tag."""

    @abc.abstractmethod
    def boot(self, station_id: str, reason: str) -> Payload:
        """A BootNotification; ``reason`` is a 2.0.1 BootReasonEnumType."""

    @abc.abstractmethod
    def connector_status(self, state: str) -> str:
        """The version's name for AVAILABLE, PREPARING or CHARGING."""

    @abc.abstractmethod
    def status(self, connector: int, status: str, timestamp: str) -> Payload:
        """A StatusNotification with the version's ``status``."""

    @abc.abstractmethod
    def authorize(self, token: Any) -> Payload:
        """An Authorize for ``token``."""

    @abc.abstractmethod
    def authorized(self, reply: Payload) -> bool:
        """Whether an Authorize reply accepts the token."""

    @abc.abstractmethod
    def start(self, tx: Transaction, meter_start: int, timestamp: str) -> Message:
        """The message that starts ``tx``."""

    @abc.abstractmethod
    def started(self, request: Payload, reply: Reply) -> tuple[Any, bool] | None:
        """From the start message and its reply: the transaction id and whether the token is
        accepted, or None when no transaction came about."""

    @abc.abstractmethod
    def sample(self, tx: Transaction, reading: int, timestamp: str) -> Message:
        """A periodic meter reading (Wh) during ``tx``."""

    @abc.abstractmethod
    def triggered_sample(
        self, connector: int, tx: Transaction | None, reading: int, timestamp: str
    ) -> Message:
        """The MeterValues a TriggerMessage asked for; ``tx`` is the running transaction."""

    @abc.abstractmethod
    def stop(self, tx: Transaction, meter_stop: int, timestamp: str) -> Message:
        """The message that ends ``tx`` (its ``stop_reason`` is set)."""


def status_result(status: str) -> Payload:
    return {"status": status}

# -*- test-case-name: tests.test_hooks -*-
"""Station hooks (``--hooks``): their interface, and running them for the WebSocket transport,
in order, each call guarded, so that a hook that raises is logged with the station id and
counts as "no opinion". Plugins import the interface from :mod:`ocppcable.plugin`.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from ocppcable.answers import Error, Result

log = Logger()


class IStation(Interface):
    """A station connection as hooks see it."""

    station_id = Attribute("The id in the station's URL path.")
    sid = Attribute("The AnyCable session id (in every log line of the station).")
    subprotocol = Attribute("The OCPP version, as its WebSocket subprotocol (``ocpp1.6``).")
    headers = Attribute("The upgrade request's headers, names lower-cased.")
    peer = Attribute("The remote address (host) of the connection.")

    def close(reason: str, code: int = 1008) -> None:
        """Close the connection with a WebSocket close ``code`` and ``reason``."""


class IStationHook(Interface):
    """Sees every station's lifecycle and frames. Every method is optional in effect (derive
    from :class:`StationHook`, which does nothing); each runs in the reactor thread and must
    return quickly. An exception is logged (warn, with the station id) and counts as "no
    opinion": it never disturbs the station or the other hooks."""

    def connecting(station: IStation) -> str | None:
        """A station asks to connect: a reason refuses it (HTTP 403); None lets it in."""

    def connected(station: IStation) -> None:
        """The WebSocket is open."""

    def session_started(station: IStation) -> None:
        """The backend accepted the station (its ``Connect`` succeeded)."""

    def frame_received(station: IStation, text: str) -> None:
        """A text frame from the station, before the gateway handles it."""

    def frame_sent(station: IStation, text: str) -> None:
        """A text frame the gateway sends to the station."""

    def call_received(
        station: IStation, unique_id: str, action: str, payload: Mapping[str, Any]
    ) -> Result | Error | None:
        """A valid CALL about to go to the backend: a :class:`Result` or :class:`Error`
        answers it here instead; None lets the next hook, then the backend, answer."""

    def closed(station: IStation, code: int | None, reason: str | None) -> None:
        """The connection is gone (``code`` and ``reason`` of the close, when there was one)."""


@implementer(IStationHook)
class StationHook:
    """An :class:`IStationHook` with no opinion on anything: override what you need."""

    def connecting(self, station: IStation) -> str | None:
        return None

    def connected(self, station: IStation) -> None:
        pass

    def session_started(self, station: IStation) -> None:
        pass

    def frame_received(self, station: IStation, text: str) -> None:
        pass

    def frame_sent(self, station: IStation, text: str) -> None:
        pass

    def call_received(
        self, station: IStation, unique_id: str, action: str, payload: Mapping[str, Any]
    ) -> Result | Error | None:
        return None

    def closed(self, station: IStation, code: int | None, reason: str | None) -> None:
        pass


EVENTS = (
    "connecting",
    "connected",
    "session_started",
    "frame_received",
    "frame_sent",
    "call_received",
    "closed",
)


@implementer(IStation)
class StationView:
    """What hooks see of one station connection; ``close`` goes through ``closer``."""

    __slots__ = ("station_id", "sid", "subprotocol", "headers", "peer", "_closer")

    def __init__(
        self,
        station_id: str,
        sid: str,
        subprotocol: str,
        headers: Mapping[str, str],
        peer: str,
        closer: Callable[[int, str], None],
    ) -> None:
        self.station_id = station_id
        self.sid = sid
        self.subprotocol = subprotocol
        self.headers = headers
        self.peer = peer
        self._closer = closer

    def close(self, reason: str, code: int = 1008) -> None:
        self._closer(code, reason)

    def __repr__(self) -> str:
        return f"<station {self.station_id} sid {self.sid}>"


class Hooks:
    """The configured hooks, each event's methods looked up once."""

    def __init__(self, hooks: Sequence[Any]) -> None:
        for hook in hooks:
            if not IStationHook.providedBy(hook):
                raise TypeError(f"{hook!r} does not provide IStationHook")
        self.hooks = tuple(hooks)
        #: per event, the hooks' methods for it: one a hook leaves out, or keeps as
        #: :class:`StationHook`'s no-op, is not called (frame events run for every frame)
        self._methods: dict[str, tuple[Callable[..., Any], ...]] = {
            event: tuple(m for h in hooks if (m := _overridden(h, event)) is not None)
            for event in EVENTS
        }

    def notify(self, event: str, station: StationView, *args: Any) -> None:
        """Tell every hook."""
        for method in self._methods[event]:
            _guarded(method, event, station, *args)

    def refusal(self, station: StationView) -> str | None:
        """The first hook's reason to refuse the station, or None."""
        for method in self._methods["connecting"]:
            reason = _guarded(method, "connecting", station)
            if reason is not None:
                return str(reason)
        return None

    def answer(
        self, station: StationView, unique_id: str, action: str, payload: Mapping[str, Any]
    ) -> Result | Error | None:
        """The first hook's answer to a CALL, or None: the backend answers."""
        for method in self._methods["call_received"]:
            answer = _guarded(method, "call_received", station, unique_id, action, payload)
            if answer is None:
                continue
            if isinstance(answer, (Result, Error)):
                return answer
            log.warn(
                "station {station_id}: hook {hook} answered {action} with {answer!r}, neither "
                "a Result nor an Error: ignored",
                station_id=station.station_id,
                sid=station.sid,
                hook=_name(method),
                action=action,
                answer=answer,
            )
        return None


def _overridden(hook: Any, event: str) -> Callable[..., Any] | None:
    """``hook``'s method for ``event``, or None when it has none or StationHook's no-op."""
    method = getattr(hook, event, None)
    if getattr(method, "__func__", None) is getattr(StationHook, event):
        return None
    return method


def _guarded(method: Callable[..., Any], event: str, station: StationView, *args: Any) -> Any:
    try:
        return method(station, *args)
    except Exception as e:
        # a warning, not an error: the station goes on as if the hook had no opinion
        log.warn(
            "station {station_id}: hook {hook} raised in {event}: {error!r} (ignored)",
            station_id=station.station_id,
            sid=station.sid,
            hook=_name(method),
            event=event,
            error=e,
            traceback=traceback.format_exc(),
        )
        return None


def _name(method: Callable[..., Any]) -> str:
    owner = getattr(method, "__self__", None)
    return type(owner).__qualname__ if owner is not None else repr(method)

# -*- test-case-name: tests.test_hooks -*-
"""Running the station hooks (``--hooks``) for the WebSocket transport: in order, each call
guarded, so that a hook that raises is logged with the station id and counts as "no opinion".
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from ocppcable.answers import Error, Result
from ocppcable.plugin import IStation, IStationHook

log = Logger()

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
        #: per event, the hooks' methods for it (a hook may leave some out)
        self._methods: dict[str, tuple[Callable[..., Any], ...]] = {
            event: tuple(m for h in hooks if (m := getattr(h, event, None)) is not None)
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

"""A simulated station's settings: configuration keys (1.6) or device-model variables (2.0.1)."""

from __future__ import annotations

from collections.abc import Mapping

from ocppcable.simulator.config import Config
from ocppcable.simulator.dialects.base import (
    ACCEPTED,
    CONNECTORS,
    HEARTBEAT,
    METER,
    REJECTED,
    UNKNOWN,
    Setting,
)


def _is_seconds(value: str) -> bool:
    """Whether a setting's value is a whole number of seconds >= 0."""
    return value.isascii() and value.isdigit()


class Settings:
    """The settings a station's dialect names; those that are the station's state (heartbeat and
    meter intervals, connectors) are read and changed here, the rest are stored strings."""

    __slots__ = ("known", "connectors", "heartbeat", "meter", "_changed")

    def __init__(self, known: Mapping[str, Setting], config: Config) -> None:
        self.known = known
        self.connectors = config.connectors
        self.heartbeat = config.heartbeat or 0  # seconds between heartbeats; 0: none
        self.meter = config.meter_interval  # seconds between meter readings; 0: none
        self._changed: dict[str, str] = {}  # settings changed by the central system

    def value(self, name: str) -> str:
        """The value of one of the known settings."""
        state = self.known[name].state
        if state == HEARTBEAT:
            return str(self.heartbeat)
        if state == METER:
            return f"{self.meter:g}"
        if state == CONNECTORS:
            return str(self.connectors)
        return self._changed.get(name, self.known[name].default)

    def change(self, name: str, value: str) -> str:
        """Change a setting; ACCEPTED, REJECTED (read-only, bad value) or UNKNOWN."""
        known = self.known.get(name)
        if known is None:
            return UNKNOWN
        if known.readonly or (known.seconds and not _is_seconds(value)):
            return REJECTED
        if known.state == HEARTBEAT:
            self.heartbeat = int(value)
        elif known.state == METER:
            self.meter = int(value)  # from the next sample on
        else:
            self._changed[name] = value
        return ACCEPTED

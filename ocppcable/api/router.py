# -*- test-case-name: tests.test_call_api -*-
"""Routing on one node: a command goes to the station's session here, or nowhere. A cluster
replaces it with one that sends the command to the node holding the station and brings the
station's answer back."""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import succeed
from zope.interface import implementer

from ocppcable.api.interfaces import IRouter
from ocppcable.commands import RemoteCommand
from ocppcable.hub import Hub


class CommandedStation(Protocol):
    """What routing needs of a connected station (the WebSocket protocol has it)."""

    def command(self, command: RemoteCommand) -> None: ...

    def command_expired(self, command: RemoteCommand) -> None: ...


@implementer(IRouter)
class LocalRouter:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def deliver(self, station_id: str, command: RemoteCommand) -> Any:
        station: Any = self.hub.station(station_id)
        if station is None:
            return succeed(False)
        station.command(command)
        return succeed(True)

    def report_expired(self, station_id: str, command: RemoteCommand) -> Any:
        station: Any = self.hub.station(station_id)
        if station is None:
            return succeed(False)
        station.command_expired(command)
        return succeed(True)

    def return_ended(self, station_id: str, ended: Any) -> Any:
        return succeed(None)  # one node: every token is ours

# -*- test-case-name: tests.test_call_cluster -*-
"""Routing across the cluster: a command for a station connected to another node goes to that
node over the cluster transport (``--pubsub``: Redis pub/sub, NATS or a plugin's), and the
station's answer comes back the same way.

Every node listens on its own channel, ``__ocppcable_calls__:<node>`` (the node as presence
names it). Node A, asked for a station that presence places on node B, publishes
``deliver`` (or ``expire``) on B's channel; B hands the command to the station's session and
answers ``taken`` with whether the station was still there (A counts the round trip in
``ocppcable_api_route_duration_seconds``). The command's token names A (``<n>@A``): when the
session ends it, B's call service sees a token not its own and publishes ``ended`` on A's
channel, which A's call service takes as if the station were connected to A.

A node that does not answer within :data:`ROUTE_TIMEOUT` counts as not holding the station.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from ocppcable.api.interfaces import IPresence, IRouter
from ocppcable.cluster.interface import ICluster
from ocppcable.commands import CommandEnded, Ending, ICallTracker, RemoteCommand
from ocppcable.hub import Hub
from ocppcable.metrics import IMetrics

log = Logger()

CHANNEL = "__ocppcable_calls__:"

#: seconds a node has to confirm that it took a routed command
ROUTE_TIMEOUT = 5.0


def channel(node: str) -> str:
    return CHANNEL + node


def _command(fields: dict[str, Any]) -> RemoteCommand:
    token, source = fields.get("token"), fields.get("source")
    return RemoteCommand(
        str(fields["unique_id"]),
        str(fields["action"]),
        fields["payload"],
        token=None if token is None else str(token),
        source=None if source is None else str(source),
        ttl=float(fields.get("ttl") or 0.0),
    )


def _fields(command: RemoteCommand) -> dict[str, Any]:
    fields = asdict(command)
    del fields["text"]
    return fields


@implementer(IRouter)
class ClusterRouter:
    """Hands commands to this node's sessions, or through the cluster to the node holding the
    station. ``tracker`` (the call service) hears of ends routed back here."""

    def __init__(
        self,
        reactor: Any,
        hub: Hub,
        presence: IPresence,
        node: str,
        cluster: ICluster,
        metrics: IMetrics,
    ) -> None:
        self.reactor = reactor
        self.hub = hub
        self.presence = presence
        self.node = node
        self.cluster = cluster
        self.metrics = metrics
        self.tracker: ICallTracker | None = None
        self._requests = itertools.count(1)
        #: request number → (the Deferred waiting for ``taken``, when it was sent)
        self._pending: dict[int, tuple[Deferred[bool], float]] = {}
        cluster.subscribe(channel(node), self.received)

    # --- IRouter ----------------------------------------------------------------------------

    def deliver(self, station_id: str, command: RemoteCommand) -> Any:
        return self._route("deliver", station_id, command)

    def report_expired(self, station_id: str, command: RemoteCommand) -> Any:
        return self._route("expire", station_id, command)

    def return_ended(self, station_id: str, ended: CommandEnded) -> Any:
        node = (ended.command.token or "").rpartition("@")[2]
        message = {
            "kind": "ended",
            "station": station_id,
            "command": _fields(ended.command),
            "ending": str(ended.ending),
            "payload": ended.payload,
            "code": ended.code,
            "description": ended.description,
        }
        d = self._publish(node, message)
        return d.addErrback(
            lambda f: log.warn(
                "could not return the end of {action} {unique_id} of station {station_id} to "
                "node {node}: {reason}",
                action=ended.command.action,
                unique_id=ended.command.unique_id,
                station_id=station_id,
                node=node,
                reason=f.getErrorMessage(),
            )
        )

    async def _route(self, kind: str, station_id: str, command: RemoteCommand) -> bool:
        if self._take(kind, station_id, command):
            return True
        info = await self.presence.lookup(station_id)
        if info is None or info.node == self.node:
            return False
        number = next(self._requests)
        taken: Deferred[bool] = Deferred()
        self._pending[number] = (taken, self.reactor.seconds())
        message = {
            "kind": kind,
            "from": self.node,
            "request": number,
            "station": station_id,
            "command": _fields(command),
        }
        taken.addTimeout(ROUTE_TIMEOUT, self.reactor, lambda *_: False)
        try:
            await self._publish(info.node, message)
        except Exception as e:
            log.warn(
                "could not route {action} for station {station_id} to node {node}: {reason}",
                action=command.action,
                station_id=station_id,
                node=info.node,
                reason=str(e),
            )
            self._pending.pop(number, None)
            return False
        try:
            return await taken
        finally:
            self._pending.pop(number, None)

    def _take(self, kind: str, station_id: str, command: RemoteCommand) -> bool:
        """Hand ``command`` to the station's session here; False when it is not here."""
        station: Any = self.hub.station(station_id)
        if station is None:
            return False
        if kind == "deliver":
            station.command(command)
        else:
            station.command_expired(command)
        return True

    def _publish(self, node: str, message: dict[str, Any]) -> Deferred[Any]:
        if not node:
            return succeed(None)
        return self.cluster.publish(channel(node), json.dumps(message))

    # --- what other nodes send ----------------------------------------------------------------

    def received(self, text: str | bytes) -> None:
        try:
            message = json.loads(text)
            kind = message["kind"]
            if kind in ("deliver", "expire"):
                sender, request = str(message["from"]), message["request"]
                taken = self._take(kind, message["station"], _command(message["command"]))
                reply = {"kind": "taken", "request": request, "taken": taken}
                self._publish(sender, reply).addErrback(
                    lambda f: log.info(
                        "could not confirm a routed command: {reason}", reason=f.getErrorMessage()
                    )
                )
            elif kind == "taken":
                pending = self._pending.pop(message["request"], None)
                if pending is not None and not pending[0].called:
                    self.metrics.api_route(self.reactor.seconds() - pending[1])
                    pending[0].callback(bool(message["taken"]))
            elif kind == "ended" and self.tracker is not None:
                ended = CommandEnded(
                    _command(message["command"]),
                    Ending(message["ending"]),
                    message.get("payload"),
                    message.get("code"),
                    message.get("description") or "",
                )
                self.tracker.ended(message["station"], ended)
        except (TypeError, ValueError, KeyError) as e:
            log.warn("dropped a malformed routed call message ({reason})", reason=str(e))

"""The call service with fake presence and routing and a fake clock: no sockets."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import ensureDeferred, succeed
from twisted.internet.task import Clock
from zope.interface import implementer
from zope.interface.verify import verifyObject

from ocppcable.api.calls import CallService
from ocppcable.api.interfaces import IPresence, IRouter, StationInfo
from ocppcable.api.models import CallRequest, Limits, Outcome
from ocppcable.api.queue import MemoryQueue
from ocppcable.api.streams import StreamMemory
from ocppcable.commands import CommandEnded, Ending, ICallTracker, RemoteCommand
from ocppcable.ocpp import v16


@implementer(IPresence, IRouter)
class FakeStations:
    """Presence and routing over a set of connected station ids, recording deliveries."""

    def __init__(self) -> None:
        self.connected: set[str] = set()
        self.delivered: list[tuple[str, RemoteCommand]] = []
        self.expired: list[tuple[str, RemoteCommand]] = []
        self.returned: list[tuple[str, CommandEnded]] = []

    def lookup(self, station_id: str) -> Any:
        if station_id not in self.connected:
            return succeed(None)
        return succeed(StationInfo(station_id, "ocpp1.6", "n1", "t", None, None))

    def page(self, after: str | None, limit: int) -> Any:
        return succeed([])

    def deliver(self, station_id: str, command: RemoteCommand) -> Any:
        if station_id not in self.connected:
            return succeed(False)
        self.delivered.append((station_id, command))
        return succeed(True)

    def report_expired(self, station_id: str, command: RemoteCommand) -> Any:
        self.expired.append((station_id, command))
        return succeed(station_id in self.connected)

    def started(self, station_id: str) -> None:
        pass

    def return_ended(self, station_id: str, ended: CommandEnded) -> Any:
        self.returned.append((station_id, ended))
        return succeed(None)


def service() -> tuple[CallService, FakeStations, Clock]:
    clock = Clock()
    stations = FakeStations()
    limits = Limits()
    queue = MemoryQueue(clock.seconds, limits.max_queue, limits.max_queued)
    calls = CallService(clock, stations, stations, queue, {"ocpp1.6": v16.CATALOG}, {}, limits)
    return calls, stations, clock


RESET = CallRequest("Reset", {"type": "Soft"}, wait=10, ttl=60)


def test_it_is_a_call_tracker():
    calls, stations, _ = service()
    assert verifyObject(ICallTracker, calls)
    assert verifyObject(IPresence, stations) and verifyObject(IRouter, stations)


def test_tokens_name_the_node_and_another_nodes_command_ends_there():
    calls, stations, _ = service()
    stations.connected.add("CP-1")
    answer = ensureDeferred(calls.call("CP-1", RESET))
    [(_, command)] = stations.delivered
    assert command.token is not None and command.token.endswith("@local")
    routed = RemoteCommand("u-9", "Reset", {}, token="7@other-node", source="api")
    calls.ended("CP-1", CommandEnded(routed, Ending.RESULT, {"status": "Accepted"}))
    assert [(s, e.command.token) for s, e in stations.returned] == [("CP-1", "7@other-node")]
    assert not answer.called


def test_a_late_answer_after_the_wait_does_not_reach_the_request():
    calls, stations, clock = service()
    stations.connected.add("CP-1")
    answer = ensureDeferred(calls.call("CP-1", RESET))
    clock.advance(10)
    assert answer.result.outcome is Outcome.TIMEOUT
    assert calls.waiting == 0
    [(_, command)] = stations.delivered
    calls.ended("CP-1", CommandEnded(command, Ending.RESULT, {"status": "Accepted"}))
    assert calls._tracks == {}


def test_a_command_not_sent_before_the_station_left_is_queued_for_its_next_session():
    calls, stations, clock = service()
    stations.connected.add("CP-1")
    answer = ensureDeferred(calls.call("CP-1", RESET))
    [(_, command)] = stations.delivered
    stations.connected.clear()
    calls.ended("CP-1", CommandEnded(command, Ending.UNSENT))
    assert answer.result.outcome is Outcome.QUEUED
    assert calls.queue.depth() == 1
    stations.connected.add("CP-1")
    calls.started("CP-1")
    assert stations.delivered[-1][1].unique_id == command.unique_id


def test_a_broadcast_with_a_ttl_left_unsent_is_queued():
    calls, stations, _ = service()
    command = RemoteCommand("b-1", "ClearCache", {}, ttl=30.0)
    calls.ended("CP-1", CommandEnded(command, Ending.UNSENT))
    assert calls.queue.depth() == 1
    stations.connected.add("CP-1")
    calls.started("CP-1")
    [(_, delivered)] = stations.delivered
    assert (delivered.unique_id, delivered.token is not None) == ("b-1", True)


def test_queued_commands_go_one_at_a_time():
    calls, stations, _ = service()
    for _ in range(2):
        assert ensureDeferred(calls.call("CP-1", RESET)).result.outcome is Outcome.QUEUED
    stations.connected.add("CP-1")
    calls.started("CP-1")
    calls.started("CP-1")  # a second start while the first command is out changes nothing
    assert len(stations.delivered) == 1
    calls.ended("CP-1", CommandEnded(stations.delivered[0][1], Ending.RESULT, {}))
    assert len(stations.delivered) == 2
    calls.ended("CP-1", CommandEnded(stations.delivered[1][1], Ending.ERROR, {}, "X"))
    assert calls.queue.depth() == 0


def test_a_queued_command_whose_station_left_before_it_was_sent_stays_first():
    calls, stations, _ = service()
    ensureDeferred(calls.call("CP-1", RESET))
    stations.connected.add("CP-1")
    calls.started("CP-1")
    [(_, command)] = stations.delivered
    calls.ended("CP-1", CommandEnded(command, Ending.UNSENT))
    assert calls.queue.depth() == 1
    calls.started("CP-1")
    assert stations.delivered[-1][1].unique_id == command.unique_id


def test_an_expiry_is_reported_at_once_to_a_connected_station():
    calls, stations, clock = service()
    calls.startService()
    try:
        ensureDeferred(calls.call("CP-1", CallRequest("Reset", {"type": "Soft"}, ttl=5)))
        ensureDeferred(calls.call("CP-1", CallRequest("Reset", {"type": "Hard"}, ttl=60)))
        stations.connected.add("CP-1")
        calls.started("CP-1")  # the first is out...
        clock.advance(6)  # ...so it does not expire; nothing else did
        assert stations.expired == []
        calls.ended("CP-1", CommandEnded(stations.delivered[0][1], Ending.RESULT, {}))
        assert [c.payload for _, c in stations.delivered] == [{"type": "Soft"}, {"type": "Hard"}]
    finally:
        calls.stopService()


def test_an_expiry_while_offline_is_reported_when_the_station_starts():
    calls, stations, clock = service()
    calls.startService()
    try:
        ensureDeferred(calls.call("CP-1", CallRequest("Reset", {"type": "Soft"}, ttl=5)))
        clock.advance(6)
        assert calls.queue.depth() == 0 and stations.expired == []
        stations.connected.add("CP-1")
        calls.started("CP-1")
        [(_, command)] = stations.expired
        assert command.action == "Reset" and stations.delivered == []
    finally:
        calls.stopService()


def test_stream_memory_is_bounded():
    memory = StreamMemory(max_streams=2, max_stations=2)
    memory.remember("CP-1", ["s1", "s2"])
    memory.remember("CP-2", ["s1"])
    memory.remember("CP-3", ["s1"])
    assert memory.stations("s1") == ["CP-2", "CP-3"]
    memory.remember("CP-4", ["s3"])  # s2 was used least recently
    assert memory.stations("s2") == [] and len(memory) == 2


def test_a_broadcast_with_a_ttl_to_the_stream_of_an_offline_station_is_queued_once():
    calls, stations, _ = service()
    calls.gone("CP-1", ["ocpp:ev/CP-1"])
    data = json.dumps({"command": "Reset", "id": "b-1", "payload": {"type": "Soft"}, "ttl": 60})
    calls.undelivered("ocpp:ev/CP-1", data)
    calls.undelivered("ocpp:ev/CP-1", data)  # relayed twice: the id is its key
    calls.undelivered("ocpp:ev/CP-9", data)  # nobody streamed from it here
    calls.undelivered("ocpp:ev/CP-1", json.dumps({"command": "Reset", "id": "b-2"}))  # no ttl
    calls.undelivered("ocpp:ev/CP-1", json.dumps({"command": "Ack", "id": "x", "ttl": 5}))
    assert calls.queue.depth() == 1
    stations.connected.add("CP-1")
    calls.started("CP-1")
    [(_, command)] = stations.delivered
    assert (command.unique_id, command.payload, command.source) == ("b-1", {"type": "Soft"}, None)


def test_a_refused_call_does_not_keep_its_key():
    calls, stations, _ = service()
    calls.queue.queues.per_station = 1
    first = CallRequest("Reset", {"type": "Soft"}, ttl=60, key="k1")
    second = CallRequest("Reset", {"type": "Hard"}, ttl=60, key="k2")
    assert ensureDeferred(calls.call("CP-1", first)).result.outcome is Outcome.QUEUED
    assert ensureDeferred(calls.call("CP-1", second)).result.outcome is Outcome.REFUSED
    # the same key again is refused again, not taken for a call already made
    assert ensureDeferred(calls.call("CP-1", second)).result.outcome is Outcome.REFUSED


def test_a_command_the_session_refused_does_not_keep_its_key():
    calls, stations, _ = service()
    stations.connected.add("CP-1")
    request = CallRequest("Reset", {"type": "Soft"}, wait=0, ttl=60, key="k")
    assert ensureDeferred(calls.call("CP-1", request)).result.outcome is Outcome.SENT
    [(_, command)] = stations.delivered
    calls.ended("CP-1", CommandEnded(command, Ending.INVALID, None, "TooLarge", "too big"))
    assert ensureDeferred(calls.call("CP-1", request)).result.outcome is Outcome.SENT
    assert len(stations.delivered) == 2

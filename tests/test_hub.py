"""The hub: station registry, stream membership and broadcast delivery, with fake stations."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ocppcable.hub import Hub
from ocppcable.publication import MalformedPublication

RESET = {"command": "Reset", "payload": {"type": "Soft"}}


class FakeStation:
    def __init__(self, station_id: str, identifiers: str = "") -> None:
        self.station_id = station_id
        self.identifiers = identifiers or f'{{"id":"{station_id}"}}'
        self.delivered: list[dict[str, Any]] = []
        self.replaced = 0
        self.disconnects: list[bool] = []

    def deliver(self, message: dict[str, Any]) -> None:
        self.delivered.append(message)

    def replace(self) -> None:
        self.replaced += 1

    def disconnect(self, reconnect: bool) -> None:
        self.disconnects.append(reconnect)

    def __repr__(self) -> str:
        return f"FakeStation({self.station_id!r})"


def publication(stream: str, data: Any) -> str:
    return json.dumps({"stream": stream, "data": data})


# --- registry --------------------------------------------------------------------------------


def test_register_and_lookup() -> None:
    hub = Hub()
    a, b = FakeStation("A"), FakeStation("B")
    hub.register(a)
    hub.register(b)
    assert len(hub) == 2
    assert hub.station("A") is a and hub.station("B") is b
    assert hub.station("C") is None
    assert a.replaced == b.replaced == 0


def test_second_connection_replaces_the_first() -> None:
    hub = Hub()
    old, new = FakeStation("A"), FakeStation("A")
    hub.register(old)
    hub.register(new)
    assert old.replaced == 1 and new.replaced == 0
    assert hub.station("A") is new
    assert len(hub) == 1


def test_registering_the_same_station_twice_does_not_replace_it() -> None:
    hub = Hub()
    a = FakeStation("A")
    hub.register(a)
    hub.register(a)
    assert a.replaced == 0
    assert hub.station("A") is a


def test_unregister() -> None:
    hub = Hub()
    a = FakeStation("A")
    hub.register(a)
    hub.unregister(a)
    assert hub.station("A") is None
    assert len(hub) == 0
    hub.unregister(a)  # twice is harmless
    assert len(hub) == 0


def test_unregistering_a_replaced_station_keeps_its_successor() -> None:
    hub = Hub()
    old, new = FakeStation("A"), FakeStation("A")
    hub.register(old)
    hub.register(new)
    hub.unregister(old)  # the old socket's close arrives after the new registration
    assert hub.station("A") is new


def test_unregistering_an_unknown_station() -> None:
    hub = Hub()
    hub.unregister(FakeStation("nobody"))
    assert len(hub) == 0


def test_unregister_watchers_hear_of_the_current_connection_only() -> None:
    hub = Hub()
    gone: list[str] = []
    hub.on_unregister(gone.append)
    old, new = FakeStation("A"), FakeStation("A")
    hub.register(old)
    hub.register(new)
    hub.unregister(old)  # replaced: the station is still here
    assert gone == []
    hub.unregister(new)
    hub.unregister(new)
    assert gone == ["A"]


# --- streams -------------------------------------------------------------------------------------


def test_join_and_leave() -> None:
    hub = Hub()
    a, b = FakeStation("A"), FakeStation("B")
    hub.join("s1", a)
    hub.join("s1", b)
    hub.join("s2", a)
    hub.join("s1", a)  # idempotent
    assert sorted(hub.streams()) == ["s1", "s2"]
    hub.leave("s1", a)
    assert sorted(hub.streams()) == ["s1", "s2"]
    hub.leave("s1", b)
    assert hub.streams() == ["s2"]  # an empty stream is forgotten
    hub.leave("s2", a)
    assert hub.streams() == []


def test_leave_unknown_stream_or_member() -> None:
    hub = Hub()
    a, b = FakeStation("A"), FakeStation("B")
    hub.leave("nowhere", a)
    hub.join("s", a)
    hub.leave("s", b)
    assert hub.streams() == ["s"]


# --- publish -----------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [json.dumps(RESET), RESET])
def test_publish_delivers_to_every_member(data: Any) -> None:
    hub = Hub()
    a, b, c = FakeStation("A"), FakeStation("B"), FakeStation("C")
    hub.join("s", a)
    hub.join("s", b)
    hub.join("other", c)
    assert hub.publish("s", data) == 2
    assert a.delivered == [RESET] and b.delivered == [RESET]
    assert c.delivered == []


def test_publish_decodes_once_for_all_members() -> None:
    hub = Hub()
    stations = [FakeStation(f"S{i}") for i in range(5)]
    for station in stations:
        hub.join("s", station)
    hub.publish("s", json.dumps(RESET))
    first = stations[0].delivered[0]
    assert all(station.delivered[0] is first for station in stations)


def test_publish_to_a_stream_nobody_joined() -> None:
    hub = Hub()
    assert hub.publish("nobody", json.dumps(RESET)) == 0
    assert hub.publish("nobody", "not even json") == 0


@pytest.mark.parametrize("data", ["not json", "[]", '{"payload":{}}', '{"command":""}', 42, None])
def test_publish_drops_malformed_data(data: Any, warnings: list[str]) -> None:
    hub = Hub()
    a = FakeStation("A")
    hub.join("s", a)
    assert hub.publish("s", data, "test") == 0
    assert a.delivered == []
    assert len(warnings) == 1
    assert "malformed broadcast to s from test" in warnings[0]


def test_a_member_leaving_during_delivery_does_not_break_it() -> None:
    hub = Hub()

    class Leaver(FakeStation):
        def deliver(self, message: dict[str, Any]) -> None:
            super().deliver(message)
            hub.leave("s", self)

    stations = [Leaver("A"), Leaver("B"), FakeStation("C")]
    for station in stations:
        hub.join("s", station)
    assert hub.publish("s", RESET) == 3
    assert all(station.delivered == [RESET] for station in stations)


# --- remote disconnect ---------------------------------------------------------------------------


def test_remote_disconnect_by_identifiers() -> None:
    hub = Hub()
    a = FakeStation("A", identifiers='{"user":"u1"}')
    b = FakeStation("B", identifiers='{"user":"u2"}')
    c = FakeStation("C", identifiers='{"user":"u1"}')
    for station in (a, b, c):
        hub.register(station)
    assert hub.remote_disconnect('{"user":"u1"}', False) == 2
    assert a.disconnects == [False] and c.disconnects == [False]
    assert b.disconnects == []
    assert hub.remote_disconnect('{"user":"u9"}', True) == 0


def test_remote_disconnect_never_matches_stations_without_identifiers() -> None:
    """Issue 13: a station whose Connect has not succeeded has the identifiers "" and must not
    be closed by a remote disconnect (with "" or any other identifier)."""
    hub = Hub()
    waiting = FakeStation("W")
    waiting.identifiers = ""
    hub.register(waiting)
    assert hub.remote_disconnect("", True) == 0
    assert waiting.disconnects == []


# --- dispatch ------------------------------------------------------------------------------------


def test_dispatch_single_publication() -> None:
    hub = Hub()
    a = FakeStation("A")
    hub.join("s", a)
    assert hub.dispatch(publication("s", json.dumps(RESET)), "redis") == 1
    assert a.delivered == [RESET]


def test_dispatch_batch_and_bytes() -> None:
    hub = Hub()
    a, b = FakeStation("A"), FakeStation("B")
    hub.join("s1", a)
    hub.join("s2", b)
    hub.join("s2", a)
    body = json.dumps(
        [
            {"stream": "s1", "data": json.dumps({"command": "Reset", "id": "1"})},
            {"stream": "s2", "data": json.dumps({"command": "ClearCache", "id": "2"})},
            {"stream": "none", "data": json.dumps({"command": "Reset"})},
        ]
    ).encode("utf-8")
    assert hub.dispatch(body, "http") == 3
    assert [m["id"] for m in a.delivered] == ["1", "2"]
    assert [m["id"] for m in b.delivered] == ["2"]


def test_dispatch_remote_disconnect() -> None:
    hub = Hub()
    a = FakeStation("A", identifiers="ident")
    hub.register(a)
    body = json.dumps(
        {"command": "disconnect", "payload": {"identifier": "ident", "reconnect": True}}
    )
    assert hub.dispatch(body, "redis") == 1
    assert a.disconnects == [True]


@pytest.mark.parametrize("body", ["not json", "{}", "[]", '{"stream":"s"}', "[1, 2]"])
def test_dispatch_raises_for_a_body_that_is_not_a_publication(body: str) -> None:
    hub = Hub()
    a = FakeStation("A")
    hub.join("s", a)
    with pytest.raises(MalformedPublication):
        hub.dispatch(body, "http")
    assert a.delivered == []


def test_dispatch_skips_bad_items_of_a_batch(warnings: list[str]) -> None:
    """One bad item must not cost the other stations their messages (docs/contract.md, "Bad input")."""
    hub = Hub()
    a, b = FakeStation("A"), FakeStation("B")
    hub.join("s1", a)
    hub.join("s2", b)
    body = json.dumps(
        [
            {"stream": "s1", "data": json.dumps(RESET)},
            {"no": "stream"},
            {"stream": "s2", "data": json.dumps(RESET)},
        ]
    )
    assert hub.dispatch(body, "redis") == 2
    assert a.delivered == [RESET] and b.delivered == [RESET]
    assert len(warnings) == 1 and "from redis" in warnings[0]


def test_dispatch_drops_malformed_data_but_delivers_the_rest(warnings: list[str]) -> None:
    hub = Hub()
    a, b = FakeStation("A"), FakeStation("B")
    hub.join("s1", a)
    hub.join("s2", b)
    body = json.dumps(
        [{"stream": "s1", "data": "not json"}, {"stream": "s2", "data": json.dumps(RESET)}]
    )
    assert hub.dispatch(body, "redis") == 1
    assert a.delivered == [] and b.delivered == [RESET]
    assert len(warnings) == 1


def test_watchers_hear_of_a_stream_s_first_and_last_station() -> None:
    hub = Hub()
    events: list[tuple[str, str]] = []
    hub.watch(lambda s: events.append(("added", s)), lambda s: events.append(("removed", s)))
    a, b = FakeStation("A"), FakeStation("B")
    hub.join("s", a)
    hub.join("s", b)
    hub.join("t", a)
    assert events == [("added", "s"), ("added", "t")]
    hub.leave("s", a)
    hub.leave("u", a)  # never joined: nothing to say
    assert events == [("added", "s"), ("added", "t")]
    hub.leave("s", b)
    hub.leave("s", b)
    assert events == [("added", "s"), ("added", "t"), ("removed", "s")]
    assert hub.streams() == ["t"]


# --- big batches (issue 12 item 7) -------------------------------------------------------------


def test_a_big_batch_is_delivered_in_slices_and_in_order() -> None:
    from twisted.internet.task import Cooperator

    from ocppcable.hub import DELIVERY_SLICE

    turns: list[Any] = []
    # one step per reactor turn, the turns run by hand
    hub = Hub(
        cooperator=Cooperator(
            scheduler=turns.append, terminationPredicateFactory=lambda: lambda: True
        )
    )
    station = FakeStation("A")
    hub.join("s", station)
    size = 2 * DELIVERY_SLICE + 10
    batch = json.dumps([{"stream": "s", "data": json.dumps(RESET | {"n": i})} for i in range(size)])

    assert hub.dispatch(batch, "http") == 0  # nothing delivered in the dispatching turn
    assert hub.dispatch(publication("s", json.dumps(RESET | {"n": "after"})), "http") == 0
    delivered = [len(station.delivered)]
    while turns:
        turns.pop(0)()
        delivered.append(len(station.delivered))
    assert delivered[:4] == [0, DELIVERY_SLICE, 2 * DELIVERY_SLICE, size]
    assert [m["n"] for m in station.delivered] == [*range(size), "after"]
    # with the backlog gone, a small broadcast is delivered at once again
    assert hub.dispatch(publication("s", json.dumps(RESET)), "http") == 1

"""The in-memory queue of commands for offline stations, driven by a fake clock."""

from __future__ import annotations

from zope.interface.verify import verifyObject

from ocppcable.api.interfaces import Duplicate, ICommandQueue
from ocppcable.api.queue import NOTICE_RETENTION, MemoryQueue, StationQueues
from ocppcable.metrics import PrometheusMetrics
from tests.support import Clock, entry


def queues(per_station: int = 3, total: int = 10) -> tuple[StationQueues, Clock]:
    clock = Clock()
    return StationQueues(clock, per_station, total), clock


def test_commands_come_in_order_one_at_a_time():
    q, _ = queues()
    for uid in ("a", "b"):
        assert q.put(entry(uid))
    assert q.take("CP-1").command.unique_id == "a"
    assert q.take("CP-1") is None  # "a" is outstanding
    q.done("CP-1", "a")
    assert q.take("CP-1").command.unique_id == "b"
    q.done("CP-1", "b")
    assert q.take("CP-1") is None and len(q) == 0


def test_a_released_command_is_the_head_again():
    q, _ = queues()
    q.put(entry("a"))
    q.take("CP-1")
    q.release("CP-1", "a")
    assert q.take("CP-1").command.unique_id == "a"


def test_stations_are_separate():
    q, _ = queues()
    q.put(entry("a", station="CP-1"))
    q.put(entry("b", station="CP-2"))
    assert q.take("CP-2").command.unique_id == "b"
    assert q.take("CP-1").command.unique_id == "a"
    assert q.take("CP-3") is None


def test_expired_commands_become_notices_reported_once():
    q, clock = queues()
    q.put(entry("a", expires_at=1010))
    q.put(entry("b", expires_at=1100))
    clock.now = 1050
    assert [e.command.unique_id for e in q.sweep()] == ["a"]
    assert len(q) == 1
    assert [e.command.unique_id for e in q.expired("CP-1")] == ["a"]
    assert q.expired("CP-1") == []
    assert q.take("CP-1").command.unique_id == "b"


def test_a_taken_command_does_not_expire():
    q, clock = queues()
    q.put(entry("a", expires_at=1010))
    q.take("CP-1")
    clock.now = 2000
    assert q.sweep() == []
    q.done("CP-1", "a")
    assert len(q) == 0


def test_take_skips_what_expired_since_the_last_sweep():
    q, clock = queues()
    q.put(entry("a", expires_at=1010))
    q.put(entry("b"))
    clock.now = 1020
    assert q.take("CP-1").command.unique_id == "b"
    assert [e.command.unique_id for e in q.expired("CP-1")] == ["a"]


def test_notices_are_kept_for_a_day_at_most():
    q, clock = queues()
    q.put(entry("a", expires_at=1010))
    clock.now = 1020
    q.sweep()
    clock.now = 1020 + NOTICE_RETENTION
    q.sweep()
    assert q.expired("CP-1") == []


def test_bounds_per_station_and_in_total():
    q, _ = queues(per_station=2, total=3)
    assert [q.put(entry(u)) for u in "abc"] == [True, True, False]
    assert q.put(entry("d", station="CP-2"))
    assert not q.put(entry("e", station="CP-3"))  # 3 in total
    assert len(q) == 3


def test_a_notice_makes_room_for_a_command():
    q, clock = queues(per_station=2)
    q.put(entry("a", expires_at=1010))
    q.put(entry("b"))
    clock.now = 1020
    q.sweep()
    assert q.put(entry("c"))  # the notice of "a" gives way
    assert q.expired("CP-1") == []


def test_a_key_is_claimed_once_within_its_ttl():
    q, clock = queues()
    assert q.claim("CP-1", "k", "a", 60) is None
    q.put(entry("a"))
    assert q.claim("CP-1", "k", "b", 60) == Duplicate("a", queued=True)
    assert q.claim("CP-2", "k", "c", 60) is None  # keys are per station
    q.take("CP-1")
    q.done("CP-1", "a")
    assert q.claim("CP-1", "k", "b", 60) == Duplicate("a", queued=False)
    clock.now += 61
    assert q.claim("CP-1", "k", "d", 60) is None


def test_keys_are_bounded():
    q, _ = queues(total=2)
    for n in range(3):
        assert q.claim("CP-1", f"k{n}", f"u{n}", 60) is None
    # the oldest claim gave way
    assert q.claim("CP-1", "k0", "x", 60) is None
    assert q.claim("CP-1", "k2", "y", 60) == Duplicate("u2", queued=False)


def test_memory_queue_is_an_icommandqueue_counting_expiries():
    clock = Clock()
    metrics = PrometheusMetrics()
    queue = MemoryQueue(clock, 3, 10, metrics)
    assert verifyObject(ICommandQueue, queue)
    assert queue.put(entry("a", expires_at=1010)).result is True
    assert queue.depth() == 1
    clock.now = 1020
    assert len(queue.sweep().result) == 1
    assert b"ocppcable_api_queue_expired_total 1.0" in metrics.exposition()


def test_a_sweep_passes_over_the_queues_only_when_something_is_due():
    q, clock = queues()
    q.put(entry("b", expires_at=1100))
    clock.now = 1050
    q._stations["CP-1"].live.append(entry("c", expires_at=1000))  # unseen by put: not due
    assert q.sweep() == []
    clock.now = 1100
    assert [e.command.unique_id for e in q.sweep()] == ["b", "c"]


def test_a_released_command_is_due_again():
    q, clock = queues()
    q.put(entry("a", expires_at=1010))
    q.take("CP-1")
    clock.now = 1050
    assert q.sweep() == []  # taken: it does not expire
    q.release("CP-1", "a")
    assert [e.command.unique_id for e in q.sweep()] == ["a"]

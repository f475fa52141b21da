"""The queue in Redis (a private redis-server), driven by a fake clock: the same rules as the
in-memory queue, across any number of nodes."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from zope.interface.verify import verifyObject

from ocppcable.api.interfaces import Duplicate, ICommandQueue
from ocppcable.api.redis_queue import LEASE, PREFIX, SWEEP_BATCH, RedisQueue
from ocppcable.metrics import PrometheusMetrics
from tests.support import Clock, entry, wait_for


@pytest.fixture
def store(redis_server, reactor):
    from ocppcable.api.redis_store import RedisStore
    from ocppcable.redis_connection import RedisLink

    redis_server.command("FLUSHDB")
    store = RedisStore(reactor, RedisLink(reactor, redis_server.url))
    store.startService()
    yield store
    store.stopService()


async def queue(store: Any, reactor: Any, per_station: int = 3, total: int = 10) -> Any:
    await wait_for(lambda: store.connected, reactor)
    clock = Clock()
    metrics = PrometheusMetrics()
    return RedisQueue(clock, store, per_station, total, metrics), clock, metrics


@pytest_twisted.ensureDeferred
async def test_commands_come_in_order_one_at_a_time_and_a_release_is_the_head_again(store, reactor):
    q, _, _ = await queue(store, reactor)
    assert verifyObject(ICommandQueue, q)
    for uid in ("a", "b"):
        assert await q.put(entry(uid))
    assert (await q.take("CP-1")).command.unique_id == "a"
    assert await q.take("CP-1") is None  # "a" is outstanding
    await q.release("CP-1", "a")
    assert (await q.take("CP-1")).command.unique_id == "a"
    await q.done("CP-1", "a")
    taken = await q.take("CP-1")
    assert (taken.command.unique_id, taken.command.action, taken.expires_at) == (
        "b",
        "ClearCache",
        2000.0,
    )
    await q.done("CP-1", "b")
    assert await q.take("CP-1") is None
    assert await q.take("CP-2") is None


@pytest_twisted.ensureDeferred
async def test_the_taken_head_has_a_lease(store, redis_server, reactor):
    q, _, _ = await queue(store, reactor)
    await q.put(entry("a"))
    await q.take("CP-1")
    ttl = redis_server.command("PTTL", PREFIX + "taken:CP-1")
    assert 0 < ttl <= LEASE * 1000


@pytest_twisted.ensureDeferred
async def test_expired_commands_are_swept_and_reported_once_the_taken_one_never(store, reactor):
    q, clock, metrics = await queue(store, reactor)
    await q.put(entry("a", expires_at=1500))
    await q.put(entry("b", expires_at=1500))
    await q.put(entry("c", expires_at=1800))
    assert (await q.take("CP-1")).command.unique_id == "a"
    assert await q.sweep() == [] and q.depth() == 3  # nothing due yet
    clock.now = 1600
    assert [e.command.unique_id for e in await q.sweep()] == ["b"]  # "a" is taken
    assert q.depth() == 2
    assert [e.command.unique_id for e in await q.expired("CP-1")] == ["b"]
    assert await q.expired("CP-1") == []  # reported once
    await q.done("CP-1", "a")
    clock.now = 1900
    assert await q.take("CP-1") is None  # "c" expired on the way
    assert [e.command.unique_id for e in await q.expired("CP-1")] == ["c"]
    await q.sweep()
    assert q.depth() == 0
    assert "ocppcable_api_queue_expired_total 2.0" in metrics.exposition().decode()


@pytest_twisted.ensureDeferred
async def test_bounds_per_station_and_in_total(store, reactor):
    q, _, _ = await queue(store, reactor, per_station=2, total=3)
    assert await q.put(entry("a"))
    assert await q.put(entry("b"))
    assert not await q.put(entry("c"))  # the station's queue is full
    assert await q.put(entry("d", station="CP-2"))
    assert not await q.put(entry("e", station="CP-3"))  # all queues together are full


@pytest_twisted.ensureDeferred
async def test_a_key_is_claimed_once_within_its_ttl_on_any_node(store, reactor):
    q, _, _ = await queue(store, reactor)
    other, _, _ = await queue(store, reactor)  # another node on the same Redis
    assert await q.claim("CP-1", "k", "a", 60) is None
    await q.put(entry("a"))
    assert await other.claim("CP-1", "k", "b", 60) == Duplicate("a", True)
    assert await other.claim("CP-2", "k", "b", 60) is None  # keys are per station
    await q.take("CP-1")
    await q.done("CP-1", "a")
    assert await other.claim("CP-1", "k", "b", 60) == Duplicate("a", False)  # sent
    await q.unclaim("CP-1", "k")
    assert await other.claim("CP-1", "k", "b", 60) is None


@pytest_twisted.ensureDeferred
async def test_a_sweep_takes_a_bounded_batch_of_stations(store, reactor):
    q, clock, _ = await queue(store, reactor, total=SWEEP_BATCH + 10)
    for n in range(SWEEP_BATCH + 5):
        await q.put(entry(f"u{n}", expires_at=1500, station=f"CP-{n}"))
    clock.now = 1600
    assert len(await q.sweep()) == SWEEP_BATCH
    assert len(await q.sweep()) == 5
    assert q.depth() == 0

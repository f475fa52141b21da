# -*- test-case-name: tests.test_call_cluster -*-
"""The queue of commands for offline stations in Redis: shared by every node, kept across a
restart of all of them (docs/call-api.md, "The queue in Redis").

Keys under :data:`PREFIX` (``<s>`` is a station id):

- ``q:<s>``, a list: the station's commands in order, each a JSON entry with its expiry;
- ``taken:<s>``: the unique id of the head while it is delivered and not answered, set with a
  lease (:data:`LEASE`) so that a node that dies with it does not hold the queue for ever;
- ``expired:<s>``, a list: expired commands not yet reported to the backend (kept
  :data:`~ocppcable.api.queue.NOTICE_RETENTION`);
- ``due``, a sorted set: station → the earliest expiry among its commands not taken (a sweep
  reads only what is due, ``ZRANGEBYSCORE``, at most :data:`SWEEP_BATCH` stations a time);
- ``depth``: the number of commands queued, kept by the scripts (the metric reads one key);
- ``key:<len(s)>:<s>:<key>``: an idempotency key's call, set ``NX`` with the ttl as expiry.

Every operation is one Lua script, so nodes taking, answering and sweeping the same station at
once see a consistent queue. Times are the nodes' clocks (epoch seconds): keep them in sync.
"""

from __future__ import annotations

import json
from typing import Any

from zope.interface import implementer

from ocppcable.api.interfaces import Duplicate, ICommandQueue, QueuedCommand
from ocppcable.api.queue import NOTICE_RETENTION
from ocppcable.api.redis_store import RedisStore
from ocppcable.commands import RemoteCommand
from ocppcable.metrics import IMetrics, NoMetrics

PREFIX = "ocppcable:queue:"

#: seconds the head of a station's queue stays taken without an answer (a node died with it)
LEASE = 300.0

#: stations one sweep expires commands of, at most (the next sweep takes the rest)
SWEEP_BATCH = 100

# ARGV[1] is the prefix; expire(s, now) moves s's expired commands that are not taken to its
# notices, sets its due time, and returns them
_COMMON = """
local P = ARGV[1]
local function expire(s, now, keep_notices)
  local list = P .. 'q:' .. s
  local taken = redis.call('GET', P .. 'taken:' .. s)
  local expired, due = {}, false
  for _, raw in ipairs(redis.call('LRANGE', list, 0, -1)) do
    local e = cjson.decode(raw)
    if e.id ~= taken then
      if e.exp <= now then
        expired[#expired + 1] = raw
      elseif not due or e.exp < due then
        due = e.exp
      end
    end
  end
  if #expired > 0 then
    local notices = P .. 'expired:' .. s
    for _, raw in ipairs(expired) do
      redis.call('LREM', list, 1, raw)
      redis.call('RPUSH', notices, raw)
    end
    redis.call('LTRIM', notices, -keep_notices, -1)
    redis.call('PEXPIRE', notices, RETENTION_MS)
    redis.call('DECRBY', P .. 'depth', #expired)
  end
  if due then
    redis.call('ZADD', P .. 'due', due, s)
  else
    redis.call('ZREM', P .. 'due', s)
  end
  return expired
end
""".replace("RETENTION_MS", str(int(NOTICE_RETENTION * 1000)))

# ARGV: prefix, station, entry, expiry, per station, total
_PUT = (
    _COMMON
    + """
local list = P .. 'q:' .. ARGV[2]
if tonumber(redis.call('GET', P .. 'depth') or '0') >= tonumber(ARGV[6]) then return 0 end
if redis.call('LLEN', list) >= tonumber(ARGV[5]) then return 0 end
redis.call('RPUSH', list, ARGV[3])
redis.call('INCR', P .. 'depth')
local due = redis.call('ZSCORE', P .. 'due', ARGV[2])
if not due or tonumber(due) > tonumber(ARGV[4]) then
  redis.call('ZADD', P .. 'due', ARGV[4], ARGV[2])
end
return 1
"""
)

# ARGV: prefix, station, key, unique id, ttl in ms → false, or {unique id, 1 if queued}
_CLAIM = (
    _COMMON
    + """
local k = P .. 'key:' .. string.len(ARGV[2]) .. ':' .. ARGV[2] .. ':' .. ARGV[3]
local held = redis.call('GET', k)
if not held then
  redis.call('SET', k, ARGV[4], 'PX', ARGV[5])
  return false
end
for _, raw in ipairs(redis.call('LRANGE', P .. 'q:' .. ARGV[2], 0, -1)) do
  if cjson.decode(raw).id == held then return {held, 1} end
end
return {held, 0}
"""
)

# ARGV: prefix, station, key
_UNCLAIM = (
    _COMMON
    + """
redis.call('DEL', P .. 'key:' .. string.len(ARGV[2]) .. ':' .. ARGV[2] .. ':' .. ARGV[3])
"""
)

# ARGV: prefix, station, now, lease in ms, notices kept → {expired count, head or false}
_TAKE = (
    _COMMON
    + """
local s = ARGV[2]
if redis.call('EXISTS', P .. 'taken:' .. s) == 1 then return {0, false} end
local expired = expire(s, tonumber(ARGV[3]), tonumber(ARGV[5]))
local head = redis.call('LINDEX', P .. 'q:' .. s, 0)
if not head then return {#expired, false} end
redis.call('SET', P .. 'taken:' .. s, cjson.decode(head).id, 'PX', ARGV[4])
expire(s, tonumber(ARGV[3]), tonumber(ARGV[5]))
return {#expired, head}
"""
)

# ARGV: prefix, station, unique id, now, notices kept → expired count
_RELEASE = (
    _COMMON
    + """
local s = ARGV[2]
if redis.call('GET', P .. 'taken:' .. s) ~= ARGV[3] then return 0 end
redis.call('DEL', P .. 'taken:' .. s)
return #expire(s, tonumber(ARGV[4]), tonumber(ARGV[5]))
"""
)

# ARGV: prefix, station, unique id
_DONE = (
    _COMMON
    + """
local s = ARGV[2]
if redis.call('GET', P .. 'taken:' .. s) ~= ARGV[3] then return 0 end
redis.call('DEL', P .. 'taken:' .. s)
local head = redis.call('LINDEX', P .. 'q:' .. s, 0)
if head and cjson.decode(head).id == ARGV[3] then
  redis.call('LPOP', P .. 'q:' .. s)
  redis.call('DECR', P .. 'depth')
end
return 1
"""
)

# ARGV: prefix, station, now, notices kept → {expired count, notices...}
_EXPIRED = (
    _COMMON
    + """
local s = ARGV[2]
local expired = expire(s, tonumber(ARGV[3]), tonumber(ARGV[4]))
local notices = redis.call('LRANGE', P .. 'expired:' .. s, 0, -1)
redis.call('DEL', P .. 'expired:' .. s)
table.insert(notices, 1, #expired)
return notices
"""
)

# ARGV: prefix, now, batch, notices kept → {depth, station, entry, station, entry, ...}
_SWEEP = (
    _COMMON
    + """
local out = {tonumber(redis.call('GET', P .. 'depth') or '0')}
local now = tonumber(ARGV[2])
for _, s in ipairs(redis.call('ZRANGEBYSCORE', P .. 'due', '-inf', now, 'LIMIT', 0, ARGV[3])) do
  for _, raw in ipairs(expire(s, now, tonumber(ARGV[4]))) do
    out[#out + 1] = s
    out[#out + 1] = raw
  end
end
out[1] = out[1] - (#out - 1) / 2
return out
"""
)


def _entry(entry: QueuedCommand) -> str:
    command = entry.command
    fields = {
        "id": command.unique_id,
        "action": command.action,
        "payload": command.payload,
        "source": command.source,
        "ttl": command.ttl,
        "exp": entry.expires_at,
        "key": entry.key,
    }
    return json.dumps(fields, separators=(",", ":"))


def _queued(station_id: str, raw: str) -> QueuedCommand:
    fields = json.loads(raw)
    command = RemoteCommand(
        fields["id"], fields["action"], fields["payload"], source=fields["source"],
        ttl=fields["ttl"],
    )  # fmt: skip
    return QueuedCommand(station_id, command, fields["exp"], fields["key"])


@implementer(ICommandQueue)
class RedisQueue:
    """The per-station queues in Redis, bounded like :class:`~ocppcable.api.queue.MemoryQueue`
    (``per_station`` commands for one station, ``total`` for all)."""

    def __init__(
        self,
        clock: Any,
        store: RedisStore,
        per_station: int,
        total: int,
        metrics: IMetrics | None = None,
    ) -> None:
        self.clock = clock
        self.store = store
        self.per_station = per_station
        self.total = total
        self.metrics = metrics or NoMetrics()
        self._depth = 0

    def _run(self, script: str, *args: Any) -> Any:
        return self.store.script(script, [], [PREFIX, *args])

    def _expired(self, count: Any) -> None:
        if int(count):
            self.metrics.queue_expired(int(count))

    async def put(self, entry: QueuedCommand) -> bool:
        added = await self._run(
            _PUT, entry.station_id, _entry(entry), entry.expires_at, self.per_station, self.total
        )
        return int(added) == 1

    async def claim(self, station_id: str, key: str, unique_id: str, ttl: float) -> Any:
        held = await self._run(_CLAIM, station_id, key, unique_id, max(1, int(ttl * 1000)))
        if not held:
            return None
        return Duplicate(held[0], int(held[1]) == 1)

    async def unclaim(self, station_id: str, key: str) -> None:
        await self._run(_UNCLAIM, station_id, key)

    async def take(self, station_id: str) -> QueuedCommand | None:
        expired, head = await self._run(
            _TAKE, station_id, self.clock(), int(LEASE * 1000), self.per_station
        )
        self._expired(expired)
        return _queued(station_id, head) if head else None

    async def release(self, station_id: str, unique_id: str) -> None:
        self._expired(
            await self._run(_RELEASE, station_id, unique_id, self.clock(), self.per_station)
        )

    async def done(self, station_id: str, unique_id: str) -> None:
        await self._run(_DONE, station_id, unique_id)

    async def expired(self, station_id: str) -> list[QueuedCommand]:
        reply = await self._run(_EXPIRED, station_id, self.clock(), self.per_station)
        self._expired(reply[0])
        return [_queued(station_id, raw) for raw in reply[1:]]

    async def sweep(self) -> list[QueuedCommand]:
        reply = await self._run(_SWEEP, self.clock(), SWEEP_BATCH, self.per_station)
        self._depth = int(reply[0])
        pairs = reply[1:]
        self._expired(len(pairs) // 2)
        return [_queued(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2)]

    def depth(self) -> int:
        return self._depth

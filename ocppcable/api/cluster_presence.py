# -*- test-case-name: tests.test_call_cluster -*-
"""Presence across the cluster, in Redis: every node writes the stations connected to it, and
any node answers ``GET /_ocpp/stations`` for all of them.

In Redis (keys under :data:`PREFIX`):

- ``stations``, a hash: station id → its entry (JSON: protocol, node, connected since, serial
  number), written when the station connects and again when its session starts;
- ``ids``, a sorted set of the same ids, all with score 0, read in id order with
  ``ZRANGEBYLEX`` (a page costs O(log N + page size) for any number of stations);
- ``node:<node>``, one key per node set with a time to live (``--api-presence-ttl``) that the
  node refreshes every third of it: one command per interval whatever its number of stations.

A node that dies without cleaning up stops refreshing its key; once it expires, its entries are
no longer shown, and the lookup or page that meets them deletes them (each entry is passed over
once, by script calls of at most :data:`SCAN_BATCH` entries). A node that finds its
key gone (Redis was away longer than the ttl) writes its stations again. A station on this node
is answered from the hub (its last frame time is live); other nodes' entries show the last
frame time as of their last write.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from ocppcable.api.interfaces import IPresence, StationInfo
from ocppcable.api.presence import station_info
from ocppcable.api.redis_store import RedisStore
from ocppcable.hub import Hub

log = Logger()

PREFIX = "ocppcable:presence:"
STATIONS = PREFIX + "stations"
IDS = PREFIX + "ids"
NODE = PREFIX + "node:"

#: entries one script call of a page passes over (dead nodes' entries are deleted on the way;
#: the page carries on with further calls, so that no call holds Redis long)
SCAN_BATCH = 1000

_LOOKUP = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
if redis.call('EXISTS', ARGV[2] .. cjson.decode(v)['node']) == 1 then return v end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return false
"""

_PAGE = """
local out, alive = {''}, {}
local start, limit, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
while #out - 1 < limit do
  if budget <= 0 then
    out[1] = start  -- where the next call carries on
    break
  end
  local ids = redis.call('ZRANGEBYLEX', KEYS[2], start, '+', 'LIMIT', 0, limit + 1 - #out)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    budget = budget - 1
    local v = redis.call('HGET', KEYS[1], id)
    local keep = false
    if v then
      local node = cjson.decode(v)['node']
      if alive[node] == nil then alive[node] = redis.call('EXISTS', ARGV[4] .. node) == 1 end
      keep = alive[node]
    end
    if keep then
      out[#out + 1] = v
    else
      redis.call('ZREM', KEYS[2], id)
      redis.call('HDEL', KEYS[1], id)
    end
    start = '(' .. id
  end
end
return out
"""

_PUT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
"""

# only this node's entry goes: the station may have connected to another node meanwhile
_REMOVE = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and cjson.decode(v)['node'] == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
"""

# 1 when the key was gone (first beat, or Redis was away longer than the ttl)
_BEAT = """
local gone = redis.call('EXISTS', KEYS[1]) == 0
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
if gone then return 1 end
return 0
"""


def _decode(entry: str) -> StationInfo:
    fields = json.loads(entry)
    return StationInfo(
        id=fields["id"],
        protocol=fields["protocol"],
        node=fields["node"],
        connected_since=fields["connected_since"],
        last_frame_at=fields.get("last_frame_at"),
        serial_number=fields.get("serial_number"),
    )


@implementer(IPresence)
class RedisPresence(Service):
    """Presence in Redis for the whole cluster; ``node`` names this node."""

    name = "presence"

    def __init__(self, reactor: Any, store: RedisStore, hub: Hub, node: str, ttl: float) -> None:
        self.store = store
        self.hub = hub
        self.node = node
        self.ttl = ttl
        self._beat = LoopingCall(lambda: ensureDeferred(self._heartbeat()))
        self._beat.clock = reactor
        hub.on_register(self._write)
        hub.on_unregister(self._remove)

    def startService(self) -> None:
        super().startService()
        self._beat.start(self.ttl / 3, now=True).addErrback(
            lambda f: log.failure("the presence heartbeat stopped", f)
        )

    def stopService(self) -> Any:
        super().stopService()
        if self._beat.running:
            self._beat.stop()
        if not self.store.connected:
            return None
        # this node's entries vanish at once rather than at the key's expiry
        return self.store.execute("DEL", NODE + self.node).addErrback(lambda _: None)

    # --- IPresence ---------------------------------------------------------------------------

    async def lookup(self, station_id: str) -> StationInfo | None:
        station: Any = self.hub.station(station_id)
        if station is not None:
            return station_info(station, self.node)
        entry = await self.store.script(_LOOKUP, [STATIONS, IDS], [station_id, NODE])
        return None if entry is None else _decode(entry)

    async def page(self, after: str | None, limit: int) -> list[StationInfo]:
        start = "-" if after is None else "(" + after
        entries: list[str] = []
        while start and len(entries) < limit:
            reply = await self.store.script(
                _PAGE, [STATIONS, IDS], [start, limit - len(entries), SCAN_BATCH, NODE]
            )
            start, entries = reply[0], entries + reply[1:]
        infos = []
        for entry in entries:
            info = _decode(entry)
            station: Any = self.hub.station(info.id) if info.node == self.node else None
            infos.append(info if station is None else station_info(station, self.node))
        return infos

    def started(self, station_id: str) -> None:
        self._write(station_id)  # now with its serial number

    # --- writing -----------------------------------------------------------------------------

    def _entry(self, station: Any) -> str:
        return json.dumps(station_info(station, self.node).to_json(), separators=(",", ":"))

    def _write(self, station_id: str) -> None:
        station: Any = self.hub.station(station_id)
        if station is None or not self.running:
            return
        d = self.store.script(_PUT, [STATIONS, IDS], [station_id, self._entry(station)])
        d.addErrback(self._failed, "write", station_id)

    def _remove(self, station_id: str) -> None:
        if not self.running:
            return
        d = self.store.script(_REMOVE, [STATIONS, IDS], [station_id, self.node])
        d.addErrback(self._failed, "remove", station_id)

    @staticmethod
    def _failed(failure: Any, what: str, station_id: str) -> None:
        log.info(
            "could not {what} station {station_id} in the cluster's presence: {reason}",
            what=what,
            station_id=station_id,
            reason=failure.getErrorMessage(),
        )

    async def _heartbeat(self) -> None:
        try:
            gone = await self.store.script(_BEAT, [NODE + self.node], [int(self.ttl * 1000)])
        except Exception as e:  # Redis away: its link logs that once
            log.debug("presence heartbeat failed: {reason}", reason=str(e))
            return
        if str(gone) == "1":
            for station in self.hub.stations():
                self._write(station.station_id)

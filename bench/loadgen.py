"""A lean OCPP 1.6 load generator process (Twisted + Autobahn on epoll), driven over stdin.

Each input line is a JSON command; each command is answered with one JSON line on stdout:

``{"cmd": "connect", "group": "A", "url": "ws://127.0.0.1:8080/ocpp", "prefix": "A",
"first": 0, "count": 100, "inflight": 256, "timeout": 60}``
    open ``count`` stations ``<prefix>-<n>`` (at most ``inflight`` handshakes and boots at a
    time); each sends a BootNotification once open. Answers when all are booted or failed.
    Optional: ``"source": "127.0.0.2"``, the local address to connect from (each address has
    its own ephemeral ports: more than ~28k connections to one port need several);
    ``"retry": true``, a station behaves as a real one in a storm: refused with 503 it connects
    again after ``Retry-After``, otherwise failed or closed before its boot after a jittered
    ``"backoff"`` (s), and a boot answered ``Pending`` is sent again after its ``interval``; it
    answers when every station is booted (or at ``timeout``), with the counts of each.
``{"cmd": "reconnect", "group": "A", ...}``
    abort every connection of the group, then connect the same stations again at once, as
    ``connect`` with ``retry`` does (its options; ``inflight`` defaults to all of them).
``{"cmd": "heartbeat", "interval": 30}``
    every booted station sends a Heartbeat every ``interval`` seconds (0: none), spread evenly.
``{"cmd": "load", "group": "A", "rate": 300, "duration": 10}``
    offer ``rate`` StatusNotification/MeterValues CALLs per second across the group's stations
    (one outstanding CALL per station; a CALL that finds every station busy is "skipped").
``{"cmd": "saturate", "group": "A", "duration": 5}``
    every station of the group keeps one CALL outstanding: the throughput the system sustains.
``{"cmd": "fanout", "expect": 1000, "timeout": 30}``
    collect PUBLISH→CALL latencies of remote commands (DataTransfer with ``vendorId`` "bench"
    and the publish time in ns as ``data``) until ``expect`` arrived; every remote command is
    answered with a CALLRESULT. Send it before publishing.
``{"cmd": "close", "group": "A"}``
    abort the group's connections.
``{"cmd": "stats"}``
    open stations, heartbeats answered, remote commands answered, and ``call_errors``: the
    station CALLs answered with a CALLERROR, not answered within ``CALL_TIMEOUT`` or lost with
    their connection, by kind, since the start.

Latencies are in milliseconds. The process exits when stdin closes.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.types import ConnectingRequest
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()

SUBPROTOCOL = "ocpp1.6"
BOOT, HEARTBEAT, LOAD = 1, 2, 3
TICK = 0.002  # seconds between load ticks
HEARTBEAT_TICK = 0.05
DRAIN_TIMEOUT = 10.0  # seconds to wait for outstanding replies after a load window
#: seconds a station waits for a CALL's answer before it counts the CALL as failed (the
#: gateway's own --rpc-timeout is 10 s: a CALL not answered by then never will be)
CALL_TIMEOUT = 30.0
KIND_NAMES = {BOOT: "boot", HEARTBEAT: "heartbeat", LOAD: "load"}

_BOOT = '[2,"%s","BootNotification",{"chargePointVendor":"bench","chargePointModel":"loadgen"}]'
_HEARTBEAT = '[2,"%s","Heartbeat",{}]'
_STATUS = (
    '[2,"%s","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]'
)
_METER = (
    '[2,"%s","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2026-01-01T00:00:00Z",'
    '"sampledValue":[{"value":"12345","measurand":"Energy.Active.Import.Register","unit":"Wh"}]}]}]'
)
_ACCEPTED = '[3,"%s",{"status":"Accepted"}]'

_loads = json.loads


def summary(samples: Any) -> dict[str, Any]:
    """Count, p50, p90, p99 and max of latencies (nearest rank)."""
    ordered = sorted(samples)
    n = len(ordered)
    if not n:
        return {"count": 0}

    def rank(p: float) -> float:
        return round(ordered[max(1, -(-int(p * n) // 100)) - 1], 3)

    return {
        "count": n,
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "max": round(ordered[-1], 3),
    }


class Station(WebSocketClientProtocol):
    """One station connection; the generator does the rest."""

    def __init__(self, gen: LoadGen, station_id: str, resource: str, slot: int = 0) -> None:
        super().__init__()
        self.gen = gen
        self.factory = gen.factory
        self.station_id = station_id
        self.resource = resource
        self.slot = slot  # its place in its group's list
        self.group = ""
        self.outstanding: str | None = None
        self.kind = 0
        self.sent_at = 0.0
        self.booted = False
        self.is_open = False
        self.connecting = False

    def onConnecting(self, transport_details: Any) -> ConnectingRequest:
        return ConnectingRequest(
            host=self.gen.host, port=self.gen.port, resource=self.resource, protocols=[SUBPROTOCOL]
        )

    def onOpen(self) -> None:
        self.is_open = True
        self.call(BOOT, _BOOT)

    def call(self, kind: int, template: str) -> None:
        uid = str(next(self.gen.ids))
        self.outstanding = uid
        self.kind = kind
        self.sent_at = time.perf_counter()
        self.sendMessage((template % uid).encode())

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        message = _loads(payload)
        type_id = message[0]
        if type_id == 2:
            self.gen.command(self, message)
        elif message[1] == self.outstanding:
            self.outstanding = None
            self.gen.replied(self, type_id == 3, message)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.gen.closed(self)

    def retry_after(self) -> float | None:
        """Seconds of the ``Retry-After`` of a handshake refused with 503, else None."""
        status = getattr(self, "http_status_line", "") or ""
        if self.is_open or status.split()[1:2] != ["503"]:
            return None
        try:
            return float(self.http_headers.get("retry-after", "1"))
        except ValueError:
            return 1.0


class LoadGen:
    def __init__(self, reactor: Any, write: Callable[[dict[str, Any]], None]) -> None:
        self.reactor = reactor
        self.write = write
        self.factory: Any = None
        self.host = ""
        self.port = 0
        self.endpoint: Any = None
        self.ids = itertools.count(1)
        self.groups: dict[str, list[Station]] = {}
        self.source: tuple[str, int] | None = None
        #: station CALLs that failed, by kind ("boot", "heartbeat", "load") and how
        self.call_errors: dict[str, int] = {}
        self._timeouts = LoopingCall(self._sweep_timeouts)
        self._timeouts.clock = reactor
        self.open: list[Station] = []  # booted and open, for heartbeats
        # connect
        self._connect_queue: list[Station] = []
        self._connecting = 0
        self._connect_state: dict[str, Any] | None = None
        # heartbeats
        self._hb_loop: LoopingCall | None = None
        self._hb_rate = 0.0
        self._hb_started = 0.0
        self._hb_sent = 0
        self._hb_cursor = 0
        self.heartbeats = 0
        # load
        self._load: dict[str, Any] | None = None
        self._load_loop: LoopingCall | None = None
        self._latencies = array("d")
        # fan-out
        self._fanout: dict[str, Any] | None = None
        self.commands_answered = 0

    # --- control -------------------------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> None:
        cmd = request.get("cmd")
        try:
            getattr(self, "cmd_" + str(cmd))(request)
        except Exception as e:  # report, keep running
            log.failure("command {cmd} failed", cmd=cmd)
            self.write({"cmd": cmd, "error": repr(e)})

    def cmd_stats(self, request: dict[str, Any]) -> None:
        self.write(
            {
                "cmd": "stats",
                "open": len(self.open),
                "heartbeats": self.heartbeats,
                "commands": self.commands_answered,
                "call_errors": self.call_errors,
            }
        )

    def call_failed(self, station: Station, how: str) -> None:
        key = f"{KIND_NAMES.get(station.kind, 'other')} {how}"
        self.call_errors[key] = self.call_errors.get(key, 0) + 1

    def _sweep_timeouts(self) -> None:
        """Count the CALLs not answered within CALL_TIMEOUT as failed; a boot is sent again."""
        deadline = time.perf_counter() - CALL_TIMEOUT
        for stations in self.groups.values():
            for station in stations:
                if station.outstanding is not None and station.sent_at < deadline:
                    self.call_failed(station, "timeout")
                    station.outstanding = None
                    if station.kind == BOOT and station.is_open:
                        station.call(BOOT, _BOOT)

    def _target(self, url: str, source: str | None = None) -> None:
        parts = urlsplit(url)
        bind = (source, 0) if source else None
        target = (parts.hostname, parts.port, bind)
        if self.factory is None or target != (self.host, self.port, self.source):
            self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
            self.source = bind
            self.factory = WebSocketClientFactory(
                url, protocols=[SUBPROTOCOL], reactor=self.reactor
            )
            self.factory.setProtocolOptions(openHandshakeTimeout=30, closeHandshakeTimeout=2)
            self.endpoint = TCP4ClientEndpoint(
                self.reactor, self.host, self.port, timeout=30, bindAddress=bind
            )

    def cmd_connect(self, request: dict[str, Any]) -> None:
        if self._connect_state is not None:
            raise RuntimeError("a connect is already running")
        url = request["url"].rstrip("/")
        self._target(url, request.get("source"))
        base = urlsplit(url).path
        prefix, first, count = request["prefix"], request.get("first", 0), request["count"]
        group = self.groups.setdefault(request["group"], [])
        stations = []
        for n in range(first, first + count):
            station = Station(self, f"{prefix}-{n:05d}", f"{base}/{prefix}-{n:05d}", len(group))
            station.group = request["group"]
            group.append(station)
            stations.append(station)
        self._start_connects(stations, request)

    def cmd_reconnect(self, request: dict[str, Any]) -> None:
        if self._connect_state is not None:
            raise RuntimeError("a connect is already running")
        stations = self.groups.get(request["group"], [])
        self._drop(stations)
        self.reactor.callLater(0.2, self._reconnect, stations, request)

    def _drop(self, stations: list[Station]) -> None:
        """Abort the stations' connections; a CALL they had outstanding is no failure."""
        dropped = set(stations)
        self.open = [s for s in self.open if s not in dropped]
        for station in stations:
            station.booted = False
            station.outstanding = None
            if station.transport is not None:
                station.transport.abortConnection()

    def _reconnect(self, stations: list[Station], request: dict[str, Any]) -> None:
        fresh = [self._replace(station) for station in stations]
        self._start_connects(fresh, {"retry": True, "inflight": len(fresh), **request})

    def _replace(self, station: Station) -> Station:
        """A new connection of the same station, in its place in its group."""
        fresh = Station(self, station.station_id, station.resource, station.slot)
        fresh.group = station.group
        self.groups[station.group][station.slot] = fresh
        return fresh

    def _start_connects(self, stations: list[Station], request: dict[str, Any]) -> None:
        self._connect_queue = stations[::-1]
        self._connecting = 0
        state = self._connect_state = {
            "limit": request.get("inflight", 256),
            "count": len(stations),
            "booted": 0,
            "failed": 0,
            "retry": bool(request.get("retry")),
            "backoff": request.get("backoff", 2.0),
            "refused_503": 0,
            "retried": 0,
            "pending": 0,
            "started": time.perf_counter(),
            "timer": self.reactor.callLater(request.get("timeout", 120), self._connect_done),
        }
        state["boot_latency"] = array("d")
        if not self._timeouts.running:
            self._timeouts.start(1.0, now=False)
        self._pump_connects()

    def _pump_connects(self) -> None:
        state = self._connect_state
        while self._connect_queue and self._connecting < state["limit"]:
            station = self._connect_queue.pop()
            station.connecting = True
            self._connecting += 1
            d = connectProtocol(self.endpoint, station)
            d.addErrback(self._connect_failed, station)

    def _connect_failed(self, failure: Any, station: Station) -> None:
        self._connect_ended(station, ok=False)

    def _connect_ended(self, station: Station, ok: bool) -> None:
        state = self._connect_state
        if state is None or not station.connecting:
            return
        station.connecting = False
        self._connecting -= 1
        if not ok and state["retry"]:
            self._retry(station, state)
            return
        state["booted" if ok else "failed"] += 1
        if state["booted"] + state["failed"] >= state["count"]:
            self._connect_done()
        else:
            self._pump_connects()

    def _retry(self, station: Station, state: dict[str, Any]) -> None:
        """Connect the station again later: after Retry-After if refused with 503, else after
        a jittered backoff."""
        delay = station.retry_after()
        if delay is None:
            delay = state["backoff"] * (0.5 + random.random())
        else:
            state["refused_503"] += 1
        state["retried"] += 1
        if station.is_open:  # its boot failed: this connection is given up
            station.outstanding = None
            station.transport.abortConnection()
        fresh = self._replace(station)
        self.reactor.callLater(delay, self._requeue, fresh, state)

    def _requeue(self, station: Station, state: dict[str, Any]) -> None:
        if state is self._connect_state:
            self._connect_queue.append(station)
            self._pump_connects()

    def _boot_pending(self, station: Station, message: list[Any]) -> None:
        """A boot answered Pending: sent again after its interval (the station stays open)."""
        state = self._connect_state
        if state is not None:
            state["pending"] += 1
        interval = message[2].get("interval") or 10
        self.reactor.callLater(interval, self._boot_again, station)

    def _boot_again(self, station: Station) -> None:
        if station.is_open and not station.booted and station.outstanding is None:
            station.call(BOOT, _BOOT)

    def _connect_done(self) -> None:
        state, self._connect_state = self._connect_state, None
        if state is None:
            return
        if state["timer"].active():
            state["timer"].cancel()
        self._connect_queue = []
        self.write(
            {
                "cmd": "connect",
                "booted": state["booted"],
                "failed": state["failed"],
                "unfinished": state["count"] - state["booted"] - state["failed"],
                "elapsed": round(time.perf_counter() - state["started"], 3),
                "boot_latency": summary(state["boot_latency"]),
                "refused_503": state["refused_503"],
                "retried": state["retried"],
                "pending": state["pending"],
            }
        )

    def cmd_close(self, request: dict[str, Any]) -> None:
        stations = self.groups.pop(request["group"], [])
        self._drop(stations)
        self.reactor.callLater(0.2, self.write, {"cmd": "close", "closed": len(stations)})

    def cmd_heartbeat(self, request: dict[str, Any]) -> None:
        interval = request["interval"]
        if self._hb_loop is not None and self._hb_loop.running:
            self._hb_loop.stop()
        self._hb_loop = None
        if interval:
            self._hb_rate = 1.0 / interval
            self._hb_started = time.perf_counter()
            self._hb_sent = 0
            self._hb_loop = LoopingCall(self._heartbeat_tick)
            self._hb_loop.clock = self.reactor
            self._hb_loop.start(HEARTBEAT_TICK, now=True)
        self.write({"cmd": "heartbeat", "interval": interval, "stations": len(self.open)})

    def _heartbeat_tick(self) -> None:
        stations = self.open
        if not stations:
            return
        due = int((time.perf_counter() - self._hb_started) * self._hb_rate * len(stations))
        while self._hb_sent < due:
            self._hb_sent += 1
            self._hb_cursor = (self._hb_cursor + 1) % len(stations)
            station = stations[self._hb_cursor]
            if station.outstanding is None and station.is_open:
                station.call(HEARTBEAT, _HEARTBEAT)

    def cmd_load(self, request: dict[str, Any]) -> None:
        self._start_load(request, closed_loop=False)

    def cmd_saturate(self, request: dict[str, Any]) -> None:
        self._start_load(request, closed_loop=True)

    def _start_load(self, request: dict[str, Any], closed_loop: bool) -> None:
        if self._load is not None:
            raise RuntimeError("a load is already running")
        stations = [s for s in self.groups.get(request["group"], []) if s.booted and s.is_open]
        if not stations:
            raise RuntimeError("no open stations in group")
        self._latencies = array("d")
        self._load = {
            "cmd": request["cmd"],
            "stations": stations,
            "rate": request.get("rate", 0),
            "closed_loop": closed_loop,
            "sent": 0,
            "answered": 0,
            "errors": 0,
            "skipped": 0,
            "cursor": 0,
            "running": True,
            "started": time.perf_counter(),
        }
        self.reactor.callLater(request["duration"], self._end_load)
        if closed_loop:
            for station in stations:
                if station.outstanding is None:
                    self._send_load(station)
        else:
            self._load_loop = LoopingCall(self._load_tick)
            self._load_loop.clock = self.reactor
            self._load_loop.start(TICK, now=True)

    def _send_load(self, station: Station) -> None:
        load = self._load
        load["sent"] += 1
        station.call(LOAD, _STATUS if load["sent"] & 1 else _METER)

    def _load_tick(self) -> None:
        load = self._load
        stations = load["stations"]
        n = len(stations)
        due = int((time.perf_counter() - load["started"]) * load["rate"])
        cursor = load["cursor"]
        while load["sent"] + load["skipped"] < due:
            for _ in range(n):
                cursor = cursor + 1 if cursor + 1 < n else 0
                station = stations[cursor]
                if station.outstanding is None and station.is_open:
                    self._send_load(station)
                    break
            else:
                load["skipped"] += 1
        load["cursor"] = cursor

    def _end_load(self) -> None:
        load = self._load
        load["running"] = False
        load["window"] = time.perf_counter() - load["started"]
        if self._load_loop is not None:
            self._load_loop.stop()
            self._load_loop = None
        load["drain_deadline"] = time.perf_counter() + DRAIN_TIMEOUT
        self._maybe_finish_load()

    def _maybe_finish_load(self) -> None:
        load = self._load
        if load is None or load["running"]:
            return
        busy = sum(1 for s in load["stations"] if s.outstanding is not None and s.kind == LOAD)
        if busy and time.perf_counter() < load["drain_deadline"]:
            self.reactor.callLater(0.01, self._maybe_finish_load)
            return
        self._load = None
        self.write(
            {
                "cmd": load["cmd"],
                "stations": len(load["stations"]),
                "sent": load["sent"],
                "answered": load["answered"],
                "errors": load["errors"],
                "skipped": load["skipped"],
                "unanswered": busy,
                "window": round(load["window"], 3),
                "latency": summary(self._latencies),
            }
        )

    def cmd_fanout(self, request: dict[str, Any]) -> None:
        if self._fanout is not None:
            raise RuntimeError("a fan-out is already running")
        self._fanout = {
            "expect": request["expect"],
            "latencies": array("d"),
            "timer": self.reactor.callLater(request.get("timeout", 60), self._fanout_done),
        }
        self.write({"cmd": "fanout", "armed": True})

    def _fanout_done(self) -> None:
        fanout, self._fanout = self._fanout, None
        if fanout is None:
            return
        if fanout["timer"].active():
            fanout["timer"].cancel()
        latencies = fanout["latencies"]
        self.write(
            {
                "cmd": "fanout",
                "received": len(latencies),
                "latencies": [round(x, 3) for x in latencies],
            }
        )

    # --- station events ------------------------------------------------------------------------

    def replied(self, station: Station, ok: bool, message: list[Any]) -> None:
        kind = station.kind
        if kind == LOAD:
            load = self._load
            if load is None:
                return
            if ok:
                load["answered"] += 1
                self._latencies.append((time.perf_counter() - station.sent_at) * 1000.0)
            else:
                load["errors"] += 1
                self.call_failed(station, "CALLERROR")
            if load["running"]:
                if load["closed_loop"]:
                    self._send_load(station)
            else:
                self._maybe_finish_load()
        elif kind == HEARTBEAT:
            if ok:
                self.heartbeats += 1
            else:
                self.call_failed(station, "CALLERROR")
        elif kind == BOOT:
            state = self._connect_state
            status = message[2].get("status") if ok and isinstance(message[2], dict) else None
            if not ok:
                self.call_failed(station, "CALLERROR")
            elif status == "Pending":
                self._boot_pending(station, message)
                return
            booted = status == "Accepted"
            if booted:
                station.booted = True
                self.open.append(station)
                if state is not None:
                    state["boot_latency"].append((time.perf_counter() - station.sent_at) * 1000.0)
            self._connect_ended(station, booted)

    def command(self, station: Station, message: list[Any]) -> None:
        """A remote command: answer it; a benchmark DataTransfer carries its publish time."""
        uid, action, payload = message[1], message[2], message[3]
        station.sendMessage((_ACCEPTED % uid).encode())
        self.commands_answered += 1
        if action == "DataTransfer" and payload.get("vendorId") == "bench":
            fanout = self._fanout
            if fanout is not None:
                fanout["latencies"].append((time.time_ns() - int(payload["data"])) / 1e6)
                if len(fanout["latencies"]) >= fanout["expect"]:
                    self._fanout_done()

    def closed(self, station: Station) -> None:
        station.is_open = False
        if station.outstanding is not None:
            self.call_failed(station, "lost")
        if station.connecting:  # closed (or refused) before its boot was answered
            self._connect_ended(station, ok=False)
        if station.booted:
            station.booted = False
            try:
                self.open.remove(station)
            except ValueError:
                pass
        if station.outstanding is not None and station.kind == LOAD and self._load is not None:
            self._load["errors"] += 1
            station.outstanding = None
            self._maybe_finish_load()


class Control(Protocol):
    """JSON lines on stdin → commands; the end of stdin stops the process."""

    def __init__(self, gen: LoadGen) -> None:
        self.gen = gen
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip():
                self.gen.handle(json.loads(line))

    def connectionLost(self, reason: Any) -> None:
        reactor = self.gen.reactor
        if reactor.running:
            reactor.stop()


def _write(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor, stdio
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    levels = LogLevelFilterPredicate(LogLevel.warn)
    levels.setLogLevelForNamespace("autobahn", LogLevel.error)
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [levels])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    gen = LoadGen(reactor, _write)
    stdio.StandardIO(Control(gen))
    _write({"ready": True})
    reactor.run()


if __name__ == "__main__":
    main()

"""The benchmark run: starts every process, runs the scenarios of a profile, collects figures.

Figures (see ``bench/RESULTS.md`` for what each means and why it is measured this way):

1. ``idle_memory``: gateway RSS per connected, booted, heartbeating station.
2. ``cpu_per_call``: gateway CPU (user+sys, all threads) per StatusNotification/MeterValues CALL
   answered through a real ``message`` RPC at a fixed offered rate, over gRPC and over HTTP RPC,
   and the same for the ``ocpp``-package peer; the ratio of each transport to the peer.
3. ``latency``: CALL→CALLRESULT at half the measured saturation rate.
4. ``fanout``: PUBLISH → remote-command CALL at the station.
5. ``boot_storm``: stations connecting and booting (Connect, subscribe, message RPCs) at once,
   with each transport.
6. ``scaling``: figure 2 with many idle stations connected.

Figures 2 and 6 come from one interleaved series of windows (see :meth:`Run.cpu_rounds`).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import report
from bench.backend import STREAM_PREFIX
from bench.loadgen import summary
from bench.processes import (
    ROOT,
    BenchError,
    Child,
    Processes,
    free_port,
    pin_cpus,
    raise_open_files_limit,
    wait_http_ok,
)

CHANNEL = "__anycable__"


@dataclass(frozen=True)
class Profile:
    name: str
    #: station counts at which idle memory is measured (the first ones also host fan-outs)
    idle_steps: tuple[int, ...]
    #: heartbeat interval (s) of idle stations, and seconds to settle before reading RSS
    heartbeat: float
    settle: float
    #: stations carrying the CPU-per-call load, offered rate (CALLs/s), warm-up and window (s),
    #: and the rounds of windows taking turns between the processes compared
    active: int
    rate: float
    warmup: float
    window: float
    rounds: int
    #: seconds of the closed-loop saturation run and of the latency window at half of it
    saturate: float
    latency_window: float
    #: stations receiving a remote command each, and the paced publish rate (commands/s)
    fanouts: tuple[int, ...]
    fanout_rate: float
    #: stations in the boot storm
    storm: int
    #: load generator processes; handshakes+boots in flight per load generator
    loadgens: int
    inflight: int
    #: the whole run must end within this many seconds
    budget: float


PROFILES = {
    "smoke": Profile(
        name="smoke",
        idle_steps=(40,),
        heartbeat=1.0,
        settle=1.0,
        active=10,
        rate=100,
        warmup=0.3,
        window=1.0,
        rounds=1,
        saturate=0.5,
        latency_window=0.5,
        fanouts=(20,),
        fanout_rate=200,
        storm=40,
        loadgens=1,
        inflight=64,
        budget=80,
    ),
    "quick": Profile(
        name="quick",
        idle_steps=(1000,),
        heartbeat=5.0,
        settle=4.0,
        active=100,
        rate=500,
        warmup=1.0,
        window=1.5,
        rounds=3,
        saturate=3.0,
        latency_window=3.0,
        fanouts=(200,),
        fanout_rate=500,
        storm=500,
        loadgens=2,
        inflight=256,
        budget=120,
    ),
    "full": Profile(
        name="full",
        idle_steps=(1000, 5000, 10000),
        heartbeat=20.0,
        settle=22.0,
        active=100,
        rate=500,
        warmup=3.0,
        window=6.0,
        rounds=5,
        saturate=10.0,
        latency_window=20.0,
        fanouts=(1000, 10000),
        fanout_rate=500,
        storm=10000,
        loadgens=2,
        inflight=256,
        budget=900,
    ),
}


#: the RPC transports compared: gRPC, and HTTP RPC (``--rpc-host=http://…``)
TRANSPORTS = ("grpc", "http")


def rpc_host(transport: str, backend_port: int) -> str:
    if transport == "http":
        return f"http://127.0.0.1:{backend_port}/_anycable"
    return f"127.0.0.1:{backend_port}"


def gateway_args(rpc: str, redis_url: str) -> list[str]:
    return [
        f"--rpc-host={rpc}",
        "--broadcast-adapter=redis",
        f"--redis-url={redis_url}",
        f"--redis-channel={CHANNEL}",
        "--ocpp-rate-limit=0",
        "--ping-interval=0",
        "--log-level=warn",
        "--shutdown-timeout=5",
    ]


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    versions = {}
    for package in ("twisted", "autobahn", "grpcio", "protobuf", "ocpp", "websockets"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "commit": commit,
        "packages": versions,
    }


class Run:
    """One benchmark run over a :class:`Profile`."""

    def __init__(
        self,
        profile: Profile,
        processes: Processes,
        gateway_source: str | None = None,
        progress: Any = sys.stderr,
    ) -> None:
        self.profile = profile
        self.ps = processes
        self.gateway_source = gateway_source
        self.progress = progress
        self.results: dict[str, Any] = {"profile": asdict(profile), "machine": machine()}
        self.loadgens: list[Child] = []
        #: station ids connected to the current gateway, in connection order
        self.connected: list[str] = []
        self.owner: dict[str, int] = {}  # station id → load generator index
        self._groups: dict[int, list[str]] = {}  # load generator index → its gateway groups
        self.backends: dict[str, Child] = {}  # gateway name → the backend it calls
        self._started = time.monotonic()

    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self._started
        self.progress.write(f"[{elapsed:6.1f}s] {text}\n")
        self.progress.flush()

    # --- processes --------------------------------------------------------------------------------

    def start_support(self) -> None:
        self.redis = self.ps.redis()
        self.backend = self.ps.python("backend", "bench.backend")
        self.http_backend = self.ps.python("backend-http", "bench.backend", "--http")
        self.peer = self.ps.python("peer", "bench.peer", measured=True)
        self.loadgens = [
            self.ps.python(f"loadgen{i}", "bench.loadgen") for i in range(self.profile.loadgens)
        ]
        self.backend_port = self.ps.ready(self.backend)["port"]
        self.http_backend_port = self.ps.ready(self.http_backend)["port"]
        self.peer_port = self.ps.ready(self.peer)["port"]
        for loadgen in self.loadgens:
            self.ps.ready(loadgen)

    def start_gateway(self, name: str, transport: str = "grpc") -> None:
        """Start the gateway the scenarios use (fan-outs reach the stations it holds)."""
        self.gateway, self.gateway_url = self.launch_gateway(name, transport)
        self.connected = []
        self.owner = {}

    def launch_gateway(self, name: str, transport: str = "grpc") -> tuple[Child, str]:
        """A gateway process calling the backend of ``transport``, ready for stations and
        subscribed to Redis; and its OCPP URL."""
        port = free_port()
        subscribed = self.redis.subscribers(CHANNEL) + 1
        backend_port = self.http_backend_port if transport == "http" else self.backend_port
        gateway = self.ps.gateway(
            name,
            port,
            gateway_args(rpc_host(transport, backend_port), self.redis.url),
            source=self.gateway_source,
        )
        self.backends[gateway.name] = self.http_backend if transport == "http" else self.backend
        wait_http_ok(gateway, f"http://127.0.0.1:{port}/health")
        deadline = time.monotonic() + 30
        while self.redis.subscribers(CHANNEL) < subscribed:
            if time.monotonic() > deadline or not gateway.alive():
                raise gateway.fail("did not subscribe to redis")
            time.sleep(0.05)
        return gateway, f"ws://127.0.0.1:{port}/ocpp"

    def stop_gateway(self) -> None:
        for i, loadgen in enumerate(self.loadgens):
            for group in self._groups.get(i, []):
                loadgen.request({"cmd": "close", "group": group}, 30)
        self._groups = {}
        self.ps.stop(self.gateway)

    # --- helpers ----------------------------------------------------------------------------------

    def connect(
        self, url: str, group: str, prefix: str, first: int, count: int, split: bool = True
    ) -> dict[str, Any]:
        """Connect and boot ``count`` stations (split over the load generators); returns the
        slowest load generator's report with the totals."""
        loadgens = self.loadgens if split else self.loadgens[:1]
        shares = [
            count // len(loadgens) + (i < count % len(loadgens)) for i in range(len(loadgens))
        ]
        started = time.monotonic()
        start = first
        for i, (loadgen, share) in enumerate(zip(loadgens, shares, strict=True)):
            if not share:
                continue
            loadgen.send(
                {
                    "cmd": "connect",
                    "group": group,
                    "url": url,
                    "prefix": prefix,
                    "first": start,
                    "count": share,
                    "inflight": self.profile.inflight,
                    "timeout": 120,
                    # a handshake refused by the admission limit (503) comes back after its
                    # Retry-After, as a station does: counted, never a failure
                    "retry": True,
                }
            )
            self._groups.setdefault(i, []).append(group)
            if url == self.gateway_url:
                for n in range(start, start + share):
                    station_id = f"{prefix}-{n:05d}"
                    self.connected.append(station_id)
                    self.owner[station_id] = i
            start += share
        replies = [
            loadgen.receive(150) for loadgen, share in zip(loadgens, shares, strict=True) if share
        ]
        total = {
            "booted": sum(r["booted"] for r in replies),
            "failed": sum(r["failed"] + r["unfinished"] for r in replies),
            "elapsed": round(time.monotonic() - started, 3),
            "refused_503": sum(r.get("refused_503", 0) for r in replies),
        }
        if total["failed"]:
            raise BenchError(f"{total['failed']} of {count} stations did not connect and boot")
        return total

    def cpu_of_all(self, since: dict[str, float] | None = None) -> dict[str, float]:
        """CPU seconds of the gateway, backend and load generators (minus ``since``)."""
        children = [self.gateway, self.backends[self.gateway.name], *self.loadgens]
        now = {child.name: child.cpu() for child in children}
        if since is None:
            return now
        return {name: round(cpu - since.get(name, 0.0), 2) for name, cpu in now.items()}

    def heartbeats(self, interval: float) -> None:
        for loadgen in self.loadgens:
            loadgen.request({"cmd": "heartbeat", "interval": interval}, 30)

    def cpu_window(self, target: Child, group: str, rate: float, seconds: float) -> dict[str, Any]:
        """Offer ``rate`` CALLs/s for ``seconds`` through the first load generator; CPU of
        ``target`` (and of its backend, when a gateway is the target) per CALL answered."""
        loadgen = self.loadgens[0]
        backend = self.backends.get(target.name, self.backend)
        cpu0, backend0, threads0 = target.cpu(), backend.cpu(), target.thread_cpu()
        reply = loadgen.request(
            {"cmd": "load", "group": group, "rate": rate, "duration": seconds}, seconds + 30
        )
        cpu, backend_cpu = target.cpu() - cpu0, backend.cpu() - backend0
        threads = target.thread_cpu()
        answered = reply["answered"]
        if not answered or reply["errors"] or reply["unanswered"]:
            raise BenchError(f"load window failed: {reply}")
        return {
            "rate": rate,
            "seconds": reply["window"],
            "answered": answered,
            "skipped": reply["skipped"],
            "cpu_s": round(cpu, 3),
            "us_per_call": round(cpu / answered * 1e6, 1),
            "backend_us_per_call": round(backend_cpu / answered * 1e6, 1),
            # where the time went: the main (reactor) thread, the others (gRPC's, executors'),
            # and threads that ended during the window (thread-per-call designs)
            "threads_us_per_call": self._split(threads0, threads, cpu, answered),
            "latency": reply["latency"],
        }

    @staticmethod
    def _split(
        before: dict[str, float], after: dict[str, float], total: float, answered: int
    ) -> dict[str, float]:
        split = {name: cpu - before.get(name, 0.0) for name, cpu in after.items()}
        split["ended threads"] = total - sum(split.values())
        return {
            name: round(cpu / answered * 1e6, 1)
            for name, cpu in sorted(split.items(), key=lambda item: -item[1])
            if cpu / answered * 1e6 >= 1
        }

    # --- scenarios --------------------------------------------------------------------------------

    def warm_up(self, group: str) -> None:
        p = self.profile
        self.loadgens[0].request(
            {"cmd": "load", "group": group, "rate": p.rate, "duration": p.warmup}, p.warmup + 30
        )

    def saturation_and_latency(self) -> None:
        p = self.profile
        self.say(f"saturation: closed loop over {p.active} stations")
        self.connect(self.gateway_url, "A", "A", 0, p.active, split=False)
        self.heartbeats(0)
        self.warm_up("A")
        reply = self.loadgens[0].request(
            {"cmd": "saturate", "group": "A", "duration": p.saturate}, p.saturate + 30
        )
        saturation = reply["answered"] / reply["window"]
        self.results["saturation"] = {
            "calls_per_s": round(saturation, 1),
            "stations": p.active,
            "latency": reply["latency"],
        }
        half = round(saturation / 2, 1)
        self.say(f"  {saturation:.0f} CALLs/s; latency at {half:g} CALLs/s")
        window = self.cpu_window(self.gateway, "A", half, p.latency_window)
        self.results["latency"] = {
            "rate": half,
            "answered": window["answered"],
            "skipped": window["skipped"],
            **window["latency"],
        }

    def idle_memory_and_fanout(self) -> None:
        p = self.profile
        base_stations = len(self.connected)
        time.sleep(0.5)
        base_rss = self.gateway.rss()
        self.results["rss_base_kib"] = base_rss
        steps = []
        fanouts = []
        step_no = 0
        for target in p.idle_steps:
            step_no += 1
            more = target - len(self.connected)
            if more > 0:
                self.say(f"idle memory: connecting {more} more stations (→ {target})")
                booted = self.connect(
                    self.gateway_url, f"I{step_no}", "I", len(self.connected), more
                )
                self.say(f"  booted in {booted['elapsed']:.1f} s")
            self.heartbeats(p.heartbeat)
            time.sleep(p.settle)
            self.heartbeats(0)
            time.sleep(0.5)
            rss = self.gateway.rss()
            per_station = (rss - base_rss) / (len(self.connected) - base_stations)
            steps.append(
                {
                    "stations": len(self.connected),
                    "rss_kib": rss,
                    "kib_per_station": round(per_station, 2),
                }
            )
            self.say(
                f"  {len(self.connected)} stations: RSS {rss / 1024:.0f} MiB, {per_station:.1f} KiB/station"
            )
            for count in p.fanouts:
                if count <= len(self.connected) and count not in {f["stations"] for f in fanouts}:
                    fanouts.append(self.fanout(count))
        self.results["idle_memory"] = steps
        self.results["fanout"] = fanouts

    def fanout(self, count: int) -> dict[str, Any]:
        """One remote command (DataTransfer) to each of ``count`` stations, published one by one
        at the profile's rate; then the same as one batch publication."""
        rate = self.profile.fanout_rate
        targets = self.connected[:count]
        self.say(f"fan-out: {count} remote commands at {rate:g}/s, then one batch of {count}")
        result: dict[str, Any] = {"stations": count, "rate": rate}
        for mode in ("paced", "batch"):
            cpu0 = self.cpu_of_all()
            expected = [0] * len(self.loadgens)
            for station_id in targets:
                expected[self.owner[station_id]] += 1
            timeout = count / rate + 30
            for loadgen, n in zip(self.loadgens, expected, strict=True):
                if n:
                    loadgen.request({"cmd": "fanout", "expect": n, "timeout": timeout}, 10)
            if mode == "paced":
                self._publish_paced(targets, rate)
            else:
                self._publish_batch(targets)
            latencies: list[float] = []
            for loadgen, n in zip(self.loadgens, expected, strict=True):
                if n:
                    latencies += loadgen.receive(timeout + 10)["latencies"]
            stats = summary(latencies)
            stats["lost"] = count - len(latencies)
            stats["cpu_s"] = self.cpu_of_all(since=cpu0)
            result[mode] = stats
            self.say(
                f"  {mode}: p50 {stats.get('p50')} ms, p99 {stats.get('p99')} ms, lost {stats['lost']}"
            )
            time.sleep(0.5)  # let the stations' acks reach the backend
        return result

    @staticmethod
    def _command(station_id: str, sent_ns: int) -> dict[str, str]:
        data = json.dumps(
            {
                "command": "DataTransfer",
                "payload": {"vendorId": "bench", "messageId": "fanout", "data": str(sent_ns)},
            },
            separators=(",", ":"),
        )
        return {"stream": STREAM_PREFIX + station_id, "data": data}

    def _publish_paced(self, targets: list[str], rate: float) -> None:
        started = time.perf_counter()
        for i, station_id in enumerate(targets):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = json.dumps(self._command(station_id, time.time_ns()), separators=(",", ":"))
            self.redis.command("PUBLISH", CHANNEL, body)

    def _publish_batch(self, targets: list[str]) -> None:
        now = time.time_ns()
        body = json.dumps([self._command(s, now) for s in targets], separators=(",", ":"))
        self.redis.command("PUBLISH", CHANNEL, body)

    def cpu_rounds(self) -> None:
        """Figures 2 and 6: CPU per CALL of a gateway holding only the active stations ("few",
        over gRPC), of the same over HTTP RPC ("http"), of the gateway holding every idle
        station too ("many", gRPC) and of the peer, in windows that take turns round after
        round; the median window of each counts. Measured one after the other, minutes apart,
        the same gateway's figure drifted by up to ±20 % on a shared machine; taking turns puts
        every drift on all of them alike."""
        p = self.profile
        few, few_url = self.launch_gateway("gateway-few")
        http, http_url = self.launch_gateway("gateway-http", "http")
        self.connect(few_url, "F", "F", 0, p.active, split=False)
        self.connect(http_url, "H", "H", 0, p.active, split=False)
        self.connect(f"ws://127.0.0.1:{self.peer_port}", "P", "P", 0, p.active, split=False)
        self.heartbeats(0)
        targets = {
            "few": (few, "F"),
            "http": (http, "H"),
            "many": (self.gateway, "A"),
            "peer": (self.peer, "P"),
        }
        self.say(
            f"CPU per call at {p.rate:g} CALLs/s, {p.active} stations active: gateway with "
            f"{p.active} stations over gRPC and over HTTP RPC, gateway with "
            f"{len(self.connected)} (gRPC), peer; {p.rounds} rounds"
        )
        windows: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for _, group in targets.values():
            self.warm_up(group)
        names = list(targets)
        for round_ in range(p.rounds):
            # the order rotates: no process is always measured right after the same other one
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                child, group = targets[name]
                windows[name].append(self.cpu_window(child, group, p.rate, p.window))
            figures = ", ".join(f"{name} {w[-1]['us_per_call']:.0f}" for name, w in windows.items())
            self.say(f"  round {round_ + 1}: {figures} µs/CALL")
        for group in ("F", "H", "P"):
            self.loadgens[0].request({"cmd": "close", "group": group}, 30)
            self._groups[0].remove(group)
        self.ps.stop(few)
        self.ps.stop(http)
        self.results["cpu_gateway"] = _median_window(windows["few"])
        self.results["cpu_gateway_http"] = _median_window(windows["http"])
        self.results["cpu_gateway_many"] = _median_window(windows["many"])
        self.results["cpu_gateway_many"]["stations"] = len(self.connected)
        self.results["cpu_peer"] = _median_window(windows["peer"])
        self.results["cpu_peer"].pop("backend_us_per_call")

    def boot_storm(self, transport: str) -> None:
        p = self.profile
        self.say(f"boot storm: {p.storm} stations on a fresh gateway, RPC over {transport}")
        self.start_gateway(f"gateway-storm-{transport}", transport)
        cpu0 = self.cpu_of_all()
        booted = self.connect(self.gateway_url, "S", "S", 0, p.storm)
        booted["cpu_s"] = self.cpu_of_all(since=cpu0)
        booted["stations"] = p.storm
        booted["boots_per_s"] = round(p.storm / booted["elapsed"], 1)
        booted["rss_kib"] = self.gateway.rss()
        self.results["boot_storm" if transport == "grpc" else f"boot_storm_{transport}"] = booted
        self.say(f"  {p.storm} booted in {booted['elapsed']:.1f} s")
        self.stop_gateway()

    def run(self) -> dict[str, Any]:
        self.say(f"profile {self.profile.name}; logs in {self.ps.logdir}")
        self.start_support()
        self.start_gateway("gateway")
        self.saturation_and_latency()
        self.idle_memory_and_fanout()
        self.cpu_rounds()
        self.stop_gateway()
        for transport in TRANSPORTS:
            self.boot_storm(transport)
        self.results["elapsed_s"] = round(time.monotonic() - self._started, 1)
        return self.results


def _median_window(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """The window with the median CPU per CALL, and every round's figure."""
    ordered = sorted(windows, key=lambda w: w["us_per_call"])
    return {**ordered[len(ordered) // 2], "rounds": [w["us_per_call"] for w in windows]}


class _Budget(Exception):
    pass


def _over_budget(signum: int, frame: Any) -> None:
    raise _Budget()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", const="quick", dest="profile")
    mode.add_argument("--smoke", action="store_const", const="smoke", dest="profile")
    parser.add_argument(
        "--json", help="write the figures here (default bench/results-<profile>.json)"
    )
    parser.add_argument(
        "--gateway-src",
        help="run the gateway code of another checkout (a directory holding ocppcable/), "
        "e.g. a `git worktree` of an older commit, for before/after figures",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the children's logs")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let the OS place processes (default: the gateway and the peer get the first CPU to "
        "themselves, the load generators, backend and redis share the others)",
    )
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile or "full"]
    out = Path(args.json) if args.json else ROOT / "bench" / f"results-{profile.name}.json"
    pin_cpus(not args.no_pin)
    limit = raise_open_files_limit()
    needed = max(profile.idle_steps + (profile.storm,)) + 200
    if limit < needed:
        print(
            f"warning: open files limit {limit} < {needed}: large steps may fail", file=sys.stderr
        )
    logdir = Path(tempfile.mkdtemp(prefix="ocppcable-bench-"))
    source = str(Path(args.gateway_src).resolve()) if args.gateway_src else None
    signal.signal(signal.SIGALRM, _over_budget)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.alarm(int(profile.budget))
    ok = False
    try:
        with Processes(logdir) as ps:
            results = Run(profile, ps, gateway_source=source).run()
        ok = True
    except _Budget:
        print(
            f"benchmark exceeded its {profile.budget:g} s budget; logs in {logdir}", file=sys.stderr
        )
        return 2
    except BenchError as e:
        print(f"benchmark failed: {e}\nlogs in {logdir}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        if ok and not args.keep_logs:
            subprocess.run(["rm", "-rf", str(logdir)], check=False)
    results["gateway_src"] = source
    report.derive(results)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(report.table(results))
    print(f"\nfigures written to {out}")
    return 0

"""Figures 8 and 9 (issue 16): a boot storm on one gateway process and on two sharing a
``reuseport:`` port, and a reconnect storm against a backend that serves 300 RPCs per second.

``python -m bench.storm [--smoke] [--stations N] [--rounds R] [--json FILE] [--gateway-src DIR]``
starts Redis, the no-op gRPC backend and two load generators, then:

8. **Boot storm, 1 vs 2 processes**: ``N`` stations connect and boot (Connect, subscribe and
   BootNotification RPCs) as fast as the load generators can, on one gateway process, then on
   two processes sharing one ``reuseport:`` port (a cluster over Redis, each with its own
   ``--metrics-listen``); the two take turns for ``R`` rounds, the median of each counts. The
   admission limit and the overload control are off here (``--admission-rate=0
   --overload-queue=0 --overload-latency=0``): the figure is the capacity, not the limits.
   Reported: seconds until the last station is booted, the ratio, and the gateways' CPU-seconds
   per boot. No CPU pinning: two gateways need both cores.
9. **Reconnect storm**: one gateway with its defaults (admission limit, ``Pending`` boots,
   priorities at the RPC gate) holds ``N`` booted stations that send a Heartbeat every
   ``--heartbeat`` seconds; the backend is limited to ``--backend-rate`` RPCs per second (calls
   over the rate wait for their turn); every connection is dropped at once and every station
   connects again at once, as real ones do: refused with 503 it comes back after
   ``Retry-After``, a boot answered ``Pending`` is sent again after its ``interval``. Reported:
   seconds until all are booted again, boots answered ``Pending``, handshakes refused with 503,
   the backend's peak RPC rate (received and served, per second), and the station CALLs that
   failed (a CALLERROR, no answer within 30 s, or lost with their connection; target 0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.processes import (
    ROOT,
    BenchError,
    Child,
    Processes,
    free_port,
    raise_open_files_limit,
    wait_http_ok,
)
from bench.run import CHANNEL, NO_LIMITS, gateway_args, machine, rpc_host, supported_options


@dataclass(frozen=True)
class StormProfile:
    name: str
    stations: int
    rounds: int
    #: handshakes and boots in flight per load generator in the boot storm
    inflight: int
    #: the reconnect storm: backend RPCs/s, the stations' heartbeat interval (s), extra gateway
    #: options (the smoke makes the gate saturate with a few stations)
    backend_rate: float
    heartbeat: float
    storm_args: tuple[str, ...]
    timeout: float


PROFILES = {
    "smoke": StormProfile(
        "smoke", 40, 1, 64, 60, 2.0, ("--overload-queue=3", "--overload-boot-interval=1"), 60
    ),
    "full": StormProfile("full", 10000, 3, 256, 300, 120.0, (), 900),
}


def metric_values(port: int) -> dict[str, float]:
    """Every sample of a gateway's ``/metrics``, summed over labels, by metric name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("{")[0].split()[0], line.rsplit(" ", 1)[1]
            values[name] = values.get(name, 0.0) + float(value)
    return values


class Storms:
    def __init__(
        self, profile: StormProfile, ps: Processes, source: str | None, progress: Any
    ) -> None:
        self.p = profile
        self.ps = ps
        self.source = source
        self.progress = progress
        self.options = supported_options(source)
        self.results: dict[str, Any] = {"profile": asdict(profile), "machine": machine()}
        self._started = time.monotonic()
        self._left_out: set[str] = set()

    def say(self, text: str) -> None:
        self.progress.write(f"[{time.monotonic() - self._started:6.1f}s] {text}\n")
        self.progress.flush()

    def start_support(self) -> None:
        self.redis = self.ps.redis()
        self.backend = self.ps.python("backend", "bench.backend", "--workers=64")
        self.loadgens = [self.ps.python(f"loadgen{i}", "bench.loadgen") for i in range(2)]
        self.backend_port = self.ps.ready(self.backend)["port"]
        for loadgen in self.loadgens:
            self.ps.ready(loadgen)

    def flags(self, *flags: str) -> list[str]:
        """The flags this gateway tree knows (the others are left out, and said so)."""
        known = [f for f in flags if f.split("=")[0] in self.options]
        for flag in sorted(set(flags) - set(known) - self._left_out):
            self.say(f"  (the gateway has no {flag.split('=')[0]}: left out)")
            self._left_out.add(flag)
        return known

    def gateways(self, count: int, extra: list[str]) -> tuple[list[tuple[Child, int]], str]:
        """``count`` gateway processes on one ``reuseport:`` port, each with its own metrics
        listener, ready and subscribed to Redis; and the stations' URL."""
        port = free_port()
        subscribed = self.redis.subscribers(CHANNEL) + count
        started = []
        for i in range(count):
            metrics = free_port()
            args = [
                *gateway_args(rpc_host("grpc", self.backend_port), self.redis.url),
                f"--listen=reuseport:{port}:interface=127.0.0.1:backlog=1024",
                f"--metrics-listen=tcp:{metrics}:interface=127.0.0.1",
                *extra,
            ]
            gateway = self.ps.gateway(f"gateway{count}-{i}", port, args, source=self.source)
            started.append((gateway, metrics))
        for gateway, metrics in started:
            wait_http_ok(gateway, f"http://127.0.0.1:{metrics}/health")
        deadline = time.monotonic() + 30
        while self.redis.subscribers(CHANNEL) < subscribed:
            if time.monotonic() > deadline:
                raise BenchError("the gateways did not subscribe to redis")
            time.sleep(0.05)
        return started, f"ws://127.0.0.1:{port}/ocpp"

    def connect(self, url: str, count: int, **options: Any) -> list[dict[str, Any]]:
        """``count`` stations ``S-*`` in group S, split over the load generators."""
        first = 0
        for loadgen, share in zip(self.loadgens, self._shares(count), strict=True):
            request = {"cmd": "connect", "group": "S", "url": url, "prefix": "S", "first": first}
            loadgen.send({**request, "count": share, "timeout": self.p.timeout, **options})
            first += share
        return [loadgen.receive(self.p.timeout + 30) for loadgen in self.loadgens]

    def close(self) -> None:
        for loadgen in self.loadgens:
            loadgen.request({"cmd": "close", "group": "S"}, 30)

    # --- figure 8 ---------------------------------------------------------------------------------

    def boot_storm(self, processes: int) -> dict[str, Any]:
        gateways, url = self.gateways(processes, self.flags(*NO_LIMITS))
        cpu0 = [g.cpu() for g, _ in gateways]
        others0 = [c.cpu() for c in (self.backend, *self.loadgens)]
        started = time.monotonic()
        replies = self.connect(url, self.p.stations, inflight=self.p.inflight)
        elapsed = time.monotonic() - started
        failed = sum(r["failed"] + r["unfinished"] for r in replies)
        if failed:
            raise BenchError(f"boot storm: {failed} stations did not boot: {replies}")
        cpu = sum(g.cpu() - c for (g, _), c in zip(gateways, cpu0, strict=True))
        others = sum(
            c.cpu() - c0 for c, c0 in zip((self.backend, *self.loadgens), others0, strict=True)
        )
        held = [int(metric_values(m).get("ocppcable_stations_connected", 0)) for _, m in gateways]
        self.close()
        for gateway, _ in gateways:
            self.ps.stop(gateway)
        return {
            "processes": processes,
            "elapsed_s": round(elapsed, 2),
            "boots_per_s": round(self.p.stations / elapsed, 1),
            "gateway_cpu_s": round(cpu, 2),
            "cpu_ms_per_boot": round(cpu / self.p.stations * 1000, 3),
            "others_cpu_s": round(others, 2),
            "stations_per_process": held,
        }

    def boot_storms(self) -> None:
        rounds: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        for round_ in range(self.p.rounds):
            for processes in (1, 2) if round_ % 2 == 0 else (2, 1):
                self.say(f"boot storm {round_ + 1}: {self.p.stations} stations, {processes} proc")
                figure = self.boot_storm(processes)
                rounds[processes].append(figure)
                self.say(
                    f"  {figure['elapsed_s']} s, {figure['cpu_ms_per_boot']} CPU-ms/boot, "
                    f"stations per process {figure['stations_per_process']}"
                )
        result = {}
        for processes, figures in rounds.items():
            median = sorted(figures, key=lambda f: f["elapsed_s"])[len(figures) // 2]
            result[f"p{processes}"] = {**median, "rounds_s": [f["elapsed_s"] for f in figures]}
        result["speedup"] = round(result["p1"]["elapsed_s"] / result["p2"]["elapsed_s"], 3)
        self.results["boot_storm"] = result

    # --- figure 9 ---------------------------------------------------------------------------------

    def reconnect_storm(self) -> None:
        p = self.p
        self.say(f"reconnect storm: {p.stations} stations boot (backend unlimited)")
        [(gateway, metrics)], url = self.gateways(1, self.flags(*p.storm_args))
        replies = self.connect(url, p.stations, inflight=p.inflight, retry=True)
        if sum(r["booted"] for r in replies) != p.stations:
            raise BenchError(f"reconnect storm: the first boot failed: {replies}")
        for loadgen in self.loadgens:
            loadgen.request({"cmd": "heartbeat", "interval": p.heartbeat}, 30)
        self.backend.request({"cmd": "rate", "rate": p.backend_rate}, 10)
        time.sleep(min(p.heartbeat, 5.0))
        errors0 = self._call_errors()
        metrics0 = metric_values(metrics)
        since = time.monotonic()
        self.say(f"  all dropped and reconnecting; backend at {p.backend_rate:g} RPCs/s")
        for loadgen in self.loadgens:
            loadgen.send({"cmd": "reconnect", "group": "S", "timeout": p.timeout})
        replies = [loadgen.receive(p.timeout + 30) for loadgen in self.loadgens]
        elapsed = time.monotonic() - since
        time.sleep(2.0)  # heartbeats sent just before the end are answered
        errors = self._call_errors(errors0)
        backend = self.backend.request({"cmd": "stats"}, 10)
        served = [n for second, n in backend["served_by_second"] if second >= int(since)]
        received = [n for second, n in backend["received_by_second"] if second >= int(since)]
        metrics1 = metric_values(metrics)
        rebooted = sum(r["booted"] for r in replies)
        self.results["reconnect_storm"] = {
            "stations": p.stations,
            "backend_rate": p.backend_rate,
            "heartbeat_s": p.heartbeat,
            "rebooted": rebooted,
            "all_booted_s": round(elapsed, 1) if rebooted == p.stations else None,
            "pending": sum(r["pending"] for r in replies),
            "refused_503": sum(r["refused_503"] for r in replies),
            "retried": sum(r["retried"] for r in replies),
            "backend_peak_received_per_s": max(received, default=0),
            "backend_peak_served_per_s": max(served, default=0),
            "backend_mean_served_per_s": round(statistics.fmean(served), 1) if served else 0,
            "backend_most_waiting": backend["most_waiting"],
            "call_errors": errors,
            "call_errors_total": sum(errors.values()),
            "gateway_metrics": {
                name: metrics1[name] - metrics0.get(name, 0.0)
                for name in metrics1
                if name.endswith("_total") and ("pending" in name or "admission" in name)
            },
            "boot_latency": [r["boot_latency"] for r in replies],
        }
        self.say(
            f"  {rebooted} booted again in {elapsed:.1f} s; "
            f"{self.results['reconnect_storm']['pending']} Pending; "
            f"{sum(errors.values())} CALLs failed"
        )
        self.backend.request({"cmd": "rate", "rate": 0}, 10)
        self.close()
        self.ps.stop(gateway)

    @staticmethod
    def _shares(count: int) -> list[int]:
        return [count // 2 + (i < count % 2) for i in range(2)]

    def _call_errors(self, since: dict[str, int] | None = None) -> dict[str, int]:
        total: dict[str, int] = {}
        for loadgen in self.loadgens:
            for key, n in loadgen.request({"cmd": "stats"}, 10)["call_errors"].items():
                total[key] = total.get(key, 0) + n
        if since is None:
            return total
        return {k: n - since.get(k, 0) for k, n in total.items() if n - since.get(k, 0)}

    def run(self, only: str | None = None) -> dict[str, Any]:
        self.say(f"profile {self.p.name}; logs in {self.ps.logdir}")
        self.start_support()
        if only != "reconnect":
            self.boot_storms()
        if only != "boot":
            self.reconnect_storm()
        self.results["elapsed_s"] = round(time.monotonic() - self._started, 1)
        return self.results


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"ocppcable storms, profile {r['profile']['name']}: {m['date']}, {m['nproc']} x "
        f"{m['cpu']}, load before {r.get('load_before')}, after {r.get('load_after')}"
    ]
    if "boot_storm" in r:
        lines.append(_boot_line(r))
    if "reconnect_storm" in r:
        lines.append(_reconnect_line(r["reconnect_storm"]))
    return "\n".join(lines)


def _boot_line(r: dict[str, Any]) -> str:
    boot = r["boot_storm"]
    one, two = boot["p1"], boot["p2"]
    return (
        f"8 boot storm {r['profile']['stations']} stations: 1 process {one['elapsed_s']} s "
        f"({one['cpu_ms_per_boot']} CPU-ms/boot), 2 processes on reuseport: {two['elapsed_s']} s "
        f"({two['cpu_ms_per_boot']} CPU-ms/boot, {two['stations_per_process']}); "
        f"speed-up {boot['speedup']}; rounds {one['rounds_s']} / {two['rounds_s']}"
    )


def _reconnect_line(storm: dict[str, Any]) -> str:
    return (
        f"9 reconnect storm {storm['stations']} stations, backend {storm['backend_rate']:g} RPCs/s"
        f": all booted again in {storm['all_booted_s']} s; {storm['pending']} boots Pending, "
        f"{storm['refused_503']} handshakes 503; backend peak {storm['backend_peak_served_per_s']}"
        f" served/s ({storm['backend_peak_received_per_s']} received/s, mean "
        f"{storm['backend_mean_served_per_s']}); CALLs failed: {storm['call_errors_total']} "
        f"{storm['call_errors'] or ''}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny counts, a few seconds")
    parser.add_argument("--stations", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--backend-rate", type=float)
    parser.add_argument("--heartbeat", type=float)
    parser.add_argument("--json", help="default bench/results-storm[-smoke].json")
    parser.add_argument("--gateway-src", help="run the gateway code of another checkout")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--only", choices=("boot", "reconnect"), help="one of the two figures")
    args = parser.parse_args(argv)
    profile = PROFILES["smoke" if args.smoke else "full"]
    overrides = {
        "stations": args.stations,
        "rounds": args.rounds,
        "backend_rate": args.backend_rate,
        "heartbeat": args.heartbeat,
    }
    profile = StormProfile(
        **{**asdict(profile), **{k: v for k, v in overrides.items() if v is not None}}
    )
    suffix = "-smoke" if args.smoke else ""
    out = Path(args.json) if args.json else ROOT / "bench" / f"results-storm{suffix}.json"
    raise_open_files_limit()
    logdir = Path(tempfile.mkdtemp(prefix="ocppcable-storm-"))
    source = str(Path(args.gateway_src).resolve()) if args.gateway_src else None
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    try:
        with Processes(logdir) as ps:
            results = Storms(profile, ps, source, sys.stderr).run(args.only)
    except BenchError as e:
        print(f"benchmark failed: {e}\nlogs in {logdir}", file=sys.stderr)
        return 1
    if not args.keep_logs:
        subprocess.run(["rm", "-rf", str(logdir)], check=False)
    results["load_before"] = " ".join(load_before)
    results["load_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results["gateway_src"] = source
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nfigures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

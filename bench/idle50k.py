"""Figure 10 (issue 16): idle booted stations in one gateway process, 50k of them if the
machine's limits allow: RSS per station and the time they take to connect and boot.

``python -m bench.idle50k [--smoke] [--stations N] [--per-loadgen M] [--json FILE]`` starts
Redis, the no-op gRPC backend, one gateway and as many load generators as ``N`` needs (``M``
stations each, each from its own loopback address 127.0.0.2, 127.0.0.3, …: one source address
has about 28k ephemeral ports towards one port). Every process raises its open-files limit to
its hard limit (``setrlimit``; the system's settings are not touched); a process can hold no more
descriptors than that hard limit, so when ``N`` does not fit under it the run measures the
largest count that does and says why. 100 stations boot first (the baseline RSS, with every lazy
import and schema loaded), then the rest at once (256 handshakes and boots in flight per load
generator; the admission limit and the overload control off: the figure is the capacity); RSS
is read 3 s after the last boot, with no traffic. No CPU pinning.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.processes import BenchError, Processes, free_port, raise_open_files_limit, wait_http_ok
from bench.run import CHANNEL, ROOT, gateway_args, machine, rpc_host, without_limits

BASELINE = 100
#: descriptors a process keeps for everything but stations (the gateway's own
#: --max-connections default leaves 100; a load generator needs a few dozen)
RESERVED_FDS = 250


def hard_fd_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else hard


def measure(ps: Processes, stations: int, per_loadgen: int, say: Any) -> dict[str, Any]:
    redis = ps.redis()
    backend = ps.python("backend", "bench.backend", "--workers=64")
    loadgens = [
        ps.python(f"loadgen{i}", "bench.loadgen") for i in range(-(-stations // per_loadgen))
    ]
    backend_port = ps.ready(backend)["port"]
    for loadgen in loadgens:
        ps.ready(loadgen)
    port, metrics = free_port(), free_port()
    args = [
        *gateway_args(rpc_host("grpc", backend_port), redis.url),
        f"--metrics-listen=tcp:{metrics}:interface=127.0.0.1",
        *without_limits(None),
    ]
    gateway = ps.gateway("gateway", port, args)
    wait_http_ok(gateway, f"http://127.0.0.1:{metrics}/health")
    deadline = time.monotonic() + 30
    while redis.subscribers(CHANNEL) < 1:
        if time.monotonic() > deadline:
            raise gateway.fail("did not subscribe to redis")
        time.sleep(0.05)
    url = f"ws://127.0.0.1:{port}/ocpp"
    timeout = 60 + stations / 100

    def connect(loadgen: Any, source: str, first: int, count: int) -> None:
        request = {"cmd": "connect", "group": "I", "url": url, "prefix": "I", "first": first}
        request.update(count=count, source=source, inflight=256, timeout=timeout, retry=True)
        loadgen.send(request)

    connect(loadgens[0], "127.0.0.2", 0, BASELINE)
    loadgens[0].receive(60)
    time.sleep(1.0)
    base_rss = gateway.rss()
    say(f"baseline: {BASELINE} stations, gateway RSS {base_rss / 1024:.0f} MiB")
    rest = stations - BASELINE
    shares = [rest // len(loadgens) + (i < rest % len(loadgens)) for i in range(len(loadgens))]
    say(f"connecting {rest} more stations from {len(loadgens)} load generators")
    cpu0 = gateway.cpu()
    started = time.monotonic()
    first = BASELINE
    for i, (loadgen, share) in enumerate(zip(loadgens, shares, strict=True)):
        connect(loadgen, f"127.0.0.{2 + i}", first, share)
        first += share
    replies = [loadgen.receive(timeout + 30) for loadgen in loadgens]
    elapsed = time.monotonic() - started
    cpu = gateway.cpu() - cpu0
    booted = sum(r["booted"] for r in replies)
    if booted != rest:
        raise BenchError(f"{rest - booted} stations did not boot: {replies}")
    time.sleep(3.0)
    rss = gateway.rss()
    return {
        "stations": stations,
        "boot_s": round(elapsed, 1),
        "boots_per_s": round(rest / elapsed, 1),
        "gateway_cpu_ms_per_boot": round(cpu / rest * 1000, 3),
        "rss_base_kib": base_rss,
        "rss_kib": rss,
        "kib_per_station": round((rss - base_rss) / rest, 2),
        "loadgens": len(loadgens),
        "loadgen_kib_per_station": round(
            sum(lg.rss() for lg in loadgens) / stations, 1
        ),  # the clients' own cost, for scale
        "refused_503": sum(r["refused_503"] for r in replies),
        "retried": sum(r["retried"] for r in replies),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle50k", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="300 stations, 3 load generators")
    parser.add_argument("--stations", type=int, default=50000)
    parser.add_argument("--per-loadgen", type=int, default=15000)
    parser.add_argument("--json", help="default bench/results-idle50k[-smoke].json")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    stations, per_loadgen = (300, 100) if args.smoke else (args.stations, args.per_loadgen)
    raise_open_files_limit()
    hard = hard_fd_limit()
    fits = hard - RESERVED_FDS
    limited_by = None
    if stations > fits:
        limited_by = (
            f"{stations} stations asked; a process may hold at most {hard} descriptors (hard "
            f"RLIMIT_NOFILE; raising it needs CAP_SYS_RESOURCE), so {fits} stations are measured"
        )
        print(limited_by, file=sys.stderr)
        stations = fits
    per_loadgen = min(per_loadgen, fits)
    logdir = Path(tempfile.mkdtemp(prefix="ocppcable-idle-"))
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", file=sys.stderr, flush=True)

    try:
        with Processes(logdir) as ps:
            result = measure(ps, stations, per_loadgen, say)
    except BenchError as e:
        print(f"benchmark failed: {e}\nlogs in {logdir}", file=sys.stderr)
        return 1
    if not args.keep_logs:
        subprocess.run(["rm", "-rf", str(logdir)], check=False)
    result.update(
        asked=args.stations if not args.smoke else stations,
        limited_by=limited_by,
        fd_hard_limit=hard,
        machine=machine(),
        load_before=load_before,
        load_after=" ".join(Path("/proc/loadavg").read_text().split()[:3]),
    )
    suffix = "-smoke" if args.smoke else ""
    out = Path(args.json) if args.json else ROOT / "bench" / f"results-idle50k{suffix}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"10 idle stations in one process: {result['stations']} booted in {result['boot_s']} s "
        f"({result['boots_per_s']}/s, {result['gateway_cpu_ms_per_boot']} CPU-ms/boot); RSS "
        f"{result['rss_kib'] / 1024:.0f} MiB, {result['kib_per_station']} KiB/station"
        + (f"\n   limited: {limited_by}" if limited_by else "")
    )
    print(f"\nfigures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

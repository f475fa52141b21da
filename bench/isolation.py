"""Figure 7: a backend slow for some stations must not slow down the others (issue 12 item 8).

``python -m bench.isolation [--gateway-src DIR]`` starts Redis, the no-op backend (with enough
worker threads that it is never the bottleneck) whose ``message`` takes ``--slow-seconds`` for
stations ``SLOW-*``, one gateway with its defaults (28 RPCs in flight), and two load
generators. ``--healthy`` stations offer ``--rate`` CALLs/s in all (one outstanding CALL per
station) for ``--window`` seconds, alone (the baseline), then again while ``--slow`` stations
each keep one CALL outstanding on the slow backend. It prints and writes (``--json``) the
healthy stations' CALL→CALLRESULT latency in both windows.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bench.processes import (
    BenchError,
    Child,
    Processes,
    free_port,
    run_figure,
    wait_http_ok,
)
from bench.run import gateway_args, machine

SLOW_PREFIX = "SLOW"


def _connect(loadgen: Child, url: str, group: str, count: int) -> None:
    reply = loadgen.request(
        {
            "cmd": "connect",
            "group": group,
            "url": url,
            "prefix": group,
            "first": 0,
            "count": count,
            "inflight": 64,
            "timeout": 60,
        },
        90,
    )
    if reply["failed"] or reply["unfinished"]:
        raise BenchError(f"{group}: stations did not connect and boot: {reply}")


def _window(loadgen: Child, rate: float, seconds: float) -> dict[str, Any]:
    reply = loadgen.request(
        {"cmd": "load", "group": "H", "rate": rate, "duration": seconds}, seconds + 30
    )
    return {
        "answered": reply["answered"],
        "errors": reply["errors"],
        "skipped": reply["skipped"],
        **reply["latency"],
    }


def measure(ps: Processes, args: argparse.Namespace, source: str | None) -> dict[str, Any]:
    redis = ps.redis()
    workers = str(2 * (args.slow + args.healthy) + 32)
    backend = ps.python(
        "backend",
        "bench.backend",
        f"--workers={workers}",
        f"--slow-prefix={SLOW_PREFIX}",
        f"--slow-seconds={args.slow_seconds}",
    )
    healthy, slow = (ps.python(f"loadgen-{name}", "bench.loadgen") for name in ("H", "S"))
    backend_port = ps.ready(backend)["port"]
    ps.ready(healthy)
    ps.ready(slow)
    port = free_port()
    rpc = f"127.0.0.1:{backend_port}"
    gateway = ps.gateway("gateway", port, gateway_args(rpc, redis.url), source=source)
    wait_http_ok(gateway, f"http://127.0.0.1:{port}/health")
    url = f"ws://127.0.0.1:{port}/ocpp"
    _connect(healthy, url, "H", args.healthy)
    _connect(slow, url, SLOW_PREFIX, args.slow)
    _window(healthy, args.rate, 2.0)  # warm-up
    baseline = _window(healthy, args.rate, args.window)
    print(f"healthy alone: p50 {baseline['p50']} ms, p99 {baseline['p99']} ms", file=sys.stderr)
    duration = args.window + 2 * args.slow_seconds
    slow.send({"cmd": "saturate", "group": SLOW_PREFIX, "duration": duration})
    time.sleep(min(2.0, args.slow_seconds / 2))  # the slow calls hold their RPCs by now
    loaded = _window(healthy, args.rate, args.window)
    print(f"beside slow ones: p50 {loaded['p50']} ms, p99 {loaded['p99']} ms", file=sys.stderr)
    slow_reply = slow.receive(duration + 60)
    return {
        "machine": machine(),
        "gateway_src": source,
        "healthy_stations": args.healthy,
        "slow_stations": args.slow,
        "slow_seconds": args.slow_seconds,
        "rate": args.rate,
        "window_s": args.window,
        "alone": baseline,
        "beside_slow": loaded,
        "slow": {"answered": slow_reply["answered"], "errors": slow_reply["errors"]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.isolation", description=__doc__)
    parser.add_argument("--healthy", type=int, default=50)
    parser.add_argument("--slow", type=int, default=40)
    parser.add_argument("--slow-seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="healthy CALLs/s in all")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--gateway-src", help="run the gateway code of another checkout")
    parser.add_argument("--json", help="default bench/results-isolation.json")
    args = parser.parse_args(argv)
    ran = run_figure("isolation", args, measure)
    if ran is None:
        return 1
    results, out = ran
    for name in ("alone", "beside_slow"):
        w = results[name]
        print(
            f"{name:12} p50 {w['p50']:8.1f} ms  p99 {w['p99']:8.1f} ms  max {w['max']:8.1f} ms  "
            f"answered {w['answered']}  errors {w['errors']}  skipped {w['skipped']}"
        )
    print(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

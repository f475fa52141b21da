"""Before/after: the CPU-per-call figure and a boot storm for several gateway source trees.

``python -m bench.compare [--rate 500] [--window 4] [--rounds 3] [--storm 10000] [--transport
http] DIR [DIR ...]``

Each DIR holds an ``ocppcable/`` package (``git archive <commit> ocppcable twisted | tar -x -C
DIR``, or ``.`` for this checkout). The trees take turns, one fresh gateway each round, so that
slow drifts of a shared machine spread over all of them; the median round is reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.processes import Processes, free_port, pin_cpus, raise_open_files_limit, wait_http_ok
from bench.run import TRANSPORTS, gateway_args, rpc_host, without_limits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--window", type=float, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stations", type=int, default=100)
    parser.add_argument("--storm", type=int, default=0, help="also time a boot storm this big")
    parser.add_argument("--transport", choices=TRANSPORTS, default="grpc", help="RPC transport")
    parser.add_argument("--no-pin", action="store_true", help="see python -m bench --help")
    args = parser.parse_args(argv)
    pin_cpus(not args.no_pin)
    raise_open_files_limit()
    trees = [str(Path(tree).resolve()) for tree in args.trees]
    cpu: dict[str, list[float]] = {tree: [] for tree in trees}
    p99: dict[str, list[float]] = {tree: [] for tree in trees}
    storm: dict[str, list[float]] = {tree: [] for tree in trees}
    with Processes(Path(tempfile.mkdtemp(prefix="ocppcable-compare-"))) as ps:
        redis = ps.redis()
        http = ("--http",) if args.transport == "http" else ()
        backend = ps.python("backend", "bench.backend", *http)
        rpc = rpc_host(args.transport, ps.ready(backend)["port"])
        loadgens = [ps.python(f"loadgen{i}", "bench.loadgen") for i in range(2)]
        for loadgen in loadgens:
            ps.ready(loadgen)
        for round_ in range(args.rounds):
            for tree in trees:
                port = free_port()
                gateway = ps.gateway(
                    "gateway",
                    port,
                    gateway_args(rpc, redis.url) + without_limits(tree),
                    source=tree,
                )
                wait_http_ok(gateway, f"http://127.0.0.1:{port}/health")
                url = f"ws://127.0.0.1:{port}/ocpp"
                _request(
                    loadgens[0], "connect", group="A", url=url, prefix="A", count=args.stations
                )
                _request(loadgens[0], "load", group="A", rate=args.rate, duration=1.5)
                before = gateway.cpu()
                window = _request(
                    loadgens[0], "load", group="A", rate=args.rate, duration=args.window
                )
                cpu[tree].append((gateway.cpu() - before) / window["answered"] * 1e6)
                p99[tree].append(window["latency"]["p99"])
                if args.storm:
                    storm[tree].append(_storm(loadgens, url, args.storm))
                for loadgen in loadgens:
                    _request(loadgen, "close", group="A")
                    _request(loadgen, "close", group="S")
                ps.stop(gateway)
                print(f"round {round_ + 1}: {tree}: {cpu[tree][-1]:.0f} µs/CALL", file=sys.stderr)
    print(f"{'tree':40s}  µs/CALL @{args.rate:g}/s (runs)         p99 ms  storm s")
    for tree in trees:
        runs = " ".join(f"{x:.0f}" for x in cpu[tree])
        storm_s = f"{statistics.median(storm[tree]):.1f}" if storm[tree] else "-"
        print(
            f"{tree:40s}  {statistics.median(cpu[tree]):7.0f} ({runs:20s})"
            f"  {statistics.median(p99[tree]):6.2f}  {storm_s}"
        )
    return 0


def _request(loadgen: Any, cmd: str, **fields: Any) -> dict[str, Any]:
    return loadgen.request({"cmd": cmd, **fields}, 150)


def _storm(loadgens: list[Any], url: str, count: int) -> float:
    started = time.monotonic()
    share = count // len(loadgens)
    for i, loadgen in enumerate(loadgens):
        loadgen.send(
            {
                "cmd": "connect",
                "group": "S",
                "url": url,
                "prefix": "S",
                "first": i * share,
                "count": share,
                "inflight": 256,
                "timeout": 120,
            }
        )
    for loadgen in loadgens:
        reply = loadgen.receive(150)
        if reply.get("failed") or reply.get("unfinished"):
            raise RuntimeError(f"storm failed: {reply}")
    return time.monotonic() - started


if __name__ == "__main__":
    sys.exit(main())

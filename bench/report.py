"""The figures of a run as one table, each against its target."""

from __future__ import annotations

from typing import Any

#: figure 1: KiB of gateway RSS per idle station at the largest step
MEMORY_TARGET_KIB = 20.0
#: figure 2: gateway CPU per CALL ÷ the ocpp-package peer's
RATIO_TARGET = 0.5
#: figure 2 over HTTP RPC: a CALL with its RPC no dearer than the peer's CALL without one
HTTP_RATIO_TARGET = 1.0
#: figure 4: p99 PUBLISH → CALL at the largest fan-out, ms
FANOUT_P99_TARGET_MS = 10.0
#: figure 5: seconds for the boot storm (10k stations in the full profile)
STORM_TARGET_S = 20.0
#: figure 6: CPU per CALL with many stations connected may exceed the 100-station figure by
#: this factor (measurement noise), no more
SCALING_TOLERANCE = 1.15


def _status(met: bool | None) -> str:
    if met is None:
        return "-"
    return "met" if met else "NOT MET"


def _ms(stats: dict[str, Any], key: str) -> str:
    value = stats.get(key)
    return "-" if value is None else f"{value:.2f}"


def derive(r: dict[str, Any]) -> None:
    """Add the derived figures (peer ratio, scaling growth) to the results."""
    gateway = r["cpu_gateway"]["us_per_call"]
    r["ratio"] = round(gateway / r["cpu_peer"]["us_per_call"], 3)
    r["ratio_http"] = round(r["cpu_gateway_http"]["us_per_call"] / r["cpu_peer"]["us_per_call"], 3)
    r["scaling_growth"] = round(r["cpu_gateway_many"]["us_per_call"] / gateway, 3)


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []

    steps = r["idle_memory"]
    memory = " / ".join(f"{s['kib_per_station']:.1f} @{s['stations']}" for s in steps)
    top = steps[-1]
    full_scale = top["stations"] >= 10000
    out.append(
        (
            "1 idle memory, KiB/station",
            memory,
            f"<= {MEMORY_TARGET_KIB:g} @10k",
            _status(top["kib_per_station"] <= MEMORY_TARGET_KIB),
        )
    )

    gateway, peer, http = r["cpu_gateway"], r["cpu_peer"], r["cpu_gateway_http"]
    for transport, figures, ratio, target in (
        ("gRPC", gateway, r["ratio"], RATIO_TARGET),
        ("HTTP RPC", http, r["ratio_http"], HTTP_RATIO_TARGET),
    ):
        out.append(
            (
                f"2 CPU/CALL @{figures['rate']:g}/s, {transport}, µs",
                f"gateway {figures['us_per_call']:.0f} / peer {peer['us_per_call']:.0f} = "
                f"{ratio:.2f}",
                f"ratio <= {target:g}",
                _status(ratio <= target),
            )
        )

    latency = r["latency"]
    out.append(
        (
            f"3 latency @{latency['rate']:.0f}/s (50% of {r['saturation']['calls_per_s']:.0f}), ms",
            f"p50 {_ms(latency, 'p50')} / p99 {_ms(latency, 'p99')}",
            "-",
            "-",
        )
    )

    for fanout in r["fanout"]:
        paced, batch = fanout["paced"], fanout["batch"]
        largest = fanout is r["fanout"][-1]
        met = None
        if largest:
            met = paced.get("p99") is not None and paced["p99"] <= FANOUT_P99_TARGET_MS
            met = met and not paced["lost"]
        out.append(
            (
                f"4 fan-out {fanout['stations']} @{fanout['rate']:g}/s, ms",
                f"p50 {_ms(paced, 'p50')} / p99 {_ms(paced, 'p99')}"
                f" (one batch: p50 {_ms(batch, 'p50')} / p99 {_ms(batch, 'p99')})",
                f"p99 <= {FANOUT_P99_TARGET_MS:g} @10k" if largest else "",
                _status(met),
            )
        )

    for transport, storm in (("gRPC", r["boot_storm"]), ("HTTP RPC", r["boot_storm_http"])):
        out.append(
            (
                f"5 boot storm {storm['stations']} stations, {transport}, s",
                f"{storm['elapsed']:.1f} ({storm['boots_per_s']:.0f} boots/s)",
                f"<= {STORM_TARGET_S:g} @10k",
                _status(storm["elapsed"] <= STORM_TARGET_S),
            )
        )

    many = r["cpu_gateway_many"]
    growth = r["scaling_growth"]
    out.append(
        (
            f"6 CPU/CALL @{gateway['rate']:g}/s, µs",
            f"{gateway['us_per_call']:.0f} @{r['profile']['active']} stations / "
            f"{many['us_per_call']:.0f} @{many['stations']} ({growth - 1:+.0%})",
            f"no growth (<= {SCALING_TOLERANCE - 1:+.0%})",
            _status(growth <= SCALING_TOLERANCE),
        )
    )
    if not full_scale:
        out = [(a, b, c + (" (full run)" if c and c != "-" else ""), d) for a, b, c, d in out]
    return out


def table(r: dict[str, Any]) -> str:
    header = ("figure", "value", "target", "status")
    body = rows(r)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    m = r["machine"]
    lines = [
        f"ocppcable benchmark, profile {r['profile']['name']}: {m['date']}, {m['nproc']} x "
        f"{m['cpu']}, {m['ram_gib']} GiB, Python {m['python']}, {m['commit']}"
        + (f", gateway code from {r['gateway_src']}" if r.get("gateway_src") else ""),
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        line,
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    g, p, h = r["cpu_gateway"], r["cpu_peer"], r["cpu_gateway_http"]
    lines += [
        line,
        f"CPU/CALL detail: backend {g['backend_us_per_call']:.0f} µs/CALL (not counted); "
        f"gateway latency at {g['rate']:g}/s p50 {_ms(g['latency'], 'p50')} ms, "
        f"peer p50 {_ms(p['latency'], 'p50')} ms; saturation {r['saturation']['calls_per_s']:.0f} "
        f"CALLs/s with {r['saturation']['stations']} stations (whole system on this machine)",
        f"HTTP RPC: backend {h['backend_us_per_call']:.0f} µs/CALL (not counted); gateway "
        f"latency at {h['rate']:g}/s p50 {_ms(h['latency'], 'p50')} ms",
        "gateway CPU/CALL by thread, µs: gRPC "
        + ", ".join(f"{name} {us:.0f}" for name, us in g.get("threads_us_per_call", {}).items())
        + "; HTTP RPC "
        + ", ".join(f"{name} {us:.0f}" for name, us in h.get("threads_us_per_call", {}).items()),
        f"run took {r['elapsed_s']:g} s",
    ]
    return "\n".join(lines)

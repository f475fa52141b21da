"""The numbers of a simulator run: counters shared by its stations, and the final summary."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from twisted.logger import Logger

log = Logger()


def percentile(ordered: Sequence[float], percent: int) -> float:
    """The nearest-rank percentile of the ascending, non-empty ``ordered``: the smallest value
    with at least ``percent`` % of all values at or below it."""
    rank = max(1, -(-percent * len(ordered) // 100))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latency:
    """CALL→reply times in seconds (None without replies)."""

    count: int
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, samples: Sequence[float]) -> Latency:
        if not samples:
            return cls(0)
        ordered = sorted(samples)
        return cls(
            len(ordered),
            percentile(ordered, 50),
            percentile(ordered, 90),
            percentile(ordered, 99),
            ordered[-1],
        )

    def __str__(self) -> str:
        if not self.count:
            return "no replies"
        figures = zip(
            ("p50", "p90", "p99", "max"), (self.p50, self.p90, self.p99, self.max), strict=True
        )
        shown = ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in figures)
        return f"{shown} ({self.count} replies)"


def _counts(counts: dict[str, int]) -> str:
    if not counts:
        return "none"
    items = ", ".join(f"{key} {counts[key]}" for key in sorted(counts))
    return f"{sum(counts.values())} ({items})"


@dataclass(frozen=True)
class Summary:
    """What a run did, for the final report and the exit code."""

    stations: int
    elapsed: float
    booted: int  # stations whose BootNotification was accepted at least once
    sessions_started: int
    sessions_completed: int
    sessions_refused: int
    calls: dict[str, int]  # CALLs sent, by action
    call_errors: dict[str, int]  # CALLERROR replies, by error code
    timeouts: dict[str, int]  # CALLs without a reply in time, by action
    commands: dict[str, int]  # remote commands answered, by action
    errors: dict[str, int]  # anything else that went wrong, by kind
    latency: Latency

    @property
    def problems(self) -> int:
        return (
            sum(self.call_errors.values()) + sum(self.timeouts.values()) + sum(self.errors.values())
        )

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def __str__(self) -> str:
        return "\n".join(
            [
                f"ocppcable-station: {self.stations} station(s), {self.elapsed:.1f} s",
                f"  booted      {self.booted} of {self.stations}",
                f"  sessions    {self.sessions_started} started, {self.sessions_completed} "
                f"completed, {self.sessions_refused} refused",
                f"  calls       {_counts(self.calls)}",
                f"  latency     {self.latency}",
                f"  CALLERRORs  {_counts(self.call_errors)}",
                f"  timeouts    {_counts(self.timeouts)}",
                f"  commands    {_counts(self.commands)}",
                f"  errors      {_counts(self.errors)}",
                "  result      " + ("OK" if self.ok else f"FAILED ({self.problems} problems)"),
            ]
        )


class Stats:
    """Counters shared by all stations of a run, and every CALL→reply latency."""

    def __init__(self) -> None:
        self.connected = 0  # stations with an open WebSocket
        self.booted = 0  # of those, the ones whose registration is Accepted
        self.stations_booted = 0  # stations accepted at least once
        self.sessions_started = 0
        self.sessions_completed = 0
        self.sessions_refused = 0
        self.calls: Counter[str] = Counter()
        self.call_errors: Counter[str] = Counter()
        self.timeouts: Counter[str] = Counter()
        self.commands: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.latencies = array("d")  # 8 bytes a reply

    @staticmethod
    def count(counter: Counter[str], key: str) -> bool:
        """Count one ``key``; True the first time (callers log only the first of a kind)."""
        counter[key] += 1
        return counter[key] == 1

    def error(self, station_id: str, kind: str, detail: str) -> None:
        """Count an error of ``kind``; log the first one of each kind."""
        if self.count(self.errors, kind):
            log.warn(
                "station {station_id}: {kind}: {detail} (the first; others are only counted)",
                station_id=station_id,
                kind=kind,
                detail=detail,
            )

    @property
    def problems(self) -> int:
        return self.call_errors.total() + self.timeouts.total() + self.errors.total()

    def progress(self, elapsed: float, stations: int) -> str:
        return (
            f"[{elapsed:7.1f}s] connected {self.connected}/{stations}  booted {self.booted}  "
            f"calls {self.calls.total()}  errors {self.problems}  "
            f"commands {self.commands.total()}  sessions {self.sessions_completed}"
        )

    def summary(self, stations: int, elapsed: float) -> Summary:
        return Summary(
            stations=stations,
            elapsed=elapsed,
            booted=self.stations_booted,
            sessions_started=self.sessions_started,
            sessions_completed=self.sessions_completed,
            sessions_refused=self.sessions_refused,
            calls=dict(self.calls),
            call_errors=dict(self.call_errors),
            timeouts=dict(self.timeouts),
            commands=dict(self.commands),
            errors=dict(self.errors),
            latency=Latency.of(self.latencies),
        )

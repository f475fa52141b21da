# -*- test-case-name: tests.test_overload -*-
"""Whether the backend is saturated, and the jittered interval of a ``Pending`` boot.

The RPC gate (:mod:`ocppcable.rpc.policy`) reports how long each RPC took from its admission to
its answer; :class:`Saturation` keeps the last :data:`WINDOW` seconds of those and reads the
gate's queue. The backend counts as saturated while more RPCs wait at the gate than
``--overload-queue`` (until the queue is down to half of it), or while more than a tenth of the
RPCs of the window took longer than ``--overload-latency`` (their p90 is above it). While it is,
the session answers the BootNotification of a station that has no session yet ``Pending``
without any RPC (:mod:`ocppcable.session`), so the backend only gets the stations it can take.

No reactor here: the clock and the random source are passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from twisted.logger import Logger

log = Logger()

#: seconds of RPC latencies the saturation looks back on
WINDOW = 10
#: the share of the window's RPCs slower than the limit above which the backend is saturated
SLOW_SHARE = 0.1
#: RPCs the window must hold before their latency counts
MIN_SAMPLES = 10
#: seconds between two log lines about saturation starting (and ending)
LOG_INTERVAL = 10.0


def never() -> bool:
    """A backend that is never saturated (the signals are off, or there is no RPC gate)."""
    return False


def jittered(base: int, random: Callable[[], float]) -> int:
    """``base`` seconds, jittered by ±50 % (at least 1): the ``interval`` of a ``Pending``
    BootNotification, so that the stations told to come back do not all come at once."""
    return max(1, round(base * (0.5 + random())))


class LatencyWindow:
    """How many RPCs of the last ``window`` seconds took longer than ``limit`` seconds, in
    one-second buckets."""

    def __init__(self, limit: float, clock: Callable[[], float], window: int = WINDOW) -> None:
        self.limit = limit
        self.clock = clock
        self.window = window
        self._counts = [0] * window
        self._slow = [0] * window
        self._second = math.floor(clock())
        self.count = 0  # RPCs in the window
        self.slow = 0  # of them, slower than the limit

    def _roll(self) -> int:
        """Empty the buckets of the seconds that left the window; the current bucket's index."""
        second = math.floor(self.clock())
        for gone in range(max(self._second + 1, second - self.window + 1), second + 1):
            i = gone % self.window
            self.count -= self._counts[i]
            self.slow -= self._slow[i]
            self._counts[i] = self._slow[i] = 0
        self._second = max(self._second, second)
        return self._second % self.window

    def add(self, seconds: float) -> None:
        i = self._roll()
        self._counts[i] += 1
        self.count += 1
        if seconds > self.limit:
            self._slow[i] += 1
            self.slow += 1

    def too_slow(self) -> bool:
        """More than :data:`SLOW_SHARE` of at least :data:`MIN_SAMPLES` RPCs were slow."""
        self._roll()
        return self.count >= MIN_SAMPLES and self.slow > SLOW_SHARE * self.count


class Saturation:
    """Call it to know whether the backend is saturated; ``observe`` takes each RPC's latency.

    ``queue`` returns the RPCs waiting at the gate; a limit of 0 turns its signal off. The
    start and the end of a saturation are logged, once per :data:`LOG_INTERVAL` at most.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        queue: Callable[[], int],
        queue_limit: int,
        latency_limit: float,
    ) -> None:
        self.clock = clock
        self.queue = queue
        self.queue_limit = queue_limit
        self.latency = LatencyWindow(latency_limit, clock) if latency_limit else None
        #: why the backend is saturated now ("" while it is not)
        self.reason = ""
        self._since = 0.0
        self._logged_at = float("-inf")
        self._logged_start = False
        self._unlogged = 0  # saturations that started since the last line

    def observe(self, seconds: float) -> None:
        """An RPC took ``seconds`` from its admission at the gate to its answer (or failure)."""
        if self.latency is not None:
            self.latency.add(seconds)
            self()

    def __call__(self) -> bool:
        reason = self._reason()
        if bool(reason) != bool(self.reason):
            self._changed(reason)
        self.reason = reason
        return bool(reason)

    def _reason(self) -> str:
        if self.queue_limit:
            waiting = self.queue()
            # hysteresis: once saturated, until the queue is down to half the limit
            limit = self.queue_limit // 2 if self.reason.startswith("queue") else self.queue_limit
            if waiting > limit:
                return f"queue: {waiting} RPCs waiting at the gate, over --overload-queue"
        latency = self.latency
        if latency is not None and latency.too_slow():
            return (
                f"latency: {latency.slow} of the last {latency.count} RPCs took over "
                f"--overload-latency ({latency.limit:g}s)"
            )
        return ""

    def _changed(self, reason: str) -> None:
        now = self.clock()
        if reason:
            self._since = now
            self._unlogged += 1
            if now - self._logged_at >= LOG_INTERVAL:
                log.warn(
                    "backend saturated ({reason}): new stations' BootNotifications are "
                    "answered Pending; {count} saturation(s) since the last line",
                    reason=reason,
                    count=self._unlogged,
                )
                self._logged_at = now
                self._logged_start = True
                self._unlogged = 0
        elif self._logged_start:
            log.info(
                "backend no longer saturated after {seconds:.1f}s: new stations boot again",
                seconds=now - self._since,
            )
            self._logged_start = False

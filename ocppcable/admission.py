# -*- test-case-name: tests.test_admission -*-
"""The admission limit: new WebSocket handshakes a process takes per second.

A reconnect storm brings every station back at once. Each handshake costs the process an HTTP
parse, an upgrade and a session (and a TLS handshake on TLS listeners) before any RPC, so past
``--admission-rate`` handshakes per second (bursts of ``--admission-burst``) the process answers
HTTP 503 with a ``Retry-After`` instead, at almost no cost, and spends its time on the stations
it took. The delays handed out are jittered and grow with the refusals of the last second, so
the refused stations come back spread out rather than in the next second's burst.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from twisted.logger import Logger

from ocppcable.ratelimit import TokenBucket

log = Logger()

#: the longest Retry-After handed out, in seconds
MAX_RETRY_AFTER = 60
#: seconds between two log lines about refused handshakes
LOG_INTERVAL = 10.0


class Admission:
    """``rate`` handshakes a second on average, ``burst`` at once; ``clock`` returns seconds
    and ``random`` a float in [0, 1) (tests pass fake ones)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float],
        random: Callable[[], float] = random.random,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.random = random
        self._bucket = TokenBucket(rate, burst, clock)
        #: refusals in the current second and in the one before: (second, count, previous)
        self._second = -1
        self._count = 0
        self._previous = 0
        #: refusals since the last log line, and when that was
        self._unlogged = 0
        self._logged_at = float("-inf")

    def admit(self) -> int | None:
        """None when a handshake may go on; else the seconds of its ``Retry-After``."""
        if self._bucket.take():
            return None
        now = self.clock()
        second = math.floor(now)
        if second != self._second:
            self._previous = self._count if second == self._second + 1 else 0
            self._second, self._count = second, 0
        self._count += 1
        # the refused ones of one second come back over as many seconds as admitting them takes
        spread = max(1.0, max(self._count, self._previous) / self.rate)
        delay = min(MAX_RETRY_AFTER, 1 + int(self.random() * spread))
        self._unlogged += 1
        if now - self._logged_at >= LOG_INTERVAL:
            log.warn(
                "refusing WebSocket handshakes over --admission-rate ({rate:g}/s) with 503: "
                "{count} since the last line",
                rate=self.rate,
                count=self._unlogged,
            )
            self._logged_at = now
            self._unlogged = 0
        return delay

# -*- test-case-name: tests.test_ratelimit -*-
"""A token bucket: how the gateway bounds a rate (a station's frames, Disconnect RPCs)."""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up, full at the start.

    ``clock`` returns the time in seconds (``time.monotonic``, or ``reactor.seconds``); tests
    pass a fake one.
    """

    __slots__ = ("rate", "burst", "clock", "_tokens", "_refilled")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens = burst
        self._refilled = clock()

    def take(self) -> bool:
        """Take a token if one is there: False means the rate is exceeded right now."""
        now = self.clock()
        tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True

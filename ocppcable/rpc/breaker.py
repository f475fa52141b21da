"""A circuit breaker for the HTTP RPC transport (AnyCable uses gobreaker with these settings)."""

from __future__ import annotations

import enum

from twisted.internet.interfaces import IReactorTime


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Counts request outcomes and rejects requests while the backend looks down.

    Closed: outcomes are counted in fixed windows of ``window`` seconds; once a window holds at
    least ``min_requests`` requests of which ``failure_ratio`` or more failed, the circuit opens.
    Open: every request is rejected for ``open_for`` seconds, then the circuit is half-open.
    Half-open: up to ``probes`` requests go through; one failure opens the circuit again,
    ``probes`` successes close it.

    Every admitted request gets a generation; outcomes of requests admitted before the last state
    change are ignored, so a slow request from before cannot decide a probe.
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        min_requests: int = 10,
        failure_ratio: float = 0.8,
        window: float = 10.0,
        open_for: float = 5.0,
        probes: int = 5,
    ) -> None:
        self.clock = clock
        self.min_requests = min_requests
        self.failure_ratio = failure_ratio
        self.window = window
        self.open_for = open_for
        self.probes = probes
        self._state = State.CLOSED
        self._generation = 0
        self._since = clock.seconds()  # when the current state (or closed window) began
        self._requests = 0
        self._failures = 0
        self._successes = 0

    @property
    def state(self) -> State:
        self._advance()
        return self._state

    def admit(self) -> int | None:
        """Before a request: its generation, or None when the request must not be made."""
        self._advance()
        if self._state is State.OPEN:
            return None
        if self._state is State.HALF_OPEN and self._requests >= self.probes:
            return None
        self._requests += 1
        return self._generation

    def record(self, generation: int, success: bool) -> None:
        """After a request admitted as ``generation``: did the backend answer at all?"""
        self._advance()
        if generation != self._generation:
            return
        if success:
            self._successes += 1
            if self._state is State.HALF_OPEN and self._successes >= self.probes:
                self._enter(State.CLOSED)
            return
        self._failures += 1
        if self._state is State.HALF_OPEN:
            self._enter(State.OPEN)
        elif (
            self._requests >= self.min_requests
            and self._failures >= self.failure_ratio * self._requests
        ):
            self._enter(State.OPEN)

    def _advance(self) -> None:
        """Apply what the passing of time changes: a new closed window, or the end of open."""
        now = self.clock.seconds()
        if self._state is State.CLOSED and now >= self._since + self.window:
            self._enter(State.CLOSED)
        elif self._state is State.OPEN and now >= self._since + self.open_for:
            self._enter(State.HALF_OPEN)

    def _enter(self, state: State) -> None:
        self._state = state
        self._generation += 1
        self._since = self.clock.seconds()
        self._requests = self._failures = self._successes = 0

"""The Disconnect queue: Disconnect RPCs at a steady rate, drained at shutdown, on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from zope.interface import implementer
from zope.interface.verify import verifyObject

from ocppcable.rpc.disconnects import RateLimitedDisconnects
from ocppcable.rpc.interface import IRPCClient, RPCUnavailable


@implementer(IRPCClient)
class HeldRPC:
    """An RPC client whose calls wait until the test answers them."""

    target = "held"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Deferred[Any]]] = []

    def _call(self, method: str, sid: str) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((method, sid, d))
        return d

    def connect(self, sid: str, request: Any) -> Deferred[Any]:
        return self._call("connect", sid)

    def command(self, sid: str, request: Any) -> Deferred[Any]:
        return self._call("command", sid)

    def disconnect(self, sid: str, request: Any) -> Deferred[Any]:
        return self._call("disconnect", sid)

    def made(self, method: str = "disconnect") -> list[str]:
        return [sid for m, sid, _ in self.calls if m == method]

    def answer_all(self) -> None:
        for _, _, d in self.calls:
            if not d.called:
                d.callback("ok")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rpc() -> HeldRPC:
    return HeldRPC()


def test_it_is_an_rpc_client_that_passes_connect_and_command_through(clock, rpc):
    queue = RateLimitedDisconnects(clock, rpc, rate=1)
    assert verifyObject(IRPCClient, queue)
    assert queue.target == "held"
    for n in range(5):
        queue.connect(f"c{n}", None)
        queue.command(f"m{n}", None)
    assert len(rpc.made("connect")) == len(rpc.made("command")) == 5


def test_disconnects_are_made_at_the_rate_in_order(clock, rpc):
    queue = RateLimitedDisconnects(clock, rpc, rate=5)
    for n in range(25):
        queue.disconnect(f"s{n:02}", None)
    burst = len(rpc.made())
    assert 1 <= burst <= 5  # at most one second's worth at once
    clock.pump([0.1] * 20)
    made = len(rpc.made()) - burst
    assert 9 <= made <= 11  # then 5 per second
    assert len(queue) == 25 - burst - made
    clock.pump([0.2] * 50)
    assert rpc.made() == [f"s{n:02}" for n in range(25)]
    assert len(queue) == 0


def test_an_idle_queue_schedules_nothing(clock, rpc):
    queue = RateLimitedDisconnects(clock, rpc, rate=5)
    queue.disconnect("s", None)
    assert rpc.made() == ["s"] and clock.getDelayedCalls() == []


def test_the_caller_gets_the_answer_or_the_failure(clock, rpc):
    queue = RateLimitedDisconnects(clock, rpc, rate=10)
    ok, failed = queue.disconnect("a", None), queue.disconnect("b", None)
    rpc.calls[0][2].callback("response")
    rpc.calls[1][2].errback(RPCUnavailable("down"))
    assert ok.result == "response"
    with pytest.raises(RPCUnavailable):
        failed.result.raiseException()
    failed.addErrback(lambda _: None)


def test_drain_makes_every_queued_disconnect_at_once(clock, rpc):
    queue = RateLimitedDisconnects(clock, rpc, rate=1)
    for n in range(10):
        queue.disconnect(f"s{n}", None)
    drained = queue.drain(30)
    assert len(rpc.made()) == 10 and len(queue) == 0
    assert not drained.called  # their answers are awaited
    rpc.answer_all()
    assert drained.called


def test_drain_waits_for_a_disconnect_made_once_a_connect_is_answered(clock, rpc):
    queue = RateLimitedDisconnects(clock, rpc, rate=1)
    connect = queue.connect("s", None)
    # a session whose station left during its Connect makes the Disconnect after the answer
    connect.addCallback(lambda _: queue.disconnect("s", None))
    drained = queue.drain(30)
    assert not drained.called and rpc.made() == []
    rpc.calls[0][2].callback("connected")
    assert rpc.made() == ["s"] and not drained.called
    rpc.answer_all()
    assert drained.called


def test_drain_gives_up_after_its_timeout(clock, rpc, warnings):
    queue = RateLimitedDisconnects(clock, rpc, rate=1)
    queue.command("m", None)
    queue.disconnect("s", None)
    drained = queue.drain(5)
    clock.advance(4.9)
    assert not drained.called
    clock.advance(0.1)
    assert drained.called
    assert warnings == ["had no time for 1 Disconnect RPC(s) and 1 other RPC(s)"]


def test_drain_with_nothing_in_flight_fires_at_once(clock, rpc):
    assert RateLimitedDisconnects(clock, rpc, rate=1).drain(5).called


def test_stop_leaves_no_timer(clock, rpc):
    queue = RateLimitedDisconnects(clock, rpc, rate=1)
    for n in range(3):
        queue.disconnect(f"s{n}", None)
    assert clock.getDelayedCalls()
    queue.stop()
    assert [call for call in clock.getDelayedCalls() if call.active()] == []

"""Backend saturation and Pending boots (issue 16 item 2): the detector on a fake clock, the
gate's latency reports, and the session's Pending path in 1.6 and 2.x."""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from ocppcable.ocpp import v21, v201
from ocppcable.ocpp.validation import validator_for
from ocppcable.overload import (
    LOG_INTERVAL,
    MIN_SAMPLES,
    WINDOW,
    LatencyWindow,
    Saturation,
    jittered,
)
from ocppcable.protos.rpc_pb2 import SUCCESS, CommandResponse
from ocppcable.rpc.policy import CallPolicy
from ocppcable.session import Session, SessionSettings
from tests.support import BOOT, HEADERS, NOW, URL, call, connect_ok, make, ok, only_rpc, rpcs, sent


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Queue:
    """The gate's queue length, set by the test."""

    def __init__(self) -> None:
        self.length = 0

    def __call__(self) -> int:
        return self.length


# --- the detector -------------------------------------------------------------------------------


def test_jitter_spreads_the_interval_by_half_either_way() -> None:
    assert jittered(30, lambda: 0.0) == 15
    assert jittered(30, lambda: 0.5) == 30
    assert jittered(30, lambda: 0.999999) == 45
    assert jittered(1, lambda: 0.0) == 1  # never 0: the station would come back at once
    import random

    source = random.Random(7)
    draws = {jittered(60, source.random) for _ in range(2000)}
    assert min(draws) >= 30 and max(draws) <= 90 and len(draws) > 50


def test_the_latency_window_counts_the_slow_share_of_the_last_seconds() -> None:
    clock = FakeClock()
    window = LatencyWindow(1.0, clock)
    for _ in range(MIN_SAMPLES - 2):
        window.add(0.1)
    window.add(5.0)
    assert not window.too_slow()  # too few RPCs to say
    window.add(5.0)
    assert window.too_slow() and (window.count, window.slow) == (MIN_SAMPLES, 2)
    clock.now += 1.0
    for _ in range(10):
        window.add(0.1)  # 2 slow of 20: a tenth is not more than a tenth
    assert not window.too_slow()
    clock.now += WINDOW - 1  # the first second has left the window
    assert not window.too_slow() and (window.count, window.slow) == (10, 0)
    clock.now += 1000  # all of it
    assert not window.too_slow() and (window.count, window.slow) == (0, 0)


def test_saturated_by_the_queue_until_it_is_down_to_half(warnings) -> None:
    clock, queue = FakeClock(), Queue()
    saturation = Saturation(clock, queue, 100, 0)
    queue.length = 100
    assert not saturation()
    queue.length = 101
    assert saturation() and saturation.reason.startswith("queue: 101 RPCs waiting")
    queue.length = 60
    assert saturation()  # hysteresis: not yet
    queue.length = 50
    assert not saturation() and saturation.reason == ""
    assert len(warnings) == 1 and "backend saturated (queue: 101 RPCs" in warnings[0]


def test_saturated_by_latency_while_the_window_says_so() -> None:
    clock, queue = FakeClock(), Queue()
    saturation = Saturation(clock, queue, 0, 2.0)
    queue.length = 10**6  # the queue's signal is off
    assert not saturation()
    for _ in range(MIN_SAMPLES):
        saturation.observe(3.0)
    assert saturation() and saturation.reason.startswith("latency: 10 of the last 10 RPCs")
    clock.now += WINDOW  # no RPC since: nothing says the backend is still slow
    assert not saturation()


def test_saturation_is_logged_at_its_start_and_end_once_per_interval(warnings) -> None:
    from twisted.logger import globalLogPublisher

    infos: list[str] = []

    def observer(event) -> None:
        from twisted.logger import LogLevel, formatEvent

        if event.get("log_level") is LogLevel.info and "saturated" in event.get("log_format", ""):
            infos.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    try:
        clock, queue = FakeClock(), Queue()
        saturation = Saturation(clock, queue, 10, 0)
        for _ in range(5):  # flapping within a second: one line each way
            queue.length = 11
            saturation()
            clock.now += 0.1
            queue.length = 0
            saturation()
        clock.now += LOG_INTERVAL
        queue.length = 11
        saturation()
    finally:
        globalLogPublisher.removeObserver(observer)
    assert len(warnings) == 2
    assert "1 saturation(s) since the last line" in warnings[0]
    assert "5 saturation(s) since the last line" in warnings[1]
    assert infos == ["backend no longer saturated after 0.1s: new stations boot again"]


def test_the_gate_reports_each_admitted_call_s_latency() -> None:
    clock = Clock()
    policy = CallPolicy(clock, 1, 5.0)
    seen: list[float] = []
    policy.latency_observer = seen.append
    answers: list[Deferred] = []

    def attempt(remaining: float) -> Deferred:
        d: Deferred = Deferred()
        answers.append(d)
        return d

    first = policy.run("command", "A", attempt, str)
    waiting = policy.run("command", "B", attempt, str)
    clock.advance(0.5)
    answers[0].callback(CommandResponse(status=SUCCESS))  # B waited 0.5 s: not the backend's
    clock.advance(0.25)
    answers[1].callback(CommandResponse(status=SUCCESS))
    abandoned = policy.run("command", "C", attempt, str)
    abandoned.cancel()  # the station went away: says nothing about the backend
    abandoned.addErrback(lambda _: None)
    late = policy.run("command", "D", attempt, str)
    clock.advance(5.0)  # timed out after its 5 s in flight
    late.addErrback(lambda _: None)
    assert first.called and waiting.called
    assert seen == [0.5, 0.25, 5.0]


# --- the session's Pending path -----------------------------------------------------------------


def saturated_session(catalog=None, **overrides) -> tuple[Session, list[bool]]:
    state = [True]
    settings = {"backend_saturated": lambda: state[0], "pending_interval": 40, **overrides}
    if catalog is None:
        session = make(**settings)
    else:
        session = Session(
            station_id="CP-1",
            catalog=catalog,
            settings=SessionSettings(**settings),
            url=URL,
            headers=HEADERS,
            utc_now=lambda: NOW,
            validator=validator_for(catalog),
        )
    session.random = lambda: 0.75
    session.opened()
    return session, state


BOOT_201 = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}


@pytest.mark.parametrize(
    ("catalog", "boot"), [(None, BOOT), (v201.CATALOG, BOOT_201), (v21.CATALOG, BOOT_201)]
)
def test_a_new_station_s_boot_is_pending_while_the_backend_is_saturated(catalog, boot) -> None:
    session, state = saturated_session(catalog)
    effects = session.frame_received(call("b1", "BootNotification", boot))
    assert rpcs(effects) == []  # no Connect
    [reply] = sent(effects)
    assert reply == [3, "b1", {"status": "Pending", "currentTime": NOW, "interval": 50}]
    validator_for(catalog or session.catalog).check_response("BootNotification", reply[2])
    assert not session.connected
    # its next boot, once the backend has recovered, starts the session as usual
    state[0] = False
    connect = only_rpc(session.frame_received(call("b2", "BootNotification", boot)), "connect")
    subscribe = only_rpc(session.rpc_succeeded(connect.token, connect_ok()), "command")
    message = only_rpc(session.rpc_succeeded(subscribe.token, ok()), "command")
    assert sent(session.rpc_succeeded(message.token, ok()))[0][2]["status"] == "Accepted"


def test_pending_boots_are_counted() -> None:
    from ocppcable.metrics import PrometheusMetrics

    metrics = PrometheusMetrics()
    session, _ = saturated_session()
    session.metrics = metrics
    session.frame_received(call("b1", "BootNotification", BOOT))
    assert metrics.registry.get_sample_value("ocppcable_boots_pending_total") == 1


def test_an_unsaturated_backend_is_asked_once_per_new_boot() -> None:
    asked: list[bool] = []

    def saturated() -> bool:
        asked.append(True)
        return False

    session = make(backend_saturated=saturated)
    session.opened()
    only_rpc(session.frame_received(call("b1", "BootNotification", BOOT)), "connect")
    assert len(asked) == 1


def test_a_connected_station_s_boot_goes_to_the_backend_even_when_saturated() -> None:
    session, state = saturated_session()
    state[0] = False
    connect = only_rpc(session.frame_received(call("b1", "BootNotification", BOOT)), "connect")
    subscribe = only_rpc(session.rpc_succeeded(connect.token, connect_ok()), "command")
    message = only_rpc(session.rpc_succeeded(subscribe.token, ok()), "command")
    session.rpc_succeeded(message.token, ok())
    state[0] = True
    again = only_rpc(session.frame_received(call("b2", "BootNotification", BOOT)), "command")
    assert again.request.command == "message"


def test_a_new_station_s_other_first_call_goes_on_while_saturated() -> None:
    """The decision for a station that reconnects without booting: its CALL is not refused
    (it may be a transaction message), its Connect waits behind the started sessions' calls
    at the gate."""
    session, _ = saturated_session()
    effects = session.frame_received(
        call(
            "s1",
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
        )
    )
    only_rpc(effects, "connect")
    assert sent(effects) == []


# --- defaults ------------------------------------------------------------------------------------


def test_overload_control_is_on_by_default(reactor) -> None:
    from ocppcable.options import Options
    from ocppcable.overload import never
    from ocppcable.service import makeService

    options = Options(environ={})
    options.parseOptions(["--rpc-host=127.0.0.1:50051", "--broadcast-adapter=http"])
    gateway = makeService(options, reactor)
    assert (gateway.stations.admission.rate, gateway.stations.admission._bucket.burst) == (
        500,
        1000,
    )
    saturated = gateway.stations.settings.backend_saturated
    assert isinstance(saturated, Saturation)
    assert (saturated.queue_limit, saturated.latency.limit) == (200, 2.0)
    assert gateway.client.policy.latency_observer == saturated.observe
    assert gateway.stations.settings.pending_interval == 30

    options = Options(environ={})
    options.parseOptions(
        ["--rpc-host=demo", "--admission-rate=0", "--overload-queue=0", "--overload-latency=0"]
    )
    off = makeService(options, reactor)
    assert off.stations.settings.backend_saturated is never and off.stations.admission is None
    assert off.client.policy.latency_observer is None

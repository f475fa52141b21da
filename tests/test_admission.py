"""The admission limit on new handshakes (issue 16 item 2): on a fake clock, then end to end."""

from __future__ import annotations

import asyncio

import pytest_twisted

from tests.support import TIMEOUT, aio, upgrade_request


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admission(rate: float, burst: float, clock: FakeClock, draw: float = 0.0):
    from ocppcable.admission import Admission

    return Admission(rate, burst, clock, random=lambda: draw)


def test_the_burst_is_admitted_then_refused_until_refilled() -> None:
    clock = FakeClock()
    limit = admission(10.0, 3.0, clock)
    assert [limit.admit() for _ in range(4)] == [None, None, None, 1]
    clock.now += 0.1  # one handshake's worth
    assert [limit.admit() for _ in range(2)] == [None, 1]


def test_retry_after_spreads_the_refused_over_the_seconds_they_need() -> None:
    clock = FakeClock()
    limit = admission(2.0, 1.0, clock, draw=0.999)
    limit.admit()
    delays = [limit.admit() for _ in range(10)]
    assert delays[0] == 1  # one refused: back in a second
    assert delays[-1] == 5  # ten refused at 2/s: spread over five seconds
    clock.now += 1.0  # the next second remembers the last one's refusals
    assert limit.admit() is None and limit.admit() == 5
    clock.now += 2.0  # a quiet second in between: forgotten
    limit.admit()
    assert limit.admit() == 1


def test_retry_after_is_jittered_and_bounded() -> None:
    from ocppcable.admission import MAX_RETRY_AFTER

    clock = FakeClock()
    low = admission(1.0, 1.0, clock, draw=0.0)
    high = admission(1.0, 1.0, clock, draw=0.999)
    low.admit()
    high.admit()
    assert {low.admit() for _ in range(500)} == {1}
    assert max(high.admit() for _ in range(500)) == MAX_RETRY_AFTER


def test_refusals_are_logged_once_per_interval(warnings) -> None:
    from ocppcable.admission import LOG_INTERVAL

    clock = FakeClock()
    limit = admission(1.0, 1.0, clock)
    limit.admit()
    for _ in range(50):
        limit.admit()
    clock.now += LOG_INTERVAL
    assert limit.admit() is None and limit.admit() is not None
    assert len(warnings) == 2
    assert "--admission-rate (1/s) with 503: 1 since the last line" in warnings[0]
    assert "50 since the last line" in warnings[1]


# --- end to end ---------------------------------------------------------------------------------


async def handshake(port: int, station_id: str) -> tuple[int, dict[str, str], bool]:
    """One station's upgrade: the status, the response headers, and whether the server closed
    the connection after a refusal."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(upgrade_request(f"/ocpp/{station_id}"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        status_line, *lines = head.decode("latin-1").strip().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines)
        status = int(status_line.split()[1])
        closed = False
        if status != 101:
            await asyncio.wait_for(reader.read(), TIMEOUT)  # the body, then EOF
            closed = reader.at_eof()
        return status, headers, closed
    finally:
        writer.close()


@pytest_twisted.ensureDeferred
async def test_a_burst_beyond_the_admission_rate_gets_503_and_succeeds_later(
    start_gateway, backend, warnings
):
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}",
        "--broadcast-adapter=http",
        "--admission-rate=20",
        "--admission-burst=5",
    )
    stations = [f"CP-STORM-{i}" for i in range(15)]

    async def storm() -> tuple[list[int], list[int]]:
        first = await asyncio.gather(*(handshake(gateway.port, s) for s in stations))
        statuses = [status for status, _, _ in first]
        refused = [s for s, (status, _, _) in zip(stations, first, strict=True) if status == 503]
        for status, headers, closed in first:
            if status == 503:
                assert 1 <= int(headers["retry-after"]) <= 60 and closed, headers
                assert headers["connection"] == "close", headers
        # the refused stations come back after their Retry-After, as long as they are refused
        attempts = []
        for _ in range(20):
            if not refused:
                return statuses, attempts
            delay = max(int(h["retry-after"]) for _, h, _ in first if "retry-after" in h)
            await asyncio.sleep(delay)  # what the station was told to do
            first = await asyncio.gather(*(handshake(gateway.port, s) for s in refused))
            attempts.append(len(refused))
            refused = [s for s, (status, _, _) in zip(refused, first, strict=True) if status == 503]
        raise AssertionError(f"still refused: {refused}")

    statuses, attempts = await aio(storm())
    assert statuses.count(101) >= 5 and statuses.count(503) >= 5, statuses
    assert set(statuses) == {101, 503}
    assert attempts, attempts  # every refused station got in on a later attempt
    refused = gateway.service.metrics.registry.get_sample_value("ocppcable_admission_refused_total")
    assert refused >= statuses.count(503)
    assert any("--admission-rate (20/s)" in w for w in warnings), warnings

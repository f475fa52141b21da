"""The token bucket, on a fake clock."""

from __future__ import annotations

from ocppcable.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def takes(bucket: TokenBucket, n: int) -> list[bool]:
    return [bucket.take() for _ in range(n)]


def test_starts_full_and_allows_the_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=5.0, clock=FakeClock())
    assert takes(bucket, 6) == [True] * 5 + [False]


def test_refills_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=5.0, clock=clock)
    takes(bucket, 5)
    clock.now += 0.25  # half a token
    assert not bucket.take()
    clock.now += 0.25  # the other half: a refused take does not cost a token
    assert takes(bucket, 2) == [True, False]
    clock.now += 1.0
    assert takes(bucket, 3) == [True, True, False]


def test_never_saves_more_than_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=3.0, clock=clock)
    clock.now += 3600
    assert takes(bucket, 4) == [True, True, True, False]


def test_a_steady_rate_below_the_limit_is_never_refused() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=20.0, burst=1.0, clock=clock)
    for _ in range(1000):
        clock.now += 0.0625  # 16 a second
        assert bucket.take()

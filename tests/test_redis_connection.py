"""The Redis connection every Redis user shares: faults are logged once per change of state, with
the URL but never its password, and the connections recover by themselves.

End-to-end tests run a gateway in this process against a private redis-server; the conftest
fails a test on any error logged (an unhandled Deferred error included).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from ocppcable.redis_connection import without_password
from tests.support import RedisServer, free_port, wait_for


@pytest.fixture
def infos() -> Iterator[list[str]]:
    """The info lines logged during the test, formatted."""
    events: list[str] = []

    def observer(event: dict[str, Any]) -> None:
        if event.get("log_level") is LogLevel.info:
            events.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)


def _connected(gateway: Any, adapter: str) -> float | None:
    """``ocppcable_redis_connected{adapter=…}`` as /metrics would show it."""
    registry = gateway.service.metrics.registry
    return registry.get_sample_value("ocppcable_redis_connected", {"adapter": adapter})


def _about_redis(warnings: list[str]) -> list[str]:
    return [w for w in warnings if "Redis" in w]


@pytest_twisted.ensureDeferred
async def test_a_wrong_password_is_one_warning_and_fixing_it_reconnects(
    start_gateway, reactor, warnings, infos
):
    redis = RedisServer(password="right-pw")
    redis.start()
    try:
        gateway = await start_gateway(
            "--rpc-host=demo",
            "--broadcast-adapter=redis",
            f"--redis-url=redis://:wrong-pw@127.0.0.1:{redis.port}",
        )
        url = f"redis://:***@127.0.0.1:{redis.port}"
        await wait_for(lambda: _about_redis(warnings), reactor)
        [warning] = _about_redis(warnings)
        assert warning.startswith(f"Redis {url} is unavailable: could not auth: WRONGPASS")
        assert "retrying with backoff" in warning
        assert _connected(gateway, "redis") == 0

        # it keeps trying (the redis subscriber, the takeover subscriber and the publisher)
        tried = int(_stat(redis, "total_connections_received"))
        await wait_for(lambda: int(_stat(redis, "total_connections_received")) > tried + 3, reactor)
        redis.command("CONFIG", "SET", "requirepass", "wrong-pw")
        redis.password = "wrong-pw"
        await wait_for(lambda: _connected(gateway, "redis") == 1, reactor)
        await wait_for(lambda: f"connected to Redis {url} again" in infos, reactor)
        # still the one warning, and the password in none of the lines
        assert _about_redis(warnings) == [warning]
        assert not [line for line in warnings + infos if "pw" in line]
    finally:
        redis.stop()


@pytest_twisted.ensureDeferred
async def test_an_unreachable_redis_is_one_warning_until_it_starts_or_goes_away_again(
    start_gateway, reactor, warnings, infos
):
    port = free_port()
    gateway = await start_gateway(
        "--rpc-host=demo",
        "--broadcast-adapter=http,redisx",
        f"--redis-url=redis://127.0.0.1:{port}",
    )
    url = f"redis://127.0.0.1:{port}"
    await wait_for(lambda: _about_redis(warnings), reactor)
    [warning] = _about_redis(warnings)
    assert warning.startswith(f"Redis {url} is unavailable: Connection was refused")
    assert _connected(gateway, "redisx") == 0

    redis = RedisServer(port=port)
    redis.start()
    try:
        await wait_for(lambda: _connected(gateway, "redisx") == 1, reactor)
        await wait_for(lambda: f"connected to Redis {url} again" in infos, reactor)
        assert _about_redis(warnings) == [warning]

        redis.stop()
        await wait_for(lambda: len(_about_redis(warnings)) > 1, reactor)
        assert _about_redis(warnings)[1] == (
            f"Redis {url} is unavailable: the connection was lost; retrying with backoff "
            "(every 5.0s at most)"
        )
        assert _connected(gateway, "redisx") == 0
        redis.start()
        await wait_for(lambda: _connected(gateway, "redisx") == 1, reactor)
        await wait_for(lambda: infos.count(f"connected to Redis {url} again") == 2, reactor)
        # at most one more: why reconnecting failed meanwhile
        refused = (
            f"Redis {url} is unavailable: Connection was refused by other side: 111: Connection "
            "refused; retrying with backoff (every 5.0s at most)"
        )
        assert _about_redis(warnings)[2:] in ([], [refused])
    finally:
        redis.stop()


@pytest_twisted.ensureDeferred
async def test_a_refused_subscribe_is_one_warning_and_retried(
    start_gateway, reactor, warnings, infos
):
    redis = RedisServer(password="needed-pw")
    redis.start()
    try:
        # no password in the URL: connecting works, SUBSCRIBE is refused
        gateway = await start_gateway(
            "--rpc-host=demo",
            "--broadcast-adapter=redis",
            f"--redis-url=redis://127.0.0.1:{redis.port}",
        )
        url = f"redis://127.0.0.1:{redis.port}"
        await wait_for(lambda: _about_redis(warnings), reactor)
        [warning] = _about_redis(warnings)
        assert warning.startswith(f"Redis {url} is unavailable: SUBSCRIBE refused: NOAUTH")
        tried = int(_stat(redis, "total_connections_received"))
        await wait_for(lambda: int(_stat(redis, "total_connections_received")) > tried + 3, reactor)
        redis.command("CONFIG", "SET", "requirepass", "")
        redis.password = None
        await wait_for(lambda: _connected(gateway, "redis") == 1, reactor)
        await wait_for(lambda: f"connected to Redis {url} again" in infos, reactor)
        assert _about_redis(warnings) == [warning]
    finally:
        redis.stop()


def _stat(redis: RedisServer, name: str) -> str:
    with redis.connection() as s:
        s.sendall(b"INFO stats\r\n")
        replies = s.makefile("rb")
        size = int(replies.readline()[1:])
        info = replies.read(size).decode()
    return dict(line.split(":", 1) for line in info.splitlines() if ":" in line)[name]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ("redis://:secret@redis.internal:6380/0", "redis://:***@redis.internal:6380/0"),
        ("rediss://gw:secret@redis.internal", "rediss://gw:***@redis.internal"),
        ("redis://gw@[::1]:6379", "redis://gw@[::1]:6379"),
        ("redis://gw:s%40cret@[::1]:6379", "redis://gw:***@[::1]:6379"),
    ],
)
def test_without_password(url: str, shown: str) -> None:
    assert without_password(url) == shown


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("redis://localhost:abc/", "--redis-url: Port could not be cast to integer value"),
        ("redis://localhost:70000", "--redis-url: Port out of range 0-65535"),
        ("http://localhost:6379", "--redis-url must be a redis:// or rediss:// URL"),
    ],
)
def test_a_redis_url_that_cannot_be_used_is_one_line(url: str, error: str) -> None:
    from twisted.python.usage import UsageError

    from ocppcable.options import Options
    from ocppcable.registry import installed

    options = Options(environ={}, plugins=installed())
    with pytest.raises(UsageError, match=error):
        options.parseOptions(["--broadcast-adapter=redis", f"--redis-url={url}"])

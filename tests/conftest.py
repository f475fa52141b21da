# Imports of the gateway's modules stay inside fixtures: autobahn imports the global reactor,
# and pytest-twisted must install the asyncio reactor before that happens.
from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "readme: runs README.rst's quick start as written (a real pip install; slow)",
    )


@pytest.fixture
def reactor():
    from twisted.internet import reactor

    return reactor


@pytest.fixture(autouse=True)
def fail_on_logged_errors():
    """Like trial: an error logged during a test (an unhandled Deferred error, log.failure or
    log.error) fails it. Tests that provoke expected errors take the list and clear it."""
    from twisted.logger import LogLevel, globalLogPublisher

    errors: list[dict] = []

    def observer(event: dict) -> None:
        if (
            event.get("log_failure") is not None
            or event.get("isError")
            or event.get("log_level") in (LogLevel.error, LogLevel.critical)
        ):
            errors.append(event)

    globalLogPublisher.addObserver(observer)
    yield errors
    gc.collect()
    globalLogPublisher.removeObserver(observer)
    if errors:
        failure = errors[0].get("log_failure") or errors[0].get("failure")
        detail = failure.getTraceback() if failure else errors[0]
        pytest.fail(f"{len(errors)} error event(s) logged: {detail}")


@pytest.fixture(scope="session")
def redis_server():
    from tests.support import RedisServer

    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def backend():
    from tests.support import Backend

    app = Backend()
    app.start()
    yield app
    app.stop()


@pytest.fixture
def start_gateway(reactor):
    """``await start_gateway("--rpc-host=…", …)`` → a started :class:`Gateway`, stopped after."""
    from twisted.internet.defer import ensureDeferred

    from tests.support import Gateway

    started: list[Gateway] = []

    async def start(*args: str) -> Gateway:
        gateway = Gateway(reactor, list(args))
        started.append(gateway)
        return await gateway.start()

    yield start
    for gateway in started:
        pytest_twisted.blockon(ensureDeferred(gateway.stop()))


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """The warnings logged during the test, formatted."""
    from twisted.logger import LogLevel, formatEvent, globalLogPublisher

    events: list[str] = []

    def observer(event: dict[str, Any]) -> None:
        if event.get("log_level") is LogLevel.warn:
            events.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)

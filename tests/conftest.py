# Imports of the gateway's modules stay inside fixtures: autobahn imports the global reactor,
# and pytest-twisted must install the asyncio reactor before that happens.
from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from hypothesis import settings

#: no per-example deadline: on a loaded machine an example's first run can take longer than
#: Hypothesis's 200 ms for reasons of the machine's, and a test must not fail on timing
settings.register_profile("ocppcable", deadline=None)
settings.load_profile("ocppcable")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "readme: runs README.rst's quick start as written (a real pip install; slow)",
    )
    config.addinivalue_line(
        "markers",
        "install: pip-installs packages into a fresh virtualenv (slow)",
    )
    config.addinivalue_line(
        "markers",
        "bench: runs bench/ end to end (deselected by default; .ci/run runs it with -m bench -n 0)",
    )


@pytest.fixture
def reactor():
    from twisted.internet import reactor

    return reactor


def _is_error(event: dict) -> bool:
    from twisted.logger import LogLevel

    return (
        event.get("log_failure") is not None
        or bool(event.get("isError"))
        or event.get("log_level") in (LogLevel.error, LogLevel.critical)
    )


def _fail_with(errors: list[dict]) -> None:
    if errors:
        failure = errors[0].get("log_failure") or errors[0].get("failure")
        detail = failure.getTraceback() if failure else errors[0]
        pytest.fail(f"{len(errors)} error event(s) logged: {detail}")


@pytest.fixture(scope="session", autouse=True)
def collect_frozen_garbage_at_the_end():
    """What fail_on_logged_errors froze and later became garbage (a Deferred kept from one test
    failing unhandled in another) is collected once at the end: its errors fail the session."""
    yield
    from twisted.logger import globalLogPublisher

    errors: list[dict] = []

    def observer(event: dict) -> None:
        if _is_error(event):
            errors.append(event)

    globalLogPublisher.addObserver(observer)
    gc.unfreeze()
    gc.collect()
    globalLogPublisher.removeObserver(observer)
    _fail_with(errors)


@pytest.fixture(autouse=True)
def fail_on_logged_errors():
    """Like trial: an error logged during a test (an unhandled Deferred error, log.failure or
    log.error) fails it. Tests that provoke expected errors take the list and clear it.

    An unhandled Deferred error is only logged when its Deferred is collected, so each test ends
    with a collection. Everything still alive then is frozen (``gc.freeze``): the next test's
    collection scans only what that test made, ~0 ms instead of ~80 ms over the whole heap."""
    from twisted.logger import globalLogPublisher

    errors: list[dict] = []

    def observer(event: dict) -> None:
        if _is_error(event):
            errors.append(event)

    globalLogPublisher.addObserver(observer)
    yield errors
    gc.collect()
    gc.freeze()
    globalLogPublisher.removeObserver(observer)
    _fail_with(errors)


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
def start_gateway(request, reactor):
    """``await start_gateway("--rpc-host=…", …)`` → a started :class:`Gateway`, stopped after.

    The backends the test uses are set up first so that they stop after its gateways: a gateway
    stopping makes its stations' Disconnect RPCs, retried for seconds against a backend gone."""
    from twisted.internet.defer import ensureDeferred

    from tests.support import Gateway

    for backend in ("backend", "http_backend"):
        if backend in request.fixturenames:
            request.getfixturevalue(backend)

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


@pytest.fixture(scope="session")
def nats_server():
    from tests.support import NatsServer

    server = NatsServer()
    server.start()
    yield server
    server.stop()

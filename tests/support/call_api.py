"""What the call API's tests share: the key, a station that answers the API's commands, an
HTTP helper, and polling helpers (tests/test_call_api.py, tests/test_call_cluster*.py,
tests/test_*queue.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ocpp.exceptions import NotSupportedError
from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater

from ocppcable.api.interfaces import QueuedCommand
from ocppcable.commands import RemoteCommand
from tests.support.backends import http_client
from tests.support.common import TIMEOUT, aio
from tests.support.stations import Station, open_station

KEY = "api-key-for-tests"
SECRET = "s3cret"


class APIStation(Station):
    """Answers GetConfiguration (held while ``hold`` is clear) and refuses
    ChangeConfiguration with a CALLERROR."""

    def __init__(self, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection)
        self.hold = asyncio.Event()
        self.hold.set()

    @on(Action.get_configuration)
    async def on_get_configuration(self, **kwargs: Any) -> Any:
        await self.commands.put(("GetConfiguration", kwargs))
        await self.hold.wait()
        return call_result.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]
        )

    @on(Action.change_configuration)
    async def on_change_configuration(self, key: str, value: str) -> Any:
        raise NotSupportedError(description="no such key", details={"key": key})


async def api(
    reactor: Any,
    port: int,
    method: str,
    path: str,
    body: Any = None,
    key: str | None = KEY,
) -> tuple[int, Any]:
    """(status, decoded JSON body or None) of one API request, within TIMEOUT."""
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()

    async def request() -> tuple[int, Any]:
        response = await http_client(reactor).request(
            method, f"http://127.0.0.1:{port}{path}", data=data, headers=headers
        )
        content = await response.content()
        try:
            return response.code, json.loads(content)
        except ValueError:
            return response.code, None

    return await ensureDeferred(request()).addTimeout(TIMEOUT + 5, reactor)


async def booted(gateway: Any, station_id: str = "CP-1") -> Any:
    conn = await aio(open_station(gateway.url(station_id), station_id, station_class=APIStation))
    boot = call.BootNotification(
        charge_point_model="M", charge_point_vendor="V", meter_serial_number=f"SN-{station_id}"
    )
    await aio(conn.station.call(boot))
    return conn


def backend_reports(gateway: Any, unique_id: str) -> list[dict[str, Any]]:
    """The #ack/#error data the demo backend received for the command ``unique_id``."""
    app = gateway.service.client.app
    return [c.data for c in list(app.calls) if c.data.get("id") == unique_id]


def calls_path(station_id: str = "CP-1") -> str:
    return f"/_ocpp/stations/{station_id}/calls"


async def until(check: Any, reactor: Any) -> Any:
    """Await ``check()`` until it returns something truthy (within TIMEOUT)."""
    deadline = reactor.seconds() + TIMEOUT
    while not (value := await check()):
        assert reactor.seconds() < deadline, f"condition not met within {TIMEOUT}s: {check}"
        await deferLater(reactor, 0.05, lambda: None)
    return value


async def status_of(reactor: Any, port: int, path: str, expected: int) -> Any:
    """The body of ``GET path`` once it answers ``expected``."""

    async def check() -> Any:
        status, body = await api(reactor, port, "GET", path)
        return body if status == expected else None

    return await until(check, reactor)


# --- the queue ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(unique_id: str, expires_at: float = 2000.0, station: str = "CP-1") -> QueuedCommand:
    return QueuedCommand(station, RemoteCommand(unique_id, "ClearCache", {}), expires_at)

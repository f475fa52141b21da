"""The gateway service started inside the test process."""

from __future__ import annotations

from typing import Any

from ocppcable.options import Options
from ocppcable.service import makeService


class Gateway:
    """The gateway service started in this process on a free loopback port."""

    def __init__(self, reactor: Any, args: list[str]) -> None:
        options = Options(environ={})
        options.parseOptions(
            ["--listen=tcp:0:interface=127.0.0.1", "--http-broadcast-port=0", *args]
        )
        self.options = options
        self.service = makeService(options, reactor)
        self.port = 0

    async def start(self) -> Gateway:
        self.service.startService()
        port = await self.service.listeners[0].when_listening()
        self.port = port.getHost().port
        return self

    async def stop(self) -> None:
        if self.service.running:
            await self.service.stopService()

    def url(self, station_id: str, path: str = "/ocpp") -> str:
        return f"ws://127.0.0.1:{self.port}{path}/{station_id}"

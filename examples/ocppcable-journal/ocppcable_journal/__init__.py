"""A station hook that journals every frame, in and out, to ``<journal-dir>/<YYYY-MM-DD>.jsonl``
(one JSON object per line: time, station id, session id, direction, frame), plus each station's
connection and close.

Enabled with ``twistd ocppcable --hooks journal [--journal-dir DIR]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from twisted.application.service import Service
from twisted.logger import Logger

from ocppcable.plugin import IStation, StationHook, Wiring

log = Logger()


class Journal(StationHook, Service):
    """Appends to today's file; a service, so that the gateway closes the file when it stops.

    Writes are small and buffered by the file object; the file is flushed on every line so
    that a crash loses nothing already seen."""

    def __init__(self, directory: Path, now: Callable[[], float]) -> None:
        self.directory = directory
        self.now = now
        self._day = ""
        self._file: IO[str] | None = None

    def startService(self) -> None:
        super().startService()
        self.directory.mkdir(parents=True, exist_ok=True)
        log.info("journaling station frames into {directory}", directory=str(self.directory))

    def stopService(self) -> None:
        super().stopService()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, station: IStation, direction: str, **fields: Any) -> None:
        moment = datetime.fromtimestamp(self.now(), UTC)
        day = moment.strftime("%Y-%m-%d")
        if day != self._day or self._file is None:
            if self._file is not None:
                self._file.close()
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = open(self.directory / f"{day}.jsonl", "a", encoding="utf-8")
            self._day = day
        record = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "station_id": station.station_id,
            "sid": station.sid,
            "direction": direction,
            **fields,
        }
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def connected(self, station: IStation) -> None:
        self._write(station, "connected", subprotocol=station.subprotocol)

    def frame_received(self, station: IStation, text: str) -> None:
        self._write(station, "in", frame=text)

    def frame_sent(self, station: IStation, text: str) -> None:
        self._write(station, "out", frame=text)

    def closed(self, station: IStation, code: int | None, reason: str | None) -> None:
        self._write(station, "closed", code=code, reason=reason)


def build(config: Mapping[str, Any], wiring: Wiring) -> Journal:
    return Journal(Path(config["journal-dir"]), wiring.reactor.seconds)

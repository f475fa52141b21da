"""The configuration of a simulator run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    """One run: where the stations connect, how many there are and what they do."""

    url: str  # base URL; a station connects to <url>/<station id>
    stations: int = 1
    ocpp: str = "1.6"  # the OCPP version the stations speak: a key of dialects.DIALECTS
    prefix: str = "SIM"
    #: seconds to run; 0: until every station ran its sessions, or until stopped if sessions == 0
    duration: float = 0.0
    #: new connections per second; 0: all at once
    ramp: float = 100.0
    #: heartbeat interval in seconds; None: the interval of the BootNotification reply
    heartbeat: int | None = None
    #: charging sessions each station runs, one after the other
    sessions: int = 0
    session_length: float = 60.0
    #: seconds between meter readings (MeterValues, TransactionEvent Updated) in a session; 0: none
    meter_interval: float = 10.0
    id_tag: str = "SIMULATOR"
    connectors: int = 1
    call_timeout: float = 30.0
    quiet: bool = False  # no progress lines, no line per answered command
    verbose: bool = False  # log every frame

    def station_ids(self) -> list[str]:
        width = max(4, len(str(self.stations)))
        return [f"{self.prefix}-{n:0{width}d}" for n in range(1, self.stations + 1)]

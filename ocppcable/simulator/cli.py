"""``ocppcable-station``: the simulator's command line."""

from __future__ import annotations

import argparse
import math
import resource
import sys
from collections.abc import Callable, Sequence
from typing import Any

from autobahn.websocket.util import parse_url
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.python.failure import Failure

from ocppcable.simulator.commands import commands_log
from ocppcable.simulator.config import Config
from ocppcable.simulator.dialects import DIALECTS
from ocppcable.simulator.fleet import PROGRESS_INTERVAL, Simulator
from ocppcable.simulator.stats import Summary

log = Logger()

#: the station id is sent as BootNotification.meterSerialNumber (1.6: CiString25) or
#: chargingStation.serialNumber (2.0.1: string(25))
MAX_STATION_ID = 25


def _at_least(minimum: float, kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):  # float() reads "nan" and "inf": no timer can use them
            raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value

    return convert


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        prog="ocppcable-station",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Simulated OCPP 1.6J or 2.0.1 charging stations, to try a gateway or to load "
        "it.\n\n"
        "Station N connects to URL/PREFIX-000N with subprotocol ocpp1.6 (--ocpp 2.0.1:\n"
        "ocpp2.0.1), boots, heartbeats, reports its connectors, runs its charging sessions and\n"
        "answers remote commands, printing a line for each (unless --quiet):\n"
        "  1.6:   TriggerMessage, Reset, RemoteStartTransaction, RemoteStopTransaction,\n"
        "         ChangeConfiguration, GetConfiguration\n"
        "  2.0.1: TriggerMessage, Reset, RequestStartTransaction, RequestStopTransaction,\n"
        "         GetVariables, SetVariables\n"
        "Any other command gets CALLERROR NotImplemented.",
        epilog=f"""\
A run ends after --duration seconds; without it, once every station ran its --sessions,
or on Ctrl-C (SIGINT, SIGTERM) when there are none; Ctrl-C ends any run early. It prints a progress line every {PROGRESS_INTERVAL:g} s
(unless --quiet) and a summary at the end. Exit status: 0 when no CALLERROR, timeout or
other error occurred, else 1.

examples:
  ocppcable-station ws://localhost:8080/ocpp          one station, until Ctrl-C
  ocppcable-station ws://localhost:8080/ocpp -v --sessions 1 --session-length 20
  ocppcable-station ws://localhost:8080/ocpp --ocpp 2.0.1 --stations 3 --sessions 1
  ocppcable-station ws://127.0.0.1:8080/ocpp --stations 5000 --ramp 500 \\
      --sessions 3 --session-length 120 --quiet       a benchmark
""",
    )
    parser.add_argument("url", metavar="URL", help="base URL, e.g. ws://localhost:8080/ocpp")
    parser.add_argument(
        "--stations", type=_at_least(1, int), default=1, metavar="N", help="how many (1)"
    )
    parser.add_argument(
        "--ocpp",
        choices=sorted(DIALECTS),
        default="1.6",
        help="the OCPP version the stations speak (1.6)",
    )
    parser.add_argument(
        "--prefix", default="SIM", help="station ids are PREFIX-0001, PREFIX-0002, … (SIM)"
    )
    parser.add_argument(
        "--duration",
        type=_at_least(0, float),
        default=0.0,
        metavar="SECONDS",
        help="run this long (default: see below)",
    )
    parser.add_argument(
        "--ramp",
        type=_at_least(0, float),
        default=100.0,
        metavar="PER_SECOND",
        help="new connections per second (100; 0: all at once)",
    )
    parser.add_argument(
        "--heartbeat",
        type=_at_least(0, int),
        metavar="SECONDS",
        help="heartbeat interval (default: the BootNotification reply's; 0: none)",
    )
    parser.add_argument(
        "--sessions",
        type=_at_least(0, int),
        default=0,
        metavar="N",
        help="charging sessions per station, one after the other: Authorize, "
        "StartTransaction, MeterValues, StopTransaction (2.0.1: Authorize, TransactionEvent "
        "Started, Updated, Ended) (0)",
    )
    parser.add_argument(
        "--session-length",
        type=_at_least(0, float),
        default=60.0,
        metavar="SECONDS",
        help="how long a session charges (60)",
    )
    parser.add_argument(
        "--meter-interval",
        type=_at_least(0, float),
        default=10.0,
        metavar="SECONDS",
        help="meter reading interval during a session (10; 0: none)",
    )
    parser.add_argument(
        "--id-tag",
        default="SIMULATOR",
        help="idTag (2.0.1: ISO14443 idToken) of the sessions (SIMULATOR)",
    )
    parser.add_argument(
        "--connectors", type=_at_least(1, int), default=1, metavar="N", help="per station (1)"
    )
    parser.add_argument(
        "--call-timeout",
        type=_at_least(0.001, float),
        default=30.0,
        metavar="SECONDS",
        help="how long a station waits for a reply (30)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress lines and no line per answered command, only the summary",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every frame (for a few stations)"
    )
    args = parser.parse_args(argv)
    try:
        parse_url(args.url)
    except Exception as e:
        parser.error(f"URL: {e}")
    config = Config(
        url=args.url,
        stations=args.stations,
        ocpp=args.ocpp,
        prefix=args.prefix,
        duration=args.duration,
        ramp=args.ramp,
        heartbeat=args.heartbeat,
        sessions=args.sessions,
        session_length=args.session_length,
        meter_interval=args.meter_interval,
        id_tag=args.id_tag,
        connectors=args.connectors,
        call_timeout=args.call_timeout,
        quiet=args.quiet,
        verbose=args.verbose,
    )
    longest = config.station_ids()[-1]
    if len(longest) > MAX_STATION_ID:
        parser.error(
            f"--prefix: station id {longest!r} is longer than {MAX_STATION_ID} characters "
            "(it is sent as the BootNotification's serial number)"
        )
    longest_tag = DIALECTS[config.ocpp].max_id_token
    if not 0 < len(config.id_tag) <= longest_tag:
        parser.error(f"--id-tag: 1 to {longest_tag} characters for OCPP {config.ocpp}")
    return config


def _install_reactor() -> None:
    """epoll scales to thousands of sockets; where there is none, Twisted's default reactor."""
    try:
        from twisted.internet import epollreactor
    except ImportError:
        return
    epollreactor.install()


def _raise_open_files_limit(stations: int) -> None:
    """Every station holds a socket: raise the soft limit on open files as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = stations + 100
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    if limit < wanted:
        log.warn(
            "only {limit} open files allowed (ulimit -n): some of {stations} stations will fail",
            limit=limit,
            stations=stations,
        )


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    _install_reactor()
    from twisted.internet import reactor
    from twisted.internet.error import ReactorNotRunning

    levels = LogLevelFilterPredicate(LogLevel.info if config.verbose else LogLevel.warn)
    if not config.verbose:  # per-connection noise under load; the summary counts what matters
        levels.setLogLevelForNamespace("autobahn", LogLevel.error)
    if not config.quiet:
        levels.setLogLevelForNamespace(commands_log.namespace, LogLevel.info)
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [levels])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    _raise_open_files_limit(config.stations)

    simulator = Simulator(reactor, config)
    outcome: list[Summary] = []

    def finished(summary: Summary) -> None:
        outcome.append(summary)
        print(summary, flush=True)
        try:
            reactor.stop()
        except ReactorNotRunning:
            pass  # Ctrl-C: already stopping

    def failed(failure: Failure) -> None:
        log.failure("the simulation failed", failure)
        reactor.stop()

    simulator.run().addCallbacks(finished, failed)
    reactor.addSystemEventTrigger("before", "shutdown", simulator.stop)
    reactor.run()
    sys.exit(0 if outcome and outcome[0].ok else 1)

"""The helpers every test module shares, imported from here only (``from tests.support import
X``; tests never import each other, nor this package's modules): real parts for end-to-end tests
(a redis-server, a nats-server, a gRPC or HTTP backend, the gateway, OCPP stations, twistd, a PKI,
a fresh checkout), plain calls driving the sans-I/O session, and what the call API's tests share.
Each module has one job:

- :mod:`.common`: timeouts, the checkout's root, the installed ``twistd``, free ports, waiting
- :mod:`.redis`, :mod:`.nats`: private servers on free loopback ports
- :mod:`.backends`: the demo channel over gRPC and over HTTP RPC, an HTTP client
- :mod:`.gateway`: the gateway service in this process
- :mod:`.processes`: ``twistd`` and README commands as separate processes
- :mod:`.checkout`: a fresh copy of the checkout and a clean environment
- :mod:`.tls`: a throwaway PKI
- :mod:`.stations`: OCPP stations, raw WebSockets and raw HTTP requests
- :mod:`.session`: the sans-I/O session driven with plain calls
- :mod:`.call_api`: the call API's key, station, requests and queue entries
"""

from __future__ import annotations

from tests.support.backends import Backend, HTTPBackend, SeenRequest, http_client
from tests.support.call_api import (
    KEY,
    SECRET,
    APIStation,
    Clock,
    api,
    backend_reports,
    booted,
    calls_path,
    entry,
    status_of,
    until,
)
from tests.support.checkout import NOT_LENT, clean_environment, fresh_copy, lent_dependencies
from tests.support.common import (
    PROCESS_TIMEOUT,
    ROOT,
    TIMEOUT,
    TWISTD,
    LocalServer,
    aio,
    free_port,
    wait_for,
)
from tests.support.gateway import Gateway
from tests.support.nats import NatsServer
from tests.support.processes import Process, read_line, twistd, wait_exit, wait_output
from tests.support.redis import RedisServer
from tests.support.session import (
    BOOT,
    HEADERS,
    IDENTIFIER,
    IDENTIFIERS,
    NOW,
    URL,
    broadcast_command,
    call,
    connect_ok,
    established,
    make,
    message_data,
    ok,
    only_rpc,
    report,
    rpcs,
    sent,
    start,
    transmission,
)
from tests.support.stations import (
    CHARGING_ACTIONS,
    Station,
    StationConnection,
    charging_session,
    http_status,
    open_station,
    raw_socket,
    upgrade_request,
)
from tests.support.tls import PKI

__all__ = [
    "APIStation",
    "BOOT",
    "Backend",
    "CHARGING_ACTIONS",
    "Clock",
    "Gateway",
    "HEADERS",
    "HTTPBackend",
    "IDENTIFIER",
    "IDENTIFIERS",
    "KEY",
    "LocalServer",
    "NOT_LENT",
    "NOW",
    "NatsServer",
    "PKI",
    "PROCESS_TIMEOUT",
    "Process",
    "ROOT",
    "RedisServer",
    "SECRET",
    "SeenRequest",
    "Station",
    "StationConnection",
    "TIMEOUT",
    "TWISTD",
    "URL",
    "aio",
    "api",
    "backend_reports",
    "booted",
    "broadcast_command",
    "call",
    "calls_path",
    "charging_session",
    "clean_environment",
    "connect_ok",
    "entry",
    "established",
    "free_port",
    "fresh_copy",
    "http_client",
    "http_status",
    "lent_dependencies",
    "make",
    "message_data",
    "ok",
    "only_rpc",
    "open_station",
    "raw_socket",
    "read_line",
    "report",
    "rpcs",
    "sent",
    "start",
    "status_of",
    "transmission",
    "twistd",
    "until",
    "upgrade_request",
    "wait_exit",
    "wait_for",
    "wait_output",
]

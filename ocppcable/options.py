"""Command-line options of ``twistd ocppcable``, each with environment-variable defaults.

Precedence: built-in default < ``ANYCABLE_<NAME>`` < ``OCPPCABLE_<NAME>`` < command line. A few
AnyCable spellings are accepted as well (``REDIS_URL``, ``PORT``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.endpoints import serverFromString
from twisted.python import reflect, usage

from ocppcable import __version__
from ocppcable.plugin import comma_list
from ocppcable.registry import Registry, installed

OCPP_VERSIONS = ("ocpp2.1", "ocpp2.0.1", "ocpp1.6")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def boolean(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


boolean.coerceDoc = "true or false."  # type: ignore[attr-defined]


def _number(value: str | float, kind: type[int] | type[float]) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"expected {what}, got {value!r}") from None
    # nan passes "> 0" and ">= 0"; inf breaks every timer it sets
    if kind is float and not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def positive_int(value: str | int) -> int:
    number: int = _number(value, int)
    if number <= 0:
        raise ValueError(f"must be > 0, got {value!r}")
    return number


positive_int.coerceDoc = "An integer > 0."  # type: ignore[attr-defined]


def non_negative_int(value: str | int) -> int:
    number: int = _number(value, int)
    if number < 0:
        raise ValueError(f"must be >= 0, got {value!r}")
    return number


non_negative_int.coerceDoc = "An integer >= 0."  # type: ignore[attr-defined]


def non_negative_float(value: str | float) -> float:
    number: float = _number(value, float)
    if number < 0:
        raise ValueError(f"must be >= 0, got {value!r}")
    return number


non_negative_float.coerceDoc = "Seconds, >= 0."  # type: ignore[attr-defined]


def positive_float(value: str | float) -> float:
    number: float = _number(value, float)
    if number <= 0:
        raise ValueError(f"must be > 0, got {value!r}")
    return number


positive_float.coerceDoc = "Seconds, > 0."  # type: ignore[attr-defined]


def _documented(coerce: Callable[[Any], Any], doc: str) -> Callable[[Any], Any]:
    """``coerce`` under another ``--help`` description."""

    def documented(value: Any) -> Any:
        return coerce(value)

    documented.coerceDoc = doc  # type: ignore[attr-defined]
    return documented


non_negative_rate = _documented(non_negative_float, "Per second, >= 0.")
positive_rate = _documented(positive_float, "Per second, > 0.")


def port_number(value: str | int) -> int:
    number: int = _number(value, int)
    if not 0 <= number <= 65535:
        raise ValueError(f"must be a port number 0-65535, got {value!r}")
    return number


port_number.coerceDoc = "A TCP port, 0-65535 (0: any free port)."  # type: ignore[attr-defined]


def tcp_endpoint(port: int, host: str, shared: bool = False) -> str:
    """A server endpoint string for ``port`` on interface ``host``; ``shared``: a ``reuseport:``
    one, for a port that several gateway processes share."""
    escaped = host.replace(":", "\\:")  # endpoint strings separate arguments with ':'
    kind = "reuseport" if shared else "tcp"
    # a deep backlog: thousands of stations reconnect at once after a restart
    return f"{kind}:{port}:interface={escaped}:backlog=1024"


def server_endpoint(description: str) -> str:
    """``description`` if it parses as a server endpoint string (TLS files are read as well)."""
    try:
        # parsing builds the endpoint object only: the reactor is not used until it listens
        serverFromString(None, description)
    except Exception as e:  # parsers raise ValueError, TypeError, OSError, TLS errors...
        raise ValueError(f"cannot use {description!r}: {e}") from None
    return description


def server_endpoints(value: str | Sequence[str]) -> list[str]:
    """Comma-separated server endpoint strings, each parsed now."""
    return [server_endpoint(description) for description in comma_list(value)]


server_endpoints.coerceDoc = "Comma-separated."  # type: ignore[attr-defined]


def optional_endpoint(description: str) -> str | None:
    """One server endpoint string, or None for an empty one (off)."""
    endpoints = server_endpoints(description)
    if len(endpoints) > 1:
        raise ValueError(f"one endpoint string, got {len(endpoints)}")
    return endpoints[0] if endpoints else None


optional_endpoint.coerceDoc = "An endpoint string; empty: off."  # type: ignore[attr-defined]


#: extra environment variables accepted for an option, checked before ANYCABLE_/OCPPCABLE_ names
_ALIASES = {
    "redis-url": ("REDIS_URL",),
    "port": ("PORT",),
    "broadcast-key": ("ANYCABLE_HTTP_BROADCAST_SECRET",),  # AnyCable's deprecated name
}


def _naming(flag: str, default: Any, coerce: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``coerce`` with errors that name the flag, raised as UsageError so that usage.Options
    does not prefix them with its "Parameter type enforcement failed"."""

    def named(value: Any) -> Any:
        try:
            return coerce(value)
        except ValueError as e:
            raise usage.UsageError(f"--{flag}: {e}") from None

    doc = getattr(coerce, "coerceDoc", None)
    if coerce is boolean:  # "[default: True]" alone does not say how to turn it off
        off, on = ("false", "off") if default else ("true", "on")
        doc = f"true or false (--{flag}={off} turns it {on})."
    named.coerceDoc = doc  # type: ignore[attr-defined]
    return named


def _named(param: Sequence[Any]) -> list[Any]:
    """An optParameters entry whose coercion errors name its flag."""
    param = list(param)
    return [*param[:4], _naming(param[0], param[2], param[4])] if len(param) > 4 else param


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Serve OCPP stations over WebSocket and map their calls to an AnyCable RPC backend "
        "(Action Cable channels). Every --some-option can also be set with the environment "
        "variable ANYCABLE_SOME_OPTION or OCPPCABLE_SOME_OPTION."
    )

    optParameters: list[list[Any]] = [
        ["host", None, "localhost", "Interface to listen on."],
        ["port", None, 8080, "Port to listen on.", port_number],
        [
            "listen",
            None,
            None,
            "Endpoint string(s) to listen on, e.g. tcp:8080 or "
            "ssl:8443:privateKey=key.pem:certKey=cert.pem; overrides --host/--port",
            server_endpoints,
        ],
        ["ocpp-path", None, "/ocpp", "URL path under which stations connect: <path>/<id>."],
        [
            "ocpp-versions",
            None,
            ",".join(OCPP_VERSIONS),
            "OCPP versions (WebSocket subprotocols) to accept, e.g. ocpp1.6,ocpp2.0.1.",
            comma_list,
        ],
        [
            "rpc-host",
            None,
            "localhost:50051",
            "AnyCable RPC backend: host:port for gRPC, an http:// or https:// URL for HTTP RPC "
            "(e.g. http://localhost:3000/_anycable), python:package.module:ChannelClass for a "
            "channel written in Python (docs/plugins.md), 'demo' for the built-in demo backend, "
            "or what an RPC transport plugin serves.",
        ],
        ["rpc-concurrency", None, 28, "Maximum RPC calls in flight.", positive_int],
        [
            "rpc-timeout",
            None,
            10.0,
            "Seconds an RPC call may take, retries included; also the longest a station waits "
            "for a reply.",
            positive_float,
        ],
        [
            "headers",
            None,
            "authorization,cookie,x-forwarded-for",
            "Request headers forwarded to the backend in env.headers.",
            comma_list,
        ],
        ["ocpp-channel", None, "OCPPChannel", "Action Cable channel class for stations."],
        [
            "ocpp-granular-actions",
            None,
            True,
            "Map each OCPP action to its own channel method (false: everything to #receive).",
            boolean,
        ],
        [
            "ocpp-heartbeat-interval",
            None,
            30,
            "Heartbeat interval (s) in default BootNotification replies.",
            positive_int,
        ],
        [
            "ocpp-idle-timeout",
            None,
            10.0,
            "Close a station that sends no CALL within this many seconds.",
            positive_float,
        ],
        [
            "ocpp-call-timeout",
            None,
            30.0,
            "Seconds a station has to answer a remote command.",
            positive_float,
        ],
        ["ocpp-max-queue", None, 32, "Remote commands queued per station.", positive_int],
        [
            "ocpp-validate",
            None,
            True,
            "Validate station CALLs, backend replies and remote commands against the official "
            "OCPP JSON schemas.",
            boolean,
        ],
        [
            "ocpp-require-cert-match",
            None,
            False,
            "With an mtls: listener (or reuseport: with caCerts), refuse stations whose client "
            "certificate CN is not their station id.",
            boolean,
        ],
        [
            "ocpp-rate-limit",
            None,
            20.0,
            "Frames per second a station may send on average (bursts of 2.5x allowed; 0: off).",
            non_negative_rate,
        ],
        [
            "ping-interval",
            None,
            30.0,
            "WebSocket ping interval in seconds (0: off); no pong within half of it closes.",
            non_negative_float,
        ],
        [
            "handshake-timeout",
            None,
            5.0,
            "Seconds a new connection has to send its whole request head (a station: its "
            "WebSocket upgrade); slower ones are closed.",
            positive_float,
        ],
        [
            "max-pending-connections",
            None,
            1024,
            "Connections still sending their request head; more are closed on accept.",
            positive_int,
        ],
        [
            "max-connections",
            None,
            None,
            "Open connections on the main port; more are closed on accept [default: the "
            "open-file limit less 100 descriptors kept for everything else]",
            positive_int,
        ],
        [
            "admission-rate",
            None,
            500.0,
            "New WebSocket handshakes per second this process takes on average; more are "
            "answered 503 with Retry-After (0: no limit).",
            non_negative_rate,
        ],
        [
            "admission-burst",
            None,
            None,
            "Handshakes taken at once above --admission-rate [default: twice the rate]",
            positive_int,
        ],
        [
            "overload-queue",
            None,
            200,
            "RPCs waiting at the gate (--rpc-concurrency) above which the backend counts as "
            "saturated: new stations' BootNotifications are then answered Pending (0: off).",
            non_negative_int,
        ],
        [
            "overload-latency",
            None,
            2.0,
            "Seconds over which the p90 latency of the RPCs of the last 10 s makes the backend "
            "count as saturated, as --overload-queue does (0: off).",
            non_negative_float,
        ],
        [
            "overload-boot-interval",
            None,
            30,
            "Interval (s) of a Pending BootNotification reply while the backend is saturated, "
            "jittered by +-50%.",
            positive_int,
        ],
        [
            "max-message-size",
            None,
            65536,
            "Largest WebSocket message accepted, in bytes.",
            positive_int,
        ],
        [
            "broadcast-adapter",
            None,
            None,
            "Broadcast adapters, comma-separated: http, redis, redisx, nats or a plugin's "
            "[default: http,redis; http,nats with --pubsub nats; http alone with "
            "--rpc-host=demo or python:…]",
            comma_list,
        ],
        [
            "pubsub",
            None,
            None,
            "Cluster transport for station takeover and relayed HTTP broadcasts: redis, nats, "
            "a plugin's, or none [default: redis with a redis or redisx broadcast adapter, else "
            "none]",
        ],
        [
            "hooks",
            None,
            "",
            "Station hook plugins, comma-separated, run in this order (see docs/plugins.md).",
            comma_list,
        ],
        [
            "secret",
            None,
            None,
            "Application secret; the HTTP RPC and broadcast keys are derived from it unless set.",
        ],
        [
            "http-rpc-secret",
            None,
            None,
            "Bearer key sent to the HTTP RPC backend (default: derived from --secret; none: no "
            "Authorization header).",
        ],
        [
            "broadcast-key",
            None,
            None,
            "Bearer key the HTTP broadcaster requires (default: derived from --secret; none: no "
            "authentication).",
        ],
        [
            "api-key",
            None,
            None,
            "Bearer key the call API (/_ocpp on the main port) requires (default: derived from "
            "--secret; without one the API is off, except in demo mode).",
        ],
        [
            "api-presence-ttl",
            None,
            15.0,
            "With Redis: seconds after which the stations of a node that stopped without "
            "cleaning up leave the cluster's presence (the node refreshes its entry every third "
            "of it).",
            positive_float,
        ],
        [
            "api-max-queue",
            None,
            100,
            "Call API: commands queued for one offline station (in Redis with a Redis adapter, "
            "else in memory).",
            positive_int,
        ],
        [
            "http-broadcast-port",
            None,
            8090,
            "Port of the HTTP broadcaster when it has no key (with a key it is on the main port).",
            port_number,
        ],
        ["http-broadcast-path", None, "/_broadcast", "URL path of the HTTP broadcaster."],
        [
            "http-broadcast-max-body",
            None,
            4 * 1024 * 1024,
            "Largest HTTP broadcast body, in bytes; larger ones get 413 before they are read.",
            positive_int,
        ],
        ["redis-url", None, "redis://localhost:6379", "Redis URL (redis:// or rediss://)."],
        ["redis-channel", None, "__anycable__", "Redis pub/sub channel for broadcasts."],
        [
            "redisx-stream",
            None,
            "__anycable__",
            "Redis stream the redisx broadcaster reads (XADD <stream> * payload <json>).",
        ],
        [
            "shutdown-timeout",
            None,
            30.0,
            "Seconds a graceful stop (SIGTERM) may take: stations are closed over the first "
            "half, Disconnect RPCs are made in the rest.",
            positive_float,
        ],
        [
            "disconnect-rate",
            None,
            100.0,
            "Disconnect RPCs per second in normal operation (the queue is drained at shutdown).",
            positive_rate,
        ],
        [
            "metrics-path",
            None,
            "/metrics",
            "Path of the Prometheus endpoint on the main port (empty: off).",
        ],
        [
            "metrics-listen",
            None,
            None,
            "Endpoint string of a listener of this process's own for --metrics-path and /health, "
            "e.g. tcp:9101:interface=127.0.0.1; set, the metrics leave the main port. Give each "
            "process that shares a reuseport: port its own",
            optional_endpoint,
        ],
        ["log-format", None, "text", "text, or json (one JSON object per line on stdout)."],
        [
            "log-level",
            None,
            "info",
            "debug, info, warn, error or critical (debug includes OCPP payloads).",
        ],
    ]

    optParameters = [_named(p) for p in optParameters]

    def __init__(
        self, environ: Mapping[str, str] | None = None, plugins: Registry | None = None
    ) -> None:
        #: the plugins the options choose among; their own options join ours
        self.plugins = plugins if plugins is not None else installed()
        extra = self.plugins.all()
        parameters = [_named(p) for plugin in extra for p in plugin.optParameters]
        flags = [list(f) for plugin in extra for f in plugin.optFlags]
        if parameters or flags:
            # usage.Options gathers options from the class hierarchy: a subclass adds theirs
            attributes = {"optParameters": parameters, "optFlags": flags}
            self.__class__ = type(type(self).__name__, (type(self),), attributes)
        super().__init__()
        self._environ = os.environ if environ is None else environ
        self._failed = False
        #: the options set by an environment variable: (variable, value)
        self._from_variable: dict[str, tuple[str, Any]] = {}

    def _parameters(self) -> list[list[Any]]:
        """Every option that takes a value: ours and the plugins'."""
        found: list[list[Any]] = []
        reflect.accumulateClassList(type(self), "optParameters", found)
        return found

    def _read_environ(self) -> None:
        """Environment values, applied before the command line (which wins over them)."""
        for param in self._parameters():
            name = param[0]
            found = self._from_environ(name, self._environ)
            if found is None:
                continue
            variable, raw = found
            try:
                self[name] = param[4](raw) if len(param) > 4 else raw
            except usage.UsageError as e:
                raise usage.UsageError(f"{variable}: {e}") from None
            self._from_variable[name] = (variable, self[name])
        flags: list[list[Any]] = []
        reflect.accumulateClassList(type(self), "optFlags", flags)
        for flag in flags:
            found = self._from_environ(flag[0], self._environ)
            if found is not None:
                variable, raw = found
                try:
                    self[flag[0]] = int(boolean(raw))
                except ValueError as e:
                    raise usage.UsageError(f"{variable}: {e}") from None

    @staticmethod
    def _from_environ(name: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
        upper = name.upper().replace("-", "_")
        found = None
        for variable in (*_ALIASES.get(name, ()), f"ANYCABLE_{upper}", f"OCPPCABLE_{upper}"):
            if variable in environ:
                found = (variable, environ[variable])
        return found

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """Accept ``--ocpp_path`` as well as ``--ocpp-path`` (AnyCable spells flags with _)."""
        if options is None:
            options = sys.argv[1:]
        normalized = []
        for arg in options:
            if arg.startswith("--"):
                name, sep, value = arg.partition("=")
                arg = name.replace("_", "-") + sep + value
            normalized.append(arg)
        try:
            self._read_environ()
            super().parseOptions(normalized)
        except usage.UsageError:
            self._failed = True
            raise

    def getUsage(self, width: int | None = None) -> str:
        if self._failed:
            # twistd prints the usage before a usage error: ~100 lines that bury the error line
            return "Run 'twistd ocppcable --help' for the options.\n"
        return super().getUsage(width)

    def opt_version(self) -> None:
        """Display the ocppcable and Twisted versions and exit."""
        from twisted import __version__ as twisted_version

        print(f"ocppcable {__version__} (Twisted {twisted_version})")
        sys.exit(0)

    def postOptions(self) -> None:
        # usage.Options leaves defaults uncoerced and env values are already coerced; coerce all
        # once more so that every value has its declared type whatever its source.
        for param in self._parameters():
            name = param[0]
            if len(param) > 4 and self[name] is not None:
                self[name] = param[4](self[name])
        self["ocpp-path"] = self._url_path("ocpp-path", "/ocpp")
        self["http-broadcast-path"] = self._url_path("http-broadcast-path", "/_broadcast")
        rpc_host = self["rpc-host"]
        try:
            self.plugins.transport(rpc_host).check(rpc_host)
        except ValueError as e:
            raise usage.UsageError(f"{self._source('rpc-host')}: {e}") from None
        versions = [v if v.startswith("ocpp") else f"ocpp{v}" for v in self["ocpp-versions"]]
        unknown = [v for v in versions if v not in OCPP_VERSIONS]
        if unknown or not versions:
            raise usage.UsageError(
                f"--ocpp-versions: unknown version(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(OCPP_VERSIONS)}"
            )
        self["ocpp-versions"] = versions
        if self["metrics-path"]:
            self["metrics-path"] = self._url_path("metrics-path", "/metrics")
        elif self["metrics-listen"]:
            raise usage.UsageError("--metrics-listen: the metrics are off (empty --metrics-path)")
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
        if self["log-level"] not in LOG_LEVELS:
            raise usage.UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
        if self["broadcast-adapter"] is None:
            in_process = rpc_host == "demo" or rpc_host.startswith("python:")
            if in_process:
                self["broadcast-adapter"] = ["http"]
            elif (self["pubsub"] or "").strip().lower() == "nats":  # a cluster with no Redis
                self["broadcast-adapter"] = ["http", "nats"]
            else:
                self["broadcast-adapter"] = ["http", "redis"]
        redis_adapter = bool({"redis", "redisx"} & set(self["broadcast-adapter"]))
        if self["pubsub"] is None:
            self["pubsub"] = "redis" if redis_adapter else "none"
        self["pubsub"] = self["pubsub"].strip().lower() or "none"
        chosen = {
            "broadcast-adapter": self["broadcast-adapter"],
            "pubsub": [] if self["pubsub"] == "none" else [self["pubsub"]],
            "hooks": self["hooks"],
        }
        for option, names in chosen.items():
            try:
                self.plugins.chosen(option, names)
            except ValueError as e:
                raise usage.UsageError(f"{self._source(option)}: {e}") from None
        if len(set(self["hooks"])) != len(self["hooks"]):
            raise usage.UsageError("--hooks: a hook is named twice")
        if redis_adapter or self["pubsub"] == "redis":
            try:
                redis_url = urlsplit(self["redis-url"])  # raises on an unclosed "[" (IPv6)
                redis_url.port  # noqa: B018 (it raises on a port that is no port)
            except ValueError as e:
                raise usage.UsageError(f"--redis-url: {e}") from None
            if redis_url.scheme not in ("redis", "rediss"):
                raise usage.UsageError("--redis-url must be a redis:// or rediss:// URL")
        if "http" in self["broadcast-adapter"]:
            broadcast = self["http-broadcast-path"].strip("/").split("/")
            ocpp = self["ocpp-path"].strip("/").split("/")
            shortest = min(len(broadcast), len(ocpp))
            if broadcast[:shortest] == ocpp[:shortest] or broadcast[0] == "health":
                raise usage.UsageError(
                    "--http-broadcast-path must not overlap --ocpp-path or /health"
                )
        for name in ("ocpp-path", "http-broadcast-path"):
            if self[name].strip("/").split("/")[0] == "_ocpp":
                raise usage.UsageError(f"--{name} must not be under /_ocpp (the call API)")
        self["listen"] = self["listen"] or [tcp_endpoint(self["port"], self["host"])]

    def _source(self, name: str) -> str:
        """``--name``, after the environment variable that set its value, if one did."""
        variable, value = self._from_variable.get(name, (None, None))
        return f"{variable}: --{name}" if variable and value == self[name] else f"--{name}"

    def _url_path(self, name: str, example: str) -> str:
        path = self[name]
        if not path.startswith("/") or path.strip("/") == "":
            raise usage.UsageError(f"--{name} must start with '/' and name a path, e.g. {example}")
        return "/" + path.strip("/")

"""The plugin API: discovery in ocppcable.plugins, built-ins through the same door, plugin
options, and the choice of plugins by --rpc-host, --broadcast-adapter, --pubsub and --hooks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from twisted.python.usage import UsageError
from zope.interface.verify import verifyObject

from ocppcable.plugin import (
    IBroadcastAdapterPlugin,
    IClusterTransportPlugin,
    IRPCTransportPlugin,
    IStationHookPlugin,
    StationHook,
    StationHooks,
)
from ocppcable.registry import Registry, installed, rpc_scheme
from tests.support import TWISTD


@pytest.mark.parametrize(
    ("target", "scheme"),
    [
        ("localhost:50051", "grpc"),
        ("[::1]:50051", "grpc"),
        ("http://localhost:3000/_anycable", "http"),
        ("HTTPS://backend", "https"),
        ("demo", "demo"),
        ("python:app.channels", "python"),
    ],
)
def test_the_scheme_of_rpc_host(target, scheme):
    assert rpc_scheme(target) == scheme


def test_the_built_ins_are_plugins_found_in_the_plugin_package():
    plugins = installed()
    assert plugins.names("rpc-host") == ["grpc", "http", "https", "demo", "python"]
    # the project's own dropins: ocppcable_builtins, then ocppcable_nats
    assert plugins.names("broadcast-adapter") == ["http", "redis", "redisx", "nats"]
    assert plugins.names("pubsub") == ["redis", "nats"]
    for kind, found in [
        (IRPCTransportPlugin, plugins.rpc),
        (IBroadcastAdapterPlugin, plugins.broadcast),
        (IClusterTransportPlugin, plugins.cluster),
    ]:
        for plugin in found:
            assert verifyObject(kind, plugin)
            assert type(plugin).__module__ == "ocppcable.plugin"  # declared like a third party's


def test_service_holds_no_list_of_transports_or_adapters():
    from pathlib import Path

    import ocppcable.service

    source = Path(ocppcable.service.__file__).read_text()
    for name in (
        "GRPCClient",
        "HTTPRPCClient",
        "RedisBroadcaster",
        "RedisXBroadcaster",
        "OCPPApplication",
    ):
        assert name not in source


class Greeter(StationHook):
    def __init__(self, greeting: str, loud: bool) -> None:
        self.greeting = greeting.upper() if loud else greeting


def _greeter(config, wiring):
    return Greeter(config["greeting"], config["greet-loudly"])


GREETER = StationHooks(
    "greeter",
    _greeter,
    optParameters=[["greeting", None, "hello", "What the greeter says."]],
    optFlags=[["greet-loudly", None, "Shout it."]],
)


def _registry(*extra):
    return Registry.of([*installed().all(), *extra])


def _options(*args, environ=None, plugins=None):
    from ocppcable.options import Options

    options = Options(environ=environ or {}, plugins=plugins or _registry(GREETER))
    options.parseOptions(["--rpc-host=demo", *args])
    return options


def test_a_plugin_adds_its_options_to_help_and_environment():
    assert verifyObject(IStationHookPlugin, GREETER)
    options = _options("--greeting=hi", "--greet-loudly")
    assert (options["greeting"], options["greet-loudly"]) == ("hi", 1)
    usage = str(options)
    assert "--greeting=" in usage and "What the greeter says." in usage
    assert "--greet-loudly" in usage
    environ = {"OCPPCABLE_GREETING": "hey", "ANYCABLE_GREET_LOUDLY": "true"}
    options = _options(environ=environ)
    assert (options["greeting"], options["greet-loudly"]) == ("hey", 1)
    # the command line wins over the environment
    assert _options("--greeting=yo", environ=environ)["greeting"] == "yo"


def test_plugin_options_do_not_leak_into_other_option_parsers():
    from ocppcable.options import Options

    _options("--greeting=hi")
    plain = Options(environ={}, plugins=installed())
    with pytest.raises(UsageError):
        plain.parseOptions(["--greeting=hi"])


def test_hooks_are_built_in_the_order_given(reactor):
    from ocppcable.service import makeService

    second = StationHooks("second", lambda config, wiring: Greeter("2", False))
    options = _options("--hooks=second,greeter", plugins=_registry(GREETER, second))
    gateway = makeService(options, reactor)
    assert [hook.greeting for hook in gateway.stations.hooks.hooks] == ["2", "hello"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hooks=nope"], "--hooks: unknown: nope; installed: greeter"),
        (["--hooks=greeter,greeter"], "--hooks: a hook is named twice"),
        (["--broadcast-adapter=kafka"], "--broadcast-adapter: unknown: kafka; installed: http"),
        (["--pubsub=kafka"], "--pubsub: unknown: kafka; installed: redis"),
        (["--rpc-host=kafka:app"], "--rpc-host: no RPC transport for the scheme 'kafka'"),
        (["--rpc-host=python:app"], "--rpc-host: expected python:package.module:ChannelClass"),
    ],
)
def test_an_unknown_plugin_is_a_usage_error_naming_the_option(args, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        _options(*args)


def test_pubsub_defaults_to_redis_with_a_redis_adapter_only():
    assert _options()["pubsub"] == "none"
    assert _options("--broadcast-adapter=http,redisx")["pubsub"] == "redis"
    assert _options("--broadcast-adapter=redis", "--pubsub=none")["pubsub"] == "none"


def test_an_rpc_transport_plugin_serves_its_scheme(reactor):
    from zope.interface import implementer

    from ocppcable.plugin import IRPCClient, RPCTransport
    from ocppcable.service import makeService

    @implementer(IRPCClient)
    class Echo:
        target = "echo"

        def __init__(self, address):
            self.address = address

    def check(target):
        if target == "echo:":
            raise ValueError("echo: needs an address")

    echo = RPCTransport(
        "echo", lambda config, wiring: Echo(config["rpc-host"]), schemes=("echo",), checker=check
    )
    options = _options("--rpc-host=echo:somewhere", plugins=_registry(echo))
    assert makeService(options, reactor).client.address == "echo:somewhere"
    with pytest.raises(UsageError, match="--rpc-host: echo: needs an address"):
        _options("--rpc-host=echo:", plugins=_registry(echo))


def test_a_dropin_of_another_distribution_is_found(tmp_path):
    """A directory on sys.path with ocppcable/plugins/<name>.py (and no __init__.py) adds a
    plugin, as an installed distribution does."""
    dropins = tmp_path / "ocppcable" / "plugins"
    dropins.mkdir(parents=True)
    (dropins / "third_party.py").write_text(
        textwrap.dedent(
            """
            from ocppcable.plugin import StationHook, StationHooks

            hook = StationHooks(
                "third-party",
                lambda config, wiring: StationHook(),
                optParameters=[["third-party-level", None, "3", "How third."]],
            )
            """
        )
    )
    script = (
        "from ocppcable.registry import installed; from ocppcable.options import Options; "
        "o = Options(environ={}); o.parseOptions(['--hooks=third-party']); "
        "print(installed().names('hooks'), o['third-party-level'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
        check=True,
    )
    assert out.stdout.strip() == "['third-party'] 3"


def test_a_second_plugin_of_the_same_name_is_ignored_and_logged():
    from twisted.logger import globalLogPublisher

    events: list = []
    globalLogPublisher.addObserver(events.append)
    try:
        other = StationHooks("greeter", lambda config, wiring: StationHook())
        registry = Registry.of([GREETER, other])
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert registry.hooks == (GREETER,)
    assert any("ignoring the plugin" in event.get("log_format", "") for event in events)


def test_the_public_face_exports_what_it_lists():
    import ocppcable.plugin

    assert all(hasattr(ocppcable.plugin, name) for name in ocppcable.plugin.__all__)
    assert "ICluster" in ocppcable.plugin.__all__ and "IStationHook" in ocppcable.plugin.__all__


def test_a_factory_that_cannot_use_the_configuration_stops_the_start_with_one_line(reactor):
    from ocppcable.service import makeService

    def picky(config, wiring):
        raise ValueError("needs --greeting to be polite")

    options = _options("--hooks=picky", plugins=_registry(StationHooks("picky", picky)))
    with pytest.raises(SystemExit) as stopped:
        makeService(options, reactor)
    assert stopped.value.code == "--hooks picky: needs --greeting to be polite"


def test_twistd_stops_with_one_line_when_a_plugin_cannot_be_built(tmp_path):
    dropins = tmp_path / "ocppcable" / "plugins"
    dropins.mkdir(parents=True)
    (dropins / "picky.py").write_text(
        textwrap.dedent(
            """
            from ocppcable.plugin import StationHooks

            def _picky(config, wiring):
                raise ValueError("needs a journal directory")

            picky = StationHooks("picky", _picky)
            """
        )
    )
    twistd = [*TWISTD, "-n", "--pidfile=", "ocppcable"]
    out = subprocess.run(
        [*twistd, "--rpc-host=demo", "--hooks=picky", "--port=0", "--http-broadcast-port=0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
    )
    assert out.returncode == 1
    assert (out.stdout + out.stderr).strip().splitlines()[-1] == (
        "--hooks picky: needs a journal directory"
    )
    assert "Traceback" not in out.stdout + out.stderr

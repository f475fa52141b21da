"""The ``reuseport:`` endpoint type and the per-instance metrics listener (issue 16 item 1)."""

from __future__ import annotations

import socket

import pytest
import pytest_twisted
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol
from twisted.python import usage

from tests.support import PKI, aio, free_port, http_client, raw_socket


def _parse(description: str):
    from ocppcable.reuseport import ReusePortEndpoint

    endpoint = serverFromString(None, description)
    assert isinstance(endpoint, ReusePortEndpoint)
    return endpoint


def test_parser_takes_the_options_of_tcp():
    endpoint = _parse("reuseport:8080:interface=127.0.0.1:backlog=7")
    assert (endpoint.port, endpoint.interface, endpoint.backlog) == (8080, "127.0.0.1", 7)
    assert endpoint.tls is None
    default = _parse("reuseport:8080")
    assert (default.interface, default.backlog) == ("", 50)
    positional = _parse("reuseport:8080:127.0.0.1")
    assert positional.interface == "127.0.0.1"
    assert _parse("reuseport:port=8080:interface=\\:\\:1").interface == "::1"


def test_parser_takes_the_tls_options_of_ssl_and_mtls(tmp_path):
    pki = PKI(tmp_path)
    tls = _parse(f"reuseport:8443:privateKey={pki.server_key}:certKey={pki.server_cert}").tls
    assert tls is not None and not tls.verify
    mtls = _parse(
        f"reuseport:8443:privateKey={pki.server_key}:certKey={pki.server_cert}:caCerts={pki.ca}"
    ).tls
    assert mtls.verify and mtls.requireCertificate


@pytest.mark.parametrize(
    ("description", "message"),
    [
        ("reuseport:http", "port must be 0-65535"),
        ("reuseport:70000", "port must be 0-65535"),
        ("reuseport:8080:backlog=0", "backlog must be an integer > 0"),
        ("reuseport:8080:caCerts=ca.pem", "need privateKey"),
        ("reuseport:8080:privateKey=/nonexistent/key.pem", "No such file"),
    ],
)
def test_a_bad_reuseport_endpoint_names_the_option(description, message):
    from ocppcable.options import Options

    options = Options(environ={})
    with pytest.raises(usage.UsageError) as raised:
        options.parseOptions([f"--listen={description}"])
    assert str(raised.value).startswith("--listen: ")
    assert message in str(raised.value)


@pytest_twisted.ensureDeferred
async def test_two_listeners_share_a_port_that_tcp_cannot_take(reactor):
    port = free_port()
    endpoint = serverFromString(reactor, f"reuseport:{port}:interface=127.0.0.1")
    factory = Factory.forProtocol(Protocol)
    first = await endpoint.listen(factory)
    second = await endpoint.listen(factory)
    try:
        assert first.getHost().port == second.getHost().port == port
        with pytest.raises(CannotListenError):
            await serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1").listen(factory)
        # a socket without SO_REUSEPORT cannot join either: the port is not open to everyone
        with socket.socket() as intruder, pytest.raises(OSError):
            intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            intruder.bind(("127.0.0.1", port))
    finally:
        await first.stopListening()
        await second.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_port_taken_without_reuseport_fails_the_listen(reactor):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        endpoint = serverFromString(reactor, f"reuseport:{port}:interface=127.0.0.1")
        with pytest.raises(CannotListenError, match="Address already in use"):
            await endpoint.listen(Factory.forProtocol(Protocol))


@pytest_twisted.ensureDeferred
async def test_metrics_listen_serves_metrics_and_health_off_the_main_port(start_gateway, reactor):
    metrics_port = free_port()
    port = free_port()
    gateway = await start_gateway(
        f"--listen=reuseport:{port}:interface=127.0.0.1",
        "--rpc-host=demo",
        f"--metrics-listen=tcp:{metrics_port}:interface=127.0.0.1",
    )
    assert gateway.service.metrics_listener.option == "--metrics-listen"
    ws = await aio(raw_socket(gateway.url("CP-METRICS")))
    client = http_client(reactor)
    response = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert response.code == 200
    assert b"ocppcable_stations_connected 1.0" in await response.content()
    response = await client.get(f"http://127.0.0.1:{metrics_port}/health")
    assert (response.code, await response.content()) == (200, b"ok\n")
    # the shared main port would answer from a random instance: the metrics are not there
    response = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert response.code == 404
    await response.content()
    await aio(ws.close())


def test_metrics_listen_needs_the_metrics_on():
    from ocppcable.options import Options

    with pytest.raises(usage.UsageError, match="^--metrics-listen: "):
        Options(environ={}).parseOptions(["--metrics-listen=tcp:9101", "--metrics-path="])
    with pytest.raises(usage.UsageError, match="^--metrics-listen: one endpoint string"):
        Options(environ={}).parseOptions(["--metrics-listen=tcp:9101,tcp:9102"])
    options = Options(environ={"ANYCABLE_METRICS_LISTEN": ""})
    options.parseOptions([])
    assert options["metrics-listen"] is None


def test_a_shared_main_port_shares_the_broadcaster_port():
    from ocppcable.options import Options
    from ocppcable.service import makeService

    options = Options(environ={})
    options.parseOptions(
        ["--listen=reuseport:0:interface=127.0.0.1", "--rpc-host=demo", "--http-broadcast-port=0"]
    )
    (broadcaster,) = makeService(options).broadcasters
    assert " on reuseport:0:" in broadcaster.description


def test_the_template_unit_gives_each_instance_its_metrics_port():
    import shlex
    from pathlib import Path

    from ocppcable.options import Options

    unit = (Path(__file__).parent.parent / "etc" / "ocppcable@.service").read_text()
    (line,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    args = shlex.split(line.removeprefix("ExecStart="))
    # what systemd makes of it for ocppcable@9101 with the unit's own Environment=
    instance = [
        arg.replace("%i", "9101").replace("${METRICS_INTERFACE}", "127.0.0.1")
        for arg in args[args.index("ocppcable") + 1 :]
    ]
    assert "Environment=METRICS_INTERFACE=127.0.0.1" in unit
    options = Options(environ={"ANYCABLE_LISTEN": "reuseport:8080:interface=0.0.0.0"})
    options.parseOptions(instance)
    assert options["metrics-listen"] == "tcp:9101:interface=127.0.0.1"
    assert options["listen"] == ["reuseport:8080:interface=0.0.0.0"]
    # SO_REUSEPORT shares a port between sockets of one user only: one user for all instances
    assert "DynamicUser=yes" in unit and "\nUser=ocppcable\n" in unit

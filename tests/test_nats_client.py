"""The NATS client: publish and subscribe through a real nats-server, reconnect with backoff,
log each change of state once; and the protocol's bounds, driven without sockets."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ocppcable.nats.client import NatsClient, NatsProtocol, NatsUnavailable
from ocppcable.nats.servers import NatsURL, parse_servers
from tests.support import PKI, NatsServer, free_port, wait_for


def _client(reactor, *urls):
    return NatsClient(reactor, parse_servers(",".join(urls)))


@pytest.fixture
def stop(reactor):
    """``stop(service)`` registers a started service to be stopped after the test."""
    started = []
    yield started.append
    for service in started:
        if service.running:
            pytest_twisted.blockon(service.stopService() or _done())


def _done():
    from twisted.internet.defer import succeed

    return succeed(None)


@pytest_twisted.ensureDeferred
async def test_a_publication_comes_back_to_every_subscriber(nats_server, reactor, stop):
    client = _client(reactor, nats_server.url)
    got = []
    client.subscribe("ocppcable.test.echo", got.append)
    client.startService()
    stop(client)
    await wait_for(lambda: client.connected, reactor)
    await client.publish("ocppcable.test.echo", '{"a":1}')
    nats_server.publish("ocppcable.test.echo", "from outside")
    await wait_for(lambda: len(got) == 2, reactor)
    assert sorted(got) == [b"from outside", b'{"a":1}']
    # a subscription made while connected is sent at once
    later = []
    client.subscribe("ocppcable.test.later", later.append)
    await client.publish("ocppcable.test.later", b"x")
    await wait_for(lambda: later == [b"x"], reactor)


@pytest_twisted.ensureDeferred
async def test_a_restarted_server_is_reconnected_and_deliveries_resume(reactor, stop, warnings):
    server = NatsServer()
    server.start()
    try:
        client = _client(reactor, server.url)
        got = []
        client.subscribe("ocppcable.test.restart", got.append)
        client.startService()
        stop(client)
        await wait_for(lambda: client.connected, reactor)
        server.stop()
        await wait_for(lambda: not client.connected, reactor)
        with pytest.raises(NatsUnavailable):
            await client.publish("ocppcable.test.restart", b"lost")  # at once, not queued
        server.start()
        await wait_for(lambda: client.connected, reactor)
        server.publish("ocppcable.test.restart", "again")
        await wait_for(lambda: got == [b"again"], reactor)
    finally:
        server.stop()
    lost = [w for w in warnings if "is unavailable" in w]
    assert lost and lost[0].startswith(f"NATS nats://127.0.0.1:{server.port} is unavailable: ")
    assert len(lost) <= 2  # lost, then refused while it restarts: one line per cause


@pytest_twisted.ensureDeferred
async def test_refused_credentials_are_logged_without_the_password(reactor, stop, warnings):
    server = NatsServer(user="gw", password="s3cret")
    server.start()
    try:
        client = _client(reactor, server.url.replace("s3cret", "wrong"))
        client.startService()
        stop(client)
        await wait_for(lambda: any("Authorization Violation" in w for w in warnings), reactor)
        assert not client.connected
        assert all("wrong" not in w for w in warnings)
        good = _client(reactor, server.url)
        good.startService()
        stop(good)
        await wait_for(lambda: good.connected, reactor)
    finally:
        server.stop()


@pytest_twisted.ensureDeferred
async def test_the_next_server_is_tried_when_one_is_down(nats_server, reactor, stop):
    client = _client(reactor, f"nats://127.0.0.1:{free_port()}", nats_server.url)
    client.startService()
    stop(client)
    await wait_for(lambda: client.connected, reactor)
    assert client.protocol.server.port == nats_server.port


@pytest_twisted.ensureDeferred
async def test_a_message_over_max_payload_is_refused_before_sending(nats_server, reactor, stop):
    client = _client(reactor, nats_server.url)
    client.startService()
    stop(client)
    await wait_for(lambda: client.connected, reactor)
    with pytest.raises(ValueError, match="max_payload"):
        await client.publish("ocppcable.test.big", b"x" * (client.protocol.max_payload + 1))
    assert client.connected


@pytest_twisted.ensureDeferred
async def test_a_receiver_that_raises_is_logged_and_the_next_message_delivered(
    nats_server, reactor, stop, fail_on_logged_errors
):
    client = _client(reactor, nats_server.url)
    got = []

    def receiver(payload):
        if payload == b"boom":
            raise RuntimeError("boom")
        got.append(payload)

    client.subscribe("ocppcable.test.raise", receiver)
    client.startService()
    stop(client)
    await wait_for(lambda: client.connected, reactor)
    await client.publish("ocppcable.test.raise", b"boom")
    await client.publish("ocppcable.test.raise", b"fine")
    await wait_for(lambda: got == [b"fine"], reactor)
    assert len(fail_on_logged_errors) == 1
    fail_on_logged_errors.clear()


@pytest_twisted.ensureDeferred
async def test_tls_to_a_server_with_a_trusted_certificate(reactor, stop, tmp_path, monkeypatch):
    pki = PKI(tmp_path)  # a certificate for localhost
    monkeypatch.setenv(
        "SSL_CERT_FILE", str(pki.ca)
    )  # the system's trust store, as OpenSSL reads it
    server = NatsServer(tls=(pki.server_cert, pki.server_key))
    server.start()
    try:
        # tls:// insists on TLS; nats:// takes it when the server requires it
        for url in (f"tls://localhost:{server.port}", f"nats://localhost:{server.port}"):
            client = _client(reactor, url)
            got: list[bytes] = []
            client.subscribe("ocppcable.test.tls", got.append)
            client.startService()
            stop(client)
            await wait_for(lambda c=client: c.connected, reactor)
            await client.publish("ocppcable.test.tls", b"secret")
            await wait_for(lambda g=got: g == [b"secret"], reactor)
            await client.stopService()
    finally:
        server.stop()


@pytest_twisted.ensureDeferred
async def test_an_untrusted_certificate_is_the_cause_logged(reactor, stop, tmp_path, warnings):
    pki = PKI(tmp_path)  # a CA nobody trusts
    server = NatsServer(tls=(pki.server_cert, pki.server_key))
    server.start()
    try:
        client = _client(reactor, f"tls://localhost:{server.port}")
        client.startService()
        stop(client)
        await wait_for(lambda: any("certificate verify failed" in w for w in warnings), reactor)
        assert not client.connected
        [warning] = [w for w in warnings if "is unavailable" in w]
        assert warning.startswith(f"NATS tls://localhost:{server.port} is unavailable: ")
    finally:
        server.stop()


# --- the protocol, without sockets ----------------------------------------------------------------


class _Client:
    """What a NatsProtocol reports to."""

    def __init__(self):
        self.reactor = Clock()
        self.messages, self.ready_calls, self.lost_causes = [], [], []

    def subjects(self):
        return [("1", "__anycable__")]

    def ready(self, protocol):
        self.ready_calls.append(protocol)

    def lost(self, protocol, cause):
        self.lost_causes.append(cause)

    def received(self, sid, payload):
        self.messages.append((sid, payload))


def _connected(server="nats://u:p@127.0.0.1:4222"):
    client = _Client()
    protocol = NatsProtocol(client, NatsURL.parse(server))
    transport = StringTransport()
    protocol.makeConnection(transport)
    return client, protocol, transport


def _lose(protocol, transport):
    assert transport.disconnecting or transport.disconnected
    protocol.connectionLost()


def test_connect_and_subscriptions_follow_info_and_the_pong_makes_it_ready():
    client, protocol, transport = _connected()
    protocol.dataReceived(b'INFO {"max_payload":64}\r\n')
    sent = transport.value()
    assert sent.startswith(b"CONNECT ") and b'"user":"u"' in sent and b'"pass":"p"' in sent
    assert sent.endswith(b"SUB __anycable__ 1\r\nPING\r\n")
    assert client.ready_calls == []
    protocol.dataReceived(b"PONG\r\nPING\r\nMSG __anycable__ 1 2\r\nhi\r\n")
    assert client.ready_calls == [protocol]
    assert transport.value().endswith(b"PONG\r\n")
    assert client.messages == [("1", b"hi")]
    assert protocol.max_payload == 64


def test_no_answer_to_connect_drops_the_connection():
    client, protocol, transport = _connected()
    client.reactor.advance(5)
    _lose(protocol, transport)
    assert client.lost_causes == ["no answer to CONNECT within 5s"]


def test_a_server_that_stops_answering_pings_is_given_up():
    client, protocol, transport = _connected()
    protocol.dataReceived(b"INFO {}\r\nPONG\r\n")
    protocol.keepalive()
    protocol.dataReceived(b"PONG\r\n")  # answered: counted down again
    protocol.keepalive()
    protocol.keepalive()
    assert not transport.disconnecting
    protocol.keepalive()
    _lose(protocol, transport)
    assert client.lost_causes == ["no answer to 2 PINGs"]


def test_a_protocol_violation_drops_the_connection_and_names_it():
    client, protocol, transport = _connected()
    protocol.dataReceived(b"INFO {}\r\nPONG\r\nMSG s 1 99999999\r\nPING\r\n")
    _lose(protocol, transport)
    assert client.lost_causes[0].startswith("protocol violation: a message of 99999999 bytes")
    assert not transport.value().endswith(b"PONG\r\n")  # nothing after the violation handled


def test_a_fatal_err_is_the_cause_and_a_permissions_err_only_a_warning(warnings):
    client, protocol, transport = _connected()
    protocol.dataReceived(b"INFO {}\r\nPONG\r\n-ERR 'Permissions Violation for Publish to x'\r\n")
    assert warnings == [
        "NATS nats://127.0.0.1:4222 refused: Permissions Violation for Publish to x"
    ]
    protocol.dataReceived(b"-ERR 'Stale Connection'\r\n")
    protocol.connectionLost()
    assert client.lost_causes == ["-ERR Stale Connection"]


def test_a_full_send_buffer_refuses_publications_at_once(reactor):
    client = NatsClient(reactor, parse_servers("nats://127.0.0.1:4222"))
    protocol = NatsProtocol(client, client.servers[0])
    protocol.makeConnection(StringTransport())
    client.protocol = protocol
    protocol.pauseProducing()
    failure = []
    client.publish("s", b"x").addErrback(failure.append)
    assert failure[0].check(NatsUnavailable)
    protocol.resumeProducing()
    assert client.publish("s", b"x").called


@pytest.mark.parametrize(
    "url, where, options",
    [
        ("nats://h", "nats://h:4222", {}),
        ("nats://tok@h:5", "nats://h:5", {"auth_token": "tok"}),
        ("nats://u:p%40ss@[::1]:6", "nats://[::1]:6", {"user": "u", "pass": "p@ss"}),
        ("tls://tok@h", "tls://h:4222", {"auth_token": "tok"}),
    ],
)
def test_server_urls(url, where, options):
    parsed = NatsURL.parse(url)
    assert parsed.where == where
    assert {k: v for k, v in parsed.connect_options().items() if k in options} == options


@pytest.mark.parametrize("value", ["redis://h", "nats://", "nats://h:port", " , "])
def test_bad_server_lists(value):
    with pytest.raises(ValueError):
        parse_servers(value)


def test_option_checks():
    from ocppcable.nats.servers import servers_option, subject_option

    assert servers_option("nats://a,nats://b:1") == "nats://a,nats://b:1"
    assert subject_option("__anycable__") == "__anycable__"
    for bad in ("a b", "a.*", ""):
        with pytest.raises(ValueError, match="not a NATS subject"):
            subject_option(bad)
    with pytest.raises(ValueError, match="not a nats:// or tls:// URL"):
        servers_option("redis://h")

"""AnyCable RPC over HTTP: a station through the gateway to a real HTTP RPC backend, the JSON
codec and failure handling (the circuit breaker alone: tests/test_breaker.py)."""

from __future__ import annotations

import json
import time

import pytest
import pytest_twisted
from ocpp.exceptions import InternalError
from ocpp.v16 import call
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionClosed
from twisted.web.server import Site
from zope.interface.verify import verifyObject

from ocppcable import cable, keys
from ocppcable.metrics import NoMetrics
from ocppcable.options import Options
from ocppcable.protos.rpc_pb2 import ERROR, SUCCESS
from ocppcable.rpc.breaker import State
from ocppcable.rpc.http_client import HTTPRPCClient, decode_response
from ocppcable.rpc.interface import IRPCClient, RPCUnavailable
from ocppcable.rpc.json_codec import encode_request
from ocppcable.service import make_rpc
from tests.support import (
    CHARGING_ACTIONS,
    PKI,
    TIMEOUT,
    Backend,
    HTTPBackend,
    aio,
    charging_session,
    free_port,
    http_client,
    open_station,
    wait_for,
)

SECRET = "s3cret"
RPC_KEY = keys.derive(SECRET, keys.RPC_PHRASE)
BROADCAST_KEY = keys.derive(SECRET, keys.BROADCAST_PHRASE)
BOOT = call.BootNotification(charge_point_model="M1", charge_point_vendor="V")


@pytest.fixture
def http_backend(reactor):
    server = HTTPBackend(Backend(), key=RPC_KEY)
    pytest_twisted.blockon(ensureDeferred(server.start(reactor)))
    yield server
    pytest_twisted.blockon(ensureDeferred(server.stop()))


async def _gateway(start_gateway, rpc_host, *args):
    # the HTTP broadcaster, on the main port (--secret derives its key): no Redis, no fixed port
    return await start_gateway(
        f"--rpc-host={rpc_host}", f"--secret={SECRET}", "--broadcast-adapter=http", *args
    )


async def _boot_fails(gateway, station_id="CP-1"):
    """Boot a station whose backend fails; returns the CALLERROR and how long it took."""
    conn = await aio(open_station(gateway.url(station_id), station_id))
    started = time.monotonic()
    try:
        with pytest.raises(InternalError) as info:
            await aio(conn.station.call(BOOT, suppress=False))
        return info.value, time.monotonic() - started
    finally:
        await aio(conn.close())


# --- end to end -----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_charging_session_over_http_rpc(start_gateway, http_backend, reactor):
    backend = http_backend.app
    gateway = await _gateway(start_gateway, http_backend.url)
    conn = await aio(open_station(gateway.url("CP-1"), "CP-1"))
    cp = conn.station

    await aio(charging_session(cp))

    assert [c.method for c in backend.calls][:2] == ["connect", "subscribe"]
    actions = [c.action for c in backend.recorded("message")]
    assert actions == CHARGING_ACTIONS

    # every request: JSON, the derived bearer key, the session's meta headers
    sids = set()
    for seen in http_backend.seen:
        assert seen.headers["content-type"] == "application/json"
        assert seen.headers["authorization"] == f"Bearer {RPC_KEY}"
        assert seen.headers["x-anycable-meta-protov"] == "v1"
        sids.add(seen.headers["x-anycable-meta-sid"])
    assert len(sids) == 1 and all(sids)
    assert backend.calls[0].meta == {"sid": sids.pop(), "protov": "v1"}

    # bodies: snake_case proto field names, zero values omitted
    connect = http_backend.requests("connect")[0].body
    assert set(connect) == {"env"}
    assert connect["env"]["url"] == f"http://127.0.0.1:{gateway.port}/ocpp/CP-1"
    subscribe, boot_message = (seen.body for seen in http_backend.requests("command")[:2])
    assert subscribe["command"] == "subscribe" and "data" not in subscribe
    assert subscribe["connection_identifiers"] == '{"station_id":"CP-1"}'
    assert boot_message["command"] == "message"
    assert json.loads(boot_message["data"])["action"] == "boot_notification"

    # a remote command through the HTTP broadcaster on the main port
    publication = {
        "stream": "ocpp:ev/SN-1",
        "data": json.dumps(
            {"command": "TriggerMessage", "id": "trig-1", "payload": {"requestedMessage": "Heartbeat"}}
        ),
    }  # fmt: skip
    response = (
        await http_client(reactor)
        .post(
            f"http://127.0.0.1:{gateway.port}/_broadcast",
            data=json.dumps(publication).encode(),
            headers={"Authorization": f"Bearer {BROADCAST_KEY}"},
        )
        .addTimeout(TIMEOUT, reactor)
    )
    assert response.code == 201
    command = await aio(cp.commands.get())
    assert command == ("TriggerMessage", {"requestedMessage": "Heartbeat"})
    acks = await wait_for(lambda: backend.recorded("message", "ack"), reactor)
    assert acks[0].data["payload"] == {"status": "Accepted"}

    await aio(conn.close())
    disconnects = await wait_for(lambda: http_backend.requests("disconnect"), reactor)
    body = disconnects[0].body
    assert json.loads(body["identifiers"]) == {"station_id": "CP-1"}
    assert body["subscriptions"] == [subscribe["identifier"]]
    assert json.loads(body["env"]["istate"][subscribe["identifier"]]) == {"station_id": "CP-1"}


@pytest_twisted.ensureDeferred
async def test_backend_error_status_is_internal_error_without_retry(
    start_gateway, http_backend, fail_on_logged_errors
):
    http_backend.status = 500
    gateway = await _gateway(start_gateway, http_backend.url)
    error, took = await _boot_fails(gateway)
    assert "status 500" in error.description
    assert took < 1.0
    assert [seen.method for seen in http_backend.seen] == ["connect"]  # not retried


@pytest_twisted.ensureDeferred
async def test_wrong_bearer_key_is_internal_error(start_gateway, http_backend):
    gateway = await _gateway(start_gateway, http_backend.url, "--http-rpc-secret=wrong")
    error, _ = await _boot_fails(gateway)
    assert "status 401" in error.description
    assert http_backend.seen[0].headers["authorization"] == "Bearer wrong"


@pytest_twisted.ensureDeferred
async def test_malformed_backend_response_is_internal_error(start_gateway, http_backend):
    http_backend.body = b"<html>not json</html>"
    gateway = await _gateway(start_gateway, http_backend.url)
    error, _ = await _boot_fails(gateway)
    assert "malformed backend response to connect" in error.description


@pytest_twisted.ensureDeferred
async def test_closed_backend_port_is_internal_error_within_rpc_timeout(start_gateway):
    closed = f"http://127.0.0.1:{free_port()}/_anycable"
    gateway = await _gateway(start_gateway, closed, "--rpc-timeout=1")
    _, took = await _boot_fails(gateway)
    assert took < 1.5


@pytest_twisted.ensureDeferred
async def test_refused_connections_are_retried_within_rpc_timeout(start_gateway):
    closed = f"http://127.0.0.1:{free_port()}/_anycable"
    gateway = await _gateway(start_gateway, closed, "--rpc-timeout=1")
    error, took = await _boot_fails(gateway)
    assert "unreachable" in error.description
    # attempts at 0, 0.1, 0.3 and 0.7 s; the next one (1.5 s) would be over budget
    assert 0.6 < took < 1.0


@pytest_twisted.ensureDeferred
async def test_a_request_the_backend_received_is_not_retried(start_gateway, http_backend):
    http_backend.drop = True  # reads the request, then drops the connection without an answer
    gateway = await _gateway(start_gateway, http_backend.url, "--rpc-timeout=1")
    error, took = await _boot_fails(gateway)
    assert "unreachable" in error.description
    assert len(http_backend.requests("connect")) == 1  # it may have run: never twice
    assert took < 0.5


@pytest_twisted.ensureDeferred
async def test_an_untrusted_backend_certificate_fails_at_once(http_backend, reactor, tmp_path):
    pki = PKI(tmp_path)  # a CA the gateway does not trust
    site = Site(http_backend)
    handshakes = []
    build = site.buildProtocol
    site.buildProtocol = lambda addr: handshakes.append(addr) or build(addr)
    endpoint = serverFromString(
        reactor, f"ssl:0:privateKey={pki.server_key}:certKey={pki.server_cert}:interface=127.0.0.1"
    )
    port = await endpoint.listen(site)
    client = HTTPRPCClient(
        reactor, f"https://localhost:{port.getHost().port}/_anycable", RPC_KEY, 4, timeout=5
    )
    client.startService()
    try:
        started = time.monotonic()
        with pytest.raises(RPCUnavailable, match="certificate verify failed"):
            await client.connect("sid-1", cable.ConnectRequest()).addTimeout(TIMEOUT, reactor)
        assert time.monotonic() - started < 2  # not retried until the 5 s budget ends
    finally:
        await client.stopService()
        await port.stopListening()
    assert len(handshakes) == 1 and not http_backend.seen


@pytest_twisted.ensureDeferred
async def test_stalled_response_body_times_out_and_closes_the_connection(
    start_gateway, http_backend, reactor
):
    http_backend.stall = True  # headers, then nothing
    gateway = await _gateway(start_gateway, http_backend.url, "--rpc-timeout=0.5")
    _, took = await _boot_fails(gateway)
    assert took < 1.5
    with pytest.raises(ConnectionClosed):  # the gateway gave up on it: not left open
        await http_backend.stalled[0].addTimeout(1, reactor)


# --- the client on its own ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_no_authorization_header_when_the_key_is_none(http_backend, reactor):
    http_backend.key = None
    options = Options(environ={})
    options.parseOptions(
        [f"--rpc-host={http_backend.url}", f"--secret={SECRET}", "--http-rpc-secret=none"]
    )
    client = make_rpc(options, reactor, NoMetrics())
    assert isinstance(client, HTTPRPCClient) and client.target == http_backend.url
    client.startService()
    try:
        request = cable.ConnectRequest(cable.Env(url="http://gw/ocpp/CP-1"))
        response = await client.connect("sid-1", request).addTimeout(TIMEOUT, reactor)
    finally:
        await client.stopService()
    assert response.status == SUCCESS
    assert "authorization" not in http_backend.seen[0].headers


@pytest_twisted.ensureDeferred
async def test_backend_cookies_are_not_sent_back(http_backend, reactor):
    render = http_backend.render_POST

    def with_cookie(request):
        request.addCookie(b"_session", b"station-1", path=b"/")
        return render(request)

    http_backend.render_POST = with_cookie
    client = HTTPRPCClient(reactor, http_backend.url, RPC_KEY, concurrency=4, timeout=TIMEOUT)
    client.startService()
    try:
        for sid in ("sid-1", "sid-2"):
            await client.connect(sid, cable.ConnectRequest()).addTimeout(TIMEOUT, reactor)
    finally:
        await client.stopService()
    assert [seen.headers.get("cookie") for seen in http_backend.seen] == [None, None]


@pytest.mark.parametrize(
    ("args", "key"),
    [
        ([f"--secret={SECRET}"], RPC_KEY),
        ([f"--secret={SECRET}", "--http-rpc-secret=explicit"], "explicit"),
        (["--http-rpc-secret=explicit"], "explicit"),
        ([], None),
    ],
)
def test_rpc_key_from_options(args, key, reactor):
    options = Options(environ={})
    options.parseOptions(["--rpc-host=https://backend.example/_anycable", *args])
    client = make_rpc(options, reactor, NoMetrics())
    assert verifyObject(IRPCClient, client)
    assert client.key == key


def test_an_http_rpc_host_needs_a_host():
    from twisted.python.usage import UsageError

    with pytest.raises(UsageError, match="--rpc-host"):
        Options(environ={}).parseOptions(["--rpc-host=http:///_anycable"])


@pytest_twisted.ensureDeferred
async def test_circuit_opens_when_the_backend_stays_down(http_backend, reactor):
    http_backend.drop = True
    client = HTTPRPCClient(reactor, http_backend.url, RPC_KEY, concurrency=4, timeout=0.15)
    client.startService()
    try:
        calls = 0
        while client.breaker.state is not State.OPEN:
            calls += 1
            assert calls <= 10
            with pytest.raises(RPCUnavailable, match="unreachable"):
                await client.connect("sid", cable.ConnectRequest()).addTimeout(TIMEOUT, reactor)
        assert len(http_backend.seen) == 10
        started = time.monotonic()
        with pytest.raises(RPCUnavailable, match=r"backend unavailable \(circuit open\)"):
            await client.command("sid", cable.CommandRequest()).addTimeout(TIMEOUT, reactor)
        assert time.monotonic() - started < 0.05
        assert len(http_backend.seen) == 10  # refused without a request
    finally:
        await client.stopService()


# --- JSON codec -----------------------------------------------------------------------------------


def test_requests_use_snake_case_and_omit_zero_values():
    request = cable.CommandRequest(
        command="message",
        identifier="{}",
        connection_identifiers='{"station_id":"CP-1"}',
        env=cable.Env(url="http://gw/ocpp/CP-1", headers={"cookie": "a=b"}),
    )
    assert json.loads(encode_request(request)) == {
        "command": "message",
        "identifier": "{}",
        "connection_identifiers": '{"station_id":"CP-1"}',
        "env": {"url": "http://gw/ocpp/CP-1", "headers": {"cookie": "a=b"}},
    }


def test_responses_parse_integer_status_and_ignore_unknown_fields():
    body = b'{"status":1,"stop_streams":true,"streams":["s"],"error_msg":"","surprise":42}'
    response = decode_response("command", body, cable.CommandRequest)
    assert response.status == SUCCESS and response.stop_streams and list(response.streams) == ["s"]


def test_a_response_without_status_is_an_error():
    assert decode_response("command", b"{}", cable.CommandRequest).status == ERROR


@pytest.mark.parametrize("body", [b"", b"not json", b"[1]", b'"x"', b'{"streams":"s"}'])
def test_malformed_responses(body):
    with pytest.raises(RPCUnavailable, match="malformed backend response to command"):
        decode_response("command", body, cable.CommandRequest)


@pytest.mark.parametrize(
    "body",
    [
        b'{"status":"SUCCESS"}',  # AnyCable-Go wants the integer
        b'{"status":7}',
        b'{"status":1,"transmissions":[{"type":"welcome"}]}',
        b'{"status":1,"disconnect":"yes"}',
        b'{"status":1,"env":{"istate":{"a":1}}}',
        b'{"status":1,"env":[]}',
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff",
        b'{"status":1,"identifiers":"\\ud800"}',  # not Unicode: no station could be sent it
        b'{"status":1,"transmissions":["\\udfff"]}',
        b'{"status":1,"extra":NaN}',  # not JSON
    ],
)
def test_responses_of_the_wrong_shape_are_malformed(body):
    with pytest.raises(RPCUnavailable, match="malformed backend response to command"):
        decode_response("command", body, cable.CommandRequest)


def test_a_full_command_answer_and_null_fields():
    body = json.dumps(
        {
            "status": 2,
            "disconnect": True,
            "stop_streams": None,
            "streams": ["a"],
            "stopped_streams": ["b"],
            "transmissions": ["{}"],
            "error_msg": "no",
            "env": {"cstate": {"k": "v"}, "istate": None},
        }
    ).encode()
    assert decode_response("command", body, cable.CommandRequest) == cable.CommandReply(
        status=cable.Status.FAILURE,
        disconnect=True,
        streams=["a"],
        stopped_streams=["b"],
        transmissions=["{}"],
        error_msg="no",
        env=cable.ReplyEnv(cstate={"k": "v"}),
    )

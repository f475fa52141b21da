"""The HTTP broadcaster: publications POSTed by the backend reach stations over real sockets."""

from __future__ import annotations

import asyncio
import json

import pytest
import pytest_twisted
from ocpp.v16 import call
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater
from twisted.python.usage import UsageError
from zope.interface.verify import verifyObject

from ocppcable import keys
from ocppcable.broadcast.interface import IBroadcaster
from ocppcable.options import Options
from ocppcable.service import makeService
from tests.support import (
    TIMEOUT,
    aio,
    free_port,
    http_client,
    open_station,
    raw_socket,
    wait_for,
)

SECRET = "s3cret"
BROADCAST_KEY = keys.derive(SECRET, keys.BROADCAST_PHRASE)


def _publication(command, payload, stream="ocpp:ev/CP-1", id=None):
    data = {"command": command, "payload": payload}
    if id is not None:
        data["id"] = id
    return {"stream": stream, "data": json.dumps(data)}


TRIGGER = _publication("TriggerMessage", {"requestedMessage": "Heartbeat"}, id="trig-1")
RESET = _publication("Reset", {"type": "Soft"})


async def _booted_station(gateway):
    conn = await aio(open_station(gateway.url("CP-1"), "CP-1"))
    await aio(conn.station.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V")))  # fmt: skip
    return conn


def _post(reactor, url, body, key=BROADCAST_KEY, method="POST"):
    """The response status, within TIMEOUT."""
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def post():
        response = await http_client(reactor).request(method, url, data=data, headers=headers)
        await response.content()
        return response.code

    return ensureDeferred(post()).addTimeout(TIMEOUT, reactor)


@pytest.fixture
def keyed_gateway(start_gateway):
    """``await keyed_gateway(*args)``: a gateway with the broadcaster on its main port."""

    async def start(*args):
        return await start_gateway(
            "--rpc-host=demo", f"--secret={SECRET}", "--broadcast-adapter=http", *args
        )

    return start


async def _trigger_reaches_the_station(gateway, reactor):
    """A TriggerMessage POSTed to ``gateway`` reaches a station booted there."""
    conn = await _booted_station(gateway)
    try:
        url = f"http://127.0.0.1:{gateway.port}/_broadcast"
        assert await _post(reactor, url, TRIGGER) == 201
        command = await aio(conn.station.commands.get())
        assert command == ("TriggerMessage", {"requestedMessage": "Heartbeat"})
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_a_publication_reaches_the_station(keyed_gateway, reactor):
    await _trigger_reaches_the_station(await keyed_gateway(), reactor)


@pytest_twisted.ensureDeferred
async def test_a_batch_reaches_the_station_in_order(keyed_gateway, reactor):
    gateway = await keyed_gateway()
    conn = await _booted_station(gateway)
    try:
        url = f"http://127.0.0.1:{gateway.port}/_broadcast"
        assert await _post(reactor, url, [TRIGGER, RESET]) == 201
        first = await aio(conn.station.commands.get())
        second = await aio(conn.station.commands.get())
        assert [first[0], second] == ["TriggerMessage", ("Reset", {"type": "Soft"})]
    finally:
        await aio(conn.close())


@pytest.mark.parametrize("key", [None, "wrong", BROADCAST_KEY.upper()])
@pytest_twisted.ensureDeferred
async def test_missing_or_wrong_bearer_is_401(keyed_gateway, reactor, key):
    gateway = await keyed_gateway()
    url = f"http://127.0.0.1:{gateway.port}/_broadcast"
    assert await _post(reactor, url, TRIGGER, key=key) == 401


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS"])
@pytest_twisted.ensureDeferred
async def test_other_methods_are_405_allowing_post(keyed_gateway, reactor, method):
    """Issue 13 item 4: 405 with ``Allow: POST`` (AnyCable-Go answers 422), refused from the
    request head, with the key or without."""
    gateway = await keyed_gateway()
    url = f"http://127.0.0.1:{gateway.port}/_broadcast"
    for key in (BROADCAST_KEY, None):
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        response = await http_client(reactor).request(method, url, data=b"", headers=headers)
        await response.content()
        assert response.code == 405
        assert response.headers.getRawHeaders(b"allow") == [b"POST"]


def test_other_methods_are_405_allowing_post_on_any_site():
    """Rendered on a site that does not refuse from the request head, too."""
    from twisted.web.test.requesthelper import DummyRequest

    from ocppcable.broadcast.http import BroadcastResource

    resource = BroadcastResource(lambda body, source: None, None)
    request = DummyRequest([b""])
    request.method = b"GET"
    assert resource.render(request) == b"POST a publication\n"
    assert request.responseCode == 405
    assert request.responseHeaders.getRawHeaders(b"allow") == [b"POST"]


@pytest_twisted.ensureDeferred
async def test_a_remote_disconnect_with_an_empty_identifier_is_422_and_closes_nobody(
    keyed_gateway, reactor
):
    """A station whose Connect has not succeeded yet has no identifiers (""): a remote
    disconnect for "" is malformed, and the station stays connected."""
    gateway = await keyed_gateway()
    ws = await aio(raw_socket(gateway.url("CP-SILENT")))  # no CALL yet: no Connect
    url = f"http://127.0.0.1:{gateway.port}/_broadcast"
    for identifier in ("", None):
        body = {"command": "disconnect", "payload": {"identifier": identifier}}
        assert await _post(reactor, url, body) == 422
    boot = [2, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
    await aio(ws.send(json.dumps(boot)))
    reply = json.loads(await aio(asyncio.wait_for(ws.recv(), TIMEOUT)))
    assert reply[:2] == [3, "1"] and reply[2]["status"] == "Accepted"
    await aio(ws.close())


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b'{"stream":"ocpp:ev/CP-1"}', b'{"hello":"world"}', b"[1]"]
)
@pytest_twisted.ensureDeferred
async def test_malformed_bodies_are_422(keyed_gateway, reactor, body):
    gateway = await keyed_gateway()
    url = f"http://127.0.0.1:{gateway.port}/_broadcast"
    assert await _post(reactor, url, body) == 422


@pytest_twisted.ensureDeferred
async def test_an_explicit_key_and_path(keyed_gateway, reactor):
    gateway = await keyed_gateway("--broadcast-key=explicit", "--http-broadcast-path=/pub/events/")
    url = f"http://127.0.0.1:{gateway.port}/pub/events"
    assert await _post(reactor, url, TRIGGER, key="explicit") == 201
    assert await _post(reactor, url, TRIGGER) == 401


@pytest_twisted.ensureDeferred
async def test_without_a_key_it_listens_on_its_own_port(start_gateway, reactor):
    gateway = await start_gateway(
        "--rpc-host=demo",
        "--broadcast-adapter=http",
        "--host=127.0.0.1",
        "--http-broadcast-port=0",
    )
    broadcaster = gateway.service.getServiceNamed("broadcast-http")
    assert broadcaster.key is None and "no auth" in broadcaster.description
    [listener] = broadcaster
    port = (await listener.when_listening()).getHost().port
    assert port != gateway.port
    main = f"http://127.0.0.1:{gateway.port}/_broadcast"
    assert await _post(reactor, main, TRIGGER, key=None) == 404

    conn = await _booted_station(gateway)
    try:
        url = f"http://127.0.0.1:{port}/_broadcast"
        assert await _post(reactor, url, TRIGGER, key=None) == 201
        command = await aio(conn.station.commands.get())
        assert command[0] == "TriggerMessage"
    finally:
        await aio(conn.close())


def _options(*args):
    options = Options(environ={})
    options.parseOptions(["--rpc-host=demo", *args])
    return options


def test_http_and_redis_together(reactor):
    options = _options("--broadcast-adapter=http,redis", f"--secret={SECRET}")
    gateway = makeService(options, reactor)
    assert [b.name for b in gateway.broadcasters] == ["broadcast-http", "broadcast-redis"]
    assert all(verifyObject(IBroadcaster, b) for b in gateway.broadcasters)
    assert gateway.broadcasters[0].description == (
        "HTTP POST /_broadcast on the main port (bearer key), "
        "relayed to every node through Redis (channel '__anycable__')"
    )


def test_none_disables_the_derived_key(reactor):
    options = _options("--broadcast-adapter=http", f"--secret={SECRET}", "--broadcast-key=none")
    [broadcaster] = makeService(options, reactor).broadcasters
    assert broadcaster.key is None
    assert broadcaster.description == "HTTP POST /_broadcast on tcp:8090:interface=localhost:backlog=1024 (no auth)"  # fmt: skip


def test_the_deprecated_anycable_variable_sets_the_key():
    options = Options(environ={"ANYCABLE_HTTP_BROADCAST_SECRET": "old"})
    options.parseOptions([])
    assert options["broadcast-key"] == "old"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--http-broadcast-path=/ocpp/broadcast"], "--http-broadcast-path"),
        (["--http-broadcast-path=/health"], "--http-broadcast-path"),
        (["--http-broadcast-path=_broadcast"], "--http-broadcast-path"),
        (["--http-broadcast-port=65536"], "65536"),
    ],
)
def test_invalid_broadcast_options(args, flag):
    with pytest.raises(UsageError, match=flag):
        _options("--broadcast-adapter=http", *args)


# --- in a cluster: relayed through Redis to every node (cluster/relay.py) -------------------------


#: the channel the relayed broadcasts travel on, by broadcast adapters
# the channel a relayed broadcast travels on, and how many subscribers it has once both nodes
# are ready: every node subscribes to a pub/sub channel, only the node holding the station to
# the stream's channel of redisx
RELAYED_ON = {
    "http,redis": ("__anycable_relay__", 2),
    "http,redisx": ("ocpp:ev/CP-1", 1),
    # no Redis adapter: the relay subscribes itself (--pubsub redis)
    "http": ("__ocppcable_broadcasts__", 2),
}


@pytest.mark.parametrize("adapters", ["http,redis", "http,redisx", "http"])
@pytest_twisted.ensureDeferred
async def test_a_broadcast_posted_to_one_node_reaches_a_station_on_another(
    start_gateway, redis_server, reactor, adapters
):
    args = (
        "--rpc-host=demo",
        f"--secret={SECRET}",
        f"--broadcast-adapter={adapters}",
        "--pubsub=redis",
        f"--redis-url={redis_server.url}",
        "--redis-channel=__anycable_relay__",
        "--redisx-stream=__anycable_relay_x__",
    )
    node_a = await start_gateway(*args)
    node_b = await start_gateway(*args)
    conn = await _booted_station(node_b)
    try:
        publisher = node_a.service.getServiceNamed("cluster-redis")
        channel, subscribers = RELAYED_ON[adapters]
        await wait_for(
            lambda: publisher.connected and redis_server.subscribers(channel) >= subscribers,
            reactor,
        )
        url = f"http://127.0.0.1:{node_a.port}/_broadcast"
        assert await _post(reactor, url, [TRIGGER, RESET]) == 201
        first = await aio(conn.station.commands.get())
        second = await aio(conn.station.commands.get())
        assert [first[0], second] == ["TriggerMessage", ("Reset", {"type": "Soft"})]
        # and once only, though node B also takes HTTP broadcasts and subscribes to Redis
        await deferLater(reactor, 0.3, lambda: None)
        assert conn.station.commands.empty()
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_without_redis_a_broadcast_reaches_this_nodes_stations(keyed_gateway, reactor):
    gateway = await keyed_gateway(
        "--broadcast-adapter=http,redis", f"--redis-url=redis://127.0.0.1:{free_port()}"
    )
    await _trigger_reaches_the_station(gateway, reactor)

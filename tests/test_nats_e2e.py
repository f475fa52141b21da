"""NATS end to end: the ``nats`` broadcast adapter and the ``nats`` cluster transport with a
real nats-server, real stations (the PyPI ``ocpp`` client) and a real gRPC backend; no Redis."""

from __future__ import annotations

import json
import signal
import time

import pytest_twisted
from ocpp.v16 import call
from twisted.internet.task import deferLater

from ocppcable import keys
from tests.support import (
    TIMEOUT,
    NatsServer,
    aio,
    free_port,
    http_client,
    open_station,
    raw_socket,
    twistd,
    wait_for,
)

SECRET = "s3cret"
BOOT = [2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]


def _trigger(serial, id):
    command = {"command": "TriggerMessage", "id": id, "payload": {"requestedMessage": "Heartbeat"}}
    return {"stream": f"ocpp:ev/{serial}", "data": json.dumps(command)}


async def _booted(gateway, station_id, serial):
    conn = await aio(open_station(gateway.url(station_id), station_id))
    boot = await aio(
        conn.station.call(
            call.BootNotification(
                charge_point_model="M", charge_point_vendor="V", meter_serial_number=serial
            )
        )
    )
    assert boot.status == "Accepted"
    return conn


def _nats(gateway):
    """The gateway's NATS connection (the nats adapter's, or the cluster transport's)."""
    return gateway.service.getServiceNamed("broadcast-nats").client


async def _post(reactor, gateway, body):
    key = keys.derive(SECRET, keys.BROADCAST_PHRASE)
    url = f"http://127.0.0.1:{gateway.port}/_broadcast"
    response = await http_client(reactor).request(
        "POST", url, data=json.dumps(body).encode(), headers={"Authorization": f"Bearer {key}"}
    )
    await response.content()
    return response.code


def _acked(backend, id):
    return [c for c in backend.recorded("message", "ack") if c.data.get("id") == id]


@pytest_twisted.ensureDeferred
async def test_a_publication_on_anycable_reaches_the_station_and_its_answer_the_backend(
    start_gateway, backend, nats_server, reactor
):
    gateway = await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}",
        "--broadcast-adapter=nats",
        f"--nats-servers={nats_server.url}",
    )
    await wait_for(lambda: _nats(gateway).connected, reactor)  # subscribed once connected
    conn = await _booted(gateway, "CP-N1", "SN-N1")
    try:
        nats_server.publish("__anycable__", _trigger("SN-N1", "trig-n1"))
        command = await aio(conn.station.commands.get())
        assert command == ("TriggerMessage", {"requestedMessage": "Heartbeat"})
        acks = await wait_for(lambda: _acked(backend, "trig-n1"), reactor)
        assert acks[0].data["payload"] == {"status": "Accepted"}
        assert b"ocppcable_nats_connected 1.0" in gateway.service.metrics.exposition()
    finally:
        await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_two_nodes_with_nats_and_no_redis_take_over_and_relay_broadcasts(
    start_gateway, backend, nats_server, reactor, warnings
):
    args = (
        f"--rpc-host=127.0.0.1:{backend.port}",
        f"--secret={SECRET}",
        "--pubsub=nats",
        "--broadcast-adapter=http,nats",
        f"--nats-servers={nats_server.url}",
        "--nats-channel=__anycable_nats_cluster__",
        f"--redis-url=redis://127.0.0.1:{free_port()}",  # nothing may try it
    )
    node_a = await start_gateway(*args)
    node_b = await start_gateway(*args)
    await wait_for(lambda: _nats(node_a).connected and _nats(node_b).connected, reactor)

    # takeover: the station reconnects to node B, its old connection on node A is replaced
    old = await aio(raw_socket(node_a.url("CP-MOVE")))
    await aio(old.send(json.dumps(BOOT)))
    assert json.loads(await aio(old.recv()))[:2] == [3, "b"]
    new = await aio(raw_socket(node_b.url("CP-MOVE")))
    await aio(new.send(json.dumps(BOOT)))
    assert json.loads(await aio(new.recv()))[:2] == [3, "b"]
    await aio(old.wait_closed())
    assert (old.close_code, old.close_reason) == (1000, "replaced")
    await wait_for(lambda: node_a.service.hub.station("CP-MOVE") is None, reactor)
    assert node_b.service.hub.station("CP-MOVE") is not None
    await aio(new.close())

    # an HTTP broadcast POSTed to node A reaches a station on node B, once
    conn = await _booted(node_b, "CP-R", "SN-R")
    try:
        assert await _post(reactor, node_a, _trigger("SN-R", "trig-relay")) == 201
        command = await aio(conn.station.commands.get())
        assert command == ("TriggerMessage", {"requestedMessage": "Heartbeat"})
        await wait_for(lambda: _acked(backend, "trig-relay"), reactor)
        await deferLater(reactor, 0.3, lambda: None)
        assert conn.station.commands.empty()
    finally:
        await aio(conn.close())
    for gateway in (node_a, node_b):
        names = {service.name for service in gateway.service}
        assert not {"redis-publisher", "cluster-redis"} & names
    # nothing tried Redis (the call API says that it serves each node's stations only)
    assert not [w for w in warnings if "redis://" in w]


@pytest_twisted.ensureDeferred
async def test_nats_restarted_mid_test_deliveries_resume(start_gateway, backend, reactor, warnings):
    server = NatsServer()
    server.start()
    try:
        gateway = await start_gateway(
            f"--rpc-host=127.0.0.1:{backend.port}",
            f"--secret={SECRET}",
            "--pubsub=nats",
            "--broadcast-adapter=http,nats",
            f"--nats-servers={server.url}",
        )
        client = _nats(gateway)
        await wait_for(lambda: client.connected, reactor)
        conn = await _booted(gateway, "CP-RS", "SN-RS")
        try:
            server.stop()
            await wait_for(lambda: not client.connected, reactor)
            # NATS is away: an HTTP broadcast still reaches this node's stations
            assert await _post(reactor, gateway, _trigger("SN-RS", "during")) == 201
            assert (await aio(conn.station.commands.get()))[0] == "TriggerMessage"
            server.start()
            await wait_for(lambda: client.connected, reactor)
            server.publish("__anycable__", _trigger("SN-RS", "after"))
            assert (await aio(conn.station.commands.get()))[0] == "TriggerMessage"
            await wait_for(lambda: _acked(backend, "after"), reactor)
            # relayed through NATS again
            assert await _post(reactor, gateway, _trigger("SN-RS", "relayed")) == 201
            await wait_for(lambda: _acked(backend, "relayed"), reactor)
            assert gateway.service.hub.station("CP-RS") is not None  # never dropped
        finally:
            await aio(conn.close())
    finally:
        server.stop()
    nats = [w for w in warnings if w.startswith("NATS ")]
    assert nats and f"127.0.0.1:{server.port} is unavailable" in nats[0]


def test_pubsub_nats_alone_needs_no_redis():
    from ocppcable.options import Options

    options = Options(environ={})
    options.parseOptions(["--pubsub=nats"])
    assert options["broadcast-adapter"] == ["http", "nats"]
    options = Options(environ={"ANYCABLE_NATS_SERVERS": "nats://a:1,nats://b:2"})
    options.parseOptions(["--pubsub=nats", "--broadcast-adapter=http"])
    assert options["broadcast-adapter"] == ["http"]
    assert options["nats-servers"] == "nats://a:1,nats://b:2"


async def _twistd_node(reactor, nats_server):
    """``twistd -n ocppcable`` with NATS for broadcasts and the cluster, once it serves and is
    connected to NATS; its port."""
    port = free_port()
    process = twistd(
        f"--port={port}",
        "--host=127.0.0.1",
        "--rpc-host=demo",
        "--broadcast-adapter=nats",
        "--pubsub=nats",
        f"--nats-servers={nats_server.url}",
        "--redis-url=redis://127.0.0.1:1",  # nothing may try it
    )
    awaited = {"ocppcable serving OCPP", "connected to NATS"}
    deadline = time.monotonic() + TIMEOUT
    while awaited and time.monotonic() < deadline:
        line = await deferLater(reactor, 0, process.stdout.readline)
        assert "redis://" not in line, line  # nothing tries Redis
        awaited = {text for text in awaited if text not in line}
        if not line and process.poll() is not None:
            break
    if awaited:
        process.kill()
        process.wait()
        raise AssertionError(f"twistd did not log {awaited}")
    return process, port


@pytest_twisted.ensureDeferred
async def test_twistd_runs_a_two_node_cluster_on_nats_without_redis(nats_server, reactor):
    nodes = []
    try:
        for _ in range(2):
            nodes.append(await _twistd_node(reactor, nats_server))
        (_, port_a), (_, port_b) = nodes
        old = await aio(raw_socket(f"ws://127.0.0.1:{port_a}/ocpp/CP-TW"))
        await aio(old.send(json.dumps(BOOT)))
        assert json.loads(await aio(old.recv()))[:2] == [3, "b"]
        new = await aio(raw_socket(f"ws://127.0.0.1:{port_b}/ocpp/CP-TW"))
        await aio(new.send(json.dumps(BOOT)))
        assert json.loads(await aio(new.recv()))[:2] == [3, "b"]
        await aio(old.wait_closed())
        assert (old.close_code, old.close_reason) == (1000, "replaced")
        for process, _ in nodes:
            process.send_signal(signal.SIGTERM)
        for process, _ in nodes:
            assert await deferLater(reactor, 0, process.wait, TIMEOUT) == 0
    finally:
        for process, _ in nodes:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()

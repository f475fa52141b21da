"""A station reconnecting to another node replaces its old connection there (docs/contract.md,
"Replacement")."""

from __future__ import annotations

import json

import pytest
import pytest_twisted

from ocppcable.cluster.takeover import CHANNEL
from tests.support import aio, raw_socket, wait_for

BOOT = [2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]


@pytest.mark.parametrize(
    "adapters",
    [
        ("--broadcast-adapter=redis",),
        # the cluster transport alone, without a Redis broadcast adapter
        ("--broadcast-adapter=http", "--pubsub=redis", "--http-broadcast-port=0"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_connection_on_another_node_replaces_this_one(
    start_gateway, backend, redis_server, reactor, adapters
):
    args = (
        f"--rpc-host=127.0.0.1:{backend.port}",
        f"--redis-url={redis_server.url}",
        *adapters,
        "--redis-channel=__anycable_takeover_test__",
    )
    node_a = await start_gateway(*args)
    node_b = await start_gateway(*args)
    await wait_for(lambda: redis_server.subscribers(CHANNEL) == 2, reactor)

    async def boot(url):
        ws = await raw_socket(url)
        await ws.send(json.dumps(BOOT))
        assert json.loads(await ws.recv())[:2] == [3, "b"]
        return ws

    old = await aio(boot(node_a.url("CP-MOVE")))
    new = await aio(boot(node_b.url("CP-MOVE")))
    await aio(old.wait_closed())
    assert (old.close_code, old.close_reason) == (1000, "replaced")
    await wait_for(lambda: len(backend.recorded("disconnect")) == 1, reactor)
    assert node_a.service.hub.station("CP-MOVE") is None
    assert node_b.service.hub.station("CP-MOVE") is not None
    # B's own announcement did not close B's connection
    reply = await aio(_heartbeat(new))
    assert reply[:2] == [3, "h"]
    await aio(new.close())


async def _heartbeat(ws):
    await ws.send(json.dumps([2, "h", "Heartbeat", {}]))
    return json.loads(await ws.recv())


def test_malformed_announcements_are_dropped():
    from ocppcable.cluster.redis import RedisCluster
    from ocppcable.cluster.takeover import ClusterTakeover
    from ocppcable.hub import Hub
    from ocppcable.redis_connection import RedisLink

    redis = RedisLink(None, "redis://localhost:1")
    takeover = ClusterTakeover(RedisCluster(None, redis), Hub())
    for message in ("not json", "[]", '{"node": "x"}'):
        takeover.received(message)  # logged as a warning, nothing raised

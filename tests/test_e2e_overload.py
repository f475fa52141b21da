"""Overload control end to end (issue 16 items 2 and 5), over real sockets against a backend
whose Connects hang: new stations' BootNotifications answered Pending without a Connect while
the gate is saturated, and booted stations' CALLs served ahead of a flood of Connects."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest_twisted
from ocpp.v16 import call

from tests.support import TIMEOUT, aio, open_station, raw_socket, wait_for

BOOT_16 = [2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
BOOT_201 = [
    2,
    "b",
    "BootNotification",
    {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}},
]


async def _gateway(start_gateway, backend, *args: str) -> Any:
    return await start_gateway(
        f"--rpc-host=127.0.0.1:{backend.port}", "--broadcast-adapter=http", *args
    )


def sample(gateway, name: str, **labels: str) -> float:
    return gateway.service.metrics.registry.get_sample_value(name, labels) or 0.0


def connected(backend, station_id: str) -> bool:
    """Whether the backend received a Connect from ``station_id``."""
    return any(c.request.env.url.endswith(f"/{station_id}") for c in backend.recorded("connect"))


async def flood(gateway, count: int, prefix: str) -> list[Any]:
    """``count`` new stations that each send a BootNotification (their replies unread)."""

    async def one(i: int) -> Any:
        ws = await raw_socket(gateway.url(f"{prefix}-{i}"))
        await ws.send(json.dumps(BOOT_16))
        return ws

    return await asyncio.gather(*(one(i) for i in range(count)))


async def close_all(sockets: list[Any]) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets))


@pytest_twisted.ensureDeferred
async def test_new_stations_boot_pending_while_the_backend_is_saturated(
    start_gateway, backend, reactor, warnings
):
    gateway = await _gateway(
        start_gateway,
        backend,
        "--rpc-concurrency=2",
        "--overload-queue=4",
        "--overload-latency=0",
        "--overload-boot-interval=5",
    )
    policy = gateway.service.client.policy
    backend.connects_flow.clear()  # Connects hang: the gate's queue grows
    storm = await aio(flood(gateway, 12, "CP-STORM"))
    await wait_for(lambda: sample(gateway, "ocppcable_backend_saturated") == 1, reactor)

    # a new station boots meanwhile: Pending at once, and the backend never hears of it
    conn = await aio(open_station(gateway.url("CP-NEW"), "CP-NEW"))
    boot = await aio(
        conn.station.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))
    )
    assert boot.status == "Pending" and 2 <= boot.interval <= 8, boot
    ws = await aio(raw_socket(gateway.url("CP-NEW-201"), ("ocpp2.0.1",)))
    await aio(ws.send(json.dumps(BOOT_201)))
    reply = json.loads(await aio(asyncio.wait_for(ws.recv(), TIMEOUT)))
    assert reply[:2] == [3, "b"] and reply[2]["status"] == "Pending", reply
    assert not connected(backend, "CP-NEW") and not connected(backend, "CP-NEW-201")
    assert sample(gateway, "ocppcable_boots_pending_total") >= 2
    assert any("backend saturated (queue:" in w for w in warnings), warnings

    # the backend recovers: the queue drains, and the same station boots Accepted
    backend.connects_flow.set()
    await wait_for(lambda: policy.pending == 0 and policy.in_flight == 0, reactor)
    await wait_for(lambda: sample(gateway, "ocppcable_backend_saturated") == 0, reactor)
    boot = await aio(
        conn.station.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))
    )
    assert boot.status == "Accepted" and connected(backend, "CP-NEW")
    await aio(ws.close())
    await aio(close_all(storm))
    await aio(conn.close())


@pytest_twisted.ensureDeferred
async def test_booted_stations_calls_go_ahead_of_a_flood_of_connects(
    start_gateway, backend, reactor
):
    gateway = await _gateway(
        start_gateway,
        backend,
        "--rpc-concurrency=2",
        "--overload-queue=0",  # no Pending boots: every new station's Connect queues
        "--overload-latency=0",
    )
    from ocppcable.rpc.policy import NEW

    policy = gateway.service.client.policy
    conn = await aio(open_station(gateway.url("CP-BOOTED"), "CP-BOOTED"))
    cp = conn.station
    boot = await aio(
        cp.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))
    )
    assert boot.status == "Accepted"

    backend.connects_flow.clear()  # the flood's Connects hang, and queue at the gate
    started = time.monotonic()
    storm = await aio(flood(gateway, 30, "CP-FLOOD"))
    await wait_for(lambda: policy.waiting(NEW) >= 20, reactor)

    latencies = []
    for _ in range(10):
        sent = time.monotonic()
        status = cp.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Available")
        )
        assert await aio(status) is not None
        latencies.append(time.monotonic() - sent)
    flood_waited = time.monotonic() - started
    assert policy.waiting(NEW) >= 15  # the flood's Connects are still waiting, after all that
    assert max(latencies) < 1.0, latencies
    assert max(latencies) * 3 < flood_waited, (latencies, flood_waited)
    assert len(backend.recorded("message", "status_notification")) == 10

    backend.connects_flow.set()  # the flood boots once the backend answers
    replies = await aio(asyncio.gather(*(asyncio.wait_for(ws.recv(), TIMEOUT) for ws in storm)))
    assert all(json.loads(r)[2]["status"] == "Accepted" for r in replies)
    await aio(close_all(storm))
    await aio(conn.close())

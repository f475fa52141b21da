"""Whole simulator runs: the driver on a memory reactor, then stations against a gateway
started in this process with the demo backend, and the command line as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from typing import Any

import pytest_twisted
from twisted.internet.testing import MemoryReactorClock

from ocppcable.simulator.config import Config
from ocppcable.simulator.fleet import Simulator, run
from tests.support import aio, free_port, wait_for

# --- the driver -----------------------------------------------------------------------------


def test_the_ramp_paces_connections_and_stop_cancels_the_rest():
    reactor = MemoryReactorClock()
    config = Config(url="ws://127.0.0.1:9/ocpp", stations=5, ramp=2, quiet=True)
    simulator = Simulator(reactor, config)
    running = simulator.run()
    connects = []
    for _ in range(4):
        connects.append(len(reactor.tcpClients))
        reactor.advance(0.5)
    assert connects == [1, 2, 3, 4] and len(reactor.tcpClients) == 5
    assert reactor.tcpClients[0][:2] == ("127.0.0.1", 9)
    assert not reactor.getDelayedCalls()  # the ramp is done; nothing connected yet
    simulator.stop()
    summary = running.result
    assert summary.ok and summary.stations == 5 and summary.booted == 0


async def _command_line(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ocppcable.simulator",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


@pytest_twisted.ensureDeferred
async def test_command_line_fails_when_there_is_no_gateway():
    url = f"ws://127.0.0.1:{free_port()}/ocpp"
    code, out, err = await aio(_command_line(url, "--duration", "1", "--quiet"))
    assert code == 1, err
    assert "errors      1 (connect failed 1)" in out and "FAILED" in out
    assert "connect failed" in err  # the first failure is logged


# --- against a gateway ------------------------------------------------------------------------


async def _gateway(start_gateway: Any, redis_server: Any) -> Any:
    return await start_gateway(
        "--rpc-host=demo",
        "--broadcast-adapter=redis",
        f"--redis-url={redis_server.url}",
        "--redis-channel=__anycable_simulator__",
    )


def _config(gateway: Any, **settings: Any) -> Config:
    return Config(url=f"ws://127.0.0.1:{gateway.port}/ocpp", quiet=True, **settings)


def _demo_app(gateway: Any) -> Any:
    """The in-process demo backend (``--rpc-host=demo``)."""
    return gateway.service.client.app


def _messages(app: Any, action: str, station_id: str | None = None) -> list[Any]:
    """The demo backend's ``message`` calls for ``action`` (from ``station_id``)."""
    return [
        c
        for c in list(app.calls)
        if c.method == "message"
        and c.action == action
        and (station_id is None or json.loads(c.request.identifier)["id"] == station_id)
    ]


@pytest_twisted.ensureDeferred
async def test_stations_run_charging_sessions_through_the_gateway(
    start_gateway, redis_server, reactor
):
    gateway = await _gateway(start_gateway, redis_server)
    config = _config(gateway, stations=5, sessions=1, session_length=0.5, meter_interval=0.2)
    summary = await run(reactor, config).addTimeout(30, reactor)

    assert summary.ok, str(summary)
    assert (summary.booted, summary.sessions_started, summary.sessions_completed) == (5, 5, 5)
    calls = summary.calls
    for action in ("BootNotification", "Authorize", "StartTransaction", "StopTransaction"):
        assert calls[action] == 5, action
    assert calls["MeterValues"] >= 5 and calls["StatusNotification"] == 5 * 5
    assert summary.latency.count == sum(calls.values())

    app = _demo_app(gateway)
    seen = Counter(c.action for c in app.calls if c.method == "message")
    assert seen == {
        "boot_notification": 5,
        "status_notification": 25,
        "authorize": 5,
        "start_transaction": 5,
        "meter_values": calls["MeterValues"],
        "stop_transaction": 5,
    }
    identifiers = [json.loads(c.request.identifier) for c in app.calls if c.method == "subscribe"]
    assert sorted(i["id"] for i in identifiers) == config.station_ids()
    assert all(i["sn"] == i["id"] for i in identifiers)
    await wait_for(lambda: sum(c.method == "disconnect" for c in app.calls) == 5, reactor)


@pytest_twisted.ensureDeferred
async def test_stations_answer_remote_commands(start_gateway, redis_server, reactor):
    gateway = await _gateway(start_gateway, redis_server)
    app = _demo_app(gateway)
    simulator = Simulator(reactor, _config(gateway, stations=2, ramp=0, meter_interval=0))
    running = simulator.run()
    await wait_for(lambda: len(_messages(app, "status_notification")) == 4, reactor)

    def send(station_id: str, unique_id: str, action: str, payload: dict[str, Any]) -> None:
        data = {"command": action, "id": unique_id, "payload": payload}
        gateway.service.hub.publish(f"ocpp:ev/{station_id}", json.dumps(data))

    async def answer(unique_id: str) -> dict[str, Any]:
        def reported() -> Any:
            found = [
                c.data for c in _messages(app, "ack") + _messages(app, "error")
                if c.data["id"] == unique_id
            ]  # fmt: skip
            return found[0] if found else None

        return await wait_for(reported, reactor)

    send("SIM-0001", "trigger", "TriggerMessage", {"requestedMessage": "StatusNotification"})
    ack = await answer("trigger")
    assert ack["action"] == "ack" and ack["command"] == "TriggerMessage"
    assert ack["payload"] == {"status": "Accepted"}
    await wait_for(lambda: len(_messages(app, "status_notification", "SIM-0001")) == 4, reactor)

    send("SIM-0001", "start", "RemoteStartTransaction", {"idTag": "REMOTE-1", "connectorId": 1})
    assert (await answer("start"))["payload"] == {"status": "Accepted"}
    (started,) = await wait_for(lambda: _messages(app, "start_transaction"), reactor)
    assert started.data["payload"]["idTag"] == "REMOTE-1"

    def charging() -> bool:
        statuses = _messages(app, "status_notification", "SIM-0001")
        return statuses[-1].data["payload"]["status"] == "Charging"

    await wait_for(charging, reactor)  # the station has its transaction id
    send("SIM-0001", "stop", "RemoteStopTransaction", {"transactionId": 1})
    assert (await answer("stop"))["payload"] == {"status": "Accepted"}
    (stopped,) = await wait_for(lambda: _messages(app, "stop_transaction"), reactor)
    assert stopped.data["payload"]["transactionId"] == 1
    assert stopped.data["payload"]["reason"] == "Remote"

    send("SIM-0002", "config", "GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]})
    assert (await answer("config"))["payload"] == {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}],
        "unknownKey": ["Nope"],
    }
    send("SIM-0002", "unlock", "UnlockConnector", {"connectorId": 1})
    error = await answer("unlock")
    assert error["action"] == "error" and error["code"] == "NotImplemented"

    send("SIM-0002", "reset", "Reset", {"type": "Soft"})
    assert (await answer("reset"))["payload"] == {"status": "Accepted"}
    await wait_for(lambda: len(_messages(app, "boot_notification", "SIM-0002")) == 2, reactor)

    summary = await simulator.stop().addTimeout(10, reactor)
    assert summary.ok, str(summary)
    assert summary.commands == {
        "TriggerMessage": 1,
        "RemoteStartTransaction": 1,
        "RemoteStopTransaction": 1,
        "GetConfiguration": 1,
        "UnlockConnector": 1,
        "Reset": 1,
    }
    assert (await running) is summary


@pytest_twisted.ensureDeferred
async def test_command_line_run_against_the_gateway(start_gateway, redis_server, reactor):
    gateway = await _gateway(start_gateway, redis_server)
    url = f"ws://127.0.0.1:{gateway.port}/ocpp"
    code, out, err = await aio(
        _command_line(url, "--stations", "3", "--sessions", "1", "--session-length", "0.3")
    )
    assert code == 0, out + err
    assert "booted      3 of 3" in out and out.rstrip().endswith("result      OK")


# --- OCPP 2.0.1 against a gateway -----------------------------------------------------------


def _acks(app: Any, command: str) -> list[dict[str, Any]]:
    """What the demo backend's ``ack`` got for remote ``command``s."""
    return [
        c.data
        for c in list(app.calls)
        if c.method == "message" and c.data["action"] == "ack" and c.data["command"] == command
    ]


def _events(app: Any, event_type: str) -> list[dict[str, Any]]:
    """The payloads of the TransactionEvents of ``event_type`` the demo backend got."""
    return [
        c.data["payload"]
        for c in _messages(app, "transaction_event")
        if c.data["payload"]["eventType"] == event_type
    ]


@pytest_twisted.ensureDeferred
async def test_v201_stations_charge_and_answer_a_remote_start_through_the_gateway(
    start_gateway, reactor
):
    gateway = await start_gateway("--rpc-host=demo")
    app = _demo_app(gateway)
    config = _config(
        gateway,
        stations=3,
        sessions=1,
        session_length=0.5,
        meter_interval=0.2,
        duration=60,  # ended by stop() below, after the remote commands
        ocpp="2.0.1",
    )
    simulator = Simulator(reactor, config)
    running = simulator.run()
    await wait_for(lambda: len(_events(app, "Ended")) == 3, reactor)
    await wait_for(lambda: len(_messages(app, "status_notification")) == 9, reactor)

    identifiers = [json.loads(c.request.identifier) for c in app.calls if c.method == "subscribe"]
    assert sorted(i["id"] for i in identifiers) == config.station_ids()
    assert all(i["sn"] == i["id"] and i["protocol"] == "ocpp2.0.1" for i in identifiers)
    started = _events(app, "Started")
    assert len(started) == 3 and {e["triggerReason"] for e in started} == {"Authorized"}
    assert all(e["idToken"] == {"idToken": "SIMULATOR", "type": "ISO14443"} for e in started)
    statuses = Counter(
        c.data["payload"]["connectorStatus"] for c in _messages(app, "status_notification")
    )
    assert statuses == {"Available": 6, "Occupied": 3}

    def publish(station_id: str, unique_id: str, action: str, payload: dict[str, Any]) -> None:
        data = {"command": action, "id": unique_id, "payload": payload}
        gateway.service.hub.publish(f"ocpp:ev/{station_id}", json.dumps(data))

    token = {"idToken": "REMOTE-1", "type": "Central"}
    publish(
        "SIM-0002",
        "remote-start",
        "RequestStartTransaction",
        {"idToken": token, "remoteStartId": 42},
    )
    (ack,) = await wait_for(lambda: _acks(app, "RequestStartTransaction"), reactor)
    assert ack["id"] == "remote-start" and ack["payload"] == {"status": "Accepted"}
    (remote,) = await wait_for(
        lambda: [e for e in _events(app, "Started") if e["triggerReason"] == "RemoteStart"], reactor
    )
    assert remote["idToken"] == token and remote["transactionInfo"]["remoteStartId"] == 42
    transaction_id = remote["transactionInfo"]["transactionId"]

    publish("SIM-0002", "remote-stop", "RequestStopTransaction", {"transactionId": transaction_id})
    (ack,) = await wait_for(lambda: _acks(app, "RequestStopTransaction"), reactor)
    assert ack["payload"] == {"status": "Accepted"}
    (stopped,) = await wait_for(
        lambda: [e for e in _events(app, "Ended") if e["triggerReason"] == "RemoteStop"], reactor
    )
    assert stopped["transactionInfo"]["transactionId"] == transaction_id

    summary = await simulator.stop().addTimeout(10, reactor)
    assert summary.ok, str(summary)
    assert (summary.booted, summary.sessions_started, summary.sessions_completed) == (3, 4, 4)
    assert summary.calls["BootNotification"] == 3 and summary.calls["Authorize"] == 3
    assert summary.calls["TransactionEvent"] == len(_messages(app, "transaction_event"))
    assert summary.commands == {"RequestStartTransaction": 1, "RequestStopTransaction": 1}
    assert (await running) is summary
    await wait_for(lambda: sum(c.method == "disconnect" for c in app.calls) == 3, reactor)


@pytest_twisted.ensureDeferred
async def test_v201_command_line_run_against_the_gateway(start_gateway, reactor):
    gateway = await start_gateway("--rpc-host=demo")
    url = f"ws://127.0.0.1:{gateway.port}/ocpp"
    code, out, err = await aio(
        _command_line(
            url, "--ocpp", "2.0.1", "--stations", "2", "--sessions", "1", "--session-length", "0.3"
        )
    )
    assert code == 0, out + err
    assert "booted      2 of 2" in out and "TransactionEvent 4" in out
    assert out.rstrip().endswith("result      OK")

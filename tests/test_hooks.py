"""Station hooks (``--hooks``), driven through ocppcable.testing's in-memory gateway."""

from __future__ import annotations

import json

import pytest
from twisted.logger import formatEvent
from zope.interface.verify import verifyObject

from ocppcable.hooks import Hooks
from ocppcable.plugin import Error, IStation, IStationHook, Result, StationHook
from ocppcable.testing import CLOSE, MemoryGateway, close_code

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


class Recorder(StationHook):
    """Writes down what it sees into ``seen`` (shared between hooks to check their order)."""

    def __init__(self, name: str = "recorder", seen: list | None = None) -> None:
        self.name = name
        self.seen = seen if seen is not None else []

    def connecting(self, station):
        self.seen.append((self.name, "connecting", station.station_id))

    def connected(self, station):
        self.seen.append((self.name, "connected", station.station_id))

    def session_started(self, station):
        self.seen.append((self.name, "session_started", station.station_id))

    def frame_received(self, station, text):
        self.seen.append((self.name, "in", text))

    def frame_sent(self, station, text):
        self.seen.append((self.name, "out", text))

    def call_received(self, station, unique_id, action, payload):
        self.seen.append((self.name, "call", action))

    def closed(self, station, code, reason):
        self.seen.append((self.name, "closed", code))


class Raising(StationHook):
    def __getattribute__(self, name):
        if name in IStationHook.names():

            def broken(*args):
                raise RuntimeError(f"{name} is broken")

            return broken
        return super().__getattribute__(name)


class Answering(StationHook):
    def __init__(self, answers: dict) -> None:
        self.answers = answers

    def call_received(self, station, unique_id, action, payload):
        return self.answers.get(action)


def _events(seen, name="recorder"):
    return [event[1:] for event in seen if event[0] == name]


def test_a_hook_sees_the_lifecycle_and_every_frame():
    recorder = Recorder()
    gateway = MemoryGateway(hooks=[recorder])
    station = gateway.connect("CP-7")
    reply = station.call("BootNotification", BOOT)
    assert reply[2]["status"] == "Accepted"
    station.close()
    events = _events(recorder.seen)
    boot = [event for event in events if event[0] == "in"][0][1]
    assert events[:3] == [
        ("connecting", "CP-7"),
        ("connected", "CP-7"),
        ("in", boot),
    ]
    assert ("call", "BootNotification") in events
    assert ("session_started", "CP-7") in events
    [(_, sent)] = [event for event in events if event[0] == "out"]
    assert '"Accepted"' in sent
    assert events[-1] == ("closed", 1000)


def test_the_station_view_is_an_istation():
    stations = []

    class Keep(StationHook):
        def connected(self, station):
            stations.append(station)

    gateway = MemoryGateway(hooks=[Keep()])
    gateway.connect("CP-1", headers={"X-Site": "north"})
    [station] = stations
    assert verifyObject(IStation, station)
    assert (station.station_id, station.subprotocol, station.peer) == (
        "CP-1",
        "ocpp1.6",
        "127.0.0.1",
    )
    assert station.headers["x-site"] == "north"
    assert station.sid


def test_a_hook_that_raises_does_not_disturb_its_station(fail_on_logged_errors):
    from twisted.logger import globalLogPublisher

    warnings = []
    globalLogPublisher.addObserver(warnings.append)
    try:
        recorder = Recorder()
        gateway = MemoryGateway(hooks=[Raising(), recorder])
        station = gateway.connect("CP-9")
        assert station.accepted
        reply = station.call("BootNotification", BOOT)
        assert reply[2]["status"] == "Accepted"
        station.close()
    finally:
        globalLogPublisher.removeObserver(warnings.append)
    assert fail_on_logged_errors == []  # warnings, not errors
    logged = [
        e for e in warnings if "hook" in e.get("log_format", "") and "raised" in e["log_format"]
    ]
    assert {e["event"] for e in logged} >= {"connecting", "connected", "frame_received", "closed"}
    assert all(e["station_id"] == "CP-9" for e in logged)
    assert "RuntimeError" in formatEvent(logged[0])
    # the hooks after it still ran
    assert ("closed", 1000) in _events(recorder.seen)


def test_a_hook_answers_a_call_in_the_backends_place():
    answer = Result({"status": "Accepted", "data": "from the hook"})
    gateway = MemoryGateway(hooks=[Answering({"DataTransfer": answer})])
    station = gateway.connect()
    station.call("BootNotification", BOOT)
    before = len(gateway.rpc.calls)
    reply = station.call("DataTransfer", {"vendorId": "acme"}, unique_id="dt-1")
    assert reply == [3, "dt-1", {"status": "Accepted", "data": "from the hook"}]
    assert len(gateway.rpc.calls) == before  # the backend was not asked


def test_a_hook_answers_with_a_call_error():
    error = Error("NotSupported", "not here", {"hint": "elsewhere"})
    gateway = MemoryGateway(hooks=[Answering({"DataTransfer": error})])
    station = gateway.connect()
    reply = station.call("DataTransfer", {"vendorId": "acme"}, unique_id="dt-2")
    assert reply == [4, "dt-2", "NotSupported", "not here", {"hint": "elsewhere"}]
    assert gateway.rpc.calls == []  # not even the Connect


def test_an_invalid_local_answer_is_refused_like_a_backends(fail_on_logged_errors):
    gateway = MemoryGateway(hooks=[Answering({"DataTransfer": Result({"status": "Maybe"})})])
    station = gateway.connect()
    reply = station.call("DataTransfer", {"vendorId": "acme"}, unique_id="dt-3")
    assert reply[:3] == [4, "dt-3", "InternalError"]


def test_an_answer_that_is_no_answer_is_ignored(fail_on_logged_errors):
    gateway = MemoryGateway(hooks=[Answering({"BootNotification": {"status": "Accepted"}})])
    station = gateway.connect()
    reply = station.call("BootNotification", BOOT)
    assert reply[2]["status"] == "Accepted" and "interval" in reply[2]  # the backend's default
    assert [call[0] for call in gateway.rpc.calls][:1] == ["connect"]


def test_a_hook_refuses_a_connection():
    class Refusing(StationHook):
        def connecting(self, station):
            return "unknown station" if station.station_id.startswith("X") else None

    recorder = Recorder()
    gateway = MemoryGateway(hooks=[Refusing(), recorder])
    station = gateway.connect("X-1")
    assert station.status == 403
    assert b"unknown station" in station.response
    assert _events(recorder.seen) == []  # later hooks are not asked; nothing connected
    assert gateway.connect("CP-1").accepted


def test_a_hook_closes_a_station_with_a_reason():
    class Closing(StationHook):
        def call_received(self, station, unique_id, action, payload):
            if action == "StatusNotification":
                station.close("no status reports here", code=4000)

    gateway = MemoryGateway(hooks=[Closing()])
    station = gateway.connect()
    station.call("BootNotification", BOOT)
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    station.send(json.dumps([2, "s1", "StatusNotification", status]))
    closes = [payload for opcode, payload in station.received() if opcode == CLOSE]
    assert closes and close_code(closes[0]) == 4000
    assert b"no status reports here" in closes[0]


def test_hooks_run_in_order_and_the_first_answer_wins():
    seen: list = []
    first, second = Recorder("a", seen), Recorder("b", seen)
    answering = Answering({"DataTransfer": Result({"status": "Accepted"})})
    last = Recorder("c", seen)
    gateway = MemoryGateway(hooks=[first, second, answering, last])
    station = gateway.connect()
    station.call("DataTransfer", {"vendorId": "acme"})
    assert [name for name, event, _ in seen if event == "connected"] == ["a", "b", "c"]
    assert [name for name, event, _ in seen if event == "call"] == ["a", "b"]  # c: answered


def test_without_hooks_no_hook_code_runs():
    gateway = MemoryGateway()
    station = gateway.connect()
    assert gateway.factory.hooks is None
    assert station.protocol.view is None
    assert station.protocol.session.local_answer is None


def test_a_hook_must_provide_the_interface():
    with pytest.raises(TypeError, match="IStationHook"):
        MemoryGateway(hooks=[object()])


def test_the_example_of_docs_plugins_md_works_as_written():
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    [hook] = [block for block in blocks if "class Gatekeeper" in block]
    [test] = [block for block in blocks if "def test_strangers" in block]
    namespace: dict = {}
    exec(compile(hook + test, "docs/plugins.md", "exec"), namespace)
    namespace["test_strangers_are_refused_and_acme_answered_here"]()
    assert verifyObject(IStationHook, namespace["Gatekeeper"](set()))


def test_no_op_methods_inherited_from_stationhook_are_not_called_per_frame():
    class OnlyConnected(StationHook):
        def connected(self, station):
            pass

    hooks = Hooks([OnlyConnected()])
    assert hooks._methods["connected"]
    assert hooks._methods["frame_received"] == hooks._methods["frame_sent"] == ()


@pytest.mark.parametrize(
    "answer",
    [Result(None), Result({"status": "Accepted", "x": object()}), Error("X", "", {"x": object()})],
)
def test_an_answer_that_cannot_be_sent_is_an_internal_error(answer):
    """A hook's answer that is not JSON (or no object) never leaves its CALL stuck in flight."""
    gateway = MemoryGateway(hooks=[Answering({"DataTransfer": answer})])
    station = gateway.connect()
    for n in range(10):  # more than the CALLs a station may have in flight
        reply = station.call("DataTransfer", {"vendorId": "acme"}, unique_id=f"dt-{n}")
        assert reply[:3] == [4, f"dt-{n}", "InternalError"]

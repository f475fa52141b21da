"""The journal hook, unit-tested with ocppcable's in-memory gateway (no socket, no reactor)."""

from __future__ import annotations

import json

from ocppcable_journal import Journal

from ocppcable.testing import MemoryGateway

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


def test_every_frame_is_journaled_per_day(tmp_path):
    gateway = MemoryGateway()
    gateway.clock.advance(86400 - 1)  # 1970-01-01T23:59:59Z
    journal = Journal(tmp_path, gateway.clock.seconds)
    gateway = MemoryGateway(hooks=[journal], clock=gateway.clock)
    station = gateway.connect("CP-1")
    station.call("BootNotification", BOOT)
    gateway.clock.advance(2)  # the next day
    station.call("Heartbeat", {})
    station.close()
    journal.stopService()
    first = [json.loads(line) for line in (tmp_path / "1970-01-01.jsonl").read_text().splitlines()]
    second = [json.loads(line) for line in (tmp_path / "1970-01-02.jsonl").read_text().splitlines()]
    assert [r["direction"] for r in first] == ["connected", "in", "out"]
    assert [r["direction"] for r in second] == ["in", "out", "closed"]
    assert all(r["station_id"] == "CP-1" for r in first + second)
    assert json.loads(first[1]["frame"])[2] == "BootNotification"
    assert second[0]["time"] == "1970-01-02T00:00:01.000Z"

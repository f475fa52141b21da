"""The simulator's command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ocppcable.simulator.cli import parse_args


def test_parse_args():
    config = parse_args(["ws://127.0.0.1:8080/ocpp", "--stations", "12000", "--prefix", "LOAD"])
    assert config.station_ids()[0] == "LOAD-00001" and config.duration == 0
    assert (config.sessions, config.heartbeat, config.ramp) == (0, None, 100.0)
    for wrong in (
        ["http://127.0.0.1/ocpp"],
        ["ws://x/ocpp", "--stations", "0"],
        ["ws://x/ocpp", "--prefix", "A-VERY-LONG-STATION-PREFIX"],
        ["ws://x/ocpp", "--id-tag", "X" * 21],
        ["ws://x/ocpp", "--meter-interval", "-1"],
        ["ws://x/ocpp", "--session-length", "nan"],
        ["ws://x/ocpp", "--ramp", "inf"],
    ):
        with pytest.raises(SystemExit):
            parse_args(wrong)


def test_help_as_a_module():
    done = subprocess.run(
        [sys.executable, "-m", "ocppcable.simulator", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "--stations" in done.stdout and "--sessions" in done.stdout


def test_parse_args_ocpp_version():
    assert parse_args(["ws://x/ocpp"]).ocpp == "1.6"
    config = parse_args(["ws://x/ocpp", "--ocpp", "2.0.1", "--id-tag", "T" * 36])
    assert config.ocpp == "2.0.1"
    for wrong in (
        ["ws://x/ocpp", "--ocpp", "2.1"],
        ["ws://x/ocpp", "--ocpp", "2.0.1", "--id-tag", "T" * 37],
        ["ws://x/ocpp", "--id-tag", "T" * 21],
    ):
        with pytest.raises(SystemExit):
            parse_args(wrong)

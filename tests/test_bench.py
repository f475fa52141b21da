"""bench/ stays runnable: its smallest profile runs every scenario end to end.

No figure is asserted here (performance targets live in bench/, never in unit tests); this only
checks that every process starts, every scenario completes and all six figures are reported.
They take minutes, so the default run leaves them out: ``python -m pytest -m bench -n 0`` (as
``.ci/run`` does after the README's test command) runs them one at a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.bench
def test_smoke_profile_reports_every_figure(tmp_path):
    out = tmp_path / "smoke.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    figures = json.loads(out.read_text())
    for key in ("idle_memory", "cpu_gateway", "cpu_peer", "ratio", "latency", "fanout"):
        assert key in figures, key
    for key in ("cpu_gateway_http", "ratio_http"):  # figure 2 over HTTP RPC as well
        assert key in figures, key
    for key in ("boot_storm", "boot_storm_http", "cpu_gateway_many", "scaling_growth"):
        assert key in figures, key
    for line in ("1 idle memory", "2 CPU/CALL", "3 latency", "4 fan-out", "5 boot storm", "6 CPU"):
        assert line in run.stdout


@pytest.mark.bench
def test_isolation_figure_runs(tmp_path):
    """Figure 7 (``python -m bench.isolation``) at tiny counts: both windows are measured."""
    out = tmp_path / "isolation.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.isolation",
            "--healthy=4",
            "--slow=3",
            "--slow-seconds=1",
            "--rate=20",
            "--window=1",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    figures = json.loads(out.read_text())
    for window in ("alone", "beside_slow"):
        assert figures[window]["answered"] > 0, figures


def _run_smoke(tmp_path, module):
    out = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, "-m", module, "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return json.loads(out.read_text()), run.stdout


@pytest.mark.bench
def test_storm_figures_run(tmp_path):
    """Figures 8 and 9 (``python -m bench.storm``) at tiny counts: the boot storm on one and on
    two processes sharing a reuseport: port, and the reconnect storm to the end."""
    figures, stdout = _run_smoke(tmp_path, "bench.storm")
    boot = figures["boot_storm"]
    assert boot["p1"]["stations_per_process"] == [40]
    assert sum(boot["p2"]["stations_per_process"]) == 40
    assert len(boot["p2"]["stations_per_process"]) == 2
    storm = figures["reconnect_storm"]
    assert storm["rebooted"] == 40
    assert "call_errors_total" in storm
    assert "8 boot storm" in stdout and "9 reconnect storm" in stdout


@pytest.mark.bench
def test_idle_figure_runs(tmp_path):
    """Figure 10 (``python -m bench.idle50k``) at tiny counts, from three source addresses."""
    figures, stdout = _run_smoke(tmp_path, "bench.idle50k")
    assert figures["stations"] == 300
    assert figures["loadgens"] == 3
    assert figures["kib_per_station"] > 0
    assert "10 idle stations" in stdout


def test_backend_meter_spaces_calls_at_its_rate():
    """The rate-limited backend queues calls over its rate (never refuses) and counts them."""
    from bench.backend import Meter

    meter = Meter(rate=200)
    started = time.monotonic()
    for _ in range(5):
        meter.admit()
    assert time.monotonic() - started >= 4 / 200
    stats = meter.stats()
    assert stats["received"] == stats["served"] == 5
    assert stats["peak_served_per_s"] <= 5


@pytest.mark.bench
def test_call_api_figure_runs(tmp_path):
    """Figure 11 (``python -m bench.callapi``) at tiny counts: round trips on one node and
    across two, and the queue drained to a station that connects to the other node."""
    figures, stdout = _run_smoke(tmp_path, "bench.callapi")
    assert figures["same_node"]["calls"] == figures["across_nodes"]["calls"] == 20
    assert figures["same_node"]["p50"] > 0 and figures["across_nodes"]["p99"] > 0
    assert figures["drain"]["commands"] == 30 and figures["drain"]["per_s"] > 0
    assert "11 call API same_node" in stdout and "11 queue drain" in stdout

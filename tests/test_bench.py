"""bench/ stays runnable: its smallest profile runs every scenario end to end.

No figure is asserted here (performance targets live in bench/, never in unit tests); this only
checks that every process starts, every scenario completes and all six figures are reported.
It takes half a minute, so the default run leaves it out: ``python -m pytest -m bench`` (as
``.ci/run`` does after the README's test command) runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
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

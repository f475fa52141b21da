"""The simulator's statistics: percentiles, latencies and the summary of a run."""

from __future__ import annotations

from ocppcable.simulator.stats import Latency, Stats, percentile


def test_percentile_is_nearest_rank():
    values = [float(n) for n in range(1, 101)]
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert [percentile([1.0, 2.0, 3.0], p) for p in (1, 50, 90)] == [1.0, 2.0, 3.0]
    assert percentile([4.0], 99) == 4.0


def test_latency_of_samples():
    latency = Latency.of([0.003, 0.001, 0.002, 0.010])
    assert (latency.count, latency.p50, latency.p90, latency.max) == (4, 0.002, 0.010, 0.010)
    assert str(latency) == "p50 2.0 ms, p90 10.0 ms, p99 10.0 ms, max 10.0 ms (4 replies)"
    assert str(Latency.of([])) == "no replies"


def test_summary_counts_problems_and_reports_them():
    stats = Stats()
    assert stats.summary(stations=1, elapsed=1.0).ok
    assert stats.count(stats.call_errors, "InternalError")  # the first of its kind
    assert not stats.count(stats.call_errors, "InternalError")
    stats.count(stats.timeouts, "Authorize")
    stats.calls.update({"BootNotification": 2, "Heartbeat": 1})
    stats.latencies.extend([0.001, 0.002, 0.003])
    summary = stats.summary(stations=2, elapsed=3.0)
    assert not summary.ok and summary.problems == 3
    text = str(summary)
    assert "calls       3 (BootNotification 2, Heartbeat 1)" in text
    assert "CALLERRORs  2 (InternalError 2)" in text
    assert "timeouts    1 (Authorize 1)" in text
    assert "errors      none" in text
    assert "latency     p50 2.0 ms" in text
    assert text.endswith("result      FAILED (3 problems)")
    assert stats.progress(5.0, 2) == (
        "[    5.0s] connected 0/2  booted 0  calls 3  errors 3  commands 0  sessions 0"
    )

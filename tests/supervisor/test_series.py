"""ops/series.py: the per-app ring of one-second points, its quantiles and its memory."""

from __future__ import annotations

import math
import tracemalloc
from typing import Any

import pytest

from proxy.stats import LATENCY_BUCKETS, AppStats
from supervisor.ops.series import WINDOW, Sampler, bounds_of, quantile


class Source:
    """A StatsSource whose counters the test drives, through the proxy's own AppStats."""

    def __init__(self, *apps: str) -> None:
        self.apps = {app: AppStats() for app in apps}

    def stats_all(self) -> dict[str, dict[str, Any]]:
        return {app: s.snapshot() for app, s in self.apps.items()}


def test_quantile_interpolates_inside_the_bucket_as_prometheus_does() -> None:
    bounds = (0.01, 0.1, math.inf)
    assert quantile(0.5, bounds, [0, 0, 0]) is None
    assert quantile(0.5, bounds, [10, 0, 0]) == pytest.approx(0.005)
    assert quantile(0.5, bounds, [0, 10, 0]) == pytest.approx(0.055)
    assert quantile(0.99, bounds, [50, 50, 0]) == pytest.approx(0.01 + 0.09 * 49 / 50)
    assert quantile(0.99, bounds, [0, 0, 3]) == 0.1  # +Inf bucket: the highest finite bound
    assert bounds_of({"0.001": 0, "+Inf": 0}) == (0.001, math.inf)


def test_points_are_rates_and_latencies_of_each_second() -> None:
    source = Source("web")
    sampler = Sampler(source)
    sampler.sample(now=100.0)  # the first sample only remembers the counters
    assert sampler.points("web")["t"] == []
    for _ in range(20):
        source.apps["web"].record(200, 0.003)  # 0.001-0.005 bucket
    for _ in range(5):
        source.apps["web"].record(503, 0.2)  # 0.1-0.25 bucket
    source.apps["web"].inflight = 3
    sampler.sample(now=101.0)
    sampler.sample(now=102.0)  # a quiet second: no latency, rates 0
    points = sampler.points("web")
    assert points["t"] == [101.0, 102.0]
    assert points["rate"] == [25.0, 0.0]
    assert points["errors"] == [5.0, 0.0]
    assert points["inflight"] == [3.0, 3.0]
    assert points["p50"][0] == pytest.approx(0.001 + 0.004 * 12.5 / 20, rel=1e-5)
    assert points["p99"][0] == pytest.approx(0.1 + 0.15 * (24.75 - 20) / 5, rel=1e-5)
    assert points["p50"][1] is None and points["p99"][1] is None
    assert sampler.points("web", since=101.0)["t"] == [102.0]
    assert sampler.last_time("web") == 102.0


def test_last_minute_counts_the_minute_exactly_and_forgets_older_traffic() -> None:
    source = Source("web")
    sampler = Sampler(source)
    stats = source.apps["web"]
    for second in range(0, 120):
        if second < 30:  # old traffic: slow and failing
            stats.record(500, 2.0)
        else:
            stats.record(200, 0.02)
            stats.record(200, 0.02)
        sampler.sample(now=1000.0 + second)
    minute = sampler.last_minute("web")
    assert minute["rate"] == pytest.approx(2.0, rel=0.05)
    assert minute["errors"] == 0.0
    assert minute["p99"] is not None and 0.01 < minute["p99"] <= 0.025


def test_the_ring_keeps_fifteen_minutes_and_apps_that_leave_are_dropped() -> None:
    source = Source("web", "gone")
    sampler = Sampler(source)
    for second in range(WINDOW + 50):
        source.apps["web"].record(200, 0.001)
        sampler.sample(now=float(second))
    points = sampler.points("web")
    assert len(points["t"]) == WINDOW
    assert points["t"][0] == 50.0 and points["t"][-1] == float(WINDOW + 49)
    assert points["t"] == sorted(points["t"])
    del source.apps["gone"]
    sampler.sample(now=float(WINDOW + 50))
    assert sampler.apps() == ["web"]


def test_fifty_apps_of_fifteen_minutes_cost_less_than_5_mb() -> None:
    """The issue's budget. Measured with tracemalloc, every ring full; printed with -s."""
    source = Source(*(f"app-{i}" for i in range(50)))
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        sampler = Sampler(source)
        for second in range(WINDOW + 1):
            for stats in source.apps.values():
                stats.record(200, 0.004 * (1 + second % 7))
            sampler.sample(now=float(second))
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    used = sum(s.size_diff for s in after.compare_to(before, "filename")
               if s.traceback[0].filename.endswith("series.py"))
    assert all(len(sampler.points(a)["t"]) == WINDOW for a in source.apps)
    print(f"\nseries memory: {used / 1e6:.2f} MB for 50 apps x {WINDOW} points "
          f"({used / 50 / 1024:.1f} KiB per app)")
    assert used < 5_000_000
    assert len(LATENCY_BUCKETS) == 12  # (the counters per snapshot the estimate assumed)


async def test_the_sampler_ticks_every_second_and_wakes_readers() -> None:
    source = Source("web")
    sampler = Sampler(source, interval=0.05)
    sampler.start()
    try:
        assert await sampler.wait_tick(1.0)
        assert await sampler.wait_tick(1.0)
        assert "web" in sampler.apps()
    finally:
        await sampler.close()
    assert not await sampler.wait_tick(0.1)

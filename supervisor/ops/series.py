"""Per-app time series of the proxy's traffic: one point a second for the last 15 minutes.

The `Sampler` reads the proxy's cumulative counters (`StatsSource.stats_all()`: requests, status
classes, in-flight and per-bucket latency counts) once a second and keeps, per app, a ring of
points: request rate, 5xx rate, p50 and p99 latency (estimated from the histogram buckets as
Prometheus' histogram_quantile does), and in-flight. It also keeps the last minute's cumulative
counters, so "the last minute" is exact, not an average of averages.

Memory: values are float32 `array`s, so one app costs about 33 KB (15 minutes of six columns, plus
61 cumulative snapshots of 15 counters); 50 apps stay under 2 MB
(tests/supervisor/test_series.py measures it with tracemalloc).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from array import array
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

from supervisor.ops.metrics import StatsSource

log = logging.getLogger("dockyard.supervisor")

WINDOW = 900  # points kept per app: 15 minutes of one-second points
INTERVAL = 1.0  # seconds between samples
MINUTE = 60  # seconds summarised by `last_minute`
NAN = float("nan")
COLUMNS = ("rate", "errors", "p50", "p99", "inflight")


def bounds_of(buckets: Mapping[str, int]) -> tuple[float, ...]:
    """The histogram's upper bounds from the proxy's bucket keys ("0.001", ..., "+Inf")."""
    return tuple(math.inf if k == "+Inf" else float(k) for k in buckets)


def quantile(q: float, bounds: Sequence[float], counts: Sequence[int]) -> float | None:
    """The q-quantile of per-bucket `counts` (not cumulative), interpolated linearly inside its
    bucket; None without observations. A rank in the last (+Inf) bucket gives the highest
    finite bound, as Prometheus does."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count > 0 and seen + count >= rank:
            lower = bounds[i - 1] if i > 0 else 0.0
            upper = bounds[i]
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    finite = [b for b in bounds if not math.isinf(b)]
    return finite[-1] if finite else None


def _counters(snapshot: Mapping[str, Any]) -> list[int]:
    """requests, 5xx, then each bucket's count: the cumulative values a point is a delta of."""
    status = snapshot.get("status") or {}
    buckets = snapshot.get("latency_buckets") or {}
    return [int(snapshot.get("requests", 0)), int(status.get("5xx", 0)), *map(int, buckets.values())]


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


class AppSeries:
    """One app's ring of points, and its last minute of cumulative counters."""

    __slots__ = ("times", "columns", "count", "_next", "_width", "_minute", "_minute_t",
                 "_minute_n", "_minute_next", "last")

    def __init__(self, width: int, window: int = WINDOW) -> None:
        self.times = array("d", [NAN]) * window
        self.columns = {name: array("f", [NAN]) * window for name in COLUMNS}
        self.count = 0
        self._next = 0
        self._width = width  # counters per snapshot
        self._minute = array("q", [0]) * (width * (MINUTE + 1))
        self._minute_t = array("d", [NAN]) * (MINUTE + 1)
        self._minute_n = 0
        self._minute_next = 0
        self.last: tuple[float, list[int]] | None = None  # the previous sample

    @property
    def window(self) -> int:
        return len(self.times)

    def add(self, t: float, values: Mapping[str, float | None]) -> None:
        i = self._next
        self.times[i] = t
        for name, column in self.columns.items():
            value = values.get(name)
            column[i] = NAN if value is None else value
        self._next = (i + 1) % self.window
        self.count = min(self.count + 1, self.window)

    def remember(self, t: float, counters: list[int]) -> None:
        i = self._minute_next
        self._minute[i * self._width:(i + 1) * self._width] = array("q", counters)
        self._minute_t[i] = t
        self._minute_next = (i + 1) % len(self._minute_t)
        self._minute_n = min(self._minute_n + 1, len(self._minute_t))
        self.last = (t, counters)

    def oldest_in_minute(self, now: float) -> tuple[float, list[int]] | None:
        """The earliest remembered counters no older than a minute (plus a second of slack)."""
        best: tuple[float, list[int]] | None = None
        for k in range(self._minute_n):
            t = self._minute_t[k]
            if now - t <= MINUTE + INTERVAL and (best is None or t < best[0]):
                best = (t, list(self._minute[k * self._width:(k + 1) * self._width]))
        return best

    def ordered(self) -> range:
        """Indexes of the kept points, oldest first."""
        start = (self._next - self.count) % self.window
        return range(start, start + self.count)


class Sampler:
    """Samples `source` every `interval` seconds into a ring per app; `start()`, `await close()`."""

    def __init__(self, source: StatsSource, window: int = WINDOW, interval: float = INTERVAL) -> None:
        self.source = source
        self.window = window
        self.interval = interval
        self.series: dict[str, AppSeries] = {}
        self._bounds: tuple[float, ...] = ()
        self._task: asyncio.Task[None] | None = None
        self._tick = asyncio.Event()

    # sampling ------------------------------------------------------------------------------

    def sample(self, now: float | None = None) -> None:
        """Take one sample of every app (the loop calls it each second; tests call it directly)."""
        now = time.time() if now is None else now
        stats = self.source.stats_all()
        for app in list(self.series):
            if app not in stats:
                del self.series[app]
        for app, snapshot in stats.items():
            buckets = snapshot.get("latency_buckets") or {}
            if not self._bounds:
                self._bounds = bounds_of(buckets)
            counters = _counters(snapshot)
            series = self.series.get(app)
            if series is None:
                series = self.series[app] = AppSeries(len(counters), self.window)
            if series.last is not None:
                series.add(now, self._point(series.last, now, counters, snapshot))
            series.remember(now, counters)
        self._tick.set()
        self._tick = asyncio.Event()

    def _point(self, last: tuple[float, list[int]], now: float, counters: list[int],
               snapshot: Mapping[str, Any]) -> dict[str, float | None]:
        then, before = last
        seconds = max(now - then, 1e-6)
        delta = [max(0, a - b) for a, b in zip(counters, before, strict=True)]
        return {
            "rate": delta[0] / seconds,
            "errors": delta[1] / seconds,
            "p50": quantile(0.5, self._bounds, delta[2:]),
            "p99": quantile(0.99, self._bounds, delta[2:]),
            "inflight": float(snapshot.get("inflight", 0)),
        }

    async def run(self) -> None:
        """Sample on whole seconds of the wall clock, so every app's points share their times;
        a sleep that wakes early sleeps again, and a loop that fell behind skips ahead."""
        next_at = self._next_tick(time.time())
        while True:
            delay = next_at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            try:
                self.sample()
            except Exception as exc:  # a bad snapshot must not end the series
                log.error("series sample failed error=%r", exc, exc_info=exc)
            next_at = self._next_tick(time.time())

    def _next_tick(self, now: float) -> float:
        return (math.floor(now / self.interval) + 1) * self.interval

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self.run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_tick(self, timeout: float) -> bool:
        """Wait for the next sample, at most `timeout` seconds; True when one was taken."""
        try:
            await asyncio.wait_for(self._tick.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # reading -------------------------------------------------------------------------------

    def apps(self) -> list[str]:
        return sorted(self.series)

    def points(self, app: str, since: float | None = None) -> dict[str, list[float | None]]:
        """The app's points, oldest first, as columns: `t` (seconds since the epoch), `rate` and
        `errors` (per second), `p50` and `p99` (seconds; None when no request finished in that
        second), `inflight`. Only points after `since`, when given."""
        out: dict[str, list[float | None]] = {"t": [], **{name: [] for name in COLUMNS}}
        series = self.series.get(app)
        if series is None:
            return out
        for k in series.ordered():
            i = k % series.window
            t = series.times[i]
            if since is not None and t <= since:
                continue
            out["t"].append(t)
            for name in COLUMNS:
                out[name].append(_or_none(series.columns[name][i]))
        return out

    def last_time(self, app: str) -> float | None:
        series = self.series.get(app)
        if series is None or series.count == 0:
            return None
        return series.times[(series._next - 1) % series.window]

    def last_minute(self, app: str) -> dict[str, float | None]:
        """Request rate, 5xx rate (per second), p50 and p99 (seconds) over the last minute."""
        series = self.series.get(app)
        empty: dict[str, float | None] = {"rate": None, "errors": None, "p50": None, "p99": None}
        if series is None or series.last is None:
            return empty
        now, latest = series.last
        first = series.oldest_in_minute(now)
        if first is None or first[0] >= now:
            return empty
        seconds = now - first[0]
        delta = [max(0, a - b) for a, b in zip(latest, first[1], strict=True)]
        return {
            "rate": delta[0] / seconds,
            "errors": delta[1] / seconds,
            "p50": quantile(0.5, self._bounds, delta[2:]),
            "p99": quantile(0.99, self._bounds, delta[2:]),
        }

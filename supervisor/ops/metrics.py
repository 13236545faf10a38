"""Prometheus metrics through prometheus-client: the registry and its collectors. They are
served as `GET /metrics` by supervisor/api/metrics.py.

Two kinds of metrics:

- **Events** the supervisor and scheduler report through the hook functions below
  (`deploy_finished`, `check_failed`, `container_restarted`, `cron_run`). They live in one
  module-level registry, `REGISTRY`, so callers need no handle to pass around.
- **Live values** read at scrape time by custom collectors: the proxy's per-app counters
  (`Proxy.stats_all()`: requests by status class, latency histogram, in-flight) and the
  supervisor's view (serving release and containers). The proxy's hot path never touches
  prometheus-client: it keeps its own plain counters and this module only reads them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

NAMESPACE = "dockyard"
DEPLOY_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
CRON_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

REGISTRY = CollectorRegistry(auto_describe=True)

DEPLOYS = Counter(
    "deploys", "Deploys and rollbacks that finished, by result (ok or failed).",
    ["app", "kind", "result"], namespace=NAMESPACE, registry=REGISTRY,
)
DEPLOY_SECONDS = Histogram(
    "deploy_duration_seconds", "How long finished deploys took, start to swap and cleanup.",
    ["app", "result"], namespace=NAMESPACE, registry=REGISTRY, buckets=DEPLOY_BUCKETS,
)
CHECK_FAILURES = Counter(
    "check_failures", "Failed health checks (startup, readiness, liveness), by check.",
    ["app", "process", "type", "check"], namespace=NAMESPACE, registry=REGISTRY,
)
RESTARTS = Counter(
    "container_restarts", "App containers that Docker restarted (they died and came back).",
    ["app", "process"], namespace=NAMESPACE, registry=REGISTRY,
)
CRON_RUNS = Counter(
    "cron_runs", "Finished cron runs, by status (succeeded, failed, timed_out, ...).",
    ["app", "task", "status"], namespace=NAMESPACE, registry=REGISTRY,
)
CRON_SECONDS = Histogram(
    "cron_run_duration_seconds", "How long finished cron runs took.",
    ["app", "task"], namespace=NAMESPACE, registry=REGISTRY, buckets=CRON_BUCKETS,
)


# hooks: the supervisor and the scheduler call these -------------------------------------


def deploy_finished(app: str, ok: bool, seconds: float, kind: str = "deploy") -> None:
    """A deploy (kind="deploy") or rollback (kind="rollback") ended, well or not."""
    result = "ok" if ok else "failed"
    DEPLOYS.labels(app, kind, result).inc()
    DEPLOY_SECONDS.labels(app, result).observe(max(0.0, seconds))


def check_failed(app: str, check: str, process: str = "web", type: str = "startup") -> None:
    """One failed check (the whole check, after its attempts), e.g. `check_failed("hello", "web check")`."""
    CHECK_FAILURES.labels(app, process, type, check).inc()


def container_restarted(app: str, process: str) -> None:
    RESTARTS.labels(app, process).inc()


def cron_run(app: str, task: str, status: str, seconds: float | None = None) -> None:
    """A cron run ended with `status` (the run record's status)."""
    CRON_RUNS.labels(app, task, status).inc()
    if seconds is not None:
        CRON_SECONDS.labels(app, task).observe(max(0.0, seconds))


# live values, read at scrape time ---------------------------------------------------------


class StatsSource(Protocol):
    """What the proxy collector needs (proxy.Proxy provides it)."""

    def stats_all(self) -> dict[str, dict[str, Any]]: ...


class ProxyCollector(Collector):
    """Per-app HTTP metrics from `Proxy.stats_all()`, converted when Prometheus scrapes."""

    def __init__(self, source: StatsSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        stats = self.source.stats_all()
        requests = CounterMetricFamily(
            f"{NAMESPACE}_http_requests", "Requests the proxy answered, by app and status class.",
            labels=["app", "code"],
        )
        inflight = GaugeMetricFamily(
            f"{NAMESPACE}_http_requests_in_flight", "Requests being proxied now, by app.",
            labels=["app"],
        )
        latency = HistogramMetricFamily(
            f"{NAMESPACE}_http_request_duration_seconds",
            "Time from the request head to the end of the response, by app.",
            labels=["app"],
        )
        for app, s in sorted(stats.items()):
            classes: Mapping[str, int] = s.get("status") or {}
            for code, count in classes.items():
                requests.add_metric([app, code], count)
            other = int(s.get("requests", 0)) - sum(classes.values())
            if other > 0:
                requests.add_metric([app, "other"], other)
            inflight.add_metric([app], s.get("inflight", 0))
            latency.add_metric([app], _cumulative(s.get("latency_buckets") or {}),
                               sum_value=float(s.get("latency_sum", 0.0)))
        yield requests
        yield inflight
        yield latency
        per_release = getattr(self.source, "release_stats_all", None)
        if per_release is not None:
            yield from _by_release(per_release())


def _by_release(stats: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> Iterator[Metric]:
    """The proxy's counters per release of each app (`Proxy.release_stats_all()`), for every
    deploy: a dashboard can draw the old release against the new one while both serve."""
    requests = CounterMetricFamily(
        f"{NAMESPACE}_release_http_requests", "Requests the proxy answered, by app, release and status class.",
        labels=["app", "release", "code"],
    )
    failures = CounterMetricFamily(
        f"{NAMESPACE}_release_upstream_failures",
        "Upstream connections refused, reset or timed out (retried or not), by app and release.",
        labels=["app", "release"],
    )
    latency = HistogramMetricFamily(
        f"{NAMESPACE}_release_http_request_duration_seconds",
        "Time from the request head to the end of the response, by app and release.",
        labels=["app", "release"],
    )
    for app, releases in sorted(stats.items()):
        for release, s in sorted(releases.items()):
            for code, count in (s.get("status") or {}).items():
                requests.add_metric([app, release, code], count)
            failures.add_metric([app, release], s.get("failures", 0))
            latency.add_metric([app, release], _cumulative(s.get("latency_buckets") or {}),
                               sum_value=float(s.get("latency_sum", 0.0)))
    yield requests
    yield failures
    yield latency


def _cumulative(buckets: Mapping[str, int]) -> list[tuple[str, float]]:
    """The proxy counts per bucket; Prometheus wants running totals, ending with +Inf."""
    total = 0
    out = []
    for bound, count in buckets.items():
        total += count
        out.append((bound, float(total)))
    if not out or out[-1][0] != "+Inf":
        out.append(("+Inf", float(total)))
    return out


class _Process(Protocol):
    @property
    def process(self) -> str: ...


class _Serving(Protocol):
    @property
    def release(self) -> int: ...

    @property
    def containers(self) -> Sequence[_Process]: ...


class ServingSource(Protocol):
    """What the supervisor collector needs (deploy.Supervisor provides it)."""

    @property
    def serving(self) -> Mapping[str, _Serving]: ...


class SupervisorCollector(Collector):
    """What serves: release and container counts per app, and the daemon's start time."""

    def __init__(self, sup: ServingSource, started: float) -> None:
        self.sup = sup
        self.started = started

    def collect(self) -> Iterator[Metric]:
        start = GaugeMetricFamily(f"{NAMESPACE}_start_time_seconds",
                                  "When the daemon started, in seconds since the epoch.")
        start.add_metric([], self.started)
        yield start
        release = GaugeMetricFamily(f"{NAMESPACE}_app_release",
                                    "The release number serving each app.", labels=["app"])
        containers = GaugeMetricFamily(
            f"{NAMESPACE}_app_containers",
            "Containers of each app's serving release, by process type.", labels=["app", "process"],
        )
        for app, serving in sorted(self.sup.serving.items()):
            release.add_metric([app], serving.release)
            counts: dict[str, int] = {}
            for c in serving.containers:
                counts[c.process] = counts.get(c.process, 0) + 1
            for process, n in sorted(counts.items()):
                containers.add_metric([app, process], n)
        yield release
        yield containers


class _Registry(Collector):
    """The event metrics, re-yielded into a per-scrape registry."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def render(
    sup: ServingSource | None = None, proxy: StatsSource | None = None, started: float | None = None
) -> bytes:
    """The text exposition of every metric: events, plus live values of what is given."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Registry())
    if sup is not None:
        scrape.register(SupervisorCollector(sup, started if started is not None else _STARTED))
    if proxy is not None:
        scrape.register(ProxyCollector(proxy))
    return generate_latest(scrape)


_STARTED = time.time()

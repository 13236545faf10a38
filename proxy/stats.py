"""Per-app counters and the optional JSON access log."""

from __future__ import annotations

import logging
from bisect import bisect_left
from typing import Any

access_log = logging.getLogger("dockyard.proxy.access")

# Upper bounds in seconds of the latency histogram; a last bucket takes the rest ("+Inf").
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class Counters:
    """Responses by status class and a latency histogram; they only grow. Per app (AppStats)
    and per release of an app (rollout.ReleaseStats)."""

    __slots__ = ("requests", "classes", "buckets", "latency_sum")

    def __init__(self) -> None:
        self.requests = 0
        self.classes = [0, 0, 0, 0, 0]
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0

    def record(self, status: int, seconds: float) -> None:
        self.requests += 1
        idx = status // 100 - 1
        if 0 <= idx < 5:
            self.classes[idx] += 1
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def snapshot(self) -> dict[str, Any]:
        bounds = [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
        return {
            "requests": self.requests,
            "status": dict(zip(STATUS_CLASSES, self.classes, strict=True)),
            "latency_buckets": dict(zip(bounds, self.buckets, strict=True)),
            "latency_sum": self.latency_sum,
        }


class AppStats(Counters):
    """Counters of one app, and its requests in flight (which move up and down)."""

    __slots__ = ("inflight",)

    def __init__(self) -> None:
        super().__init__()
        self.inflight = 0

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "inflight": self.inflight}


def log_access(
    *,
    app: str | None,
    method: bytes,
    host: str,
    path: bytes,
    status: int,
    seconds: float,
    target: str | None,
    client: str,
    request_id: bytes | None,
    sent: int,
) -> None:
    import orjson  # only where access logs are on (off by default): a worker's memory (issue #19)

    line = orjson.dumps(
        {
            "app": app,
            "method": method.decode("latin-1"),
            "host": host,
            "path": path.decode("latin-1"),
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "target": target,
            "client": client,
            "request_id": request_id.decode("latin-1") if request_id else None,
            "bytes_sent": sent,
        }
    )
    access_log.info(line.decode())

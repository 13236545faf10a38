"""Choosing a target for a request: round robin or least in-flight, skipping draining targets."""

from __future__ import annotations

from collections.abc import Collection

from .inflight import InflightTracker
from .routes import Service


class Balancer:
    """Per-app round-robin positions; the Service itself stays immutable."""

    def __init__(self, tracker: InflightTracker) -> None:
        self._tracker = tracker
        self._next: dict[str, int] = {}

    def forget(self, app: str) -> None:
        self._next.pop(app, None)

    def pick(self, service: Service, exclude: Collection[str] = ()) -> str | None:
        """Return a target, or None when every target is draining (or excluded and alone)."""
        targets = service.targets
        n = len(targets)
        if n == 0:
            return None
        tracker = self._tracker
        start = self._next.get(service.app, 0)
        if service.balance == "least_inflight":
            best: str | None = None
            best_count = 0
            for i in range(n):
                t = targets[(start + i) % n]
                if t in exclude or tracker.is_draining(t):
                    continue
                c = tracker.count(t)
                if best is None or c < best_count:
                    best, best_count = t, c
            self._next[service.app] = (start + 1) % n
            return best
        for i in range(n):
            t = targets[(start + i) % n]
            if t in exclude or tracker.is_draining(t):
                continue
            self._next[service.app] = (start + i + 1) % n
            return t
        return None

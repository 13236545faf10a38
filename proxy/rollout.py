"""Rollouts: which release a request goes to, and counters per release.

A Service may carry a `Rollout` (routes.py): its targets split by release. Without a canary
every request goes to the serving release and is only counted under it. During a canary a
request goes to the release its cookie names (`dockyard-rollout-<app>=<release>`) when that
release is still routed; otherwise a weighted random draw decides (`percent` to the canary),
and the response sets the cookie, so a client stays on the release it got. The draw is not by
client address: many users share one address behind NAT or a CDN.

The counters per (app, release) let the supervisor compare a canary with the serving release
on the same live traffic (supervisor/deploy/canary.py) and label Prometheus metrics.
"""

from __future__ import annotations

from typing import Any

from .routes import Rollout, Service
from .stats import Counters

COOKIE_PREFIX = "dockyard-rollout-"
RELEASES_KEPT = 6  # per app: counters of older releases are dropped (see Rollouts.keep)


def cookie_name(app: str) -> str:
    return COOKIE_PREFIX + app


def set_cookie_line(app: str, release: str) -> bytes:
    """The response header that keeps a client on `release` (a session cookie)."""
    return b"Set-Cookie: %s=%s; Path=/; HttpOnly; SameSite=Lax\r\n" % (
        cookie_name(app).encode("latin-1"), release.encode("latin-1"))


def cookie_value(lines: list[bytes], name: bytes) -> bytes | None:
    """The value of cookie `name` among the request's header lines (`Cookie: a=1; b=2`)."""
    for line in lines:
        if line[:7].lower() != b"cookie:":
            continue
        for part in line[7:].split(b";"):
            key, sep, value = part.strip().partition(b"=")
            if sep and key == name:
                return value.strip().strip(b'"')
    return None


class ReleaseStats(Counters):
    """Counters of one release of one app, and its upstream failures (a refused, reset or
    timed-out connection, even when a retry saved the request)."""

    __slots__ = ("failures",)

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "failures": self.failures}


class Rollouts:
    """One proxy's draw (a seedable RNG, for tests) and its counters per (app, release)."""

    def __init__(self) -> None:
        self.rng: Any = None  # a random.Random, made by the first canary draw (see `draw`)
        self.stats: dict[str, dict[str, ReleaseStats]] = {}

    def seed(self, seed: int) -> None:
        self.generator().seed(seed)

    def draw(self) -> float:
        """A number in [0, 1) for the weighted draw."""
        return float(self.generator().random())

    def generator(self) -> Any:
        """`random` loads with the first canary: ~0.2 MB that a proxy worker without one does
        not hold (issue #19's memory goal)."""
        if self.rng is None:
            import random

            self.rng = random.Random()
        return self.rng

    def counters(self, app: str, release: str) -> ReleaseStats:
        per_app = self.stats.get(app)
        if per_app is None:
            per_app = self.stats[app] = {}
        found = per_app.get(release)
        if found is None:
            found = per_app[release] = ReleaseStats()
        return found

    def keep(self, app: str, rollout: Rollout | None) -> None:
        """A new table for `app`: count its releases from now, drop the oldest beyond
        RELEASES_KEPT (the ones routed now are never dropped)."""
        if rollout is None:
            return
        self.counters(app, rollout.release)
        if rollout.canary_release:
            self.counters(app, rollout.canary_release)
        per_app = self.stats[app]
        routed = (rollout.release, rollout.canary_release)
        for release in list(per_app)[: max(0, len(per_app) - RELEASES_KEPT)]:
            if release not in routed:
                del per_app[release]

    def forget(self, app: str) -> None:
        self.stats.pop(app, None)

    def snapshot(self, app: str) -> dict[str, dict[str, Any]]:
        return {release: s.snapshot() for release, s in self.stats.get(app, {}).items()}

    def snapshot_all(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {app: self.snapshot(app) for app in self.stats}

    def choose(self, app: str, rollout: Rollout, lines: list[bytes], chosen: str) -> tuple[Service, str, bytes]:
        """(the Service narrowed to one release's targets, that release, a Set-Cookie line or b"").

        `chosen`: the release this request was already given (a retry, the slow path after
        the fast one): it keeps it while that release is routed."""
        canary = rollout.canary
        if canary is None:
            return rollout.stable, rollout.release, b""
        if chosen:
            if chosen == rollout.canary_release:
                return canary, chosen, b""
            return rollout.stable, rollout.release, b""
        wanted = cookie_value(lines, cookie_name(app).encode("latin-1"))
        if wanted is not None:
            if wanted == rollout.canary_release.encode("latin-1"):
                return canary, rollout.canary_release, b""
            if wanted == rollout.release.encode("latin-1"):
                return rollout.stable, rollout.release, b""
        if self.draw() * 100.0 < rollout.percent:
            return canary, rollout.canary_release, set_cookie_line(app, rollout.canary_release)
        return rollout.stable, rollout.release, set_cookie_line(app, rollout.release)

"""The canary phase of a deploy: a share of the traffic, a comparison, then promote or roll back.

deploy/flow.py calls `watch()` after the new release has started, passed its checks and been
warmed, in place of the immediate swap. The proxy routes `percent` of new clients to the new
release (sticky by cookie, proxy/rollout.py) and counts each release apart; every tick this
module compares the two on the traffic since the canary began (`judge`, the rules of
docs/canary.md). A rule broken with enough requests rolls back at once; at the end of the window
the canary is promoted (flow.py does the full swap, drain and retire as for any deploy).
`dockyard canary promote|abort APP` decides early (deploy/board.py). The canary holds the app's
operation lock throughout (flow.py took it), and its state is in SQLite: a daemon that stops
or dies mid-canary rolls it back when it starts again (`recover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from supervisor.deploy.context import Context
from supervisor.deploy.fleet import targets_of
from supervisor.deploy.report import DeployReport
from supervisor.model import defaults
from supervisor.model.spec import AppSpec, CanarySpec
from supervisor.ops import metrics
from supervisor.runtime.protocol import ContainerInfo

log = logging.getLogger("dockyard.supervisor")
TICK = 0.25  # seconds between two comparisons
Verdict = Literal["wait", "promote", "rollback"]


@dataclass(frozen=True, slots=True)
class Figures:
    """One release's traffic since the canary began."""

    requests: int = 0
    errors: int = 0  # 5xx responses (the app's, or the proxy's 502/503/504 for it)
    failures: int = 0  # upstream connections refused, reset or timed out (even if retried)
    p95: float | None = None  # seconds, from the proxy's latency histogram
    p99: float | None = None

    @property
    def error_rate(self) -> float:
        return min(1.0, (self.errors + self.failures) / self.requests) if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "failures": self.failures,
                "error_rate": round(self.error_rate, 4),
                "p95_ms": _ms(self.p95), "p99_ms": _ms(self.p99)}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def figures(now: Mapping[str, Any] | None, base: Mapping[str, Any] | None) -> Figures:
    """The counters of `now` minus those of `base` (snapshots of Proxy.release_stats)."""
    if not now:
        return Figures()
    base = base or {}
    status, base_status = now.get("status") or {}, base.get("status") or {}
    buckets, base_buckets = now.get("latency_buckets") or {}, base.get("latency_buckets") or {}
    counts = [(bound, int(n) - int(base_buckets.get(bound, 0))) for bound, n in buckets.items()]
    return Figures(
        requests=int(now.get("requests", 0)) - int(base.get("requests", 0)),
        errors=int(status.get("5xx", 0)) - int(base_status.get("5xx", 0)),
        failures=int(now.get("failures", 0)) - int(base.get("failures", 0)),
        p95=percentile(counts, 0.95),
        p99=percentile(counts, 0.99),
    )


def percentile(counts: list[tuple[str, int]], q: float) -> float | None:
    """The q-quantile of a histogram given as (upper bound, count) pairs, "+Inf" last,
    interpolated linearly inside its bucket (the +Inf bucket answers its lower bound)."""
    total = sum(n for _, n in counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    lower = 0.0
    for bound, n in counts:
        upper = lower if bound == "+Inf" else float(bound)
        if n > 0 and seen + n >= rank:
            return lower + (upper - lower) * (rank - seen) / n
        seen += n
        lower = upper
    return lower


def judge(old: Figures, new: Figures, spec: CanarySpec, *, final: bool) -> tuple[Verdict, str]:
    """The rules (docs/canary.md): roll back when, with at least `min_requests` on the canary,
    its error rate exceeds the serving release's by more than `max_error_rate`, or (with as many
    on the serving release too) its p99 is more than `max_latency_ratio` times the serving
    release's and slower by more than CANARY_LATENCY_SLACK. Otherwise wait; at the end of the
    window promote (with too few requests to judge too: nothing speaks against it)."""
    if new.requests >= spec.min_requests:
        excess = new.error_rate - old.error_rate
        if excess > spec.max_error_rate:
            return "rollback", (
                f"error rate {new.error_rate:.1%} against {old.error_rate:.1%} on the serving release "
                f"(+{excess * 100:.1f} points, max +{spec.max_error_rate * 100:g})")
        if old.requests >= spec.min_requests and new.p99 is not None and old.p99 is not None:
            ratio = new.p99 / max(old.p99, 1e-6)
            if ratio > spec.max_latency_ratio and new.p99 - old.p99 > defaults.CANARY_LATENCY_SLACK:
                return "rollback", (
                    f"p99 {new.p99 * 1000:.1f} ms against {old.p99 * 1000:.1f} ms on the serving release "
                    f"({ratio:.2f}x, max {spec.max_latency_ratio:g}x)")
    if not final:
        return "wait", ""
    if new.requests < spec.min_requests:
        return "promote", f"window over; only {new.requests} requests on the canary (< {spec.min_requests}): nothing against it"
    return "promote", "window over; not worse than the serving release"


def spec_dict(spec: CanarySpec) -> dict[str, Any]:
    data = dataclasses.asdict(spec)
    data["for"] = data.pop("window")
    return data


async def watch(ctx: Context, app: AppSpec, report: DeployReport, release: int,
                new: list[ContainerInfo], spec: CanarySpec) -> bool:
    """Route the canary, compare, decide. True: promote (the caller swaps as for any deploy).
    False: rolled back (the release is failed with the figures that decided, its containers
    drained and removed, a `failed` event sent)."""
    serving = ctx.fleet.get(app.name)
    if serving is None or not app.hosts or not targets_of(app, new):
        report.emit("canary", status="skipped", reason="no serving release or no web targets to compare with")
        return True
    routes = ctx.fleet.routes
    old_name, new_name = str(serving.release), str(release)
    base = routes.release_stats(app.name)
    ctx.state.begin_canary(app.name, release, serving.release, spec_dict(spec))
    decision = ctx.canaries.open(app.name)
    ctx.fleet.start_canary(app, release, new, spec.percent)
    await routes.settled()  # the window starts when every proxy worker routes the share
    log.info("canary app=%s release=%d serving=%d percent=%g for=%g", app.name, release, serving.release,
             spec.percent, spec.window)
    report.emit("canary", status="start", serving=serving.release, percent=spec.percent, seconds=spec.window,
                targets=targets_of(app, new))
    started = time.monotonic()
    every = min(defaults.CANARY_REPORT_EVERY, max(1.0, spec.window / 5))
    next_line = started + every
    verdict: Verdict = "wait"
    reason = ""
    old = fresh = Figures()
    try:
        async with report.step("canary"):
            while verdict == "wait":
                await asyncio.wait([decision], timeout=TICK)
                now = routes.release_stats(app.name)
                old = figures(now.get(old_name), base.get(old_name))
                fresh = figures(now.get(new_name), base.get(new_name))
                elapsed = time.monotonic() - started
                if decision.done() and not decision.cancelled():
                    by_hand = decision.result()
                    verdict = "promote" if by_hand == "promote" else "rollback"
                    reason = f"{'promoted' if by_hand == 'promote' else 'aborted'} by hand"
                else:
                    verdict, reason = judge(old, fresh, spec, final=elapsed >= spec.window)
                    gone = await _still_running(ctx, new) if verdict == "promote" else ""
                    if gone:
                        verdict, reason = "rollback", gone
                line = _line(serving.release, release, old, fresh, elapsed, spec)
                ctx.canaries.live[app.name] = line
                if time.monotonic() >= next_line or verdict != "wait":
                    next_line += every
                    ctx.state.canary_figures(app.name, release, line)
                    report.emit("canary", status="compare", **line)
    except asyncio.CancelledError:  # e.g. the daemon's loop ending: what is left, `recover` finishes
        try:
            await _roll_back(ctx, app, report, release, new, "interrupted: the deploy was cancelled during the canary",
                             started, old, fresh)
        except Exception as exc:  # noqa: BLE001 - the state may be closed already; recover() redoes it
            log.warning("canary rollback on cancel incomplete app=%s release=%d error=%r", app.name, release, exc)
        raise
    finally:
        ctx.canaries.close(app.name)
    figures_now = {"serving": old.as_dict(), "canary": fresh.as_dict()}
    if verdict == "promote":
        ctx.state.end_canary(app.name, release, "promoted", reason)
        log.info("canary promoted app=%s release=%d reason=%s", app.name, release, reason)
        report.emit("canary", status="promote", reason=reason, **figures_now)
        return True
    await _roll_back(ctx, app, report, release, new, f"canary rolled back: {reason}", started, old, fresh)
    return False


def _line(serving: int, release: int, old: Figures, new: Figures, elapsed: float, spec: CanarySpec) -> dict[str, Any]:
    return {"release": release, "serving_release": serving, "percent": spec.percent,
            "elapsed": round(elapsed, 1), "for": spec.window, "serving": old.as_dict(), "canary": new.as_dict()}


async def _still_running(ctx: Context, new: list[ContainerInfo]) -> str:
    """Before a promote: "" when every canary container still runs, else why not."""
    for info in new:
        found = await ctx.runtime.inspect(info.id)
        if found is None or not found.running:
            return f"container {info.name} is not running any more"
    return ""


async def _roll_back(ctx: Context, app: AppSpec, report: DeployReport, release: int, new: list[ContainerInfo],
                     reason: str, started: float, old: Figures, fresh: Figures) -> None:
    """The canary's share back to the serving release (one assignment), the release failed with
    the figures, its containers drained (in-flight requests finish) and removed."""
    detail = (f"{reason} [canary: {fresh.requests} requests, {fresh.error_rate:.1%} errors, "
              f"p99 {_ms(fresh.p99)} ms; serving: {old.requests} requests, {old.error_rate:.1%} errors, "
              f"p99 {_ms(old.p99)} ms]")
    ctx.fleet.end_canary(app)
    ctx.state.end_canary(app.name, release, "rolled_back", detail)
    ctx.state.fail(app.name, release, detail, report.steps)
    await ctx.fleet.routes.settled()  # no worker sends a new client to the canary any more
    ctx.retire(app, new, retire_after=0)
    report.reason = detail
    seconds = round(time.monotonic() - started, 3)
    metrics.deploy_finished(app.name, False, seconds, "deploy")
    log.warning("canary rolled back app=%s release=%d reason=%s", app.name, release, detail)
    report.emit("canary", status="rollback", reason=reason, serving=old.as_dict(), canary=fresh.as_dict())
    report.emit("failed", reason=detail, seconds=seconds)


def recover(ctx: Context) -> list[dict[str, Any]]:
    """Daemon start: a canary that was running when the daemon stopped is rolled back (its
    release failed; adoption then removes its containers, which the new route table never
    had). The serving release never stopped serving, and the window's figures are gone with
    the old proxy, so going on could only guess."""
    found = ctx.state.canaries(running=True)
    for row in found:
        reason = "canary rolled back: the daemon stopped during its window"
        release = ctx.state.release(row["app"], row["number"])
        with contextlib.suppress(Exception):
            ctx.state.end_canary(row["app"], row["number"], "rolled_back", reason)
        if release is not None and release.status == "pending":
            ctx.state.fail(row["app"], row["number"], reason, release.steps)
        log.warning("canary rolled back at start app=%s release=%d", row["app"], row["number"])
    return found

"""The deploy flow, top-down: predeploy, start, check, warm, swap, retire, postdeploy.

Read `deploy()` from top to bottom: everything before the swap can fail, and any failure there
(a check, a container that vanished, a timeout, a bug) leaves the old release serving, removes
the new containers and marks the release failed with a reason and a final event on the stream.
The swap is one synchronous route-table assignment (deploy/fleet.py); between the last passing
check and it only the proxy's connections to the new containers are opened (warm) and the
release is committed to SQLite with the old containers' retire timers (so a failed write
changes nothing, and a crash after the swap does not flip back); everything after it is
cleanup.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import Literal

from supervisor.config.registries import credentials, registry_of
from supervisor.deploy import canary as canaries
from supervisor.deploy.checks import CheckContext, check_host, run_checks
from supervisor.deploy.context import Context
from supervisor.deploy.prune import prune
from supervisor.deploy.report import DeployReport, Progress, snapshot
from supervisor.model.errors import DeployError, DockyardError, RuntimeFailure
from supervisor.model.release import ReleaseKind, RepoFiles
from supervisor.model.spec import AppSpec, CanarySpec
from supervisor.ops import metrics
from supervisor.ops.faults import kill_point
from supervisor.runtime.containers import oneoff_spec, process_spec, scales
from supervisor.runtime.protocol import ContainerInfo

log = logging.getLogger("dockyard.supervisor")
Files = RepoFiles | None | Literal["current"]


async def deploy(
    ctx: Context,
    app: AppSpec,
    image: str,
    *,
    kind: ReleaseKind = "deploy",
    progress: Progress | None = None,
    repo: Files = "current",
    canary: CanarySpec | None = None,
) -> DeployReport:
    """Deploy `image` as a new release of `app` with zero downtime, or fail leaving the old one.

    `repo`: the Procfile/app.json texts `app` was merged with (a build, a rollback), kept with
    the release; "current": those of the serving release go on (restart, deploy --image).
    `canary`: watch the new release on a share of the traffic before the swap (deploy/canary.py).
    Refused at once (DeployInProgress) while another operation of the app runs."""
    with ctx.locks.hold(app.name, kind):
        return await deploy_holding_lock(ctx, app, image, kind=kind, progress=progress, repo=repo,
                                         canary=canary)


async def deploy_holding_lock(
    ctx: Context,
    app: AppSpec,
    image: str,
    *,
    kind: ReleaseKind = "deploy",
    progress: Progress | None = None,
    repo: Files = "current",
    canary: CanarySpec | None = None,
) -> DeployReport:
    """`deploy()` for a caller that holds the app's operation lock already (a build)."""
    files = ctx.apps.repo(app.name) if repo == "current" else repo
    app = ctx.apps.with_env(app)  # the env file read now, the overlay's latest values
    env_problem = ctx.apps.env_problem(app.name)
    report = DeployReport(app.name, image=image, progress=progress, events=ctx.events)
    try:
        release = ctx.state.begin_release(app.name, image, snapshot(app), kind)
        report.release = release.number
        if files is not None:
            ctx.state.set_repo_files(app.name, release.number, files)
    except sqlite3.Error as exc:  # disk full: refused before anything started
        raise DeployError(f"could not record the release, nothing changed: {exc}") from exc
    log.info("deploying app=%s release=%d image=%s kind=%s", app.name, release.number, image, kind)
    report.emit("deploying", image=image, kind=kind)
    started = time.monotonic()
    new: list[ContainerInfo] = []
    try:
        async with asyncio.timeout(app.deploy_timeout):
            if env_problem:
                raise DeployError(env_problem)
            if app.pull == "always" or not await ctx.runtime.image_exists(image):
                async with report.step("pull"):
                    await pull(ctx, app, image, report)
            if app.predeploy:
                async with report.step("predeploy"):
                    await run_script(ctx, app, image, release.number, "predeploy", app.predeploy)
            async with report.step("start"):
                await _start_all(ctx, app, image, release.number, new)
            async with report.step("checks"):
                await check_all(ctx, app, new)
            await ctx.fleet.warm(app, new)  # pooled connections, so the switch does not wait
    except asyncio.CancelledError:
        await _fail(ctx, report, new, "interrupted: the deploy was cancelled", started, kind)
        raise
    except Exception as exc:  # every failure before the swap: the old release keeps serving
        await _fail(ctx, report, new, _reason(app, exc), started, kind)
        return report

    if canary is not None and not await canaries.watch(ctx, app, report, release.number, new, canary):
        return report  # rolled back: the old release serves all traffic again
    # Commit, then swap: the release and the old containers' retire timers are in SQLite
    # before traffic moves, so a failed write (disk full) leaves the old release serving and a
    # crash after the swap never flips back at the next start (deploy/adopt.py).
    serving = ctx.fleet.get(app.name)
    old = list(serving.containers) if serving else []
    timers = ctx.retire_timers(app, old)
    previous = ctx.state.current(app.name)
    report.steps.append({"step": "swap", "seconds": 0.0, "ok": True})
    try:
        ctx.state.activate(app.name, release.number, report.steps, list(timers.items()))
    except Exception as exc:  # sqlite3.OperationalError "database or disk is full", ...
        report.steps.pop()
        ctx.fleet.end_canary(app)  # a promoted canary's share goes back before its containers go
        await _fail(ctx, report, new, f"could not record the release, nothing changed: {exc}",
                    started, kind)
        return report
    kill_point("after-commit")
    try:  # The swap: one synchronous route-table assignment, nothing awaited before it.
        ctx.fleet.swap(app, release.number, new)
    except Exception as exc:  # the proxy refused the routes: back to the previous release
        report.steps.pop()
        _undo(ctx, app.name, release.number, previous.number if previous else None, timers)
        ctx.fleet.end_canary(app)
        await _fail(ctx, report, new, _reason(app, exc), started, kind)
        return report
    kill_point("after-swap")
    slowest = await ctx.fleet.routes.settled()  # every proxy worker serves the new table
    report.steps[-1].update(seconds=slowest, slowest_ack=slowest)
    ctx.apps.settle_repo(app.name, files)
    report.emit("step", step="swap", status="done", targets=ctx.fleet.targets(app))

    if old:
        ctx.retire(app, old, timers=timers)
    if app.postdeploy:
        try:
            async with report.step("postdeploy"):
                await run_script(ctx, app, image, release.number, "postdeploy", app.postdeploy)
        except DockyardError as exc:
            report.warnings.append(f"postdeploy failed: {exc}")
    await prune(ctx, app)  # retention: releases and images older than keep_releases
    report.ok = True
    seconds = round(time.monotonic() - started, 3)
    metrics.deploy_finished(app.name, True, seconds, kind)
    log.info("deployed app=%s release=%d duration=%.3f", app.name, release.number, seconds)
    report.emit("deployed", seconds=seconds, warnings=report.warnings)
    return report


async def pull(ctx: Context, app: AppSpec, image: str, report: DeployReport) -> None:
    """Pull `image` from its registry, with `[registries."HOST"]` credentials when the config
    has them (else the engine client's `docker login` store); DeployError names the registry's
    answer."""
    host = registry_of(image)
    login = ctx.apps.config.registries.get(host)
    auth = credentials(login) if login else None
    try:
        await ctx.runtime.pull(image, auth, lambda event: report.emit("pull", image=image, **event))
    except RuntimeFailure as exc:
        what = f"pulling {image!r}" if app.pull == "always" else \
            f"image {image!r} not found locally; pulling it"
        raise DeployError(f"{what} from {host} failed: {exc}") from exc


def _reason(app: AppSpec, exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return f"deploy timed out after {app.deploy_timeout:g}s"
    if isinstance(exc, DockyardError | OSError):
        return str(exc) or exc.__class__.__name__
    log.error("deploy failed unexpectedly app=%s error=%r", app.name, exc, exc_info=exc)
    return f"internal error: {exc.__class__.__name__}: {exc}"


def _undo(ctx: Context, app: str, release: int, previous: int | None,
          timers: dict[str, float]) -> None:
    try:
        ctx.state.undo_activate(app, release, previous, list(timers))
    except Exception as exc:  # the next start finds the new release active and no containers
        log.error("could not undo the activation app=%s release=%d error=%r", app, release, exc)


async def _fail(ctx: Context, report: DeployReport, new: list[ContainerInfo], reason: str,
                started: float, kind: ReleaseKind) -> None:
    """Before the swap: record the failure first (a crash then leaves no pending release),
    then remove the new containers, then tell the stream. When even that write fails (disk
    full), the release stays pending: the next daemon start marks it failed."""
    try:
        ctx.state.fail(report.app, report.release, reason, report.steps)
    except Exception as exc:
        log.error("could not record the failed release app=%s release=%d error=%r",
                  report.app, report.release, exc)
    report.reason = reason
    metrics.deploy_finished(report.app, False, time.monotonic() - started, kind)
    log.warning("deploy failed app=%s release=%d reason=%s", report.app, report.release, reason)
    try:
        await discard(ctx, new)
    finally:
        report.emit("failed", reason=reason, seconds=round(time.monotonic() - started, 3))


async def run_script(ctx: Context, app: AppSpec, image: str, release: int, role: str, cmd: str) -> None:
    """predeploy / postdeploy in a one-off container; DeployError unless it exits 0."""
    spec = oneoff_spec(
        app, image=image, instance=ctx.instance, release=release, role=role, command=cmd,
        suffix=f"r{release}.{int(time.time() * 1000) % 100000}",
    )
    result = await ctx.runtime.run_oneoff(spec, app.deploy_timeout)
    for line in result.output.splitlines()[-20:]:  # debug: the output may hold secrets
        log.debug("%s app=%s: %s", role, app.name, line)
    if result.timed_out:
        raise DeployError(f"{role} command timed out")
    if result.exit_code != 0:
        tail = result.output.strip().splitlines()[-3:]
        raise DeployError(f"{role} command exited {result.exit_code}: {' | '.join(tail)}")


async def _start_all(
    ctx: Context, app: AppSpec, image: str, release: int, started: list[ContainerInfo]
) -> None:
    """Start every process type at its scale, one group per type (a Swarm service, or that
    many containers); `started` collects them even on failure."""
    counts = scales(app, ctx.state.scale(app.name))

    async def group_of(process: str, count: int) -> None:
        specs = [process_spec(app, image=image, instance=ctx.instance, release=release,
                              process=process, index=index) for index in range(1, count + 1)]
        # cancelled (a deploy timeout), the runtime removes what it started, now or later
        started.extend(await ctx.runtime.run_group(specs))

    try:
        async with asyncio.TaskGroup() as group:
            for process, count in counts.items():
                if count > 0:
                    group.create_task(group_of(process, count))
    except* Exception as eg:  # the first failure, as itself (not a group)
        raise eg.exceptions[0] from None


async def check_all(ctx: Context, app: AppSpec, containers: list[ContainerInfo]) -> None:
    """Startup (and readiness) checks on every new container, in parallel; first failure wins."""
    host = check_host(app)

    async def one(info: ContainerInfo) -> None:
        checks = app.checks_for(info.process, "startup") + app.checks_for(info.process, "readiness")
        check_ctx = CheckContext(info, app.port, host, app.network)
        result = await run_checks(ctx.runtime, check_ctx, checks, app.default_checks_wait)
        if not result.ok:
            metrics.check_failed(app.name, result.name, info.process, "startup")
            raise DeployError(f"check {result.name!r} failed on {info.name}: {result.error}")

    try:
        async with asyncio.TaskGroup() as group:
            for info in containers:
                group.create_task(one(info))
    except* Exception as eg:
        raise eg.exceptions[0] from None


async def discard(ctx: Context, containers: list[ContainerInfo]) -> None:
    """Remove containers that never served (a failed deploy or scale)."""
    await asyncio.gather(*(ctx.runtime.remove(c.id) for c in containers), return_exceptions=True)

"""Daemon start: adopt the containers that already run, and start the apps that do not.

Docker labels are the truth about which containers exist, SQLite about which release serves.
Adoption rebuilds the fleet from both without touching a container that serves: a restarted
daemon (or a `--takeover`) keeps every app up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from supervisor.deploy.canary import recover
from supervisor.deploy.checks import CheckContext, attempt_verdict, check_host
from supervisor.deploy.context import Context
from supervisor.deploy.flow import deploy
from supervisor.deploy.report import Progress
from supervisor.model import defaults
from supervisor.model.errors import DeployError
from supervisor.model.spec import AppSpec
from supervisor.runtime.protocol import ContainerInfo

log = logging.getLogger("dockyard.supervisor")


async def adopt(ctx: Context) -> None:
    """Adopt running containers by label; clean what a crash left behind."""
    recover(ctx)  # a canary cut short by the stop: rolled back (its containers are orphans below)
    for rel in ctx.state.fail_pending("interrupted: the daemon stopped during the deploy"):
        log.warning("interrupted deploy app=%s release=%d rolled back", rel.app, rel.number)
    retiring = {cid: (app, stop_at) for cid, app, stop_at in ctx.state.retiring()}
    found = await ctx.runtime.list({defaults.LABEL_INSTANCE: ctx.instance})
    by_app: dict[str, list[ContainerInfo]] = {}
    for info in found:
        if info.labels.get(defaults.LABEL_ROLE) != "app":
            if info.labels.get(defaults.LABEL_ROLE) == "oneoff" and not info.running:
                await ctx.runtime.remove(info.id)
            continue
        by_app.setdefault(info.app, []).append(info)
    for app_name, infos in by_app.items():
        current = ctx.state.current(app_name)
        app = ctx.apps.config.apps.get(app_name)
        # containers on their way out (scaled down, stopped) may be of the current release too
        keep = [c for c in infos
                if current and c.release == current.number and c.id not in retiring]
        keep_ids = {c.id for c in keep}
        for info in infos:
            if info.id in keep_ids:
                continue
            if info.id in retiring:
                _, stop_at = retiring.pop(info.id)
                ctx.retirer.resume(app_name, info.id, stop_at, app.stop_timeout if app else 10)
            else:
                log.info("removing orphan container=%s app=%s", info.name, app_name)
                await ctx.runtime.remove(info.id)
        if current and keep and app is not None:
            down = await _not_ready(ctx, app, keep)
            ctx.fleet.adopt(app, current.number, keep, down)
            log.info("adopted app=%s release=%d containers=%d", app_name, current.number, len(keep))
    for cid in retiring:  # containers already gone
        ctx.state.done_retiring(cid)


async def _not_ready(ctx: Context, app: AppSpec, containers: list[ContainerInfo]) -> list[str]:
    """The adopted containers that start out of rotation: not running, or failing one quick
    attempt of their checks. The watcher restarts or re-checks them (deploy/watch.py).

    An attempt that only times out keeps the container in rotation: it served until the old
    daemon stopped, and on a machine busy with a takeover a 2 s probe can time out while the
    app answers its traffic; taking it out would turn a slow probe into 503s for every client
    (the watcher's regular checks, with their thresholds, still take it out if it is ill)."""
    host = check_host(app)

    async def ready(info: ContainerInfo) -> bool:
        if not info.running:
            return False
        checks = app.checks_for(info.process, "startup") + app.checks_for(info.process, "readiness")
        quick = [dataclasses.replace(c, timeout=min(c.timeout, 2.0)) for c in checks if not c.uptime]
        check_ctx = CheckContext(info, app.port, host, app.network)
        verdicts = await asyncio.gather(*(attempt_verdict(ctx.runtime, check_ctx, c) for c in quick))
        failed = [v for v in verdicts if v.outcome == "failed"]
        if failed:
            log.warning("adopted container not ready app=%s container=%s error=%s",
                        app.name, info.name, failed[0].error)
            return False
        for v in verdicts:
            if v.outcome == "timeout":
                log.warning("adopted container kept in rotation app=%s container=%s probe=%s",
                            app.name, info.name, v.error)
        return True

    results = await asyncio.gather(*(ready(c) for c in containers))
    return [c.id for c, ok in zip(containers, results, strict=True) if not ok]


async def start_apps(ctx: Context, progress: Progress | None = None) -> None:
    """Deploy every configured app that does not run yet (apps with an image)."""
    for name, app in ctx.apps.config.apps.items():
        if ctx.fleet.get(name) is not None or not app.image or ctx.state.is_stopped(name):
            continue
        try:
            report = await deploy(ctx, app, app.image, progress=progress)
        except DeployError as exc:
            log.error("start failed app=%s reason=%s", name, exc)
            continue
        if not report.ok:
            log.error("start failed app=%s reason=%s", name, report.reason)

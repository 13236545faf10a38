"""When Docker goes away and comes back: keep serving, say so, re-adopt.

The proxy never needs Docker: while the engine is unreachable (dockerd down at `serve`, or
restarted under load) every route keeps serving for as long as its containers answer, the
watcher holds its periodic checks, and `dockyard status` says `docker: unreachable`. The
`EngineMonitor` asks the engine every `period` seconds; when it answers again, `recover()`
re-adopts: the first adoption if the daemon started without Docker (then the apps that do not
run are deployed), else each serving container is inspected: one that runs keeps serving (with
its current ports), one that the engine stopped (a dockerd restart kills containers, and
dockyard creates them with restart policy "no") is started again, checked and put back, and an
app left with no container at all is redeployed on its current image.
"""

from __future__ import annotations

import asyncio
import logging

from supervisor.deploy.adopt import adopt, start_apps
from supervisor.deploy.checks import CheckContext, check_host, run_checks
from supervisor.deploy.context import Context
from supervisor.deploy.flow import deploy
from supervisor.model import defaults
from supervisor.model.spec import AppSpec
from supervisor.ops.tasks import TaskSet
from supervisor.runtime.protocol import ContainerInfo

log = logging.getLogger("dockyard.supervisor")
PERIOD = 2.0  # seconds between two questions to the engine
PING_TIMEOUT = 5.0


class EngineMonitor:
    def __init__(self, ctx: Context, *, adopted: bool = True, period: float = PERIOD) -> None:
        self.ctx = ctx
        self.adopted = adopted  # False: the daemon started without Docker, nothing adopted yet
        self._pending = not adopted  # an outage not recovered from yet
        self.period = period
        self._tasks = TaskSet(on_error=lambda exc: log.error("engine monitor failed: %r", exc))
        self.recovered = asyncio.Event()  # set after each recovery (tests wait for it)

    def start(self) -> None:
        self._tasks.spawn(self._loop())

    async def close(self) -> None:
        await self._tasks.close()

    async def check(self) -> bool:
        """Ask the engine once; on the way back from an outage, recover. True when it answers."""
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                await self.ctx.runtime.list({defaults.LABEL_INSTANCE: self.ctx.instance})
        except Exception as exc:
            self._pending = True
            if self.ctx.engine.down(f"{exc.__class__.__name__}: {exc}"):
                log.error("docker unreachable error=%s (routes keep serving)", self.ctx.engine.error)
            return False
        if self.ctx.engine.up():
            log.info("docker reachable again adopted=%s", self.adopted)
            self._pending = True
        if self._pending:
            try:
                await self.recover()
                self._pending = False
            except Exception as exc:  # gone again, or a deploy failed: the next check retries
                log.error("re-adoption failed error=%r", exc)
        return True

    async def _loop(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.period)

    async def recover(self) -> None:
        ctx = self.ctx
        if not self.adopted:
            await adopt(ctx)
            self.adopted = True
        for name, serving in ctx.fleet.serving.items():
            app = ctx.apps.config.apps.get(name)
            if app is None or ctx.locks.busy().get(name):
                continue
            results = await asyncio.gather(*(self._revive(app, c) for c in serving.containers))
            if not any(results) and not ctx.state.is_stopped(name):
                current = ctx.state.current(name)
                if current is not None:
                    log.warning("no container left app=%s: redeploying release image=%s",
                                name, current.image)
                    await deploy(ctx, app, current.image, kind="restart")
        resumed = ctx.retirer.resume_failed(stop_timeout=10.0)
        if resumed:
            log.info("retire timers resumed after the outage count=%d", resumed)
        await start_apps(ctx)
        log.info("re-adopted apps=%s", ",".join(sorted(ctx.fleet.serving)) or "-")
        self.recovered.set()

    async def _revive(self, app: AppSpec, info: ContainerInfo) -> bool:
        """One serving container after an outage; True when it serves (or can) again."""
        ctx = self.ctx
        now = await ctx.runtime.inspect(info.id)
        if now is None:
            log.warning("container gone during the outage app=%s container=%s", app.name, info.name)
            ctx.fleet.mark_down(app, info.id)
            return False
        if now.running:
            if now.ports != info.ports or ctx.fleet.is_down(info.id):
                ctx.fleet.mark_up(app, now)  # new ports (the engine restarted it) or back up
            return True
        ctx.fleet.mark_down(app, info.id)
        fresh = await ctx.runtime.start(info.id)
        if fresh is None:
            return False
        ctx.fleet.record_restart(info.id)
        checks = app.checks_for(info.process, "startup") + app.checks_for(info.process, "readiness")
        check = CheckContext(fresh, app.port, check_host(app), app.network)
        result = await run_checks(ctx.runtime, check, checks, app.default_checks_wait)
        if not result.ok:
            log.warning("restarted container failed its checks app=%s container=%s error=%s",
                        app.name, info.name, result.error)
            return False
        ctx.fleet.mark_up(app, fresh)
        log.info("restarted after the outage app=%s container=%s", app.name, info.name)
        return True

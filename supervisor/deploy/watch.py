"""Keeping apps up after the deploy: crash detection, the restart policy, periodic checks.

- Docker's event stream: a serving container that dies leaves the route table at once (one
  assignment, well under a second after the exit), and is started again per the app's
  `restart` policy with exponential backoff. It rejoins the routes only after its startup
  checks pass. dockyard applies the policy itself (containers are created with Docker's
  policy "no"), so a container stopped by `docker kill` is restarted too, and the route table
  always knows.
- Passive health (deploy/passive.py): a target the proxy could not connect to is confirmed and
  taken out of rotation at once, on every worker; the checks below put it back.
- Every `CHECK_PERIOD` seconds, each serving container's readiness and liveness checks make one
  attempt. `attempts` consecutive readiness failures take it out of rotation; one success puts
  it back. `attempts` consecutive liveness failures restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from supervisor.deploy.checks import CheckContext, attempt_once, check_host, run_checks
from supervisor.deploy.context import Context
from supervisor.deploy.passive import PassiveHealth
from supervisor.model import defaults
from supervisor.model.errors import EngineUnreachable
from supervisor.model.spec import AppSpec
from supervisor.ops import metrics
from supervisor.ops.tasks import TaskSet
from supervisor.runtime.protocol import ContainerInfo

log = logging.getLogger("dockyard.supervisor")
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0


def should_restart(policy: str, exit_code: int | None, restarts: int) -> bool:
    """Docker's restart-policy semantics: no | always | unless-stopped | on-failure[:N]."""
    name, _, limit = policy.partition(":")
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        if exit_code == 0:
            return False
        return not limit or restarts < int(limit)
    return False


def backoff(restarts: int) -> float:
    """0.5 s, 1 s, 2 s, ... capped at 30 s."""
    return float(min(BACKOFF_MAX, BACKOFF_FIRST * (2 ** restarts)))


class Watcher:
    def __init__(self, ctx: Context, period: float = defaults.CHECK_PERIOD) -> None:
        self.ctx = ctx
        self.period = period
        self._tasks = TaskSet()
        self._restarting: set[str] = set()
        self._failures: dict[tuple[str, str], int] = {}  # (container, check name) -> streak
        self.passive = PassiveHealth(ctx)

    def start(self) -> None:
        self.ctx.fleet.routes.on_target_failed(self.passive.report)
        self._spawn(self._events())
        self._spawn(self._probe_loop())
        self._recover_adopted()

    def _recover_adopted(self) -> None:
        """Containers found dead at adoption (they died while no daemon ran): the policy."""
        for name, serving in self.ctx.fleet.serving.items():
            app = self.ctx.apps.config.apps.get(name)
            for info in serving.containers:
                if app is None or not self.ctx.fleet.is_down(info.id) or info.running:
                    continue
                if should_restart(app.restart, info.exit_code, 0):
                    self._restarting.add(info.id)
                    self._spawn(self._restart(app, info, 0))

    async def close(self) -> None:
        self.ctx.fleet.routes.on_target_failed(None)
        await self.passive.close()
        await self._tasks.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(coro)

    def _serving(self, container_id: str) -> tuple[AppSpec, ContainerInfo] | None:
        """The app and container, if `container_id` is one of a serving release."""
        found = self.ctx.fleet.find(container_id)
        if found is None or found[0] not in self.ctx.apps.config.apps:
            return None
        return self.ctx.apps.config.apps[found[0]], found[1]

    # crashes ----------------------------------------------------------------------

    async def _events(self) -> None:
        labels = {defaults.LABEL_INSTANCE: self.ctx.instance, defaults.LABEL_ROLE: "app"}
        delay = BACKOFF_FIRST
        while True:
            try:
                async for event in self.ctx.runtime.events(labels):
                    delay = BACKOFF_FIRST
                    if event.action == "die":
                        self.on_die(event.container_id, event.exit_code)
                # The engine closed the stream: it is stopping (a dockerd restart). An outage
                # shorter than the engine monitor's period would otherwise go unseen, and the
                # containers the engine stopped would never be started again (deploy/engine.py).
                self.ctx.engine.down("the Docker event stream ended")
            except asyncio.CancelledError:
                raise
            except EngineUnreachable as exc:
                self.ctx.engine.down(str(exc))
                log.warning("docker events failed error=%r retry_in=%.1f", exc, delay)
            except Exception as exc:  # the engine went away: reconnect
                log.warning("docker events failed error=%r retry_in=%.1f", exc, delay)
            await asyncio.sleep(delay)
            delay = min(BACKOFF_MAX, delay * 2)

    def on_die(self, container_id: str, exit_code: int | None) -> None:
        found = self._serving(container_id)
        if found is None or container_id in self._restarting:
            return  # not serving (retiring, one-off, another release) or already handled
        app, info = found
        self.ctx.fleet.mark_down(app, container_id)
        self.ctx.fleet.record_exit(container_id, exit_code)
        log.warning("container died app=%s container=%s exit_code=%s", app.name, info.name, exit_code)
        restarts = self.ctx.fleet.restarts(container_id)
        if should_restart(app.restart, exit_code, restarts):
            self._restarting.add(container_id)
            self._spawn(self._restart(app, info, restarts))

    async def _restart(self, app: AppSpec, info: ContainerInfo, restarts: int) -> None:
        exited: ContainerInfo | None = None
        try:
            await asyncio.sleep(backoff(restarts))
            if self._serving(info.id) is None:
                return  # replaced by a deploy meanwhile
            self.ctx.fleet.record_restart(info.id)
            fresh = await self.ctx.runtime.start(info.id)
            if fresh is None:
                return
            log.info("restarted app=%s container=%s restarts=%d", app.name, info.name, restarts + 1)
            metrics.container_restarted(app.name, info.process)
            checks = app.checks_for(info.process, "startup") + app.checks_for(info.process, "readiness")
            ctx = CheckContext(fresh, app.port, check_host(app), app.network)
            result = await run_checks(self.ctx.runtime, ctx, checks, app.default_checks_wait)
            if self._serving(info.id) is None:
                return
            if result.ok:
                self.ctx.fleet.mark_up(app, fresh)
                log.info("rejoined app=%s container=%s", app.name, info.name)
            else:
                log.warning("restart check failed app=%s container=%s error=%s", app.name, info.name, result.error)
                self._restarting.discard(info.id)
                now = await self.ctx.runtime.inspect(info.id)
                if now is None or now.running:
                    await self.ctx.runtime.kill(info.id, "SIGKILL")  # its die event restarts it again
                    return
                exited = now  # it exited during its checks: that die event came while restarting
        finally:
            self._restarting.discard(info.id)
        if exited is not None:
            self.on_die(info.id, exited.exit_code)  # the policy again (a crash loop counts)

    # periodic checks -------------------------------------------------------------

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            with contextlib.suppress(Exception):
                await self.probe_all()

    async def probe_all(self) -> None:
        if not self.ctx.engine.reachable:
            return  # exec checks would fail for Docker's sake, not the app's: hold them
        live = {c.id for s in self.ctx.fleet.serving.values() for c in s.containers}
        for key in [k for k in self._failures if k[0] not in live]:
            del self._failures[key]  # retired containers: nothing kept about them
        jobs = []
        for name, serving in self.ctx.fleet.serving.items():
            app = self.ctx.apps.config.apps.get(name)
            if app is None:
                continue
            for info in serving.containers:
                if info.id in self._restarting:
                    continue
                if self.ctx.fleet.is_down(info.id) and info.running and not app.checks_for(info.process, "readiness"):
                    jobs.append(self._recheck(app, info))  # adopted but not ready: back when it is
                    continue
                checks = app.checks_for(info.process, "readiness") + app.checks_for(info.process, "liveness")
                if checks:
                    jobs.append(self._probe(app, info, checks))
        await asyncio.gather(*jobs, return_exceptions=True)

    async def _recheck(self, app: AppSpec, info: ContainerInfo) -> None:
        ctx = CheckContext(info, app.port, check_host(app), app.network)
        checks = app.checks_for(info.process, "startup")
        errors = await asyncio.gather(*(attempt_once(self.ctx.runtime, ctx, c) for c in checks))
        if not any(errors):
            log.info("ready again app=%s container=%s", app.name, info.name)
            self.ctx.fleet.mark_up(app, info)

    async def _probe(self, app: AppSpec, info: ContainerInfo, checks: tuple[Any, ...]) -> None:
        ctx = CheckContext(info, app.port, check_host(app), app.network)
        errors = await asyncio.gather(*(attempt_once(self.ctx.runtime, ctx, c) for c in checks))
        for check, error in zip(checks, errors, strict=True):
            key = (info.id, check.name or check.type)
            if error is None:
                self._failures.pop(key, None)
                if check.type == "readiness" and self.ctx.fleet.is_down(info.id) and info.id not in self._restarting:
                    if not any(e for c, e in zip(checks, errors, strict=True) if c.type == "readiness"):
                        log.info("ready again app=%s container=%s", app.name, info.name)
                        self.ctx.fleet.mark_up(app, info)
                continue
            metrics.check_failed(app.name, check.name or check.type, info.process, check.type)
            streak = self._failures[key] = self._failures.get(key, 0) + 1
            if streak < check.attempts:
                continue
            if check.type == "readiness" and not self.ctx.fleet.is_down(info.id):
                log.warning("not ready app=%s container=%s error=%s", app.name, info.name, error)
                self.ctx.fleet.mark_down(app, info.id)
            elif check.type == "liveness":
                log.warning("liveness failed app=%s container=%s error=%s", app.name, info.name, error)
                self._failures.pop(key, None)
                await self.ctx.runtime.kill(info.id, "SIGKILL")  # die -> restart policy

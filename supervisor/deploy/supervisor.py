"""The Supervisor: the one object the daemon and the control API talk to.

It builds the parts (deploy/context.py) and offers every operation as a method; the work is
done by the functions of deploy/flow.py (the deploy, top-down), scale.py, adopt.py and
reconcile.py, and the swap itself is `Fleet.swap()` in deploy/fleet.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from proxy.routes import Maintenance
from supervisor.config.repo import with_repo
from supervisor.deploy import adopt as adoption
from supervisor.deploy import environment, reconcile, scale
from supervisor.deploy.board import Decision
from supervisor.deploy.context import Context
from supervisor.deploy.definitions import Definitions
from supervisor.deploy.explain import Route, explain
from supervisor.deploy.fleet import Fleet, RouteSink, Serving
from supervisor.deploy.flow import deploy
from supervisor.deploy.locks import OperationLocks
from supervisor.deploy.report import DeployReport, Progress
from supervisor.deploy.retire import Retirer
from supervisor.model import defaults
from supervisor.model.errors import DeployError
from supervisor.model.spec import AppSpec, CanarySpec, Config
from supervisor.ops.events import EventBus
from supervisor.runtime.containers import target_of
from supervisor.runtime.protocol import Runtime
from supervisor.store.releases import StateStore

log = logging.getLogger("dockyard.supervisor")


def _maintenance_row(mode: Maintenance | None) -> dict[str, Any] | None:
    return {"message": mode.message, "retry_after": mode.retry_after} if mode else None


class Supervisor:
    def __init__(self, config: Config, runtime: Runtime, routes: RouteSink, state: StateStore):
        self.runtime = runtime
        self.routes = routes
        self.state = state
        self.events = EventBus()  # every deploy's progress and every retire (the dashboard reads it)
        self.retirer = Retirer(runtime, routes, state, self.events)
        self.ctx = Context(
            runtime=runtime,
            state=state,
            fleet=Fleet(routes),
            apps=Definitions(config, state),
            locks=OperationLocks(),
            retirer=self.retirer,
            events=self.events,
        )
        for name, app in self.ctx.apps.config.apps.items():  # maintenance survives restarts
            mode = state.overlay.maintenance(name)
            if mode is not None:
                self.ctx.fleet.set_maintenance(app, mode)

    # what is deployed ------------------------------------------------------------------

    @property
    def config(self) -> Config:
        """Every app as deployed: the config file with repository files merged in."""
        return self.ctx.apps.config

    @property
    def instance(self) -> str:
        return self.ctx.instance

    @property
    def serving(self) -> dict[str, Serving]:
        return self.ctx.fleet.serving

    @property
    def on_config(self) -> list[Callable[[Config], None]]:
        """Called with the new definitions whenever they change (reload, a build's files)."""
        return self.ctx.apps.on_change

    def app(self, name: str) -> AppSpec:
        """UnknownApp unless the config defines `name`."""
        return self.ctx.apps.app(name)

    def targets(self, name: str) -> list[str]:
        return self.ctx.fleet.targets(self.app(name))

    def busy(self) -> dict[str, str]:
        """app -> the operation (deploy, build, scale, ...) running on it now."""
        return self.ctx.locks.busy()

    def refuse_if_busy(self, name: str) -> None:
        self.ctx.locks.refuse_if_busy(name)

    # operations ------------------------------------------------------------------------

    async def deploy(
        self, name: str, image: str | None = None, progress: Progress | None = None,
        canary: CanarySpec | None | bool = True,
    ) -> DeployReport:
        """`canary`: a CanarySpec; True: the app's `canary` setting if it has one; False: none."""
        app = self.app(name)
        image = image or app.image
        if not image:
            raise DeployError(f"app {name!r} has no image: pass --image or set apps.{name}.image")
        spec = app.canary if canary is True else (canary or None)
        return await deploy(self.ctx, app, image, progress=progress, canary=spec)

    def decide_canary(self, name: str, decision: Decision) -> int:
        """`dockyard canary promote|abort`: end the app's canary now; its release number."""
        self.app(name)
        return self.ctx.canaries.decide(name, decision)

    async def rollback(self, name: str, progress: Progress | None = None) -> DeployReport:
        """The previous good release's image, and the repository files it was built with."""
        base = self.ctx.apps.base_app(name)
        previous = self.state.previous_good(name)
        if previous is None:
            raise DeployError(f"app {name!r} has no earlier successful release to roll back to")
        files = self.state.repo_files(name, previous.number)
        app = await asyncio.to_thread(with_repo, base, files) if files else base  # its env: deploy() adds the layers
        return await deploy(self.ctx, app, previous.image, kind="rollback", progress=progress,
                            repo=files)

    async def restart(self, name: str, progress: Progress | None = None) -> DeployReport:
        return await scale.restart(self.ctx, name, progress)

    async def start(self, name: str, progress: Progress | None = None) -> DeployReport:
        return await scale.start(self.ctx, name, progress)

    async def stop(self, name: str) -> int:
        return await scale.stop(self.ctx, name)

    async def scale(self, name: str, counts: dict[str, int]) -> dict[str, int]:
        return await scale.scale(self.ctx, name, counts)

    async def reload(self, config: Config) -> dict[str, Any]:
        """Reconcile with a new (validated) config file: see deploy/reconcile.py."""
        return await reconcile.apply(self.ctx, config)

    def plan(self, config: Config) -> reconcile.Plan:
        """What `reload` would do with `config` (validated), changing nothing."""
        return reconcile.plan(self.ctx.apps.config, self.ctx.apps.effective(config, preview=True))

    async def change_env(
        self, name: str, set_: dict[str, str], unset: list[str], *, restart: bool,
        progress: Progress | None = None,
    ) -> DeployReport | None:
        return await environment.change(self.ctx, name, set_, unset, restart_app=restart,
                                        progress=progress)

    async def set_maintenance(self, name: str, mode: Maintenance | None) -> dict[str, Any]:
        """Maintenance mode on (the proxy answers 503, containers keep running) or off (the
        routes serve again at once); kept in SQLite, so a restarted daemon keeps it. Returns
        once every proxy worker has the new table."""
        app = self.app(name)
        if not app.hosts:
            raise DeployError(f"app {name!r} has no hosts: the proxy routes nothing to it")
        if mode is not None and mode.retry_after is not None and mode.retry_after < 0:
            raise DeployError("--retry-after must be 0 or more seconds")
        self.state.overlay.set_maintenance(name, mode)
        self.ctx.fleet.set_maintenance(app, mode)
        await self.routes.settled()
        log.info("maintenance app=%s on=%s", name, mode is not None)
        return {"app": name, "maintenance": _maintenance_row(mode)}

    async def adopt(self) -> None:
        await adoption.adopt(self.ctx)

    async def start_apps(self, progress: Progress | None = None) -> None:
        await adoption.start_apps(self.ctx, progress)

    # views -----------------------------------------------------------------------------

    async def ps(self, name: str | None = None) -> list[dict[str, Any]]:
        labels = {defaults.LABEL_INSTANCE: self.instance}
        if name:
            labels[defaults.LABEL_APP] = name
        rows = []
        inflight = self.routes.inflight()
        fleet = self.ctx.fleet
        for info in sorted(await self.runtime.list(labels), key=lambda c: c.name):
            serving = fleet.get(info.app)
            serving_ids = {c.id for c in serving.containers} if serving else set()
            app = self.config.apps.get(info.app)
            target = target_of(info, app.port, app.network) if app and info.process == "web" else None
            rows.append(
                {
                    "app": info.app,
                    "process": info.process,
                    "name": info.name,
                    "id": info.id[:12],
                    "release": info.release,
                    "status": info.status,
                    "serving": info.id in serving_ids,
                    "target": target,
                    "inflight": inflight.get(target, 0) if target else 0,
                    "restarts": fleet.restarts(info.id) + info.restart_count,
                    "exit_code": info.exit_code if info.exit_code is not None
                    else fleet.last_exit(info.id),
                    "healthy": info.running and not fleet.is_down(info.id),
                    "node": info.labels.get(defaults.LABEL_NODE, ""),  # swarm tasks only
                }
            )
        return rows

    async def nodes(self) -> list[dict[str, Any]]:
        """The Swarm's nodes (`dockyard nodes`), each with the tasks of this daemon's apps on it.
        DeployError when no app runs on Swarm (the runtime has no nodes then)."""
        lister = getattr(self.runtime, "nodes", None)
        if lister is None:
            raise DeployError("no app uses scheduler = \"swarm\": this daemon runs without Swarm")
        tasks: dict[str, list[str]] = {}
        for info in await self.runtime.list({defaults.LABEL_INSTANCE: self.instance}):
            if info.running and info.labels.get(defaults.LABEL_NODE):
                tasks.setdefault(info.labels[defaults.LABEL_NODE], []).append(info.name)
        return [
            {"id": n.id[:12], "hostname": n.hostname, "addr": n.addr, "role": n.role,
             "leader": n.leader, "state": n.state, "availability": n.availability,
             "labels": dict(n.labels or {}), "tasks": sorted(tasks.get(n.hostname, []))}
            for n in sorted(await lister(), key=lambda n: n.hostname)
        ]

    def route_rows(self) -> list[dict[str, Any]]:
        rows = []
        for name, app in sorted(self.config.apps.items()):
            serving = self.ctx.fleet.get(name)
            rows.append(
                {
                    "app": name,
                    "hosts": list(app.hosts),
                    "path_prefix": app.path_prefix,
                    "release": serving.release if serving else None,
                    "targets": self.ctx.fleet.targets(app),
                    "canary": self.ctx.canaries.live.get(name),
                    "maintenance": _maintenance_row(self.ctx.fleet.maintenance(name)),
                    "policies": app.policy.summary(),
                }
            )
        return rows

    def env_rows(self, name: str, *, show: bool = False) -> list[dict[str, Any]]:
        return environment.rows(self.ctx, name, show=show)

    def explain(self, url: str) -> dict[str, Any]:
        routes = []
        for name, app in sorted(self.config.apps.items()):
            serving = self.ctx.fleet.get(name)
            routes.append(Route(name, app.hosts, app.path_prefix,
                                serving.release if serving else None,
                                tuple(self.ctx.fleet.targets(app)),
                                self.ctx.fleet.maintenance(name) is not None))
        return explain(routes, url)

    def release_rows(self, name: str) -> list[dict[str, Any]]:
        self.app(name)
        canaries = {c["number"]: c for c in self.state.canaries(name)}
        live = self.ctx.canaries.live.get(name)
        rows = []
        for r in self.state.releases(name):
            row = r.as_dict()
            canary = canaries.get(r.number)
            if canary is not None:
                if live is not None and live.get("release") == r.number:
                    canary["figures"] = live
                row["canary"] = canary
            rows.append(row)
        return rows

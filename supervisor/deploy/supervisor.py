"""The Supervisor: the one object the daemon and the control API talk to.

It builds the parts (deploy/context.py) and offers every operation as a method; the work is
done by the functions of deploy/flow.py (the deploy, top-down), scale.py, adopt.py and
reconcile.py, and the swap itself is `Fleet.swap()` in deploy/fleet.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supervisor.config.repo import with_repo
from supervisor.deploy import adopt as adoption
from supervisor.deploy import reconcile, scale
from supervisor.deploy.board import Decision
from supervisor.deploy.context import Context
from supervisor.deploy.definitions import Definitions
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
        app = with_repo(base, files) if files else base
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
                }
            )
        return rows

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
                }
            )
        return rows

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

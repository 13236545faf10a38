"""The Supervisor: which release of each app serves, with which containers, and the swap.

`swap()` is the one place the route table changes for a deploy. `adopt()` rebuilds the
in-memory view from Docker labels and SQLite after a daemon start, without touching
containers that serve.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from . import defaults
from .containers import target_of
from .deploy import DeployReport, Progress, deploy, web_of
from .errors import DeployError, DockyardError
from .repoapp import RepoFiles, with_repo
from .retire import Retirer
from .runtime import ContainerInfo, Runtime
from .spec import AppSpec, Config
from .state import StateStore

log = logging.getLogger("dockyard.supervisor")


class RouteSink(Protocol):
    """What the supervisor needs of the proxy (proxy.Proxy provides it)."""

    def set_app(
        self,
        app: str,
        hosts: Sequence[str],
        targets: Sequence[str],
        *,
        path_prefix: str = "/",
        balance: str = "round_robin",
        tls_redirect: bool = False,
        hsts: int | None = None,
    ) -> None: ...

    def remove_app(self, app: str) -> None: ...

    async def drain(self, targets: Iterable[str], timeout: float) -> int: ...

    async def warm(self, targets: Sequence[str], replacing: Sequence[str]) -> int: ...

    def inflight(self) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class Serving:
    release: int
    containers: tuple[ContainerInfo, ...]


class Supervisor:
    def __init__(self, config: Config, runtime: Runtime, routes: RouteSink, state: StateStore):
        self.runtime = runtime
        self.routes = routes
        self.state = state
        # Apps built from a repository: the Procfile/app.json of their serving release. The
        # definition everything uses (self.config) is the file's (self.base) with these merged in.
        self.repos: dict[str, RepoFiles] = {}
        for name in config.apps:
            current = state.current(name)
            files = state.repo_files(name, current.number) if current else None
            if files is not None:
                self.repos[name] = files
        self.base = config
        self.config = self.effective(config)
        self.on_config: list[Callable[[Config], None]] = []  # called when self.config changes
        self.retirer = Retirer(runtime, routes, state)
        self.serving: dict[str, Serving] = {}
        self.down: set[str] = set()  # serving container ids out of rotation (dead, not ready)
        self.restarts: dict[str, int] = {}  # container id -> restarts done by dockyard
        self.last_exit: dict[str, int] = {}  # container id -> its last exit code
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def instance(self) -> str:
        return self.config.server.instance

    def lock(self, app: str) -> asyncio.Lock:
        return self._locks.setdefault(app, asyncio.Lock())

    def app(self, name: str) -> AppSpec:
        """The app as it is deployed: the config's definition with its repository files merged."""
        try:
            return self.config.apps[name]
        except KeyError:
            raise DeployError(f"unknown app {name!r} (not in {self.config.path})") from None

    def base_app(self, name: str) -> AppSpec:
        """The app as the config file alone defines it (a new build merges its files into this)."""
        self.app(name)
        return self.base.apps[name]

    def effective(self, config: Config) -> Config:
        """`config` with each repository-built app's Procfile and app.json merged in."""
        apps = dict(config.apps)
        for name, files in self.repos.items():
            if name in apps:
                try:
                    apps[name] = with_repo(apps[name], files)
                except DockyardError as exc:  # valid when pushed; keep serving the config's
                    log.warning("repository files ignored app=%s error=%s", name, exc)
        return dataclasses.replace(config, apps=MappingProxyType(apps))

    def settle_repo(self, name: str, files: RepoFiles | None) -> None:
        """After a successful deploy: `files` (or none) define the app from now on."""
        if self.repos.get(name) == files:
            return
        if files is None:
            self.repos.pop(name, None)
        else:
            self.repos[name] = files
        self.replace_config(self.base)

    # the swap -------------------------------------------------------------------

    async def warm(self, app: AppSpec, new: Sequence[ContainerInfo]) -> None:
        """Open pooled connections to the new web containers, as many as the serving ones hold."""
        if not app.hosts:
            return
        targets = [t for t in (target_of(c, app.port, app.network) for c in web_of(list(new))) if t]
        await self.routes.warm(targets, self.targets(app.name))

    def swap(self, app: AppSpec, release: int, new: Sequence[ContainerInfo]) -> list[ContainerInfo]:
        """Point the app's routes at the new web containers; return the containers replaced."""
        old = self.serving.get(app.name)
        self.serving[app.name] = Serving(release, tuple(new))
        self._install_routes(app)
        return list(old.containers) if old else []

    def _install_routes(self, app: AppSpec) -> None:
        if not app.hosts:
            return
        self.routes.set_app(
            app.name,
            app.hosts,
            self.targets(app.name),
            path_prefix=app.path_prefix,
            balance=app.balance,
            tls_redirect=app.tls_redirect,
            hsts=app.hsts,
        )

    def targets(self, app_name: str) -> list[str]:
        serving = self.serving.get(app_name)
        if serving is None:
            return []
        app = self.config.apps.get(app_name)
        port = app.port if app else defaults.PORT
        network = app.network if app else "bridge"
        web = [c for c in web_of(list(serving.containers)) if c.id not in self.down]
        found = (target_of(c, port, network) for c in web)
        return [t for t in found if t]

    # health state -------------------------------------------------------------------

    def serving_container(self, container_id: str) -> tuple[AppSpec, ContainerInfo] | None:
        """The app and container, if `container_id` is one of a serving release."""
        for name, serving in self.serving.items():
            for info in serving.containers:
                if info.id == container_id and name in self.config.apps:
                    return self.config.apps[name], info
        return None

    def mark_down(self, app: AppSpec, container_id: str) -> None:
        """Take a container out of rotation now (one route-table assignment)."""
        if container_id not in self.down:
            self.down.add(container_id)
            self._install_routes(app)

    def mark_up(self, app: AppSpec, info: ContainerInfo) -> None:
        """Put a (restarted, recovered) container back in rotation with its current ports."""
        serving = self.serving.get(app.name)
        if serving is None:
            return
        replaced = tuple(info if c.id == info.id else c for c in serving.containers)
        self.serving[app.name] = Serving(serving.release, replaced)
        self.down.discard(info.id)
        self._install_routes(app)

    def refresh_routes(self, app: AppSpec) -> None:
        self._install_routes(app)

    def retire(
        self, app: AppSpec, old: Sequence[ContainerInfo], *, retire_after: float | None = None
    ) -> None:
        web = web_of(list(old))
        others = [c for c in old if c.process != defaults.WEB_PROCESS]
        targets = [t for t in (target_of(c, app.port, app.network) for c in web) if t]
        self.retirer.retire_web(
            app.name,
            web,
            targets,
            drain_timeout=app.drain_timeout,
            retire_after=app.retire_after if retire_after is None else retire_after,
            stop_timeout=app.stop_timeout,
        )
        for c in old:
            self.down.discard(c.id)
        self.retirer.retire_now(app.name, others, app.stop_timeout)

    # operations -----------------------------------------------------------------

    async def deploy(
        self, name: str, image: str | None = None, progress: Progress | None = None
    ) -> DeployReport:
        app = self.app(name)
        image = image or app.image
        if not image:
            raise DeployError(f"app {name!r} has no image: pass --image or set apps.{name}.image")
        return await deploy(self, app, image, progress=progress)

    async def rollback(self, name: str, progress: Progress | None = None) -> DeployReport:
        """The previous good release's image, and the repository files it was built with."""
        base = self.base_app(name)
        previous = self.state.previous_good(name)
        if previous is None:
            raise DeployError(f"app {name!r} has no earlier successful release to roll back to")
        files = self.state.repo_files(name, previous.number)
        app = await asyncio.to_thread(with_repo, base, files) if files else base
        return await deploy(self, app, previous.image, kind="rollback", progress=progress, repo=files)

    async def adopt(self) -> None:
        """Daemon start: adopt running containers by label; clean what a crash left behind."""
        for rel in self.state.fail_pending("interrupted: the daemon stopped during the deploy"):
            log.warning("interrupted deploy app=%s release=%d rolled back", rel.app, rel.number)
        retiring = {cid: (app, stop_at) for cid, app, stop_at in self.state.retiring()}
        found = await self.runtime.list({defaults.LABEL_INSTANCE: self.instance})
        by_app: dict[str, list[ContainerInfo]] = {}
        for info in found:
            if info.labels.get(defaults.LABEL_ROLE) != "app":
                if info.labels.get(defaults.LABEL_ROLE) == "oneoff" and not info.running:
                    await self.runtime.remove(info.id)
                continue
            by_app.setdefault(info.app, []).append(info)
        for app_name, infos in by_app.items():
            current = self.state.current(app_name)
            app = self.config.apps.get(app_name)
            keep = [c for c in infos if current and c.release == current.number]
            keep_ids = {c.id for c in keep}
            for info in infos:
                if info.id in keep_ids:
                    continue
                if info.id in retiring:
                    _, stop_at = retiring.pop(info.id)
                    self.retirer.resume(app_name, info.id, stop_at, app.stop_timeout if app else 10)
                else:
                    log.info("removing orphan container=%s app=%s", info.name, app_name)
                    await self.runtime.remove(info.id)
            if current and keep and app is not None:
                self.serving[app_name] = Serving(current.number, tuple(keep))
                await self._quick_probe(app, keep)
                self._install_routes(app)
                log.info("adopted app=%s release=%d containers=%d", app_name, current.number, len(keep))
        for cid in retiring:  # containers already gone
            self.state.done_retiring(cid)

    async def _quick_probe(self, app: AppSpec, containers: list[ContainerInfo]) -> None:
        """Adoption: a container that is not running, or fails one quick attempt of its checks,
        starts out of rotation; the watcher restarts it or re-checks it (supervisor/watch.py)."""
        from .checks import CheckContext, attempt_once

        host = app.hosts[0].replace("*.", "www.", 1) if app.hosts else None

        async def probe(info: ContainerInfo) -> None:
            if not info.running:
                self.down.add(info.id)
                return
            checks = app.checks_for(info.process, "startup") + app.checks_for(info.process, "readiness")
            quick = [dataclasses.replace(c, timeout=min(c.timeout, 2.0)) for c in checks if not c.uptime]
            ctx = CheckContext(info, app.port, host, app.network)
            errors = await asyncio.gather(*(attempt_once(self.runtime, ctx, c) for c in quick))
            if any(errors):
                log.warning("adopted container not ready app=%s container=%s error=%s",
                            app.name, info.name, next(e for e in errors if e))
                self.down.add(info.id)

        await asyncio.gather(*(probe(c) for c in containers))

    async def start_apps(self, progress: Progress | None = None) -> None:
        """Deploy every configured app that does not run yet (apps with an image)."""
        for name, app in self.config.apps.items():
            if name in self.serving or not app.image or self.state.is_stopped(name):
                continue
            try:
                report = await self.deploy(name, progress=progress)
            except DeployError as exc:
                log.error("start failed app=%s reason=%s", name, exc)
                continue
            if not report.ok:
                log.error("start failed app=%s reason=%s", name, report.reason)

    async def ps(self, name: str | None = None) -> list[dict[str, Any]]:
        labels = {defaults.LABEL_INSTANCE: self.instance}
        if name:
            labels[defaults.LABEL_APP] = name
        rows = []
        inflight = self.routes.inflight()
        for info in sorted(await self.runtime.list(labels), key=lambda c: c.name):
            serving = self.serving.get(info.app)
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
                    "restarts": self.restarts.get(info.id, 0) + info.restart_count,
                    "exit_code": info.exit_code if info.exit_code is not None
                    else self.last_exit.get(info.id),
                    "healthy": info.running and info.id not in self.down,
                }
            )
        return rows

    def route_rows(self) -> list[dict[str, Any]]:
        rows = []
        for name, app in sorted(self.config.apps.items()):
            serving = self.serving.get(name)
            rows.append(
                {
                    "app": name,
                    "hosts": list(app.hosts),
                    "path_prefix": app.path_prefix,
                    "release": serving.release if serving else None,
                    "targets": self.targets(name),
                }
            )
        return rows

    def release_rows(self, name: str) -> list[dict[str, Any]]:
        self.app(name)
        return [r.as_dict() for r in self.state.releases(name)]

    def replace_config(self, config: Config) -> None:
        """A new config file (reload): the definitions are it plus the repository files."""
        self.base = config
        self.config = self.effective(config)
        for listener in self.on_config:
            listener(self.config)

    def current_images(self) -> Mapping[str, str]:
        result = {}
        for name in self.config.apps:
            rel = self.state.current(name)
            if rel:
                result[name] = rel.image
        return result

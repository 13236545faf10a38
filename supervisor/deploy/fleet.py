"""The fleet: which release of each app serves, with which containers, and the swap.

`Fleet.swap()` is the one place a deploy changes the proxy's route table: one synchronous
`set_app` call, which the proxy turns into one assignment of an immutable table (in every proxy
worker; the deploy then awaits `routes.settled()`, their acknowledgements). Everything that
takes a container out of rotation or puts it back (the watcher, scale, stop) goes through the
methods here too, so the serving set and the routes never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from proxy.policy import Policy
from proxy.routes import Maintenance, Route
from supervisor.model import defaults
from supervisor.model.spec import AppSpec
from supervisor.runtime.containers import target_of
from supervisor.runtime.protocol import ContainerInfo


class RouteSink(Protocol):
    """What the supervisor needs of the proxy (proxy.Proxy, or the daemon's WorkerPool)."""

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
        release: str = "",
        canary_release: str = "",
        canary_targets: Sequence[str] = (),
        canary_percent: float = 0.0,
        maintenance: Maintenance | None = None,
        error_pages: Mapping[int, bytes] | None = None,
        policy: Policy | None = None,
    ) -> None: ...

    def release_stats(self, app: str) -> dict[str, dict[str, Any]]: ...

    def remove_app(self, app: str) -> None: ...

    def replace_routes(self, routes: Mapping[str, Route | None]) -> None: ...

    async def drain(self, targets: Iterable[str], timeout: float) -> int: ...

    async def warm(self, targets: Sequence[str], replacing: Sequence[str]) -> int: ...

    def inflight(self) -> dict[str, int]: ...

    async def settled(self) -> float:
        """Wait until every proxy process serves the last table; seconds until the slowest did."""
        ...

    def on_target_failed(self, callback: Callable[[str, str], None] | None) -> None: ...


@dataclass(frozen=True, slots=True)
class Serving:
    release: int
    containers: tuple[ContainerInfo, ...]


@dataclass(frozen=True, slots=True)
class Canary:
    """A new release routed beside the serving one for a share of new clients (deploy/canary.py)."""

    release: int
    containers: tuple[ContainerInfo, ...]
    percent: float


def web_of(containers: Iterable[ContainerInfo]) -> list[ContainerInfo]:
    return [c for c in containers if c.process == defaults.WEB_PROCESS]


def targets_of(app: AppSpec, containers: Iterable[ContainerInfo]) -> list[str]:
    """The proxy targets ("127.0.0.1:PORT") of the web containers among `containers`."""
    found = (target_of(c, app.port, app.network) for c in web_of(containers))
    return [t for t in found if t]


class Fleet:
    def __init__(self, routes: RouteSink) -> None:
        self.routes = routes
        self._serving: dict[str, Serving] = {}
        self._down: set[str] = set()  # serving container ids out of rotation (dead, not ready)
        self._restarts: dict[str, int] = {}  # container id -> restarts done by dockyard
        self._last_exit: dict[str, int] = {}  # container id -> its last exit code
        self._canary: dict[str, Canary] = {}  # app -> its canary, while one is watched
        self._maintenance: dict[str, Maintenance] = {}  # app -> what the proxy answers instead

    # reading ---------------------------------------------------------------------------

    @property
    def serving(self) -> dict[str, Serving]:
        """app -> what serves it (a copy: change it through the methods below)."""
        return dict(self._serving)

    def get(self, app: str) -> Serving | None:
        return self._serving.get(app)

    def is_down(self, container_id: str) -> bool:
        return container_id in self._down

    def restarts(self, container_id: str) -> int:
        return self._restarts.get(container_id, 0)

    def last_exit(self, container_id: str) -> int | None:
        return self._last_exit.get(container_id)

    def targets(self, app: AppSpec) -> list[str]:
        """The targets the proxy routes `app` to: serving web containers not marked down."""
        serving = self._serving.get(app.name)
        if serving is None:
            return []
        return targets_of(app, (c for c in serving.containers if c.id not in self._down))

    def find(self, container_id: str) -> tuple[str, ContainerInfo] | None:
        """(app name, container) when `container_id` belongs to a serving release."""
        for name, serving in self._serving.items():
            for info in serving.containers:
                if info.id == container_id:
                    return name, info
        return None

    # the swap --------------------------------------------------------------------------

    async def warm(self, app: AppSpec, new: Sequence[ContainerInfo]) -> None:
        """Open pooled connections to the new web containers, as many as the serving ones hold."""
        if app.hosts:
            await self.routes.warm(targets_of(app, new), self.targets(app))

    def swap(self, app: AppSpec, release: int, new: Sequence[ContainerInfo]) -> list[ContainerInfo]:
        """Point the app's routes at the new containers; return the containers replaced.
        A canary of the app ends here (promoted: its containers are `new`)."""
        old = self._serving.get(app.name)
        self._serving[app.name] = Serving(release, tuple(new))
        canary = self._canary.pop(app.name, None)
        try:
            self.install(app)
        except BaseException:  # the proxy refused the routes: nothing changed
            if old is None:
                self._serving.pop(app.name, None)
            else:
                self._serving[app.name] = old
            if canary is not None:
                self._canary[app.name] = canary
            raise
        return list(old.containers) if old else []

    def canary(self, app: str) -> Canary | None:
        return self._canary.get(app)

    def start_canary(self, app: AppSpec, release: int, new: Sequence[ContainerInfo], percent: float) -> None:
        """Route `percent` of new clients to `new` beside the serving release (one assignment)."""
        self._canary[app.name] = Canary(release, tuple(new), percent)
        self.install(app)

    def end_canary(self, app: AppSpec) -> Canary | None:
        """Roll back: the canary's share returns to the serving release (one assignment); the
        canary's containers are returned, still running, for the caller to drain and remove."""
        canary = self._canary.pop(app.name, None)
        if canary is not None:
            self.install(app)
        return canary

    def install(self, app: AppSpec) -> None:
        """Give the proxy the app's current targets (one route-table assignment), labelled with
        the serving release, and a canary's targets and share while one runs."""
        r = self.route(app)
        if r is not None:
            self.routes.set_app(
                app.name, r.hosts, r.targets, path_prefix=r.path_prefix, balance=r.balance,
                tls_redirect=r.tls_redirect, hsts=r.hsts, release=r.release,
                canary_release=r.canary_release, canary_targets=r.canary_targets,
                canary_percent=r.canary_percent, maintenance=r.maintenance,
                error_pages=r.error_pages, policy=r.policy)

    def route(self, app: AppSpec) -> Route | None:
        """The app's routes as the proxy takes them (None: it has no hosts): its current
        targets, the serving release, a canary's targets and share while one runs, maintenance
        mode, its error pages and edge policy."""
        if not app.hosts:
            return None
        serving = self._serving.get(app.name)
        canary = self._canary.get(app.name) if serving is not None else None
        return Route(
            tuple(app.hosts), tuple(self.targets(app)), app.path_prefix, app.balance,
            app.tls_redirect, app.hsts,
            release=str(serving.release) if serving is not None else "",
            canary_release=str(canary.release) if canary is not None else "",
            canary_targets=tuple(targets_of(app, canary.containers)) if canary is not None else (),
            canary_percent=canary.percent if canary is not None else 0.0,
            maintenance=self._maintenance.get(app.name),
            error_pages={status: html.encode() for status, html in app.error_pages.items()},
            policy=app.policy,
        )

    def maintenance(self, app: str) -> Maintenance | None:
        return self._maintenance.get(app)

    def set_maintenance(self, app: AppSpec, mode: Maintenance | None) -> None:
        """Maintenance mode on (the proxy answers 503 with `mode`) or off: one assignment."""
        if mode is None:
            self._maintenance.pop(app.name, None)
        else:
            self._maintenance[app.name] = mode
        self.install(app)

    def reroute(self, apps: Iterable[AppSpec], removed: Iterable[str] = (),
                stopped: Iterable[str] = ()) -> None:
        """A reload: every app in `apps` routed as it is defined now, the `removed` ones
        unrouted, all in one route-table assignment, so a host can move from one app to
        another. The proxy checks the whole table first: a conflict changes nothing. An app
        that does not serve has no routes (404), unless `stopped` names it: then its hosts
        stay routed to nothing (503), as `dockyard stop` left them."""
        changes: dict[str, Route | None] = {name: None for name in removed}
        keep = set(stopped)
        for app in apps:
            serves = app.name in self._serving or app.name in keep
            changes[app.name] = self.route(app) if serves else None
        self.routes.replace_routes(changes)

    def adopt(self, app: AppSpec, release: int, containers: Sequence[ContainerInfo],
              down: Iterable[str]) -> None:
        """Daemon start: what already serves, with the containers that start out of rotation."""
        self._serving[app.name] = Serving(release, tuple(containers))
        self._down.update(down)
        self.install(app)

    def resize(self, app: AppSpec, keep: Sequence[ContainerInfo]) -> None:
        """Scale: the same release with another set of containers, routed in one assignment."""
        serving = self._serving.get(app.name)
        if serving is not None:
            self._serving[app.name] = Serving(serving.release, tuple(keep))
            self.install(app)

    def withdraw(self, app: AppSpec, *, unrouted: bool = False) -> Serving | None:
        """Stop: the app serves nothing (the proxy answers 503); return what served it.
        `unrouted`: its routes are gone already (a reload removed the app): leave them so."""
        serving = self._serving.pop(app.name, None)
        if not unrouted:
            self.install(app)
        return serving

    def forget(self, containers: Iterable[ContainerInfo]) -> None:
        """Retired containers: drop what the fleet remembered about them."""
        for c in containers:
            self._down.discard(c.id)
            self._restarts.pop(c.id, None)
            self._last_exit.pop(c.id, None)

    # health ----------------------------------------------------------------------------

    def mark_down(self, app: AppSpec, container_id: str) -> None:
        """Take a container out of rotation now (one route-table assignment)."""
        if container_id not in self._down:
            self._down.add(container_id)
            self.install(app)

    def mark_up(self, app: AppSpec, info: ContainerInfo) -> None:
        """Put a (restarted, recovered) container back in rotation with its current ports."""
        serving = self._serving.get(app.name)
        if serving is None:
            return
        replaced = tuple(info if c.id == info.id else c for c in serving.containers)
        self._serving[app.name] = Serving(serving.release, replaced)
        self._down.discard(info.id)
        self.install(app)

    def record_exit(self, container_id: str, exit_code: int | None) -> None:
        if exit_code is not None:
            self._last_exit[container_id] = exit_code

    def record_restart(self, container_id: str) -> int:
        """Count one restart done by dockyard; return how many it has had."""
        self._restarts[container_id] = self._restarts.get(container_id, 0) + 1
        return self._restarts[container_id]

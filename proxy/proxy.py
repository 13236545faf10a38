"""The public facade: Proxy ties the route table, balancer, in-flight tracker, pool and listener."""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from typing import Any

from .edge import Edge
from .errors import ProxyStateError
from .options import FD_RESERVE, ProxyOptions
from .policy import Policy
from .routes import Maintenance, Route, RouteTable, Service, make_service
from .server import ClientConnection, TlsClientConnection
from .state import ProxyState
from .stats import AppStats
from .tls import CertStore
from .upstream import WARM_MAX

log = logging.getLogger("dockyard.proxy")
STOP_IDLE_LINGER = 0.5  # seconds idle keep-alive connections stay open when the proxy stops


def bound_port(server: Any) -> int:
    """The port a server listens on. (`Any`: uvloop's `sockets` is a list where typeshed says tuple,
    which the compiled proxy would otherwise check and reject.)"""
    return int(server.sockets[0].getsockname()[1])


class Proxy:
    """An HTTP/1.1 reverse proxy whose routes change at run time (see docs/proxy.md)."""

    def __init__(self, options: ProxyOptions | None = None) -> None:
        self.options = options or ProxyOptions()
        problems = self.options.validate()
        if problems:
            raise ValueError("; ".join(f"{k}: {m}" for k, m in problems))
        # What the connections share with us (they are handed this, never the Proxy).
        self.state = state = ProxyState(self.options)
        self.tracker = state.tracker
        self.balancer = state.balancer
        self.pool = state.pool
        self.connections = state.connections
        self.sweep = state.sweep
        self.tasks = state.tasks
        self._server: asyncio.AbstractServer | None = None
        self._port = 0
        self._tls_server: asyncio.AbstractServer | None = None
        self.tls_port = 0

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.state.loop

    @property
    def edge(self) -> Edge | None:
        """ACME challenges, https redirects, HSTS: set by start_tls or enable_edge."""
        return self.state.edge

    def connection_counts(self) -> tuple[int, int]:
        """(client connections open now, the limit): for `dockyard status`."""
        return len(self.state.connections), self.state.max_connections

    @property
    def port(self) -> int:
        return self._port

    async def start(self, host: str, port: int, *, sock: socket.socket | None = None) -> None:
        if self._server is not None:
            raise ProxyStateError("proxy already started")
        loop = asyncio.get_running_loop()
        self.state.bind(loop)
        self._fit_descriptors()
        log.info("Starting proxy host=%s port=%s", host, port)
        state = self.state
        if sock is not None:
            server = await loop.create_server(lambda: ClientConnection(state), sock=sock, backlog=1024)
        else:
            server = await loop.create_server(
                lambda: ClientConnection(state), host, port, reuse_address=True, backlog=1024
            )
        self._server = server
        self._port = bound_port(server)
        log.info("Started proxy host=%s port=%d", host, self._port)

    @property
    def listeners(self) -> list[socket.socket]:
        """The listening sockets, e.g. to hand to a new daemon (dockyard serve --takeover)."""
        plain = list(getattr(self._server, "sockets", None) or ())
        return plain + list(getattr(self._tls_server, "sockets", None) or ())

    def stop_accepting(self) -> None:
        """Close the listeners in this process (another may hold the same sockets); serve on."""
        if self._server is not None:
            self._server.close()
        if self._tls_server is not None:
            self._tls_server.close()

    async def start_tls(self, host: str, port: int, store: CertStore, *, sock: socket.socket | None = None) -> None:
        """Also terminate TLS on host:port, choosing certificates from `store` by SNI (docs/tls.md)."""
        if self._tls_server is not None:
            raise ProxyStateError("TLS listener already started")
        loop = asyncio.get_running_loop()
        self.state.bind(loop)
        log.info("Starting TLS listener host=%s port=%s", host, port)
        where: dict[str, Any] = {"sock": sock} if sock is not None else {"host": host, "port": port, "reuse_address": True}
        state = self.state
        self._tls_server = await loop.create_server(
            lambda: TlsClientConnection(state), ssl=store.listener_context(), backlog=1024, ssl_handshake_timeout=10.0,
            ssl_shutdown_timeout=5.0, **where
        )
        self.tls_port = bound_port(self._tls_server)
        if self.state.edge is None:
            self.state.edge = Edge(self.tls_port)
        else:
            self.state.edge.tls_port = self.tls_port
        log.info("Started TLS listener host=%s port=%d", host, self.tls_port)

    def enable_edge(self, tls_port: int = 443) -> Edge:
        """ACME challenges and https redirects on the plain listener, before (or without) start_tls."""
        edge = self.state.edge
        if edge is None:
            edge = self.state.edge = Edge(self.tls_port or tls_port)
        return edge

    def _fit_descriptors(self) -> None:
        """Raise the soft RLIMIT_NOFILE to the hard limit, and keep max_connections within it:
        each client connection may need an upstream one too, and FD_RESERVE descriptors stay
        for the supervisor (Docker, git, SQLite, subprocesses)."""
        try:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if hard == resource.RLIM_INFINITY or hard > soft:
                target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
        except (ValueError, OSError) as exc:
            log.warning("Could not raise RLIMIT_NOFILE error=%s", exc)
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            fit = max(1, (soft - FD_RESERVE) // 2)
            if fit < self.options.max_connections:
                log.info("Lowered max_connections from=%d to=%d nofile=%d", self.options.max_connections, fit, soft)
                self.state.max_connections = fit

    async def stop(self, timeout: float) -> None:
        """Stop accepting, let in-flight requests finish within `timeout`, cancel the rest, close."""
        server = self._server
        if server is None:
            return
        log.info("Stopping proxy port=%d inflight=%d", self._port, len(self.tasks))
        self.stop_accepting()  # both listeners: the TLS one too, or its wait_closed below never ends
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Every connection closes after its current response (Connection: close). Idle ones
        # linger a moment first: a request already on its way is served rather than meeting a
        # closed socket, which a client could not tell from a failure.
        for conn in list(self.connections):
            conn.linger()
        await asyncio.sleep(min(STOP_IDLE_LINGER, timeout / 2))
        for conn in list(self.connections):
            conn.shutdown()
        # In-flight requests finish; targets are not marked draining, so a request that was
        # still arriving is served too.
        while any(self.tracker.snapshot().values()) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        cancelled = 0
        busy = [t for t, n in self.tracker.snapshot().items() if n]
        if busy:  # past the deadline: the drain policy (504, abort, WebSocket 1001)
            cancelled = await self.tracker.drain(busy, 0.0)
        pending = {t for t in self.tasks if not t.done()}
        if pending:  # e.g. requests still connecting
            _, pending = await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
            for task in pending:
                task.cancel()
                cancelled += 1
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for conn in list(self.connections):
            conn.abort()
        self.sweep.close()
        self.pool.close()
        await server.wait_closed()
        self._server = None
        if self._tls_server is not None:
            # A TLS transport can outlive our protocol while it waits for the peer's close_notify;
            # the listener is closed already, so do not wait for those.
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._tls_server.wait_closed(), 1.0)
            self._tls_server = None
        log.info("Stopped proxy port=%d cancelled=%d", self._port, cancelled)

    # -- routes ---------------------------------------------------------------------------------
    @property
    def table(self) -> RouteTable:
        return self.state.table

    def on_target_failed(self, callback: Callable[[str, str], None] | None) -> None:
        """Passive health: `callback(app, target)` when a new connection to a target fails.

        Called on the proxy's loop, synchronously, once per failed connection (the request is
        retried elsewhere when it may be); the owner deduplicates and confirms."""
        self.state.on_target_failed = callback

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
    ) -> None:
        """Install or replace an app's routes with one assignment; in-flight requests keep their target.

        `release` names the release `targets` serve (counted apart: release_stats); with
        `canary_release`, `canary_targets` get `canary_percent` of new clients (proxy/rollout.py).
        `maintenance` answers 503 before any target is claimed; `error_pages` are the app's own
        HTML for the proxy's 404/502/503/504. `policy`: the app's edge policy (proxy/policy.py,
        docs/proxy.md "Per-app policies")."""
        service = make_service(app, hosts, targets, path_prefix, balance, tls_redirect, hsts,
                               release, canary_release, canary_targets, canary_percent,
                               maintenance, error_pages, policy=policy)
        self.state.table = self.state.table.with_service(service)
        self.state.app_stats(app)
        self.state.rollouts.keep(app, service.rollout)
        if canary_release:
            log.info("Routed app=%s hosts=%s prefix=%s targets=%s release=%s canary=%s canary_targets=%s "
                     "percent=%g", app, ",".join(service.hosts), service.path_prefix, ",".join(targets),
                     release, canary_release, ",".join(canary_targets), canary_percent)
        else:
            log.info("Routed app=%s hosts=%s prefix=%s targets=%s", app, ",".join(service.hosts),
                     service.path_prefix, ",".join(service.targets))

    def replace_routes(self, routes: Mapping[str, Route | None]) -> None:
        """Install, replace (a Route) or remove (None) several apps' routes with one assignment.
        The new table is built and checked whole first: a RouteConflictError or InvalidRouteError
        leaves the table as it was. A reload that moves a host between apps uses this."""
        changes = {app: None if r is None else r.service(app) for app, r in routes.items()}
        self.state.table = self.state.table.replacing(changes)
        for app, service in changes.items():
            if service is None:
                self.balancer.forget(app)
            else:
                self.state.app_stats(app)
                self.state.rollouts.keep(app, service.rollout)
        log.info("Routed apps=%s removed=%s", ",".join(a for a, r in changes.items() if r),
                 ",".join(a for a, r in changes.items() if r is None))

    def remove_app(self, app: str) -> None:
        self.state.table = self.state.table.without_app(app)
        self.balancer.forget(app)
        log.info("Unrouted app=%s", app)

    def set_routes(self, services: Sequence[Service]) -> None:
        """Replace the whole table with one assignment (a worker's `table` message, proxy/worker.py)."""
        table = RouteTable.build({s.app: s for s in services})
        gone = [app for app in self.state.table.services if app not in table.services]
        self.state.table = table
        for app, service in table.services.items():
            self.state.app_stats(app)
            self.state.rollouts.keep(app, service.rollout)
        for app in gone:
            self.balancer.forget(app)

    async def settled(self) -> float:
        """Seconds until every process serves the last table: in-process, it does at once."""
        return 0.0

    async def warm(self, targets: Sequence[str], replacing: Sequence[str]) -> int:
        """Before a swap: give `targets` as many pooled connections as `replacing` hold now (idle
        or busy), at most WARM_MAX each, so the switch does not wait on connection set-up."""
        held = sum(self.pool.idle_count(t) + self.tracker.count(t) for t in replacing)
        if not targets or not held:
            return 0
        each = min(WARM_MAX, -(-held // len(targets)))
        opened = await asyncio.gather(*(self.pool.warm(t, each) for t in targets))
        log.info("Warmed targets=%s connections=%d", ",".join(targets), sum(opened))
        return sum(opened)

    # -- drain and in-flight ------------------------------------------------------------------
    async def drain(self, targets: Iterable[str], timeout: float) -> int:
        """Wait for in-flight requests on `targets`; at `timeout` cancel the rest (returns how many)."""
        wanted = list(targets)
        log.info("Draining targets=%s timeout=%s inflight=%d", ",".join(wanted), timeout,
                 sum(self.tracker.count(t) for t in wanted))
        cancelled = await self.tracker.drain(wanted, timeout)
        live = self.state.table.targets()
        for t in wanted:
            if t not in live:
                self.pool.close_target(t)
        log.info("Drained targets=%s cancelled=%d", ",".join(wanted), cancelled)
        return cancelled

    def inflight(self) -> dict[str, int]:
        return self.tracker.snapshot()

    # -- stats ------------------------------------------------------------------------------------
    def app_stats(self, app: str) -> AppStats:
        return self.state.app_stats(app)

    def stats(self, app: str) -> dict[str, Any]:
        return self.app_stats(app).snapshot()

    def stats_all(self) -> dict[str, dict[str, Any]]:
        return {app: s.snapshot() for app, s in self.state.stats.items()}

    def release_stats(self, app: str) -> dict[str, dict[str, Any]]:
        """release -> its counters (requests, status classes, failures, latency buckets)."""
        return self.state.rollouts.snapshot(app)

    def release_stats_all(self) -> dict[str, dict[str, dict[str, Any]]]:
        """app -> release -> counters: the release label of the Prometheus metrics."""
        return self.state.rollouts.snapshot_all()

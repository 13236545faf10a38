"""The public facade: Proxy ties the route table, balancer, in-flight tracker, pool and listener."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable, Sequence
from contextlib import suppress
from typing import Any

from .balancer import Balancer
from .deadlines import DeadlineSweep, sweep_interval
from .edge import Edge
from .errors import ProxyStateError
from .inflight import InflightTracker
from .options import ProxyOptions
from .routes import RouteTable, make_service
from .server import ClientConnection
from .stats import AppStats
from .tls import CertStore, TlsClientConnection
from .upstream import WARM_MAX, UpstreamPool

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
        self._table = RouteTable.build({})
        self.tracker = InflightTracker()
        self.balancer = Balancer(self.tracker)
        self.pool = UpstreamPool(self.options.upstream_connect_timeout, self.options.upstream_idle_timeout)
        self._stats: dict[str, AppStats] = {}
        self.connections: set[ClientConnection] = set()
        self.sweep = DeadlineSweep(self.connections, sweep_interval(self.options))
        self.tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._port = 0
        self.edge: Edge | None = None  # ACME challenges, https redirects, HSTS: set by start_tls
        self._tls_server: asyncio.AbstractServer | None = None
        self.tls_port = 0

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    @property
    def port(self) -> int:
        return self._port

    async def start(self, host: str, port: int, *, sock: socket.socket | None = None) -> None:
        if self._server is not None:
            raise ProxyStateError("proxy already started")
        self._loop = asyncio.get_running_loop()
        log.info("Starting proxy host=%s port=%s", host, port)
        if sock is not None:
            server = await self._loop.create_server(lambda: ClientConnection(self), sock=sock, backlog=1024)
        else:
            server = await self._loop.create_server(
                lambda: ClientConnection(self), host, port, reuse_address=True, backlog=1024
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
        self._loop = asyncio.get_running_loop()
        log.info("Starting TLS listener host=%s port=%s", host, port)
        where: dict[str, Any] = {"sock": sock} if sock is not None else {"host": host, "port": port, "reuse_address": True}
        self._tls_server = await self._loop.create_server(
            lambda: TlsClientConnection(self), ssl=store.context, backlog=1024, ssl_handshake_timeout=10.0,
            ssl_shutdown_timeout=5.0, **where
        )
        self.tls_port = bound_port(self._tls_server)
        if self.edge is None:
            self.edge = Edge(self.tls_port)
        else:
            self.edge.tls_port = self.tls_port
        log.info("Started TLS listener host=%s port=%d", host, self.tls_port)

    def enable_edge(self, tls_port: int = 443) -> Edge:
        """ACME challenges and https redirects on the plain listener, before (or without) start_tls."""
        if self.edge is None:
            self.edge = Edge(self.tls_port or tls_port)
        return self.edge

    async def stop(self, timeout: float) -> None:
        """Stop accepting, let in-flight requests finish within `timeout`, cancel the rest, close."""
        server = self._server
        if server is None:
            return
        log.info("Stopping proxy port=%d inflight=%d", self._port, len(self.tasks))
        server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Every connection closes after its current response (Connection: close). Idle ones
        # linger a moment first: a request already on its way is served rather than meeting a
        # closed socket, which a client could not tell from a failure.
        for conn in list(self.connections):
            conn.closing = True
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
        return self._table

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
    ) -> None:
        """Install or replace an app's routes with one assignment; in-flight requests keep their target."""
        service = make_service(app, hosts, targets, path_prefix, balance, tls_redirect, hsts)
        self._table = self._table.with_service(service)
        self._stats.setdefault(app, AppStats())
        log.info("Routed app=%s hosts=%s prefix=%s targets=%s", app, ",".join(service.hosts),
                 service.path_prefix, ",".join(service.targets))

    def remove_app(self, app: str) -> None:
        self._table = self._table.without_app(app)
        self.balancer.forget(app)
        log.info("Unrouted app=%s", app)

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
        live = self._table.targets()
        for t in wanted:
            if t not in live:
                self.pool.close_target(t)
        log.info("Drained targets=%s cancelled=%d", ",".join(wanted), cancelled)
        return cancelled

    def inflight(self) -> dict[str, int]:
        return self.tracker.snapshot()

    # -- stats ------------------------------------------------------------------------------------
    def app_stats(self, app: str) -> AppStats:
        stats = self._stats.get(app)
        if stats is None:
            stats = self._stats[app] = AppStats()
        return stats

    def stats(self, app: str) -> dict[str, Any]:
        return self.app_stats(app).snapshot()

    def stats_all(self) -> dict[str, dict[str, Any]]:
        return {app: s.snapshot() for app, s in self._stats.items()}

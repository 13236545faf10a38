"""What the client connections and exchanges share with the Proxy that owns them.

uvicorn hands its protocols a small `ServerState`, never the `Server`; this is ours. The
Proxy (proxy.py) builds one and passes it to every `ClientConnection`, so the hot-path modules
(`server`, `exchange`) never import the facade, and the facade imports them one way only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from .balancer import Balancer
from .deadlines import DeadlineSweep, sweep_interval
from .edge import Edge
from .errors import UpstreamConnectError, UpstreamError
from .forwarding import networks
from .inflight import InflightTracker
from .options import ProxyOptions
from .rollout import Rollouts
from .routes import RouteTable
from .stats import AppStats
from .upstream import UpstreamPool


class Connection(Protocol):
    """A client connection as the proxy's lifecycle and the deadline sweep see it."""

    def check_deadlines(self, now: float) -> None: ...
    def linger(self) -> None: ...  # answer the current request with Connection: close
    def shutdown(self) -> None: ...
    def abort(self) -> None: ...
    def idle(self) -> bool: ...  # a keep-alive connection between requests


class ProxyState:
    """Route table, balancer, in-flight tracker, pool, stats, connections and tasks of one proxy."""

    def __init__(self, options: ProxyOptions) -> None:
        self.options = options
        self.table = RouteTable.build({})  # rebound in one assignment by Proxy.set_app/remove_app
        self.tracker = InflightTracker()
        self.balancer = Balancer(self.tracker)
        self.pool = UpstreamPool(options.upstream_connect_timeout, options.upstream_idle_timeout,
                                 max_head=options.max_response_header_size)
        self.trusted = networks(options.trusted_proxies)
        self.stats: dict[str, AppStats] = {}
        self.rollouts = Rollouts()  # the canary draw and the counters per release (rollout.py)
        self.connections: dict[Connection, None] = {}  # in arrival order (oldest first)
        self.per_ip: dict[str, int] = {}  # open connections per client address
        self.max_connections = options.max_connections  # lowered to fit RLIMIT_NOFILE at start
        self.refused = 0  # connections closed at once for a limit
        self.sweep = DeadlineSweep(self.connections, sweep_interval(options))
        self.tasks: set[asyncio.Task[None]] = set()
        self.edge: Edge | None = None  # ACME challenges, https redirects, HSTS (proxy/edge.py)
        self._loop: asyncio.AbstractEventLoop | None = None  # set by Proxy.start
        # passive health: told (app, target) when a new connection to a target fails
        self.on_target_failed: Callable[[str, str], None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the listeners run on (Proxy.start, start_tls)."""
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def target_failed(self, app: str, target: str, exc: UpstreamError) -> None:
        """Passive health: a connection to `target` could not be opened (refused, unreachable).

        A reset of a pooled keep-alive connection is not reported: a backend closing an idle
        connection is normal. The owner confirms before it acts (supervisor/deploy/passive.py)."""
        if self.on_target_failed is not None and isinstance(exc, UpstreamConnectError):
            self.on_target_failed(app, target)

    def app_stats(self, app: str) -> AppStats:
        stats = self.stats.get(app)
        if stats is None:
            stats = self.stats[app] = AppStats()
        return stats

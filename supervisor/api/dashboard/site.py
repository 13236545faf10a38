"""The dashboard as an aiohttp application, and its listeners: `[server] dashboard_listen`, and
a loopback port of its own behind the proxy's route for `dashboard_host` (see `edge.py`).

Read-only: only GET (and HEAD) routes exist, so anything else is 405. Every answer carries a
strict Content-Security-Policy: scripts, styles, images and connections from the dashboard's
own origin only, nothing inline, no frames; the assets are served from the package itself.
A request whose Host is neither an IP address nor `localhost` is refused (403), so a web page
elsewhere cannot read the dashboard through DNS rebinding; a request the proxy forwards for
`dashboard_host` (after basic auth) is let in by the secret header the proxy sets on it (`Access`).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from aiohttp import web

from proxy.routes import normalize_host
from scheduler import Scheduler
from supervisor.api import listen as listener
from supervisor.api.dashboard import canary, edge, pages, stream
from supervisor.api.dashboard.data import Sources
from supervisor.api.responses import error_response
from supervisor.deploy.supervisor import Supervisor
from supervisor.model.errors import DockyardError
from supervisor.model.spec import DashboardSite
from supervisor.ops.metrics import StatsSource
from supervisor.ops.series import Sampler

log = logging.getLogger("dockyard.supervisor")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}
STATIC = {  # the only files served, and their types
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
    "chart.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
SHUTDOWN_TIMEOUT = 2.0  # seconds open streams get to end when the daemon stops
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_allowed(host: str) -> bool:
    """`localhost` or an IP address, with or without a port."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name in ("localhost", "localhost."):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Access:
    """Who may read: with `local`, requests whose Host is an IP address or localhost (the
    `dashboard_listen` port); with a `token`, requests for `host` that carry it in
    `edge.PROXY_HEADER`, which only the proxy's dashboard route sets (replacing a client's)."""

    local: bool = True
    host: str = ""
    token: str = ""

    def allows(self, request: web.Request) -> bool:
        if self.token:
            given = request.headers.get(edge.PROXY_HEADER, "")
            if given and hmac.compare_digest(given.encode(), self.token.encode()):
                return normalize_host(request.host) == self.host
        return self.local and host_allowed(request.host)


ACCESS_KEY = web.AppKey("access", Access)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.app[ACCESS_KEY].allows(request):
        response: web.StreamResponse = web.Response(
            status=403, text="dockyard dashboard: reach it by IP address or localhost, or through dashboard_host\n")
    else:
        try:
            response = await handler(request)
        except DockyardError as exc:
            response = error_response(exc)
    return response


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer, streams and errors included, gets HEADERS."""
    response.headers.update(HEADERS)
    response.headers.setdefault("Cache-Control", "no-store")


@cache
def asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    kind = STATIC.get(name)
    if kind is None:
        raise web.HTTPNotFound(text="no such file\n")
    return web.Response(body=asset(name), content_type=kind,
                        headers={"Cache-Control": "no-cache"})


def make_app(src: Sources, access: Access | None = None) -> web.Application:
    app = web.Application(middlewares=[guard])
    app[ACCESS_KEY] = access or Access()
    app[pages.SOURCES_KEY] = src
    app[stream.CLOSING_KEY] = asyncio.Event()

    async def closing(app: web.Application) -> None:
        app[stream.CLOSING_KEY].set()

    app.on_shutdown.append(closing)
    app.on_response_prepare.append(secure_headers)
    app.router.add_routes(pages.routes())
    app.router.add_routes(stream.routes())
    app.router.add_get("/static/{name}", static)
    return app


class Dashboard:
    """The running dashboard: its series sampler, its listeners, and for `dashboard_host` the
    proxy's route to its loopback port (see `serve`)."""

    def __init__(self, sampler: Sampler, runner: web.AppRunner, access: Access,
                 routes: edge.Routes | None = None) -> None:
        self.sampler = sampler
        self.runner = runner
        self.access = access
        self.routes = routes  # where the dashboard_host route is installed, if any

    @property
    def port(self) -> int:
        """The first listener's: `dashboard_listen`'s when set."""
        return listener.bound_port(self.runner)

    @property
    def target(self) -> str:
        """The loopback address the proxy forwards `dashboard_host` to (the last listener)."""
        return f"127.0.0.1:{listener.bound_ports(self.runner)[-1]}"

    async def close(self) -> None:
        if self.routes is not None:
            self.routes.remove_app(edge.ROUTE)
        await self.runner.cleanup()
        await self.sampler.close()


async def serve(
    listen: str | None,
    supervisor: Supervisor,
    proxy: StatsSource,
    scheduler: Callable[[], Scheduler | None] = lambda: None,
    tls_status: Callable[[], Mapping[str, Mapping[str, Any]]] = dict,
    site: DashboardSite | None = None,
    routes: edge.Routes | None = None,
) -> Dashboard:
    """What the daemon calls: sample the proxy's counters every second and serve the pages on
    `listen`; with a `site` (dashboard_host), also on a free loopback port, which `routes` (the
    proxy) gets a route to."""
    if site is not None and routes is None:
        raise ValueError("a dashboard_host needs the proxy's routes")
    sampler = Sampler(proxy, canaries=lambda: canary.releases_of(supervisor))
    sampler.start()
    src = Sources(supervisor, sampler, supervisor.events, scheduler, tls_status)
    access = Access(local=listen is not None, host=site.host if site else "",
                    token=secrets.token_urlsafe(32) if site else "")
    listens = ([listen] if listen else []) + ([edge.LOOPBACK] if site else [])
    try:
        runner = await listener.start(make_app(src, access), listens, "dashboard", SHUTDOWN_TIMEOUT)
    except BaseException:
        await sampler.close()
        raise
    board = Dashboard(sampler, runner, access)
    if site is not None and routes is not None:
        edge.install(routes, site, board.target, access.token)
        board.routes = routes
    return board

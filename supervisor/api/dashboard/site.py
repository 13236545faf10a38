"""The dashboard as an aiohttp application, and its listener on `[server] dashboard_listen`.

Read-only: only GET (and HEAD) routes exist, so anything else is 405. Every answer carries a
strict Content-Security-Policy: scripts, styles, images and connections from the dashboard's
own origin only, nothing inline, no frames; the assets are served from the package itself.
A request whose Host is neither an IP address nor `localhost` is refused (403), so a web page
elsewhere cannot read the dashboard through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any

from aiohttp import web

from scheduler import Scheduler
from supervisor.api.dashboard import pages, stream
from supervisor.api.dashboard.data import Sources
from supervisor.api.responses import error_response
from supervisor.base.address import split_listen
from supervisor.deploy.supervisor import Supervisor
from supervisor.model.errors import DockyardError
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


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not host_allowed(request.host):
        response: web.StreamResponse = web.Response(
            status=403, text="dockyard dashboard: reach it by IP address or localhost\n")
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


def make_app(src: Sources) -> web.Application:
    app = web.Application(middlewares=[guard])
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


async def start(listen: str, src: Sources) -> web.AppRunner:
    """Serve the dashboard on `listen` ("127.0.0.1:9200"); stop with `await runner.cleanup()`."""
    host, port = split_listen(listen)
    runner = web.AppRunner(make_app(src), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    log.info("serving dashboard listen=%s", listen)
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port a `start` runner listens on (useful with port 0)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("the dashboard runner has no listening site")


class Dashboard:
    """The running dashboard: its series sampler and its listener (see `serve`)."""

    def __init__(self, sampler: Sampler, runner: web.AppRunner) -> None:
        self.sampler = sampler
        self.runner = runner

    @property
    def port(self) -> int:
        return bound_port(self.runner)

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.sampler.close()


async def serve(
    listen: str,
    supervisor: Supervisor,
    proxy: StatsSource,
    scheduler: Callable[[], Scheduler | None] = lambda: None,
    tls_status: Callable[[], Mapping[str, Mapping[str, Any]]] = dict,
) -> Dashboard:
    """What the daemon calls: sample the proxy's counters every second and serve the pages."""
    sampler = Sampler(proxy)
    sampler.start()
    src = Sources(supervisor, sampler, supervisor.events, scheduler, tls_status)
    try:
        runner = await start(listen, src)
    except BaseException:
        await sampler.close()
        raise
    return Dashboard(sampler, runner)

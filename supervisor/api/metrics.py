"""`GET /metrics`: on the control socket, and on `[server] metrics_listen` (a localhost port)
when set. The registry and collectors are supervisor/ops/metrics.py."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from supervisor.base.address import split_listen
from supervisor.ops import metrics
from supervisor.ops.metrics import ServingSource, StatsSource

log = logging.getLogger("dockyard.supervisor")

# serving ----------------------------------------------------------------------------------

GetSupervisor = Callable[[], ServingSource | None]
GetProxy = Callable[[], StatsSource | None]


def _proxy_of(sup: ServingSource | None, get_proxy: GetProxy | None) -> StatsSource | None:
    if get_proxy is not None:
        return get_proxy()
    routes = getattr(sup, "routes", None)  # the supervisor's RouteSink is the Proxy in the daemon
    return routes if routes is not None and hasattr(routes, "stats_all") else None


def routes(get_supervisor: GetSupervisor, get_proxy: GetProxy | None = None) -> list[web.RouteDef]:
    """`GET /metrics`; add with `app.router.add_routes(metrics.routes(lambda: sup))`.

    Without `get_proxy`, the supervisor's route sink is used when it has `stats_all()`.
    """

    async def handler(request: web.Request) -> web.Response:
        sup = get_supervisor()
        body = metrics.render(sup, _proxy_of(sup, get_proxy))
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return [web.get("/metrics", handler)]


def add_routes(app: web.Application, get_supervisor: GetSupervisor,
               get_proxy: GetProxy | None = None) -> None:
    app.router.add_routes(routes(get_supervisor, get_proxy))


async def start_http(
    listen: str, get_supervisor: GetSupervisor, get_proxy: GetProxy | None = None
) -> web.AppRunner:
    """Serve `GET /metrics` on `listen` ("127.0.0.1:9100"); stop with `await runner.cleanup()`."""
    host, port = split_listen(listen)
    app = web.Application()
    add_routes(app, get_supervisor, get_proxy)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    log.info("serving metrics listen=%s", listen)
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port a `start_http` runner listens on (useful with port 0)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("the metrics runner has no listening site")

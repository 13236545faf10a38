"""`GET /metrics`: on the control socket, and on `[server] metrics_listen` (a localhost port)
when set. The registry and collectors are supervisor/ops/metrics.py."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from supervisor.api import listen as listener
from supervisor.ops import metrics
from supervisor.ops.metrics import ServingSource, StatsSource

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
    app = web.Application()
    add_routes(app, get_supervisor, get_proxy)
    return await listener.start(app, [listen], "metrics")


bound_port = listener.bound_port  # the port a `start_http` runner listens on (useful with port 0)

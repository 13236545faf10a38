"""The proxy's route for `[server] dashboard_host` (docs/dashboard.md, "On a host of the proxy").

The daemon serves the dashboard on a loopback port of its own (`LOOPBACK`, a free port) and gives
the proxy one more route, in the same immutable route table as the apps': the dashboard's host ->
that address, with a `basic_auth` policy from `dashboard_auth`, the HTTPS redirect when the
dashboard has TLS, and a request header carrying a per-daemon secret token (`PROXY_HEADER`),
which the proxy sets on every request it forwards (replacing a client's) and the dashboard
checks (`site.Access`): the loopback port answers nobody but the proxy when `dashboard_listen`
is not set. Plain data only, as every route: it would reach proxy worker processes unchanged.
"""

from __future__ import annotations

from typing import Protocol

from proxy.policy import Policy
from supervisor.model import defaults
from supervisor.model.spec import DashboardSite

ROUTE = defaults.DASHBOARD_NAME  # the route's name among the apps' (an app name never has "@")
LOOPBACK = "127.0.0.1:0"  # where the proxy reaches the dashboard: a free loopback port
PROXY_HEADER = "X-Dockyard-Dashboard"


class Routes(Protocol):
    def set_app(self, app: str, hosts: tuple[str, ...], targets: tuple[str, ...], *,
                tls_redirect: bool = False, hsts: int | None = None,
                policy: Policy | None = None) -> None: ...

    def remove_app(self, app: str) -> None: ...


def policy(site: DashboardSite, token: str) -> Policy:
    """Basic auth; nothing buffered or compressed, so the server-sent events pass as they come."""
    return Policy(basic_auth=site.auth, buffer_requests=False, buffer_responses=False, compress=False,
                  request_headers=((PROXY_HEADER, token),))


def install(routes: Routes, site: DashboardSite, target: str, token: str) -> None:
    """Route `site.host` to the dashboard at `target` ("127.0.0.1:PORT"): one route-table assignment."""
    routes.set_app(ROUTE, (site.host,), (target,), tls_redirect=site.tls_redirect, hsts=site.hsts,
                   policy=policy(site, token))

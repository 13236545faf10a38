"""What may hold a certificate: each app with its hosts, and the dashboard's host
(`[server] dashboard_host`, docs/dashboard.md) under the name `DASHBOARD`, so manual files and
ACME serve both the same way."""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.model import defaults
from supervisor.model.kinds import TlsMode
from supervisor.model.spec import Config

DASHBOARD = defaults.DASHBOARD_NAME  # the dashboard host's certificate


@dataclass(frozen=True, slots=True)
class Site:
    """What a certificate is for: an app's hosts, or the dashboard's host."""

    tls: TlsMode
    hosts: tuple[str, ...]
    tls_cert: str | None
    tls_key: str | None


def sites(config: Config) -> dict[str, Site]:
    """Every name that may hold a certificate: each app, and `DASHBOARD` for `dashboard_host`."""
    found = {name: Site(app.tls, app.hosts, app.tls_cert, app.tls_key) for name, app in config.apps.items()}
    site = config.server.dashboard_site
    if site is not None:
        found[DASHBOARD] = Site(site.tls, (site.host,), site.tls_cert, site.tls_key)
    return found

"""`[server] dashboard_host`, `dashboard_auth`, `dashboard_tls` -> a `DashboardSite` (docs/dashboard.md).

The dashboard on a host of the proxy always asks for a password: `dashboard_auth` is the same
table as an app's `basic_auth` (read by `policies.basic_auth`, the one reader of htpasswd files),
without `exempt`. When the server has TLS (`tls_listen`), the dashboard host must use it:
`dashboard_tls` is the same keys as an app's TLS (`tls`, `tls_cert`, `tls_key`, `hsts`, read by
`tls.app_tls`), and plain HTTP is always redirected to https.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from supervisor.config import validators
from supervisor.config.fields import Collector, Table, show
from supervisor.config.policies import basic_auth
from supervisor.config.tls import app_tls
from supervisor.model import defaults
from supervisor.model.kinds import TlsMode
from supervisor.model.spec import AppSpec, DashboardSite

_NEEDS_AUTH = ('is required with dashboard_host: the dashboard on a proxy host asks for a password, '
               'e.g. dashboard_auth = { users_file = "dashboard.htpasswd" } (written by `htpasswd -B`)')
_NEEDS_TLS = ('is required when the server has TLS (tls_listen): the dashboard\'s password must not travel '
              'in clear text; e.g. dashboard_tls = { tls = "acme" }, or tls = "manual" with tls_cert and tls_key')


def dashboard_site(t: Table, base: Path, tls_listen: str | None) -> DashboardSite | None:
    host = t.string("dashboard_host")
    auth_table = t.table("dashboard_auth")
    tls_table = t.table("dashboard_tls")
    if not t.has("dashboard_host"):
        for key in ("dashboard_auth", "dashboard_tls"):
            if t.has(key):
                t.error(key, "is only used with dashboard_host")
        return None
    if host is not None:
        message = validators.host_pattern(host)
        if message or host.startswith("*."):
            t.error("dashboard_host", message or f"must be one host name, not a wildcard, got {show(host)}")
            host = None
    if not t.has("dashboard_auth"):
        t.error("dashboard_auth", _NEEDS_AUTH)
    auth = basic_auth(auth_table, base, defaults.DASHBOARD_REALM)
    if auth is not None and auth.exempt:
        t.error("dashboard_auth", "exempt is not allowed: every page of the dashboard asks for the password")
    found: dict[str, Any] = {"tls": defaults.TLS_MODE, "tls_cert": None, "tls_key": None, "hsts": None}
    if tls_table is not None:
        found = app_tls(tls_table, base, (host,) if host else ())
        if tls_table.has("tls_redirect") and not found["tls_redirect"] and found["tls"] != "off":
            tls_table.error("tls_redirect", "cannot be turned off: plain HTTP to the dashboard always goes to https")
        tls_table.finish()
    mode: TlsMode = found["tls"]
    if tls_listen is not None and mode == "off":
        t.error("dashboard_tls", _NEEDS_TLS)
    elif tls_listen is None and mode != "off":
        t.error("dashboard_tls", f"tls = {show(mode)} needs [server] tls_listen (e.g. \"0.0.0.0:443\")")
    elif tls_listen is None:
        t.out.warn(t.key("dashboard_host"), "the server has no TLS (tls_listen): the dashboard's password "
                   "travels in clear text; put TLS in front of it or prefer dashboard_listen and an SSH tunnel")
    if host is None or auth is None:
        return None
    return DashboardSite(host=host.lower(), auth=auth, tls=mode, tls_cert=found["tls_cert"],
                         tls_key=found["tls_key"], hsts=found["hsts"])


def check_dashboard_host(apps: Mapping[str, AppSpec], site: DashboardSite | None, out: Collector) -> None:
    """The dashboard's host is its own: no app may route any path of it."""
    if site is None:
        return
    for name, app in apps.items():
        if site.host in (h.lower() for h in app.hosts):
            out.error("server.dashboard_host", f"{site.host!r} is also a host of app {name!r}; "
                      "the dashboard needs a host of its own")

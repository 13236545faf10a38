"""The TLS keys of `[server]` and `[apps.NAME]` (see docs/tls.md), read into keyword arguments."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from supervisor.config import validators
from supervisor.config.certs import check_pair
from supervisor.config.fields import Table, is_int, show
from supervisor.model import defaults
from supervisor.model.kinds import TLS_MODES


def server_tls(t: Table) -> dict[str, Any]:
    tls_listen = t.string("tls_listen", check=validators.listen_address) or defaults.TLS_LISTEN
    directory = t.string("acme_directory", defaults.ACME_DIRECTORY) or defaults.ACME_DIRECTORY
    if not directory.startswith(("https://", "http://")):
        t.error("acme_directory", f"must be an http(s) URL of an ACME directory, got {show(directory)}")
    email = t.string("acme_email")
    if email is not None and ("@" not in email or any(c.isspace() for c in email)):
        t.error("acme_email", f"must be an email address, got {show(email)}")
        email = None
    renew_days = t.integer("acme_renew_days", defaults.ACME_RENEW_DAYS, minimum=1, maximum=365)
    return {"tls_listen": tls_listen, "acme_directory": directory, "acme_email": email or defaults.ACME_EMAIL,
            "acme_renew_days": renew_days}


def app_tls(t: Table, base: Path, hosts: tuple[str, ...]) -> dict[str, Any]:
    """tls, tls_cert, tls_key, tls_redirect, hsts; a manual pair is checked on disk now."""
    mode = t.choice("tls", defaults.TLS_MODE, TLS_MODES)
    cert = t.string("tls_cert")
    key = t.string("tls_key")
    cert = os.path.normpath(base / cert) if cert else None
    key = os.path.normpath(base / key) if key else None
    if mode == "manual":
        if cert is None and not t.has("tls_cert"):
            t.error("tls_cert", 'is required with tls = "manual" (a PEM certificate chain)')
        if key is None and not t.has("tls_key"):
            t.error("tls_key", 'is required with tls = "manual" (a PEM private key)')
        if cert is not None and key is not None:
            found = check_pair(cert, key, hosts)
            for name, message in found.errors:
                t.error(name, message)
            for name, message in found.warnings:
                t.out.warn(t.key(name), message)
    else:
        for name, value in (("tls_cert", cert), ("tls_key", key)):
            if value is not None:
                t.error(name, f'is only used with tls = "manual" (tls is {show(mode)})')
    if mode != "off" and not hosts:
        t.error("tls", "needs hosts: certificates are chosen by host name")
    if mode == "acme":
        for host in hosts:
            if host.startswith("*."):
                t.error("tls", f'"acme" cannot get a certificate for the wildcard {show(host)} (HTTP-01); use tls = "manual"')
    redirect = t.boolean("tls_redirect", False)
    if redirect and mode == "off":
        t.error("tls_redirect", 'needs tls = "manual" or "acme": there would be no https to redirect to')
    hsts: int | None = None
    if t.has("hsts"):
        value = t.raw("hsts")
        if isinstance(value, bool):
            hsts = defaults.HSTS_MAX_AGE if value else None
        elif is_int(value) and 0 <= value <= defaults.MAX_HSTS_AGE:
            hsts = int(value)
        elif is_int(value) and value > defaults.MAX_HSTS_AGE:
            t.error("hsts", f"must be at most {defaults.MAX_HSTS_AGE} seconds (two years), got {value}")
        else:
            t.bad("hsts", "true, false or a max-age in seconds (an integer >= 0)")
        if hsts is not None and mode == "off":
            t.error("hsts", 'needs tls = "manual" or "acme" (browsers ignore HSTS over plain http)')
    return {"tls": mode, "tls_cert": cert, "tls_key": key, "tls_redirect": redirect, "hsts": hsts}


def check_tls_listen(apps: dict[str, Any], tls_listen: str | None, out: Any) -> None:
    """An app with tls on needs `[server] tls_listen`."""
    if tls_listen is not None:
        return
    for name, app in apps.items():
        if app.tls != "off":
            out.error(f"apps.{name}.tls", f"tls = {show(app.tls)} needs [server] tls_listen (e.g. \"0.0.0.0:443\")")

"""The daemon's TLS side: the certificate store behind the TLS listener, manual certificates,
and ACME for the apps that ask for it.

ACME's client (the `acme` package, josepy, cryptography: ~12 MB and ~40 ms of imports) is
loaded with the first app whose `tls = "acme"` (`supervisor/tls/acme.py`); a daemon with manual
certificates or no TLS never holds it.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Any

from proxy.tls import CertStore
from supervisor.base.address import split_listen
from supervisor.model import defaults
from supervisor.model.spec import Config
from supervisor.tls.sites import sites

if TYPE_CHECKING:
    from supervisor.tls.acme import AcmeManager

log = logging.getLogger("dockyard.supervisor")


class Tls:
    """The daemon's TLS side: the certificate store behind the listener, and ACME when used."""

    def __init__(self, proxy: Any, store: CertStore, ca_bundle: str | None) -> None:
        self.proxy = proxy
        self.store = store
        self.ca_bundle = ca_bundle
        self.manager: AcmeManager | None = None
        self.manual_errors: dict[str, str] = {}  # app -> why its manual certificate is not served

    def status(self) -> dict[str, dict[str, Any]]:
        found = self.manager.status() if self.manager is not None else {}
        for name, reason in self.manual_errors.items():
            found[name] = {"mode": "manual", "state": "error", "last_error": reason,
                           "note": "TLS is off for this app until the certificate is fixed"}
        return found

    def install_manual(self, config: Config) -> None:
        """Install every manual certificate (re-read from disk: a rotated file is picked up).
        One the listener refuses (OpenSSL, a missing file) leaves that app's TLS off, with the
        reason in status(); the other apps are served."""
        errors: dict[str, str] = {}
        for name, app in sites(config).items():
            if app.tls == "manual" and app.tls_cert and app.tls_key:
                try:
                    self.store.install(name, app.hosts, app.tls_cert, app.tls_key)
                except (ssl.SSLError, OSError, ValueError) as exc:
                    errors[name] = f"{app.tls_cert!r}: {getattr(exc, 'reason', None) or exc}"
                    self.store.remove(name)
                    log.error("certificate refused app=%s cert=%s error=%s; TLS is off for it",
                              name, app.tls_cert, errors[name])
        self.manual_errors = errors

    def apply(self, config: Config) -> None:
        """Install manual certificates, drop the ones of apps that left or turned TLS off, start
        or stop ACME per app."""
        self.install_manual(config)
        named = sites(config)
        acme_apps = {name: app.hosts for name, app in named.items() if app.tls == "acme"}
        for name in self.store.names():
            if name not in named or named[name].tls == "off":
                self.store.remove(name)
        if self.manager is not None:
            for name in list(self.manager.apps):
                if name not in acme_apps:
                    self.manager.forget(name)
        new = {n: h for n, h in acme_apps.items()
               if self.manager is None or self.manager.apps.get(n) != tuple(h)}
        if new:
            if self.manager is None:
                from supervisor.tls.acme import AcmeManager

                server = config.server
                self.manager = AcmeManager(
                    directory=server.acme_directory, email=server.acme_email,
                    certs_dir=server.state_dir / defaults.CERTS_DIR_NAME, store=self.store,
                    edge=self.proxy.enable_edge(), renew_days=server.acme_renew_days,
                    ca_bundle=self.ca_bundle)
            self.manager.start(new)

    async def close(self) -> None:
        if self.manager is not None:
            await self.manager.close()


async def start_tls(
    config: Config, proxy: Any, *, ca_bundle: str | None = None, sock: Any = None
) -> Tls | None:
    """Start the TLS listener with the manual certificates, and the ACME manager when needed."""
    server = config.server
    if server.tls_listen is None:
        return None
    store = proxy.cert_store() if hasattr(proxy, "cert_store") else CertStore()  # workers: a feed
    tls = Tls(proxy, store, ca_bundle)
    host, port = split_listen(server.tls_listen)
    tls.install_manual(config)  # certificates before the first handshake
    await proxy.start_tls(host, port, tls.store, sock=sock)
    tls.apply(config)
    return tls

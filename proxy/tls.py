"""TLS termination: a swappable certificate store that picks a certificate by SNI.

`CertStore` maps host names (exact, or `*.suffix` wildcards) to one `ssl.SSLContext` per
certificate. Installing or replacing a certificate builds a new context first (so a bad file
fails before anything changes), then rebinds one mapping with a single assignment, like the
route table. The SNI callback reads that mapping once per handshake; established connections
keep the context they negotiated.

A host without a certificate gets the default certificate when one is set, otherwise the
handshake fails cleanly with an `unrecognized_name` alert. The callback never raises.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .routes import normalize_host

log = logging.getLogger("dockyard.proxy")

ALPN = ["http/1.1"]
# TLS 1.2 suites: forward-secret AEAD only (Mozilla's "intermediate"); no CBC, no RSA key
# exchange. TLS 1.3 suites are AEAD by definition and set apart by OpenSSL.
CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
           "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
           "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305")


def harden(ctx: ssl.SSLContext) -> None:
    """TLS 1.2+, AEAD suites, no compression, no client-initiated renegotiation."""
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.set_alpn_protocols(ALPN)


def make_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """A server context for one certificate chain. Raises ssl.SSLError/OSError on bad files."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    harden(ctx)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


@dataclass(frozen=True, slots=True)
class CertEntry:
    """One installed certificate: the name it was installed under, its hosts and context."""

    name: str
    hosts: tuple[str, ...]
    context: ssl.SSLContext
    certfile: str


class CertStore:
    """host -> SSLContext, swapped atomically; `listener_context()` is what the TLS listener is given."""

    def __init__(self, *, default: str | None = None) -> None:
        self._entries: Mapping[str, CertEntry] = MappingProxyType({})
        self._hosts: Mapping[str, ssl.SSLContext] = MappingProxyType({})
        self.default = default  # name of the entry served to unknown/missing SNI; None: refuse
        self._context: ssl.SSLContext | None = None
        self.refused = 0  # handshakes refused for an unknown name

    def listener_context(self) -> ssl.SSLContext:
        """The TLS listener's context, whose SNI callback picks a certificate's; made on first use
        (an OpenSSL context is ~1 MB: a proxy process without a TLS listener never makes one)."""
        if self._context is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            harden(ctx)
            ctx.sni_callback = self._sni  # type: ignore[assignment]
            self._context = ctx
        return self._context

    # -- changes: build, then one assignment -------------------------------------------------
    def install(self, name: str, hosts: Iterable[str], certfile: str, keyfile: str) -> None:
        """Install or replace the certificate `name` for `hosts`; raises before changing anything."""
        ctx = make_context(certfile, keyfile)
        entry = CertEntry(name, tuple(normalize_host(h) for h in hosts), ctx, certfile)
        entries = dict(self._entries)
        entries[name] = entry
        self._swap(entries)
        log.info("Installed certificate name=%s hosts=%s", name, ",".join(entry.hosts))

    def remove(self, name: str) -> None:
        if name in self._entries:
            entries = dict(self._entries)
            del entries[name]
            self._swap(entries)
            log.info("Removed certificate name=%s", name)

    def _swap(self, entries: dict[str, CertEntry]) -> None:
        hosts: dict[str, ssl.SSLContext] = {}
        for entry in entries.values():
            for host in entry.hosts:
                hosts[host] = entry.context
        self._entries = MappingProxyType(entries)
        self._hosts = MappingProxyType(hosts)

    # -- reads ------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> CertEntry | None:
        return self._entries.get(name)

    def lookup(self, server_name: str | None) -> ssl.SSLContext | None:
        """Exact name first, then wildcards, longest suffix first; else the default (or None)."""
        hosts = self._hosts
        if server_name:
            host = normalize_host(server_name)
            ctx = hosts.get(host)
            if ctx is not None:
                return ctx
            dot = host.find(".")
            while dot >= 0:
                ctx = hosts.get("*" + host[dot:])
                if ctx is not None:
                    return ctx
                dot = host.find(".", dot + 1)
        if self.default is not None:
            entry = self._entries.get(self.default)
            if entry is not None:
                return entry.context
        return None

    def _sni(self, sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
        try:
            ctx = self.lookup(server_name)
            if ctx is None:
                self.refused += 1
                log.debug("Refused TLS handshake server_name=%s", server_name)
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            sslobj.context = ctx
            return None
        except Exception:  # noqa: BLE001 - a handshake must fail cleanly, never take the server down
            log.exception("SNI callback failed server_name=%s", server_name)
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR

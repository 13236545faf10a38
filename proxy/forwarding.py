"""Who the client is: trusted proxies (CIDRs), the client address behind them, request ids.

By default the peer is the client: its own X-Forwarded-* headers are dropped and replaced
(request.py). A peer inside `trusted_proxies` (a load balancer, a CDN) is believed: its
X-Forwarded-For is kept and appended to, and the client is the right-most address in it
that is not itself trusted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # ipaddress loads with the first CIDR (below): ~0.3 MB a worker without any does not hold
    import ipaddress

    Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_REQUEST_ID = 128
_ID_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"


def networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """Parse CIDRs (checked by ProxyOptions.validate); a bare address is a /32 or /128."""
    if not cidrs:
        return ()
    import ipaddress

    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def is_trusted(address: str, nets: tuple[Network, ...]) -> bool:
    if not nets:  # no trusted proxy: nothing to parse (and ipaddress never loaded)
        return False
    import ipaddress

    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    for net in nets:
        if ip in net:
            return True
    return False


def client_address(xff: bytes | None, peer: str, nets: tuple[Network, ...]) -> str:
    """The right-most untrusted address of `X-Forwarded-For, peer` (the peer when it is untrusted)."""
    if not xff or not is_trusted(peer, nets):
        return peer
    entries = [e.strip() for e in xff.decode("latin-1").split(",")]
    for entry in reversed(entries):
        if entry and not is_trusted(entry, nets):
            return entry
    return entries[0] if entries and entries[0] else peer


def safe_request_id(value: bytes | None) -> bool:
    """A client's X-Request-Id is kept only when it is a short token of [A-Za-z0-9._-]."""
    return (value is not None and 0 < len(value) <= MAX_REQUEST_ID
            and not value.translate(None, _ID_CHARS))

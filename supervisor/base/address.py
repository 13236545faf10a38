"""`host:port` listen addresses (`listen`, `tls_listen`, `metrics_listen`, `dashboard_listen`).

One split for every listener, so they cannot disagree: the port is what follows the last
colon, an IPv6 host loses its brackets ("[::1]:8080" -> ("::1", 8080)). The config's
validator (config/validators.py) refuses an address without a host, so there is no default
host to guess: an empty one is a ValueError here too.
"""

from __future__ import annotations


def split_listen(listen: str) -> tuple[str, int]:
    """("127.0.0.1", 8080) of "127.0.0.1:8080"; ValueError without a host or a numeric port."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise ValueError(f"must be host:port, got {listen!r}")
    return host, int(port)

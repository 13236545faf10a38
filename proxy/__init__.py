"""dockyard's reverse proxy: routes by Host (and path prefix) to targets, swaps and drains them.

It knows nothing about Docker: targets are "HOST:PORT" strings.
"""

from __future__ import annotations

from .errors import (
    InvalidRouteError,
    ProxyError,
    ProxyStateError,
    RouteConflictError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamResetError,
    UpstreamTimeoutError,
)
from .options import ProxyOptions
from .proxy import Proxy
from .routes import RouteTable, Service
from .stats import LATENCY_BUCKETS

__all__ = [
    "LATENCY_BUCKETS",
    "InvalidRouteError",
    "Proxy",
    "ProxyError",
    "ProxyOptions",
    "ProxyStateError",
    "RouteConflictError",
    "RouteTable",
    "Service",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamResetError",
    "UpstreamTimeoutError",
]

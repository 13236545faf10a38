"""dockyard's reverse proxy: routes by Host (and path prefix) to targets, swaps and drains them.

It knows nothing about Docker: targets are "HOST:PORT" strings.
"""

from __future__ import annotations

from . import compiled

compiled.select()  # compiled modules when built and current, else the pure sources (compiled.py)

from .errors import (  # noqa: E402
    InvalidRouteError,
    ProxyError,
    ProxyStateError,
    RouteConflictError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamResetError,
    UpstreamTimeoutError,
)
from .options import ProxyOptions  # noqa: E402
from .proxy import Proxy  # noqa: E402
from .routes import RouteTable, Service  # noqa: E402
from .stats import LATENCY_BUCKETS  # noqa: E402

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

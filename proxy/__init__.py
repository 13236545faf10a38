"""dockyard's reverse proxy: routes by Host (and path prefix) to targets, swaps and drains them.

It knows nothing about Docker: targets are "HOST:PORT" strings. The names below load on first
use (PEP 562), so `import proxy.options` (the config loader, the CLI) does not load the server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import compiled

compiled.select()  # compiled modules when built and current, else the pure sources (compiled.py)

if TYPE_CHECKING:
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
    from .routes import Route, RouteTable, Service
    from .stats import LATENCY_BUCKETS

_WHERE = {
    "InvalidRouteError": ".errors",
    "ProxyError": ".errors",
    "ProxyStateError": ".errors",
    "RouteConflictError": ".errors",
    "UpstreamConnectError": ".errors",
    "UpstreamError": ".errors",
    "UpstreamResetError": ".errors",
    "UpstreamTimeoutError": ".errors",
    "ProxyOptions": ".options",
    "Proxy": ".proxy",
    "Route": ".routes",
    "RouteTable": ".routes",
    "Service": ".routes",
    "LATENCY_BUCKETS": ".stats",
}
__all__ = [
    "InvalidRouteError",
    "LATENCY_BUCKETS",
    "Proxy",
    "ProxyError",
    "ProxyOptions",
    "ProxyStateError",
    "Route",
    "RouteConflictError",
    "RouteTable",
    "Service",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamResetError",
    "UpstreamTimeoutError",
]  # = the keys of _WHERE


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value

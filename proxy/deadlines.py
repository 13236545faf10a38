"""Timeouts of client connections and requests: one coarse periodic sweep, no timer per request.

A connection stores its deadline (header or idle timeout) and an exchange its response
deadline as a float of `loop.time()`, 0.0 for none. Setting or clearing one is an attribute
store; arming and cancelling a `call_later` per request cost a libuv timer, a handle and a
context each, three times per request. One sweep per proxy runs every `interval` seconds
while there are client connections and fires what has expired, so a timeout fires up to
`interval` late: a tenth of the shortest of the three timeouts, between 5 ms and 1 s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Protocol

from .options import ProxyOptions

log = logging.getLogger("dockyard.proxy")

MIN_INTERVAL = 0.005
MAX_INTERVAL = 1.0


class HasDeadlines(Protocol):
    def check_deadlines(self, now: float) -> None: ...


def sweep_interval(options: ProxyOptions) -> float:
    shortest = min(options.client_header_timeout, options.client_idle_timeout, options.upstream_response_timeout)
    return min(MAX_INTERVAL, max(MIN_INTERVAL, shortest / 10))


class DeadlineSweep:
    """Calls `check_deadlines(now)` on every connection each `interval` while there are any."""

    def __init__(self, connections: Collection[HasDeadlines], interval: float) -> None:
        self.connections = connections
        self.interval = interval
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def ensure(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start sweeping (called when a connection arrives; cheap when already running)."""
        if self._handle is None:
            self._loop = loop
            self._handle = loop.call_later(self.interval, self._sweep)

    def _sweep(self) -> None:
        self._handle = None
        loop = self._loop
        if not self.connections or loop is None:
            return
        now = loop.time()
        for conn in list(self.connections):
            try:
                conn.check_deadlines(now)
            except Exception:
                log.exception("Timeout handling failed")
        if self.connections:
            self._handle = loop.call_later(self.interval, self._sweep)

    def close(self) -> None:
        """Stop sweeping until the next `ensure`."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

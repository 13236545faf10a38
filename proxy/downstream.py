"""The client connection as an exchange sees it: a transport to write to, pause and close.

`server.ClientConnection` (the only implementation) parses requests and creates exchanges, so
it imports `exchange`; the exchange only needs this base class, which keeps the import graph
one way: server -> exchange -> downstream -> state.
"""

from __future__ import annotations

import asyncio

from .options import ProxyOptions
from .state import ProxyState

WRITE_HIGH_WATER = 256 * 1024


class Downstream(asyncio.Protocol):
    """Transport state and the operations an exchange performs on its client connection."""

    scheme = b"http"  # X-Forwarded-Proto; proxy.server.TlsClientConnection says https

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.options: ProxyOptions = state.options
        self.loop = state.loop
        self.transport: asyncio.Transport | None = None
        self.peer = b""  # the peer address, as forwarded in X-Forwarded-For / X-Real-IP
        self.peer_str = ""
        self.client_ip = ""  # the right-most untrusted address (differs behind trusted proxies)
        self.trusted = False  # the peer is one of options.trusted_proxies
        self.local_port = b""  # X-Forwarded-Port
        self.paused: set[str] = set()
        self.write_paused = False  # the transport asked us to stop writing (above its high-water mark)
        self.closing = False
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def pause(self, reason: str) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.paused.add(reason)

    def resume(self, reason: str) -> None:
        if reason in self.paused:
            self.paused.discard(reason)
            if not self.paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()

    def track(self, task: asyncio.Task[None]) -> None:
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    # -- implemented by server.ClientConnection (`ex` is its Exchange) ------------------------
    def exchange_finished(self, ex: object) -> None:
        raise NotImplementedError

    def start_tunnel(self, ex: object, upstream: asyncio.Transport) -> asyncio.Transport:
        raise NotImplementedError

"""The upstream side: one lean HTTP/1.1 client protocol per connection, pooled per target."""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import Protocol, cast

import httptools

from .errors import UpstreamConnectError, UpstreamProtocolError, UpstreamResetError

log = logging.getLogger("dockyard.proxy")

MAX_IDLE_PER_TARGET = 256


class ResponseHandler(Protocol):
    """What an UpstreamConnection reports to (the exchange of the current request)."""

    def on_response_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool
    ) -> None: ...
    def on_response_body(self, data: bytes) -> None: ...
    def on_response_done(self) -> None: ...
    def on_upgrade(self, tail: bytes) -> None: ...
    def on_upstream_failed(self, exc: Exception) -> None: ...
    def flush(self) -> None: ...
    def upstream_pause_writing(self) -> None: ...
    def upstream_resume_writing(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One connection to a target. Parses responses with llhttp and hands events to `handler`."""

    def __init__(self, pool: UpstreamPool, target: str) -> None:
        self.pool = pool
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.handler: ResponseHandler | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.got_bytes = False
        self.in_response = False  # a response is expected or being read
        self.interim = False
        self.reusable = True
        self.closed = False
        self.idle_since = 0.0
        self.uses = 0
        self.tunnel: asyncio.Transport | None = None  # WebSocket peer (client transport)

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.write(data)
            return
        handler = self.handler
        if handler is None or not self.in_response:
            # Bytes nobody asked for: the connection can't be trusted any more.
            self.reusable = False
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            handler.on_upgrade(data[offset:])
            return
        except httptools.HttpParserError as exc:
            self.reusable = False
            handler.on_upstream_failed(UpstreamProtocolError(self.target, f"bad response: {exc}"))
            self.close()
            return
        handler.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        self.pool.discard(self)
        handler = self.handler
        if handler is not None and (self.in_response or self.tunnel is not None):
            handler.on_upstream_failed(UpstreamResetError(self.target, f"connection lost: {exc or 'closed'}"))

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.upstream_pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.upstream_resume_writing()

    # -- httptools callbacks -------------------------------------------------------------
    # (no on_message_begin: headers and reason are reset when the head is complete, one call less)
    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        headers = self.headers
        reason = self.reason
        self.headers = []
        self.reason = b""
        parser = self.parser
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True  # 100 Continue, 103 Early Hints: not forwarded
            return
        if not parser.should_keep_alive():
            self.reusable = False
        assert self.handler is not None
        self.handler.on_response_head(status, reason, headers, self.reusable)

    def on_body(self, body: bytes) -> None:
        assert self.handler is not None
        self.handler.on_response_body(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.in_response:
            self.in_response = False
            assert self.handler is not None
            self.handler.on_response_done()

    # -- used by the exchange --------------------------------------------------------------
    def begin(self, handler: ResponseHandler) -> None:
        self.handler = handler
        self.in_response = True
        self.got_bytes = False
        self.interim = False
        self.uses += 1

    def end_without_body(self) -> None:
        """HEAD: llhttp can't know the response has no body, so start a fresh parser."""
        self.in_response = False
        self.parser = httptools.HttpResponseParser(self)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()


class UpstreamPool:
    """Idle keep-alive connections per target, LIFO, closed after `idle_timeout` unused."""

    def __init__(self, connect_timeout: float, idle_timeout: float, max_idle: int = MAX_IDLE_PER_TARGET) -> None:
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._idle: dict[str, list[UpstreamConnection]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    def take(self, target: str) -> UpstreamConnection | None:
        idle = self._idle.get(target)
        if not idle:
            return None
        deadline = monotonic() - self.idle_timeout
        while idle:
            conn = idle.pop()
            if conn.closed or conn.idle_since < deadline:
                conn.close()
                continue
            return conn
        return None

    async def connect(self, target: str) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        host, _, port = target.rpartition(":")
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, proto = await loop.create_connection(
                    lambda: UpstreamConnection(self, target), host.strip("[]"), int(port)
                )
        except TimeoutError as exc:
            raise UpstreamConnectError(target, "connect timed out") from exc
        except OSError as exc:
            raise UpstreamConnectError(target, f"connect failed: {exc}") from exc
        return proto

    def put(self, conn: UpstreamConnection) -> None:
        conn.handler = None
        if conn.closed or not conn.reusable or self._closed:
            conn.close()
            return
        conn.idle_since = monotonic()
        idle = self._idle.get(conn.target)
        if idle is None:
            idle = self._idle[conn.target] = []
        if len(idle) >= self.max_idle:
            conn.close()
            return
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self.idle_timeout / 2, self._sweep)

    def discard(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.target)
        if idle and conn in idle:
            idle.remove(conn)

    def _sweep(self) -> None:
        self._sweeper = None
        loop = asyncio.get_running_loop()
        deadline = monotonic() - self.idle_timeout
        left = 0
        for target, idle in list(self._idle.items()):
            keep = [c for c in idle if not c.closed and c.idle_since >= deadline]
            for c in idle:
                if c not in keep:
                    c.close()
            if keep:
                self._idle[target] = keep
                left += len(keep)
            else:
                del self._idle[target]
        if left and not self._closed:
            self._sweeper = loop.call_later(self.idle_timeout / 2, self._sweep)

    def close_target(self, target: str) -> None:
        for conn in self._idle.pop(target, []):
            conn.close()

    def idle_count(self, target: str) -> int:
        return len(self._idle.get(target, ()))

    def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for target in list(self._idle):
            self.close_target(target)

"""The client side: an asyncio.Protocol per connection, parsing requests with llhttp (httptools)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from .errors import ClientRequestError
from .exchange import Exchange
from .pages import error_response
from .request import parse_head

if TYPE_CHECKING:
    from .proxy import Proxy

log = logging.getLogger("dockyard.proxy")

WRITE_HIGH_WATER = 256 * 1024


class ClientConnection(asyncio.Protocol):
    """Parses requests, hands each to an Exchange (one at a time; pipelined ones wait)."""

    scheme = b"http"  # X-Forwarded-Proto; proxy.tls.TlsClientConnection says https

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.options = proxy.options
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = b""
        self.peer_str = ""
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.parsing: Exchange | None = None  # request whose body is being read
        self.active: Exchange | None = None  # request being forwarded
        self.queue: deque[Exchange] = deque()
        self.in_head = True
        self.head_bytes = 0
        self.paused: set[str] = set()
        self.closing = False
        self.closed = False
        self.upgraded = False
        self.upgrade_tail: list[bytes] = []
        self.tunnel: asyncio.Transport | None = None
        self.tunnel_exchange: Exchange | None = None
        self.deadline = 0.0  # header or idle timeout as loop.time(), 0.0: none (deadlines.py)
        self.loop = proxy.loop

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer_str = str(peer[0]) if isinstance(peer, tuple) else ""
        self.peer = self.peer_str.encode()
        self.proxy.connections.add(self)
        self.proxy.sweep.ensure(self.loop)
        self._set_timer(self.options.client_header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy.connections.discard(self)
        self._cancel_timer()
        if self.tunnel_exchange is not None:
            self.tunnel_exchange.tunnel_lost()
        self.queue.clear()
        if self.active is not None:
            self.active.client_gone()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if self.upgraded:
            self.upgrade_tail.append(data)
            return
        if self.in_head:
            if self.parsing is None and self.head_bytes == 0 and self.active is None:
                self._set_timer(self.options.client_header_timeout)
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self.upgraded = True
            if offset < len(data):
                self.upgrade_tail.append(data[offset:])
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, ClientRequestError):
                self.reject(cause.status)
            else:
                log.exception("Parser callback failed", exc_info=cause)
                self.reject(400)
            return
        except httptools.HttpParserError:
            self.reject(400)
            return
        if self.in_head and self.head_bytes > self.options.max_header_size:
            self.reject(431)

    def pause_writing(self) -> None:
        if self.active is not None:
            self.active.client_pause_writing()

    def resume_writing(self) -> None:
        if self.active is not None:
            self.active.client_resume_writing()

    # -- httptools callbacks --------------------------------------------------------------------
    # (no on_message_begin: url and headers are reset once the head is complete, one call less)
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        url = self.url
        headers = self.headers
        self.url = b""
        self.headers = []
        options = self.options
        parser = self.parser
        version = parser.get_http_version()
        head = parse_head(headers, version, options.max_body_size, options.max_header_size, len(url) + 16)
        self.in_head = False
        self.head_bytes = 0
        self.deadline = 0.0
        keep_alive = parser.should_keep_alive() and not self.closing
        ex = Exchange(self, parser.get_method(), url, version, keep_alive, head)
        self.parsing = ex
        if self.active is None:
            self.active = ex
            if not ex.start():
                self._run(ex)
        else:
            self.queue.append(ex)
            self.pause("pipeline")

    def on_body(self, body: bytes) -> None:
        ex = self.parsing
        assert ex is not None
        limit = self.options.max_body_size
        if limit and ex.body_received + len(body) > limit:
            raise ClientRequestError(413, "body larger than max_body_size")
        ex.feed_body(body)

    def on_message_complete(self) -> None:
        ex = self.parsing
        if ex is not None:
            self.parsing = None
            if ex.has_body:  # without one, body_complete was set at the head
                ex.body_done()
        self.in_head = True

    # -- used by exchanges ---------------------------------------------------------------------
    def _start(self, ex: Exchange) -> None:
        self.active = ex
        if not ex.start():
            self._run(ex)

    def _run(self, ex: Exchange) -> None:
        ex.task = self.loop.create_task(ex.run())
        self.track(ex.task)

    def track(self, task: asyncio.Task[None]) -> None:
        self.proxy.tasks.add(task)
        task.add_done_callback(self.proxy.tasks.discard)

    def exchange_finished(self, ex: Exchange) -> None:
        if self.active is not ex:
            return
        self.active = None
        if self.closed:
            return
        if not ex.keep_alive or not ex.body_complete or self.closing or self.upgraded:
            self.close()
            return
        if self.queue:
            self._start(self.queue.popleft())
            if not self.queue:
                self.resume("pipeline")
            return
        if self.parsing is None and self.head_bytes == 0:
            self.deadline = self.loop.time() + self.options.client_idle_timeout
        else:  # the next head is partly here
            self._set_timer(self.options.client_header_timeout)

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

    def reject(self, status: int) -> None:
        """Answer a bad request with `status` and close (unless a response is already under way)."""
        active = self.active
        if active is not None and active.started:
            self.abort()
            if not active.completed:
                active.client_gone()
            return
        self.write(error_response(status, None, keep_alive=False))
        self.close()
        if active is not None and not active.completed:
            active.client_gone()

    def start_tunnel(self, ex: Exchange, upstream: asyncio.Transport) -> asyncio.Transport:
        """Switch to raw byte relaying after a 101; returns our transport for the upstream side."""
        assert self.transport is not None
        self.tunnel = upstream
        self.tunnel_exchange = ex
        for chunk in self.upgrade_tail:
            upstream.write(chunk)
        self.upgrade_tail = []
        self.paused.clear()
        self.transport.resume_reading()
        return self.transport

    def shutdown(self) -> None:
        """Stop accepting requests on this connection: close now when idle, else after the response."""
        self.closing = True
        if self.active is None and self.parsing is None and self.tunnel is None:
            self.close()

    # -- timeouts (checked by the proxy's DeadlineSweep) ----------------------------------------
    def _set_timer(self, seconds: float) -> None:
        self.deadline = self.loop.time() + seconds

    def _cancel_timer(self) -> None:
        self.deadline = 0.0

    def check_deadlines(self, now: float) -> None:
        active = self.active
        if active is not None:
            if active.deadline and active.deadline <= now:
                active.deadline = 0.0
                active._timed_out()
        elif self.deadline and self.deadline <= now:
            self.deadline = 0.0
            self._timed_out()

    def _timed_out(self) -> None:
        if self.active is not None or self.tunnel is not None or self.closed:
            return
        if self.head_bytes or self.parsing is not None:
            self.write(error_response(408, None, keep_alive=False))
        self.close()

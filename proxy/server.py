"""The client side: an asyncio.Protocol per connection, parsing requests with llhttp (httptools)."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import httptools

from .downstream import WRITE_HIGH_WATER, Downstream
from .errors import ClientRequestError, PipelineFull
from .exchange import Exchange
from .forwarding import is_trusted
from .options import MAX_PIPELINED, MAX_UPGRADE_BUFFER
from .pages import error_response
from .request import parse_head, split_target
from .state import ProxyState

log = logging.getLogger("dockyard.proxy")

# What a connection's progress watch is timing (check_deadlines).
WATCH_NONE, WATCH_BODY, WATCH_SEND, WATCH_TUNNEL = 0, 1, 2, 3


class ClientConnection(Downstream):
    """Parses requests, hands each to an Exchange (one at a time; pipelined ones wait)."""

    def __init__(self, state: ProxyState) -> None:
        super().__init__(state)
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.parsing: Exchange | None = None  # request whose body is being read
        self.active: Exchange | None = None  # request being forwarded
        # at most MAX_PIPELINED: a list (56 bytes empty) not a deque (~600: every idle connection has one)
        self.queue: list[Exchange] = []
        self.in_head = True
        self.head_bytes = 0
        self.upgraded = False
        self.upgrade_wanted = False  # the head just parsed asked for an upgrade we accept
        self.upgrade_tail: list[bytes] = []
        self.upgrade_size = 0
        self.tunnel: asyncio.Transport | None = None
        self.tunnel_exchange: Exchange | None = None
        self.counted = False  # registered in state.connections (not refused at a limit)
        self.deadline = 0.0  # header or idle timeout as loop.time(), 0.0: none (deadlines.py)
        # Body, send and tunnel timeouts: a watch on a progress mark, checked by the sweep.
        self.reads = 0  # data_received calls
        self.write_paused = False
        self.watch = WATCH_NONE
        self.watch_mark = 0
        self.watch_deadline = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer_str = self.client_ip = str(peer[0]) if isinstance(peer, tuple) else ""
        self.peer = self.peer_str.encode()
        sock = transport.get_extra_info("sockname")
        self.local_port = b"%d" % sock[1] if isinstance(sock, tuple) else b""
        state = self.state
        if state.trusted:
            self.trusted = is_trusted(self.peer_str, state.trusted)
        if not self._admit():
            state.refused += 1
            self.closed = True
            self.transport.abort()
            return
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.counted = True
        state.connections[self] = None
        state.per_ip[self.peer_str] = state.per_ip.get(self.peer_str, 0) + 1
        state.sweep.ensure(self.loop)
        self._set_timer(self.options.client_header_timeout)

    def _admit(self) -> bool:
        """Under max_connections (closing the oldest idle keep-alive connection to get there)
        and max_connections_per_ip (trusted proxies are exempt)?"""
        state = self.state
        per_ip = self.options.max_connections_per_ip
        if per_ip and not self.trusted and state.per_ip.get(self.peer_str, 0) >= per_ip:
            return False
        if len(state.connections) < state.max_connections:
            return True
        for conn in state.connections:
            if conn.idle():
                conn.shutdown()  # closes it now; connection_lost gives its place back
                return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.counted:
            self.counted = False
            state = self.state
            state.connections.pop(self, None)
            n = state.per_ip.get(self.peer_str, 0) - 1
            if n > 0:
                state.per_ip[self.peer_str] = n
            else:
                state.per_ip.pop(self.peer_str, None)
        self._cancel_timer()
        if self.tunnel_exchange is not None:
            self.tunnel_exchange.tunnel_lost()
        self.queue.clear()
        if self.active is not None:
            self.active.client_gone()

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if self.upgraded:
            self._hold(data)
            return
        if self.paused and "overflow" in self.paused:
            return  # past MAX_PIPELINED the parser stopped; only the queued requests are answered
        if self.in_head:
            if self.parsing is None and self.head_bytes == 0 and self.active is None:
                self._set_timer(self.options.client_header_timeout)
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            if not self.upgrade_wanted:
                # An Upgrade we do not forward (h2c, ...): the request went on as a plain one
                # and the client keeps speaking HTTP/1.1. llhttp stops after an upgrade head,
                # so parse the rest with a fresh parser.
                self.parser = httptools.HttpRequestParser(self)
                if offset < len(data):
                    self.data_received(data[offset:])
                return
            self.upgraded = True
            self.pause("upgrade")  # until the tunnel starts: a client must not fill our memory
            if offset < len(data):
                self._hold(data[offset:])
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, ClientRequestError):
                self.reject(cause.status)
            elif isinstance(cause, PipelineFull):
                pass  # the queued requests are answered, then the connection closes
            else:
                log.exception("Parser callback failed", exc_info=cause)
                self.reject(400)
            return
        except httptools.HttpParserError:
            self.reject(400)
            return
        if self.in_head and self.head_bytes > self.options.max_header_size:
            self.reject(431)

    def _hold(self, data: bytes) -> None:
        """Client bytes after an upgrade head, kept for the tunnel: at most MAX_UPGRADE_BUFFER."""
        self.upgrade_size += len(data)
        if self.upgrade_size > MAX_UPGRADE_BUFFER:
            self.upgrade_tail = []
            self.abort()
            if self.active is not None and not self.active.completed:
                self.active.client_gone()
            return
        self.upgrade_tail.append(data)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.active is not None:
            self.active.client_pause_writing()

    def resume_writing(self) -> None:
        self.write_paused = False
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
        method = parser.get_method()
        if method == b"CONNECT":
            raise ClientRequestError(405, "CONNECT is not proxied")
        authority: bytes | None = None
        if url[:1] != b"/":  # absolute-form (routed by its authority), `*`, or garbage
            url, authority = split_target(url, method)
        head = parse_head(headers, version, options.max_header_size, len(url) + 16, authority)
        self.upgrade_wanted = head.upgrade is not None
        self.in_head = False
        self.head_bytes = 0
        self.deadline = 0.0
        keep_alive = parser.should_keep_alive() and not self.closing
        if self.active is not None and len(self.queue) >= MAX_PIPELINED:
            # Stop here: the queued requests are answered, the last with Connection: close.
            self.queue[-1].keep_alive = False
            self.pause("overflow")
            raise PipelineFull()
        ex = Exchange(self, method, url, version, keep_alive, head)
        if ex.body_limit and head.content_length > ex.body_limit:
            raise ClientRequestError(413, "body larger than max_body_size")
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
        limit = ex.body_limit  # the routed app's, chunked or not, buffered or not
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

    def exchange_finished(self, ex: object) -> None:
        if self.active is not ex:
            return
        assert isinstance(ex, Exchange)
        self.active = None
        if self.closed:
            return
        if not ex.keep_alive or not ex.body_complete or self.closing or self.upgraded:
            self.close()
            return
        if self.queue:
            self._start(self.queue.pop(0))
            if not self.queue:
                self.resume("pipeline")
            return
        if self.parsing is None and self.head_bytes == 0:
            self.deadline = self.loop.time() + self.options.client_idle_timeout
        else:  # the next head is partly here
            self._set_timer(self.options.client_header_timeout)

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
            active.status = status
            active.client_gone()

    def start_tunnel(self, ex: object, upstream: asyncio.Transport) -> asyncio.Transport:
        """Switch to raw byte relaying after a 101; returns our transport for the upstream side."""
        assert self.transport is not None and isinstance(ex, Exchange)
        self.tunnel = upstream
        self.tunnel_exchange = ex
        for chunk in self.upgrade_tail:
            upstream.write(chunk)
        self.upgrade_tail = []
        self.upgrade_size = 0
        self.paused.clear()
        self.transport.resume_reading()
        return self.transport

    # -- lifecycle (state.Connection) ---------------------------------------------------------
    def linger(self) -> None:
        self.closing = True

    def idle(self) -> bool:
        return (self.active is None and self.parsing is None and self.head_bytes == 0
                and self.tunnel is None and not self.closed)

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
            self._check_progress(now)
        elif self.deadline and self.deadline <= now:
            self.deadline = 0.0
            self._timed_out()

    def _check_progress(self, now: float) -> None:
        """Body, send and tunnel timeouts: each fires when its mark has not moved for its timeout.

        body: no read while a request body is due (and we are not the ones pausing);
        send: our write buffer is over the high-water mark and has not shrunk;
        tunnel: no byte either way.
        """
        options = self.options
        parsing = self.parsing
        if self.tunnel is not None:
            watch, timeout = WATCH_TUNNEL, options.tunnel_idle_timeout
            mark = self.reads
            ex = self.tunnel_exchange
            if ex is not None and ex.upstream is not None:
                mark += ex.upstream.tunnel_reads << 32
        elif self.write_paused and self.transport is not None:
            watch, timeout = WATCH_SEND, options.send_timeout
            mark = self.transport.get_write_buffer_size()
        elif parsing is not None and parsing is self.active and not parsing.body_complete and not self.paused:
            watch, timeout = WATCH_BODY, parsing.body_timeout or options.client_body_timeout
            mark = self.reads
        else:
            self.watch = WATCH_NONE
            return
        if watch != self.watch or mark != self.watch_mark:
            self.watch = watch
            self.watch_mark = mark
            self.watch_deadline = now + timeout
            return
        if now < self.watch_deadline:
            return
        self.watch = WATCH_NONE
        if watch == WATCH_BODY:
            self.reject(408)
        elif watch == WATCH_SEND:
            self.abort()
            if self.active is not None and not self.active.completed:
                self.active.client_gone()
        else:
            ex = self.tunnel_exchange
            if ex is not None:
                ex.tunnel_lost()
            self.close()

    def _timed_out(self) -> None:
        if self.active is not None or self.tunnel is not None or self.closed:
            return
        if self.head_bytes or self.parsing is not None:
            self.write(error_response(408, None, keep_alive=False))
        self.close()


class TlsClientConnection(ClientConnection):
    """A client connection that arrived on the TLS listener (X-Forwarded-Proto: https)."""

    scheme = b"https"
